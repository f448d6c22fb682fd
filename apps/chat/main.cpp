// coronet-chat: rooms shared by TCP clients (a line protocol: nc, telnet)
// and browsers (WebSocket, with the page at / on the HTTP port).
#include "chat.hpp"

#include <coronet/app/app.hpp>
#include <coronet/error.hpp>
#include <coronet/middleware/files.hpp>
#include <coronet/middleware/observe.hpp>
#include <coronet/server/server.hpp>
#include <coronet/websocket/websocket.hpp>
#include <coronet/net/stream.hpp>
#include <coronet/net/tcp_server.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/wait_group.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <exception>
#include <filesystem>

namespace http = coronet::http;
using asio::ip::tcp;

namespace {

// Writes each line of the outbox to the socket, gathering what is queued
// into one write; then the farewell line, then shuts the socket down, which
// ends the reader too.
coronet::task<void> tcp_writer(coronet::net::stream& s, std::shared_ptr<chat::client> c,
  coronet::channel<std::monostate> done)
{
  std::string batch;
  bool failed = false;
  auto write = [&]() -> coronet::task<void> {
    if (auto ec = co_await s.write(asio::buffer(batch))) {
      spdlog::debug("client {}: write failed: {}", c->id, ec.message());
      failed = true;
    }
  };
  while (auto l = co_await c->outbox.receive()) {
    if (failed || (c->ending() && c->drop_queued()))
      continue; // drain without writing
    batch.assign(**l).push_back('\n');
    while (batch.size() < 16 * 1024) {
      auto more = c->outbox.try_receive();
      if (!more)
        break;
      batch.append(**more).push_back('\n');
    }
    co_await write();
    if (failed)
      c->end({}, chat::close_normal);
  }
  if (!failed && !c->farewell().empty()) {
    batch.assign(c->farewell()).push_back('\n');
    co_await write();
  }
  s.shut_down();
  done.close();
}

// One TCP client: reads lines (at most max_line_bytes; longer ones are
// reported and skipped) and hands them to the session.
coronet::task<void> tcp_client(coronet::net::stream& s, chat::hub& hub)
{
  auto c = hub.connect();
  if (!c)
    co_return;
  const auto& cfg = hub.config();
  chat::session session{hub, c};
  coronet::channel<std::monostate> writer_done;
  s.set_write_timeout(cfg.write_timeout);
  coronet::spawn(tcp_writer(s, c, writer_done));
  session.reply(std::string(chat::welcome));

  std::array<char, 512> buffer;
  chat::line_reader lines{cfg.max_line_bytes};
  bool quit = false;
  while (!quit) {
    s.set_read_deadline(coronet::clock::now() + cfg.idle_timeout); // later each time: no timer work
    auto [ec, n] = co_await s.read_some(asio::buffer(buffer));
    if (ec == coronet::net::timed_out) {
      c->end("error: idle too long, disconnected", chat::close_normal);
      break;
    }
    if (ec)
      break; // gone, or shut down by the writer
    lines.feed({buffer.data(), n});
    for (auto e = lines.next(); e != chat::line_reader::event::none && !quit; e = lines.next()) {
      if (e == chat::line_reader::event::too_long)
        session.reply(fmt::format("error: line too long (at most {} bytes)", cfg.max_line_bytes));
      else
        quit = !co_await session.handle(lines.line());
    }
  }
  co_await session.finish();
  c->end(quit ? "* bye" : "", chat::close_normal);
  co_await writer_done.receive();
  hub.disconnect(*c);
}

// Sends each line of the outbox as a text message; then the farewell and a
// close frame.
coronet::task<void> ws_writer(http::websocket& ws, std::shared_ptr<chat::client> c,
  coronet::channel<std::monostate> done)
{
  bool failed = false;
  while (auto l = co_await c->outbox.receive()) {
    if (failed || (c->ending() && c->drop_queued()))
      continue;
    try {
      co_await ws.send_text(**l);
    } catch (const std::system_error&) {
      failed = true; // closing or broken
      c->end({}, chat::close_normal);
    }
  }
  if (!failed && !c->farewell().empty())
    ws.try_send({c->farewell(), false});
  ws.close(c->close_code(), c->close_code() == chat::close_policy ? "too slow" : "");
  done.close();
}

// One browser (or other WebSocket) client: each text message is a line.
coronet::task<void> ws_client(http::websocket& ws, chat::hub& hub)
{
  auto c = hub.connect();
  if (!c)
    co_return;
  chat::session session{hub, c};
  coronet::channel<std::monostate> writer_done;
  coronet::spawn(ws_writer(ws, c, writer_done));
  session.reply(std::string(chat::welcome));
  bool quit = false;
  while (!quit) {
    auto m = co_await ws.receive();
    if (!m)
      break;
    if (m->binary) {
      session.reply("error: send text messages, one line each");
      continue;
    }
    std::string_view text = m->data;
    while (!quit) {
      auto newline = text.find('\n');
      quit = !co_await session.handle(text.substr(0, newline));
      if (newline == std::string_view::npos)
        break;
      text.remove_prefix(newline + 1);
    }
  }
  co_await session.finish();
  c->end(quit ? "* bye" : "", chat::close_normal);
  co_await writer_done.receive();
  hub.disconnect(*c);
}

// Where the page is: chat.page_dir, else share/coronet/chat beside the
// directory of the binary (the build tree and an install alike).
std::string page_dir(const coronet::config& cfg)
{
  auto dir = cfg.get_string("chat.page_dir");
  if (dir.empty()) {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec)
      cfg.fail("chat.page_dir", "cannot find the binary's directory to look for the page beside it: set it");
    dir = (exe.parent_path().parent_path() / "share" / "coronet" / "chat").string();
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(std::filesystem::path(dir) / "index.html", ec))
    cfg.fail("chat.page_dir", "'" + dir + "' has no index.html (the chat page)");
  return dir;
}

