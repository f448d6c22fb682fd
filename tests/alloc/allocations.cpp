// Counts the heap allocations a keep-alive request costs the server, over
// loopback: 1,000 requests on one connection after a warm-up, for
// /plaintext, /json, a route with a {param} and POST /echo with a 1 KiB
// body. malloc and its family are replaced in this binary to count while
// the window is open; the client side is a blocking socket with fixed
// buffers, which allocates nothing, so every count is the server's.
// Fails when any route makes an allocation. Usage:
//   coronet_alloc_test [N] [TABLE.md]   N requests per route (1,000); the
//   counts also as a Markdown table (loadtest/results/allocations.md, which
//   loadtest/report.sh puts in RESULTS.md)
// CORONET_ALLOC_TRACE=K prints the stacks of the first K allocations.
#include <coronet/server/server.hpp>
#include <coronet/runtime.hpp>

#include <arpa/inet.h>
#include <execinfo.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <string_view>
#include <thread>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
int trace_left = 0; // CORONET_ALLOC_TRACE=N: the stacks of the first N counted allocations
thread_local bool tracing = false;
inline void count() noexcept
{
  if (!counting.load(std::memory_order_relaxed))
    return;
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (trace_left > 0 && !tracing) {
    tracing = true;
    --trace_left;
    void* frames[32];
    int n = ::backtrace(frames, 32);
    ::write(2, "--- allocation\n", 15);
    ::backtrace_symbols_fd(frames, n, 2);
    tracing = false;
  }
}
} // namespace

extern "C" {
void* malloc(std::size_t n)
{
  count();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size)
{
  count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n)
{
  count();
  return __libc_realloc(p, n);
}
void free(void* p)
{
  __libc_free(p);
}
void* memalign(std::size_t align, std::size_t n)
{
  count();
  return __libc_memalign(align, n);
}
void* aligned_alloc(std::size_t align, std::size_t n)
{
  count();
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n)
{
  count();
  *out = __libc_memalign(align, n);
  return *out ? 0 : ENOMEM;
}
}

namespace http = coronet::http;

