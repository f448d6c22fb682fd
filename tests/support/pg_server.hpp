#pragma once
// A PostgreSQL server of the test's own (scripts/pg-server.sh): started in a
// temporary directory, as an unprivileged user when the test runs as root,
// and removed when the object goes.
#include <string>

namespace coronet::test {

class pg_server final {
public:
  pg_server();
  // Serving TLS too, with this certificate and key (scripts/make-certs.sh).
  pg_server(const std::string& tls_cert, const std::string& tls_key);
  ~pg_server();
  pg_server(const pg_server&) = delete;
  pg_server& operator=(const pg_server&) = delete;

  // False when this machine has no PostgreSQL (why() says so): the test
  // skips with that message.
  bool available() const noexcept { return !url_.empty(); }
  const std::string& why() const noexcept { return why_; }
  const std::string& url() const noexcept { return url_; }

  // psql -Atc: the output, trimmed; throws when psql fails.
  std::string psql(const std::string& sql) const;
  // psql -f: a file of SQL (the benchmark's tables, say).
  void load(const std::string& file) const;
  // A fast restart on the same port and data; after stop(), a start.
  void restart();
  void stop();

private:
  std::string dir_;
  std::string url_;
  std::string why_;
};

} // namespace coronet::test