// A listener that cannot start (its address in use) stops the other one too,
// and the process exits with status 2 (serve_all rethrows it).
coronet::task<void> serve_tcp(coronet::runtime& rt, coronet::net::tcp_options options, chat::hub& hub,
  coronet::wait_group& wg, std::exception_ptr& failed)
{
  try {
    co_await coronet::net::serve_tcp(rt, options, [&hub](coronet::net::stream& s) { return tcp_client(s, hub); });
  } catch (const coronet::startup_error&) {
    failed = std::current_exception();
    rt.request_stop();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    rt.request_stop();
  }
  wg.done();
}

coronet::task<void> serve_http(coronet::runtime& rt, http::server_options options, http::router router,
  coronet::wait_group& wg, std::exception_ptr& failed)
{
  auto listen = options.listen;
  try {
    co_await http::serve(rt, std::move(options), std::move(router));
  } catch (const coronet::startup_error&) {
    failed = std::current_exception();
    rt.request_stop();
  } catch (const std::system_error& e) {
    spdlog::critical("cannot serve on {}: {}", listen, e.code().message());
    rt.request_stop();
  } catch (const std::exception& e) {
    spdlog::critical("cannot serve on {}: {}", listen, e.what());
    rt.request_stop();
  }
  wg.done();
}

coronet::task<void> say_goodbye(coronet::runtime& rt, chat::hub& hub)
{
  co_await rt.done().receive();
  hub.shutdown();
}

coronet::task<void> serve_all(coronet::runtime& rt, coronet::net::tcp_options tcp_options,
  http::server_options http_options, http::router router, chat::hub& hub)
{
  coronet::wait_group wg;
  std::exception_ptr tcp_failed, http_failed;
  wg.add(2);
  coronet::spawn(serve_tcp(rt, tcp_options, hub, wg, tcp_failed));
  coronet::spawn(serve_http(rt, std::move(http_options), std::move(router), wg, http_failed));
  coronet::spawn(say_goodbye(rt, hub));
  co_await wg.wait();
  // Every session has ended, so every room is closing: let each deliver
  // what is queued before the process exits.
  co_await hub.rooms_closed();
  if (tcp_failed)
    std::rethrow_exception(tcp_failed);
  if (http_failed)
    std::rethrow_exception(http_failed);
}

} // namespace

int main(int argc, char** argv)
{
  auto cfg = coronet::load_config(argc, argv, "chat", chat::keys);
  chat::settings settings;
  coronet::net::tcp_options tcp_options;
  http::server_options http_options;
  http::websocket_options ws_options;
  std::string page;
  try {
    settings.outbox_messages = static_cast<std::size_t>(cfg.get_positive("chat.outbox_messages"));
    settings.max_messages_per_second = cfg.get_double("chat.max_messages_per_second");
    if (!(settings.max_messages_per_second > 0))
      cfg.fail("chat.max_messages_per_second", "must be more than 0");
    settings.max_line_bytes = static_cast<std::size_t>(cfg.get_positive("chat.max_line_bytes"));
    settings.announce_limit = static_cast<std::size_t>(cfg.get_positive("chat.announce_limit"));
    settings.idle_timeout = cfg.get_positive_ms("chat.idle_timeout_ms");
    settings.write_timeout = cfg.get_positive_ms("chat.write_timeout_ms");
    tcp_options.listen = cfg.get_string("chat.tcp_listen");
    try {
      coronet::net::parse_endpoint(tcp_options.listen);
    } catch (const std::invalid_argument& e) {
      cfg.fail("chat.tcp_listen", e.what());
    }
    tcp_options.max_connections = static_cast<std::size_t>(cfg.get_positive("chat.max_connections"));
    tcp_options.drain_timeout = cfg.get_positive_ms("chat.shutdown_timeout_ms");
    http_options = http::server_options::from(cfg);
    http_options.shutdown_timeout = tcp_options.drain_timeout;
    ws_options = http::websocket_options::from(cfg);
    if (ws_options.max_message_bytes < settings.max_line_bytes)
      cfg.fail("ws.max_message_bytes", "must be at least chat.max_line_bytes");
    page = page_dir(cfg);
  } catch (const coronet::config_error& e) {
    spdlog::critical("config error: {}", e.what());
    return 2;
  }

  coronet::runtime rt{cfg};
  spdlog::info("coronet-chat: line protocol on {} (nc, telnet); page at http://{}/ and WebSocket at /ws",
    tcp_options.listen, http_options.listen);
  chat::hub hub{rt, settings};
  http::router router;
  http::observe(router, rt, cfg);
  router.files("/", page); // index.html, revalidated by ETag
  router.get("/ws", http::accept_websocket(ws_options, [&hub](http::websocket& ws) { return ws_client(ws, hub); }));
  return rt.run_until_signal(serve_all(rt, tcp_options, std::move(http_options), std::move(router), hub));
}
