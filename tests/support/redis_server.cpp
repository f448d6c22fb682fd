#include "support/redis_server.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <unistd.h>

namespace coronet::test {

namespace {

unsigned short free_port()
{
  asio::io_context io;
  asio::ip::tcp::acceptor a{io, {asio::ip::address_v4::loopback(), 0}};
  return a.local_endpoint().port();
}

} // namespace

redis_server::redis_server(std::vector<std::string> extra, const tls_files* tls) : extra_(std::move(extra))
{
  if (std::system("command -v redis-server >/dev/null") != 0) {
    why_ = "skipped: no redis-server here (the Debian package 'redis-server'; scripts/setup.sh installs it)";
    return;
  }
  char dir[] = "/tmp/coronet-redis-XXXXXX";
  if (!mkdtemp(dir))
    throw std::runtime_error("mkdtemp failed");
  dir_ = dir;
  if (tls) {
    tls_ = true;
    extra_.insert(extra_.end(), {"--tls-cert-file", tls->cert, "--tls-key-file", tls->key, "--tls-ca-cert-file",
      tls->ca, "--tls-auth-clients", "no"});
  }
  // The port is free when looked at; another process may take it before
  // redis-server binds it: then try another.
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = free_port();
    if (start())
      return;
  }
  auto out = proc_ ? proc_->output() : std::string();
  port_ = 0;
  throw std::runtime_error("redis-server did not start: " + out);
}

bool redis_server::start()
{
  auto port = std::to_string(port_);
  std::vector<std::string> argv;
  // The server dies with the test even when the test dies first (a crash,
  // a sanitizer's abort): otherwise it would be left running, orphaned.
  if (::access("/usr/bin/setpriv", X_OK) == 0)
    argv = {"/usr/bin/setpriv", "--pdeathsig", "KILL"};
  argv.insert(argv.end(), {"/usr/bin/redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    "--dir", dir_, "--protected-mode", "no", "--daemonize", "no"});
  if (tls_)
    argv.insert(argv.end(), {"--port", "0", "--tls-port", port});
  else
    argv.insert(argv.end(), {"--port", port});
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  proc_ = std::make_unique<process>(argv);
  return proc_->wait_for_line("Ready to accept connections", std::chrono::seconds(10)).has_value();
}

redis_server::~redis_server()
{
  proc_.reset(); // SIGKILL
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string redis_server::url() const
{
  return (tls_ ? "rediss://127.0.0.1:" : "redis://127.0.0.1:") + std::to_string(port_);
}

void redis_server::stop()
{
  if (proc_) {
    proc_->signal(SIGKILL);
    proc_->wait(std::chrono::seconds(10));
  }
}

void redis_server::restart()
{
  stop();
  if (!start())
    throw std::runtime_error("redis-server did not start again: " + proc_->output());
}

} // namespace coronet::test
