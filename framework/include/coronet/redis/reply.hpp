#pragma once
// What Redis answers (RESP2), and what a Redis call can fail with.
//
//   auto r = co_await redis.command("HGETALL", "user:7");   // redis::reply
//   for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2)
//     fields[r.elements[i].text] = r.elements[i + 1].text;
#include <coronet/error.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::redis {

struct reply {
  enum class kind : unsigned char { nil, string, status, integer, array, error };
  kind type = kind::nil;
  std::string text;           // string (any bytes), status ("OK"), error ("ERR ...")
  std::int64_t integer = 0;   // integer
  std::vector<reply> elements; // array (a nil array is kind::nil)

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_error() const noexcept { return type == kind::error; }
  // A string or status as text, nil as nullopt; throws redis::error for an
  // error reply and for anything else.
  std::optional<std::string> as_string() const;
  // An integer reply, or a string that holds one (GET of a counter).
  std::int64_t as_integer() const;
};

enum class errc {
  unavailable, // no connection: refused, unreachable, the TLS handshake or AUTH failed
  timeout,     // redis.command_timeout_ms or the caller's deadline passed
  connection,  // the connection broke during the call: whether it took effect is unknown
  server,      // Redis answered with an error (WRONGTYPE, a script's error, an aborted MULTI)
  protocol,    // a reply that is not RESP, or not the shape the call expects
};

std::string_view to_string(errc kind) noexcept;
// The answer a handler would give: 503, 504, 503, 500, 502.
int http_status(errc kind) noexcept;

// A coronet::status_error: a handler that lets it through is answered
// http_status(kind()), with a message that names no address.
class error final : public status_error {
public:
  error(errc kind, const std::string& message) : status_error(redis::http_status(kind), message), kind_(kind) {}
  std::string client_message() const override;
  errc kind() const noexcept { return kind_; }

private:
  errc kind_;
};

} // namespace coronet::redis
