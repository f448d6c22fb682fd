#pragma once
// A Redis server of the test's own: redis-server on a free port of
// 127.0.0.1, nothing saved, in a temporary directory, killed when the object
// goes.
#include "support/process.hpp"

#include <memory>
#include <string>
#include <vector>

namespace coronet::test {

class redis_server final {
public:
  struct tls_files {
    std::string cert, key, ca;
  };
  // `extra`: more redis-server arguments ("--requirepass", "secret").
  explicit redis_server(std::vector<std::string> extra = {}, const tls_files* tls = nullptr);
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  // False when this machine has no redis-server (why() says so): the test
  // skips with that message.
  bool available() const noexcept { return port_ != 0; }
  const std::string& why() const noexcept { return why_; }
  // redis://127.0.0.1:PORT (rediss:// with TLS)
  std::string url() const;
  unsigned short port() const noexcept { return port_; }

  // Killed (SIGKILL: a crash), then started again on the same port.
  void restart();
  void stop();

private:
  bool start();
  std::string dir_;
  std::vector<std::string> extra_;
  bool tls_ = false;
  unsigned short port_ = 0;
  std::unique_ptr<process> proc_;
  std::string why_;
};

} // namespace coronet::test
