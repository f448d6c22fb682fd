#include <coronet/http/error.hpp>
#include <coronet/testing/http.hpp>

#include <coronet/time.hpp>

#include "http1/request_parser.hpp"
#include "http/connection.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>


// GCC 12 misreads the coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace coronet::http::testing {

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// A streamed body, gathered.
class gather final : public body_writer {
public:
  gather(std::string& into, http::headers& trailers) : body_writer(trailers), into_(into) {}
  task<void> write(std::string_view data) override
  {
    into_.append(data);
    co_return;
  }

private:
  std::string& into_;
};

} // namespace

nlohmann::json result::json() const
{
  return nlohmann::json::parse(body);
}

client::client(const router& routes, runtime* rt) : routes_(routes), rt_(rt)
{
  if (!rt_) {
    own_ = std::make_unique<runtime>(1);
    rt_ = own_.get();
  }
}

client::~client() = default;

result client::get(std::string target, http::headers headers)
{
  return send("GET", std::move(target), {}, std::move(headers));
}

result client::post(std::string target, std::string body, http::headers headers)
{
  return send("POST", std::move(target), std::move(body), std::move(headers));
}

result client::send(std::string method, std::string target, std::string body, http::headers headers)
{
  return rt_->block_on(call(std::move(method), std::move(target), std::move(body), std::move(headers)));
}

// As the server would: the request as the parser makes it (path decoded,
// Host, Content-Length), the deadline header taken, the router's answer
// or its error mapping, a streamed body gathered, none for HEAD.
task<result> client::call(std::string method, std::string target, std::string body, http::headers headers)
{
  request req;
  req.method = std::move(method);
  if (target.empty() || target.front() != '/')
    target.insert(0, "/");
  auto q = target.find('?');
  auto path = percent_decode(std::string_view(target).substr(0, q), false);
  if (!path)
    co_return result{400, {}, "Bad Request: malformed percent-encoding in the path\n", {}};
  req.path = std::move(*path);
  req.query_string = q == std::string::npos ? std::string{} : target.substr(q + 1);
  req.target = std::move(target);
  req.headers = std::move(headers);
  if (!req.headers.contains("Host"))
    req.headers.add("Host", "test");
  if (!body.empty() && !req.headers.contains("Content-Type"))
    req.headers.add("Content-Type", "application/json");
  if (!body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH")
    req.headers.add("Content-Length", std::to_string(body.size()));
  req.body = std::move(body);
  req.peer = "127.0.0.1:1";
  req.client_ip = "127.0.0.1";

  static const server_options defaults;
  response resp;
  if (!detail::take_deadline(req, defaults)) {
    resp = detail::expired_response();
  } else {
    try {
      resp = co_await routes_.dispatch(req);
    } catch (...) {
      resp = answer_failure(std::current_exception(), req);
    }
  }
  result out{code(resp.status), std::move(resp.headers), std::move(resp.body), std::move(resp.trailers)};
  if (resp.stream) {
    out.body.clear();
    gather into{out.body, out.trailers};
    co_await resp.stream(into);
  }
  if (req.method == "HEAD")
    out.body.clear();
  co_return out;
}

struct upstream_server::state {
  state(runtime& rt, script s) : acceptor(rt.executor(0), {asio::ip::address_v4::loopback(), 0}), answer_with(std::move(s))
  {
  }
  asio::ip::tcp::acceptor acceptor;
  unsigned short port = acceptor.local_endpoint().port();
  script answer_with;
  std::vector<seen_request> seen;
};

namespace {

std::string response_bytes(const answer& a)
{
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", a.status, reason(static_cast<status>(a.status)));
  bool length = false;
  for (auto& [name, value] : a.headers) {
    length = length || iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding");
    out.append(name).append(": ").append(value).append("\r\n");
  }
  if (!length)
    out.append("Content-Length: ").append(std::to_string(a.body.size())).append("\r\n");
  out.append("\r\n").append(a.body);
  return out;
}

task<void> serve_one(std::shared_ptr<upstream_server::state> st, asio::ip::tcp::socket socket)
{
  detail::request_parser parser;
  char buffer[16 * 1024];
  for (;;) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(buffer), use_tuple);
    if (ec)
      co_return;
    std::string_view data{buffer, n};
    while (!data.empty()) {
      std::size_t used = 0;
      auto r = parser.feed(data, used);
      data.remove_prefix(used);
      if (r == detail::request_parser::result::error) {
        co_await asio::async_write(socket, asio::buffer(std::string("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                                                    "Connection: close\r\n\r\n")), use_tuple);
        co_return;
      }
      if (r == detail::request_parser::result::need_more)
        break;
      auto& req = parser.finished();
      seen_request seen{req.method, req.target, req.headers, req.body};
      auto index = st->seen.size();
      st->seen.push_back(seen);
      answer a = st->answer_with(seen, index);
      if (a.delay.count() > 0)
        co_await sleep_for(a.delay);
      if (a.reset)
        co_return; // the socket closes with the frame: no byte of an answer
      auto bytes = response_bytes(a);
      if (a.cut_after > 0 && a.cut_after < bytes.size()) {
        co_await asio::async_write(socket, asio::buffer(bytes.data(), a.cut_after), use_tuple);
        co_return;
      }
      auto [wec, written] = co_await asio::async_write(socket, asio::buffer(bytes), use_tuple);
      if (wec)
        co_return;
    }
  }
}

task<void> accept_all(std::shared_ptr<upstream_server::state> st)
{
  for (;;) {
    auto [ec, socket] = co_await st->acceptor.async_accept(use_tuple);
    if (ec)
      co_return;
    spawn(serve_one(st, std::move(socket)));
  }
}

} // namespace

upstream_server::upstream_server(runtime& rt, script answer_with)
  : state_(std::make_shared<state>(rt, std::move(answer_with)))
{
  rt.spawn(0, accept_all(state_));
}

upstream_server::~upstream_server()
{
  // On the acceptor's worker: the accept loop ends there.
  asio::post(state_->acceptor.get_executor(), [st = state_] {
    std::error_code ignored;
    st->acceptor.close(ignored);
  });
}

unsigned short upstream_server::port() const noexcept
{
  return state_->port;
}

std::string upstream_server::url(std::string_view path) const
{
  return fmt::format("http://127.0.0.1:{}{}", port(), path);
}

const std::vector<seen_request>& upstream_server::requests() const noexcept
{
  return state_->seen;
}

} // namespace coronet::http::testing
