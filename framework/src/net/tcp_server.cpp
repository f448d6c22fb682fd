#include <coronet/net/tcp_server.hpp>

#include <coronet/detail/intrusive_list.hpp>
#include <coronet/metrics.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/sync/select.hpp>
#include <coronet/sync/wait_group.hpp>
#include <coronet/time.hpp>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/socket_base.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <openssl/ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/select.h>
#include <sys/socket.h>

namespace coronet::net {

using asio::ip::tcp;
using namespace std::chrono_literals;

std::string to_string(const asio::ip::tcp::endpoint& at)
{
  auto address = at.address().to_string();
  return at.address().is_v6() ? fmt::format("[{}]:{}", address, at.port()) : fmt::format("{}:{}", address, at.port());
}

asio::ip::tcp::endpoint parse_endpoint(std::string_view text)
{
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    throw std::invalid_argument("'" + std::string(text) + "' is not HOST:PORT");
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535)
    throw std::invalid_argument("'" + std::string(text) + "' has a bad port");
  std::error_code bad;
  auto address = asio::ip::make_address(std::string(host), bad);
  if (bad) {
    if (host == "localhost")
      address = asio::ip::address_v4::loopback();
    else
      throw std::invalid_argument("'" + std::string(text) + "' has a bad address (use an IP address)");
  }
  return {address, static_cast<unsigned short>(port)};
}

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

struct connection_metrics {
  metrics::counter& accepted;
  metrics::counter& refused;
  metrics::gauge& open;
};

connection_metrics& tcp_metrics()
{
  auto& r = metrics::registry::global();
  static connection_metrics m{
    r.counters("coronet_tcp_connections_accepted_total", "Connections accepted.").with({}),
    r.counters("coronet_tcp_connections_refused_total",
      "Connections refused: accept failed (out of descriptors, memory...) and the server backed off.").with({}),
    r.gauges("coronet_tcp_connections_open", "Connections open now.").with({})};
  return m;
}

// SO_REUSEPORT lets any process of the same user join the port and take a
// share of its connections. A socket without it, that only binds, fails
// with EADDRINUSE when anything already listens there (SO_REUSEADDR still
// lets it pass TIME_WAIT leftovers of a previous run); our own acceptors
// bind beside it, as it never listens.
tcp::acceptor claim_address(asio::any_io_executor ex, const tcp::endpoint& at)
{
  tcp::acceptor claim{ex};
  claim.open(at.protocol());
  claim.set_option(asio::socket_base::reuse_address(true));
  std::error_code ec;
  claim.bind(at, ec);
  if (ec == asio::error::address_in_use)
    throw startup_error(fmt::format("cannot listen on {}: address in use", to_string(at)));
  if (ec)
    throw startup_error(fmt::format("cannot listen on {}: {}", to_string(at), ec.message()));
  return claim;
}

tcp::acceptor open_acceptor(asio::any_io_executor ex, const tcp::endpoint& at)
{
  tcp::acceptor acceptor{ex};
  acceptor.open(at.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
#ifdef SO_REUSEPORT
  int one = 1;
  ::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
#endif
  std::error_code ec;
  acceptor.bind(at, ec);
  if (!ec)
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec == asio::error::address_in_use)
    throw startup_error(fmt::format("cannot listen on {}: address in use", to_string(at)));
  if (ec)
    throw startup_error(fmt::format("cannot listen on {}: {}", to_string(at), ec.message()));
  return acceptor;
}

// A worker's live connections, so a drain that runs out of time can shut
// their sockets down.
struct live_connection {
  stream* s = nullptr;
  live_connection* prev_ = nullptr;
  live_connection* next_ = nullptr;
  bool linked_ = false;
};

struct worker_connections {
  detail::intrusive_list<live_connection> live;
  wait_group running;
};

// The TLS handshake under its timeout; false (counted, logged at debug)
// when it failed, and the connection is to be closed.
task<bool> handshake(stream& s, std::chrono::milliseconds timeout)
{
  s.set_read_deadline(clock::now() + timeout); // the handshake waits under the read deadline
  auto ec = co_await s.handshake();
  s.set_read_deadline(stream::no_deadline);
  if (!ec) {
    count_handshake(SSL_session_reused(static_cast<SSL*>(s.native_tls())) == 1);
    co_return true;
  }
  auto reason = handshake_failure_reason(ec);
  count_handshake_failure(reason);
  spdlog::debug("tls handshake with {} failed ({}): {}", to_string(s.remote_endpoint()), reason,
    tls_error_message(ec));
  co_return false;
}

