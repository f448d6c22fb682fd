#include "support/pg_server.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <sys/wait.h>

#ifndef CORONET_SOURCE_DIR
#error "CORONET_SOURCE_DIR names the source tree"
#endif

namespace coronet::test {

namespace {

std::string script()
{
  return std::string(CORONET_SOURCE_DIR) + "/scripts/pg-server.sh";
}

// Runs a shell command; its stdout, and whether it exited 0.
std::pair<std::string, bool> shell(const std::string& command)
{
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p)
    return {out, false};
  std::array<char, 4096> buf;
  while (auto n = std::fread(buf.data(), 1, buf.size(), p))
    out.append(buf.data(), n);
  int status = pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return {out, WIFEXITED(status) && WEXITSTATUS(status) == 0};
}

std::string quoted(const std::string& s)
{
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

} // namespace

pg_server::pg_server() : pg_server(std::string(), std::string()) {}

pg_server::pg_server(const std::string& tls_cert, const std::string& tls_key)
{
  if (shell("command -v pg_config >/dev/null && command -v psql >/dev/null").second == false) {
    why_ = "skipped: no PostgreSQL here (the Debian packages 'postgresql' and 'libpq-dev'; scripts/setup.sh installs them)";
    return;
  }
  char dir[] = "/tmp/coronet-pg-XXXXXX";
  if (!mkdtemp(dir))
    throw std::runtime_error("mkdtemp failed");
  dir_ = dir;
  std::string env = tls_cert.empty() ? ""
    : "CORONET_PG_TLS_CERT=" + quoted(tls_cert) + " CORONET_PG_TLS_KEY=" + quoted(tls_key) + " ";
  auto [url, ok] = shell(env + script() + " start " + dir_ + " 2>" + dir_ + ".err");
  if (!ok)
    throw std::runtime_error("PostgreSQL did not start: " + shell("cat " + dir_ + ".err").first);
  std::filesystem::remove(dir_ + ".err");
  url_ = url;
}

pg_server::~pg_server()
{
  if (dir_.empty())
    return;
  shell(script() + " stop " + dir_);
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string pg_server::psql(const std::string& sql) const
{
  auto [out, ok] = shell("psql -X -q -At -v ON_ERROR_STOP=1 " + quoted(url_) + " -c " + quoted(sql) + " 2>&1");
  if (!ok)
    throw std::runtime_error("psql failed: " + out);
  return out;
}

void pg_server::load(const std::string& file) const
{
  auto [out, ok] = shell("psql -X -q -v ON_ERROR_STOP=1 " + quoted(url_) + " -f " + quoted(file) + " 2>&1");
  if (!ok)
    throw std::runtime_error("psql -f " + file + " failed: " + out);
}

void pg_server::restart()
{
  auto [out, ok] = shell(script() + " restart " + dir_ + " 2>&1");
  if (!ok)
    throw std::runtime_error("PostgreSQL did not restart: " + out);
}

void pg_server::stop()
{
  shell(script() + " stop " + dir_);
}

} // namespace coronet::test
