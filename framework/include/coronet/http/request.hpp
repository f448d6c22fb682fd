#pragma once
// An HTTP request (HTTP/1.1 or HTTP/2) as a handler sees it, with its
// context: who sent it, its deadline, values from middleware. A handler is
// cancelled (its waits throw operation_aborted, its client calls end) when
// the client goes away or resets the stream.
#include <coronet/http/headers.hpp>
#include <coronet/task.hpp>

#include <nlohmann/json_fwd.hpp>

#include <any>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::http {

// Typed values that middleware sets for the handlers after it (Go's
// context.WithValue), one per type:
//   struct user { std::string name; };
//   req.values.set(user{"ann"});                  // an auth middleware
//   if (const user* u = req.values.get<user>())   // a handler
class values {
public:
  template <class T>
  void set(T value)
  {
    for (auto& [k, v] : items_)
      if (k == key<T>()) {
        v = std::move(value);
        return;
      }
    items_.emplace_back(key<T>(), std::move(value));
  }
  // nullptr when no value of that type was set.
  template <class T>
  T* get() noexcept
  {
    for (auto& [k, v] : items_)
      if (k == key<T>())
        return std::any_cast<T>(&v);
    return nullptr;
  }
  template <class T>
  const T* get() const noexcept
  {
    return const_cast<values*>(this)->get<T>();
  }
  void clear() noexcept { items_.clear(); }
  bool empty() const noexcept { return items_.empty(); }

private:
  template <class T>
  static const void* key() noexcept
  {
    static const char k = 0;
    return &k;
  }
  std::vector<std::pair<const void*, std::any>> items_;
};

// A request body read as it arrives, instead of whole in request::body:
// the server gives one to an HTTP/2 request whose Content-Type is
// application/grpc (a gRPC call's messages may stream both ways at once).
// The client's flow-control window is given back as the handler reads, so
// a handler that reads slowly slows the client instead of growing a buffer.
class body_reader {
public:
  // Appends what has arrived to `out`, waiting for at least one byte;
  // false once the body has ended and all of it was read. Throws
  // std::system_error when the client resets the stream.
  virtual task<bool> read(std::string& out) = 0;

protected:
  ~body_reader() = default;
};

struct request {
  std::string method;      // "GET", as sent
  std::string target;      // "/users/7?full=1", as sent
  std::string path;        // "/users/7", percent-decoded
  std::string query_string; // "full=1", as sent (no '?')
  int version_major = 1;
  int version_minor = 1;
  http::headers headers;
  std::string body;
  bool keep_alive = true;  // what the client asked for (version + Connection)
  std::vector<std::pair<std::string, std::string>> params; // from the route's {name} segments
  std::string route;       // the matched pattern ("/users/{id}"); empty when none matched
  std::string id;          // the request id, once the request_ids() middleware ran
  std::string traceparent; // W3C trace context, taken or made by request_ids() ("00-<trace>-<span>-01")
  // By when the caller wants an answer: from X-Request-Timeout-Ms (or
  // grpc-timeout), capped by http.request_timeout_ms; max() when neither
  // says. The handler runs under it: past it, whatever the handler awaits
  // is cancelled and the answer is 504 (middleware around the handler is
  // not timed: it sees the 504). Pass it on to the services it calls:
  // request_options::deadline = req.deadline (http::call_options does).
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max(); // coronet::clock
  // Who sent it: the connection's peer ("10.0.0.5:51234", "[::1]:51234"),
  // and the client's address, which is the peer's unless the peer is in
  // http.trusted_proxies: then the nearest address X-Forwarded-For (or
  // Forwarded) names that is not a trusted proxy itself.
  std::string peer;
  std::string client_ip;
  http::values values; // set by middleware for the handlers after it
  // Set when the body is read as it arrives (see body_reader): `body`
  // stays empty.
  body_reader* body_stream = nullptr;

  // Empties every field for the next request on the connection, keeping
  // small buffers (no allocation per request) but not a big body.
  void reset() noexcept
  {
    method.clear();
    target.clear();
    path.clear();
    query_string.clear();
    version_major = 1;
    version_minor = 1;
    headers.clear();
    if (body.capacity() > 64 * 1024)
      std::string{}.swap(body);
    body.clear();
    keep_alive = true;
    coronet::detail::give_strings(params);
    route.clear();
    id.clear();
    traceparent.clear();
    deadline = std::chrono::steady_clock::time_point::max();
    peer.clear();
    client_ip.clear();
    values.clear();
    body_stream = nullptr;
  }

  // A route parameter ("{id}" in the pattern), percent-decoded.
  std::optional<std::string_view> param(std::string_view name) const noexcept
  {
    for (auto& [k, v] : params)
      if (k == name)
        return std::string_view{v};
    return std::nullopt;
  }

  // The first value of query parameter `name`, percent-decoded ('+' is a
  // space); std::nullopt when absent.
  std::optional<std::string> query(std::string_view name) const;
  std::optional<std::string_view> header(std::string_view name) const noexcept { return headers.get(name); }

  // The body parsed as JSON: throws http::error 415 (not application/json)
  // or 400 naming the problem, which the server answers. Typed forms and
  // field helpers: <coronet/http/json.hpp>.
  nlohmann::json json() const;
};

// A route or query parameter as a positive integer (an id): throws
// http::error 400 "<what> must be a positive integer" when it is absent or is
// not one, which the server answers as a 400 with that message.
//   auto id = http::positive_integer(req.param("id"), "user id");
std::int64_t positive_integer(std::optional<std::string_view> text, std::string_view what);
std::int64_t positive_integer(const std::optional<std::string>& text, std::string_view what);

// Percent-decodes `text` ('+' as space when `plus_is_space`); std::nullopt
// for a malformed escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);
// The same into `out` (its memory reused); false for a malformed escape.
bool percent_decode_into(std::string& out, std::string_view text, bool plus_is_space);

} // namespace coronet::http