// Owns the connection's stream and runs the handler on it, logging what it
// throws: one connection never takes the others down. `cancel` cancels this
// task (the stream's watch_peer() emits it when the client goes away).
task<void> guarded(connection_handler& handler, tcp::socket socket, std::shared_ptr<tls_server> tls,
  channel<std::monostate> slots, worker_connections& connections, std::unique_ptr<asio::cancellation_signal> cancel)
{
  auto& m = tcp_metrics();
  m.accepted.inc();
  m.open.add(1);
  stream s = tls ? stream{std::move(socket), tls->context(), tls_role::server} : stream{std::move(socket)};
  s.set_task_cancel(cancel.get());
  live_connection entry{&s};
  connections.live.push_back(&entry);
  try {
    bool ready = true;
    if (tls)
      ready = co_await handshake(s, tls->options().handshake_timeout);
    if (ready)
      co_await handler(s);
  } catch (const std::system_error& e) {
    if (e.code() != asio::error::operation_aborted)
      spdlog::warn("connection ended by error: {}", e.what());
  } catch (const std::exception& e) {
    spdlog::error("connection handler failed: {}", e.what());
  }
  s.shut_down();
  connections.live.remove(&entry);
  m.open.add(-1);
  slots.try_send(std::monostate{});
  connections.running.done(); // last: the worker's drain may end now
}

// One worker's share of the listener: its connection slots, its live
// connections, and the acceptor it shares the port through.
struct worker_listener {
  worker_listener(runtime& r, std::shared_ptr<tcp::acceptor> a, std::size_t max_connections, const tcp_options& o,
    connection_handler h)
    : rt(r), acceptor(std::move(a)), options(o), handler(std::move(h)), slots(max_connections)
  {
    // A token per allowed connection: at the limit the loop waits for one to
    // come back instead of accepting (backpressure, not failure).
    for (std::size_t i = 0; i < max_connections; ++i)
      slots.try_send(std::monostate{});
    // Accept_waiting() relies on it; async_accept is unaffected.
    std::error_code nb;
    acceptor->non_blocking(true, nb);
  }

  void start(tcp::socket socket)
  {
    connections.running.add(1);
    auto cancel = std::make_unique<asio::cancellation_signal>();
    auto slot = cancel->slot();
    spawn(guarded(handler, std::move(socket), options.tls, slots, connections, std::move(cancel)), slot);
  }

  // Accepts up to `most` connections already waiting, without waiting, as
  // slots allow.
  void accept_waiting(std::size_t most)
  {
    for (std::size_t n = 0; n < most && slots.try_receive(); ++n) {
      std::error_code ec;
      tcp::socket socket = acceptor->accept(ec);
      if (ec) {
        slots.try_send(std::monostate{});
        return;
      }
      socket.set_option(tcp::no_delay(true), ec);
      start(std::move(socket));
    }
  }

  // EMFILE, ENFILE, ENOBUFS...: back off, and say so once a second.
  task<void> back_off(const std::error_code& ec)
  {
    tcp_metrics().refused.inc();
    if (clock::now() - last_error_log > 1s) {
      spdlog::warn("accept failed: {}; backing off", ec.message());
      last_error_log = clock::now();
    }
    co_await sleep_for(50ms);
  }

  task<void> accept_until_stopped()
  {
    while (!rt.stop_requested()) {
      auto got = co_await select(slots.on_receive(), rt.done().on_receive());
      if (got.index() == 1)
        break;
      auto [ec, socket] = co_await acceptor->async_accept(use_tuple);
      if (ec) {
        slots.try_send(std::monostate{});
        if (!acceptor->is_open() || rt.stop_requested())
          break;
        co_await back_off(ec);
        continue;
      }
      socket.set_option(tcp::no_delay(true));
      start(std::move(socket));
      // Take what else is already waiting, up to a batch (a few milliseconds
      // of work): a small batch per turn of the event loop leaves a burst of
      // connects queued for seconds behind busy connections (10,000 at once:
      // p99 2.4 s with 64, 0.2 s with 1024, as nginx). An error here
      // (EMFILE...) is met again, and handled, by the next async_accept.
      accept_waiting(1024);
    }
  }

  // Waits up to the drain timeout for the connections to finish, then shuts
  // down the sockets of those still open.
  task<void> drain()
  {
    // Counted by `running`, not by `live`: a connection just accepted is
    // running before its task has started and listed itself (a drain that
    // looked at `live` ended at once, and the stop reset such connections,
    // their requests sent).
    try {
      co_await with_timeout(connections.running.wait(), options.drain_timeout);
      co_return;
    } catch (const timeout_error&) {
    }
    std::size_t open = 0;
    for (auto* c = connections.live.front(); c; c = c->next_, ++open)
      c->s->shut_down();
    spdlog::warn("drain: {} connections still open after {} ms; closed them", open, options.drain_timeout.count());
    try {
      co_await with_timeout(connections.running.wait(), 1s);
    } catch (const timeout_error&) {
      // A handler waiting on something other than its socket: the
      // runtime is stopping, and its end takes the task with it.
      spdlog::warn("drain: handlers still running after their sockets closed; not waiting for them");
    }
  }

