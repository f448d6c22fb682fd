#include <support/process.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace coronet::test {

int established(unsigned short port)
{
  std::ifstream table{"/proc/net/tcp"};
  std::string line;
  std::getline(table, line); // header
  int n = 0;
  char local[16];
  std::snprintf(local, sizeof local, ":%04X ", port);
  while (std::getline(table, line)) {
    std::istringstream fields{line};
    std::string slot, from, to, state;
    fields >> slot >> from >> to >> state;
    if ((from + " ").find(local) != std::string::npos && state == "01")
      ++n;
  }
  return n;
}

std::string binary(const std::string& name)
{
  return std::string(CORONET_TEST_BIN_DIR) + "/" + name;
}

namespace {

std::vector<std::string> app_argv(const std::string& name, std::vector<std::string> extra)
{
  std::vector<std::string> argv{binary(name), "--listen", "127.0.0.1:0", "--threads", "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

} // namespace

app::app(const std::string& name, std::vector<std::string> extra)
  : proc(app_argv(name, std::move(extra))), port(proc.wait_for_port())
{
}

process::process(std::vector<std::string> argv)
{
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  out_ = fds[0];
  if (rc != 0)
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
}

process::~process()
{
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (out_ >= 0)
    ::close(out_);
}

std::optional<std::string> process::wait_for_line(const std::string& needle, std::chrono::milliseconds timeout)
{
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Look at complete lines not yet scanned.
    for (std::size_t nl; (nl = output_.find('\n', scanned_)) != std::string::npos;) {
      std::string line = output_.substr(scanned_, nl - scanned_);
      scanned_ = nl + 1;
      if (line.find(needle) != std::string::npos)
        return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    char buf[4096];
    ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0)
      return std::nullopt;
    output_.append(buf, static_cast<std::size_t>(n));
  }
}

unsigned short process::wait_for_port()
{
  auto line = wait_for_line("listening on ");
  if (!line)
    return 0;
  auto at = line->find("listening on ") + 13;
  auto colon = line->find(':', at);
  return static_cast<unsigned short>(std::stoi(line->substr(colon + 1)));
}

void process::signal(int signo)
{
  if (pid_ > 0)
    ::kill(pid_, signo);
}

std::optional<int> process::wait(std::chrono::milliseconds timeout)
{
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      // Keep what it printed on the way out: read to the end of the pipe
      // (wait_for_line with no time left would return before reading).
      pollfd p{out_, POLLIN, 0};
      char buf[4096];
      ssize_t n = 0;
      while (::poll(&p, 1, 1000) > 0 && (n = ::read(out_, buf, sizeof buf)) > 0)
        output_.append(buf, static_cast<std::size_t>(n));
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() > deadline)
      return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, 10) > 0) {
      char buf[4096];
      ssize_t n = ::read(out_, buf, sizeof buf);
      if (n > 0)
        output_.append(buf, static_cast<std::size_t>(n));
    }
  }
  return std::nullopt;
}

} // namespace coronet::test
