#pragma once
// Starts one of the real binaries for an integration test, reads its log for
// the "listening on HOST:PORT" line, and stops it with a signal.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace coronet::test {

class process final {
public:
  // argv[0] is a path; stderr and stdout are captured together.
  explicit process(std::vector<std::string> argv);
  ~process(); // kills (SIGKILL) a process still running
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  // Reads output until a line contains `needle`; returns that line, or
  // nullopt at EOF or after `timeout`.
  std::optional<std::string> wait_for_line(const std::string& needle,
    std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // The port from the "listening on HOST:PORT" line (0 if none came).
  unsigned short wait_for_port();

  void signal(int signo);
  // Waits for exit; returns the exit status, or 128+signal. nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  const std::string& output() const { return output_; }

private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string output_;
  std::size_t scanned_ = 0;
};

// Established TCP connections whose local port is `port` (from
// /proc/net/tcp): how a test sees that a server has taken connections.
int established(unsigned short port);

// Path of a binary built by this tree.
std::string binary(const std::string& name);

// One of the apps, started on 127.0.0.1:0 with one worker plus `extra`
// flags; `port` is 0 if it never said "listening on".
struct app {
  app(const std::string& name, std::vector<std::string> extra = {});
  process proc;
  unsigned short port;
};

} // namespace coronet::test