  runtime& rt;
  std::shared_ptr<tcp::acceptor> acceptor;
  const tcp_options& options;
  connection_handler handler;
  channel<std::monostate> slots;
  worker_connections connections;
  clock::time_point last_error_log{};
};

} // namespace

namespace {
thread_local std::size_t open_acceptors_here = 0;
} // namespace

bool accepting_here() noexcept
{
  return open_acceptors_here > 0;
}

namespace {

// How many connections the kernel has completed and queued on a listening
// socket (Linux reports it as TCP_INFO's tcpi_unacked); `otherwise` where
// it cannot be read.
std::size_t queued_connections(tcp::acceptor& a, std::size_t otherwise)
{
  tcp_info info{};
  socklen_t size = sizeof info;
  if (::getsockopt(a.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &size) != 0)
    return otherwise;
  return info.tcpi_unacked;
}

// Stops a worker's accepting, once: takes in the connections the kernel
// has completed and queued (their clients may have sent a request already,
// and closing would reset them; those queued now, not those still coming:
// under load, clients that the drain closes reconnect at once, and taking
// each as it came kept a busy worker here for seconds), then closes the
// acceptor, which ends the accept loop.
void stop_accepting(worker_listener& listener, std::size_t max_connections, bool& stopped)
{
  if (std::exchange(stopped, true))
    return;
  auto& acceptor = *listener.acceptor;
  listener.accept_waiting(std::min(max_connections, queued_connections(acceptor, max_connections)));
  std::error_code ec;
  acceptor.close(ec);
  --open_acceptors_here;
  if (listener.options.stopped_accepting)
    listener.options.stopped_accepting();
}

// One worker's share: accept until stopped, then drain. The stop closes the
// acceptor as soon as it is seen (a task woken by rt.done(), ahead of the
// accept loop's aborted accept), so that net::accepting_here() turns false
// before the connections answer "close".
task<void> serve_worker(runtime& rt, std::shared_ptr<tcp::acceptor> acceptor, std::size_t max_connections,
  const tcp_options& options, connection_handler handler, wait_group& finished)
{
  auto listener = std::make_shared<worker_listener>(rt, acceptor, max_connections, options, std::move(handler));
  auto stopped = std::make_shared<bool>(false);
  ++open_acceptors_here;
  spawn([](runtime& rt, std::shared_ptr<worker_listener> listener, std::size_t max,
          std::shared_ptr<bool> stopped) -> task<void> {
    co_await rt.done().receive();
    stop_accepting(*listener, max, *stopped);
  }(rt, listener, max_connections, stopped));
  co_await listener->accept_until_stopped();
  stop_accepting(*listener, max_connections, *stopped);
  co_await listener->drain();
  finished.done();
}

} // namespace

namespace {

// Asio's select reactor (CORONET_REACTOR=select) cannot wait on a descriptor
// numbered FD_SETSIZE or above: past about that many connections, new ones
// would fail. A server built on it serves at most this many at once instead;
// the others wait in the accept queue, as past max_connections.
std::size_t reactor_connection_limit(std::size_t wanted)
{
#if defined(ASIO_DISABLE_EPOLL)
  constexpr std::size_t room = FD_SETSIZE - 128; // the process's other descriptors: acceptors, clients, files
  if (wanted > room) {
    spdlog::warn("max_connections {}: the select reactor waits on descriptors below {} only; serving {} at once",
      wanted, FD_SETSIZE, room);
    return room;
  }
#endif
  return wanted;
}

} // namespace

task<void> serve_tcp(runtime& rt, tcp_options options, connection_handler handler)
{
  tcp::endpoint at = parse_endpoint(options.listen);
  options.max_connections = reactor_connection_limit(options.max_connections);
  std::size_t workers = rt.size();
  std::size_t per_worker = (options.max_connections + workers - 1) / workers;
  if (per_worker == 0)
    throw std::invalid_argument("max_connections must be at least 1");

  // Bind every acceptor before logging: port 0 becomes one real port shared
  // by all of them.
  std::optional<tcp::acceptor> claim;
  if (at.port() != 0)
    claim.emplace(claim_address(rt.executor(0), at));
  std::vector<tcp::acceptor> acceptors;
  for (std::size_t i = 0; i < workers; ++i) {
    acceptors.push_back(open_acceptor(rt.executor(i), at));
    if (i == 0)
      at = acceptors[0].local_endpoint();
  }
  spdlog::info("listening on {}{} ({} workers, max {} connections)", to_string(at), options.tls ? " (TLS)" : "",
    workers, options.max_connections);

  wait_group finished;
  finished.add(static_cast<std::int64_t>(workers));
  for (std::size_t i = 0; i < workers; ++i)
    rt.spawn(i, serve_worker(rt, std::make_shared<tcp::acceptor>(std::move(acceptors[i])), per_worker, options,
      handler, finished));
  co_await finished.wait();
  spdlog::info("server stopped");
}

} // namespace coronet::net