namespace {

http::router routes()
{
  http::router r;
  r.get("/plaintext", [](const http::request&) -> coronet::task<http::response> {
    co_return http::response::text(http::status::ok, "Hello, World!");
  });
  r.get("/json", [](const http::request&) -> coronet::task<http::response> {
    co_return http::response::json(http::status::ok, R"({"message":"Hello, World!"})");
  });
  r.get("/users/{id}", [](const http::request& req) -> coronet::task<http::response> {
    co_return http::response::text(http::status::ok, req.param("id").value_or(""));
  });
  r.post("/echo", [](http::request& req) -> coronet::task<http::response> {
    http::response r;
    r.status = http::status::ok;
    r.body = std::move(req.body);
    r.headers.add("Content-Type", "application/octet-stream");
    co_return r;
  });
  return r;
}

int connect_to(unsigned short port)
{
  for (int attempt = 0; attempt < 500; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::fprintf(stderr, "alloc test: cannot connect to the server\n");
  std::exit(2);
}

// Sends `request` and reads one whole response (headers and a
// Content-Length body) into a fixed buffer; false on anything unexpected.
bool exchange(int fd, std::string_view request, char (&buffer)[8192])
{
  for (std::size_t sent = 0; sent < request.size();) {
    auto n = ::write(fd, request.data() + sent, request.size() - sent);
    if (n <= 0)
      return false;
    sent += static_cast<std::size_t>(n);
  }
  std::size_t have = 0;
  for (;;) {
    auto n = ::read(fd, buffer + have, sizeof buffer - have);
    if (n <= 0)
      return false;
    have += static_cast<std::size_t>(n);
    std::string_view got{buffer, have};
    auto end = got.find("\r\n\r\n");
    if (end == std::string_view::npos)
      continue;
    if (got.substr(0, 12) != "HTTP/1.1 200")
      return false;
    auto at = got.find("Content-Length: ");
    if (at == std::string_view::npos || at > end)
      return false;
    std::size_t length = std::strtoul(buffer + at + 16, nullptr, 10);
    if (have == end + 4 + length)
      return true;
    if (have > end + 4 + length)
      return false; // more than one response: nothing was pipelined
  }
}

} // namespace

int main(int argc, char** argv)
{
  const long n = argc > 1 ? std::atol(argv[1]) : 1000;
  if (const char* t = std::getenv("CORONET_ALLOC_TRACE")) {
    void* warm[1];
    ::backtrace(warm, 1); // loads what backtrace() needs before counting starts
    trace_left = std::atoi(t);
  }
  unsigned short port = 0;
  {
    int probe = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(probe, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(probe, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    ::close(probe);
  }
  coronet::runtime rt{1};
  http::server_options o;
  o.listen = "127.0.0.1:" + std::to_string(port);
  std::promise<void> ended;
  rt.spawn([](coronet::runtime& rt, http::server_options o, std::promise<void>& ended) -> coronet::task<void> {
    try {
      co_await http::serve(rt, o, routes());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "alloc test: server: %s\n", e.what());
    }
    ended.set_value();
  }(rt, o, ended));

  const std::string body(1024, 'x');
  struct route {
    const char* name;
    std::string request;
  } cases[] = {
    {"GET /plaintext", "GET /plaintext HTTP/1.1\r\nHost: localhost\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n\r\n"},
    {"GET /plaintext, a browser's headers",
      "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) "
      "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\nAccept: text/html,application/xhtml+xml,"
      "application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\nAccept-Language: en-GB,en;q=0.9\r\n"
      "Accept-Encoding: gzip, deflate, br\r\nCookie: session=0123456789abcdef0123456789abcdef\r\n\r\n"},
    {"GET /json", "GET /json HTTP/1.1\r\nHost: localhost\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n\r\n"},
    {"GET /users/{id}, a long id and a query",
      "GET /users/0123456789abcdef0123456789?fields=name,email&expand=true HTTP/1.1\r\nHost: localhost\r\n\r\n"},
    {"GET /users/{id}", "GET /users/12345 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n\r\n"},
    {"POST /echo (1 KiB)", "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n"
                           "Content-Length: 1024\r\n\r\n" + body},
  };
  int fd = connect_to(port);
  char buffer[8192];
  bool failed = false;
  std::string table = "| request (keep-alive, after 200 to warm up) | allocations | per request |\n|---|---:|---:|\n";
  for (auto& c : cases) {
    for (int i = 0; i < 200; ++i) // warm-up: pools, buffers, the route's frames
      if (!exchange(fd, c.request, buffer)) {
        std::fprintf(stderr, "alloc test: %s: a bad exchange in the warm-up\n", c.name);
        return 2;
      }
    allocations = 0;
    counting = true;
    for (long i = 0; i < n; ++i)
      if (!exchange(fd, c.request, buffer)) {
        counting = false;
        std::fprintf(stderr, "alloc test: %s: a bad exchange\n", c.name);
        return 2;
      }
    counting = false;
    long got = allocations.load();
    std::printf("%-40s %6ld allocations in %ld requests (%.3f per request)\n", c.name, got, n,
      static_cast<double>(got) / static_cast<double>(n));
    failed |= got != 0;
    char row[160];
    std::snprintf(row, sizeof row, "| %s | %ld in %ld | %.3f |\n", c.name, got, n,
      static_cast<double>(got) / static_cast<double>(n));
    table += row;
  }
  if (argc > 2) {
    if (std::FILE* f = std::fopen(argv[2], "w")) {
      std::fputs(table.c_str(), f);
      std::fclose(f);
    } else {
      std::fprintf(stderr, "alloc test: cannot write %s\n", argv[2]);
      return 2;
    }
  }
  ::close(fd);
  rt.request_stop();
  ended.get_future().wait();
  if (failed)
    std::printf("FAILED: the keep-alive path allocates\n");
  return failed ? 1 : 0;
}
