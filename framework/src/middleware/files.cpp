#include <coronet/middleware/files.hpp>

#include <coronet/http/error.hpp>
#include <coronet/http/headers.hpp>

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

// GCC 12 misreads the coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace coronet::http {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t in_memory_limit = 256 * 1024;
constexpr std::size_t piece = 64 * 1024;

std::string_view content_type(std::string_view path) noexcept
{
  static constexpr std::pair<std::string_view, std::string_view> types[] = {
    {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"}, {".md", "text/markdown; charset=utf-8"},
    {".csv", "text/csv; charset=utf-8"}, {".xml", "application/xml"}, {".svg", "image/svg+xml"},
    {".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"}, {".gif", "image/gif"},
    {".webp", "image/webp"}, {".avif", "image/avif"}, {".ico", "image/x-icon"}, {".wasm", "application/wasm"},
    {".woff", "font/woff"}, {".woff2", "font/woff2"}, {".ttf", "font/ttf"}, {".pdf", "application/pdf"},
    {".map", "application/json"}, {".mp4", "video/mp4"}, {".webm", "video/webm"}, {".mp3", "audio/mpeg"},
    {".ogg", "audio/ogg"}, {".wav", "audio/wav"}, {".zip", "application/zip"}, {".gz", "application/gzip"},
    {".tar", "application/x-tar"}};
  auto dot = path.rfind('.');
  auto slash = path.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash))
    return "application/octet-stream";
  auto ext = path.substr(dot);
  for (auto& [e, type] : types)
    if (iequals(ext, e))
      return type;
  return "application/octet-stream";
}

std::string http_date(std::time_t t)
{
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[64];
  auto n = std::strftime(out, sizeof out, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(out, n);
}

std::optional<std::time_t> parse_http_date(std::string_view text)
{
  std::tm tm{};
  std::string copy(text);
  const char* end = strptime(copy.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0')
    return std::nullopt;
  return timegm(&tm);
}

// An open file, closed when the last holder (a streamed body) lets go.
struct file {
  explicit file(int f) : fd(f) {}
  ~file() { ::close(fd); }
  file(const file&) = delete;
  file& operator=(const file&) = delete;
  int fd;
};

bool read_at(int fd, char* into, std::size_t n, std::uint64_t at)
{
  while (n > 0) {
    auto got = ::pread(fd, into, n, static_cast<off_t>(at));
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return false;
    into += got;
    n -= static_cast<std::size_t>(got);
    at += static_cast<std::uint64_t>(got);
  }
  return true;
}

std::optional<std::uint64_t> number(std::string_view digits)
{
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size())
    return std::nullopt;
  return v;
}

// The one range a Range header asks for, in [first, last]; std::nullopt to
// send the whole file (no header, not bytes, several ranges, malformed: RFC
// 9110 14.2 lets a server ignore those); {size, size} when it cannot be
// satisfied.
std::optional<std::pair<std::uint64_t, std::uint64_t>> wanted_range(std::string_view header, std::uint64_t size)
{
  if (header.substr(0, 6) != "bytes=")
    return std::nullopt;
  auto spec = header.substr(6);
  if (spec.find(',') != std::string_view::npos)
    return std::nullopt;
  while (!spec.empty() && spec.back() == ' ')
    spec.remove_suffix(1);
  auto dash = spec.find('-');
  if (dash == std::string_view::npos)
    return std::nullopt;
  auto from = spec.substr(0, dash), to = spec.substr(dash + 1);
  if (from.empty()) { // the last n bytes
    auto n = number(to);
    if (!n)
      return std::nullopt;
    if (*n == 0 || size == 0)
      return std::make_pair(size, size);
    return std::make_pair(size - std::min(*n, size), size - 1);
  }
  auto first = number(from);
  auto last = to.empty() ? std::optional<std::uint64_t>(size == 0 ? 0 : size - 1) : number(to);
  if (!first || !last)
    return std::nullopt;
  if (*first >= size)
    return std::make_pair(size, size);
  if (*last < *first)
    return std::nullopt;
  return std::make_pair(*first, std::min(*last, size - 1));
}

bool etag_matches(std::string_view list, std::string_view etag)
{
  for (auto item : list_items(list)) {
    if (item == "*")
      return true;
    if (item.substr(0, 2) == "W/")
      item.remove_prefix(2);
    if (item == etag)
      return true;
  }
  return false;
}

// The path's segments after the route's first `skip` ones; std::nullopt
// for a segment that would climb (".." or ".").
std::optional<std::vector<std::string_view>> rest_of(std::string_view path, std::size_t skip)
{
  std::vector<std::string_view> rest;
  std::size_t at = 0, seen = 0;
  while (at <= path.size()) {
    auto end = path.find('/', at);
    auto seg = path.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    at = end == std::string_view::npos ? path.size() + 1 : end + 1;
    if (seg.empty())
      continue;
    if (seen++ < skip)
      continue;
    if (seg == ".." || seg == ".")
      return std::nullopt;
    rest.push_back(seg);
  }
  return rest;
}

std::size_t literal_segments(std::string_view route)
{
  std::size_t n = 0;
  for (auto seg : rest_of(route, 0).value_or(std::vector<std::string_view>{}))
    n += seg != "*";
  return n;
}

bool inside(const fs::path& root, const fs::path& p)
{
  auto r = root.native(), s = p.native();
  return s == r || (s.size() > r.size() && s.compare(0, r.size(), r) == 0 && s[r.size()] == '/');
}

response not_found()
{
  return response::text(status::not_found, "Not Found\n");
}

// The file a request names under `root` (the index of a directory), or
// std::nullopt when there is none or it would lie outside the root.
std::optional<fs::path> resolve(const fs::path& root, const file_options& options, const request& req)
{
  if (req.path.find('\0') != std::string::npos)
    throw error{status::bad_request, "a NUL byte in the path"};
  auto rest = rest_of(req.path, literal_segments(req.route));
  if (!rest)
    return std::nullopt;
  fs::path target = root;
  for (auto seg : *rest)
    target /= fs::path(std::string(seg));
  std::error_code ec;
  fs::path real = fs::canonical(target, ec);
  if (ec || !inside(root, real)) // missing, or a symlink that leads out
    return std::nullopt;
  if (fs::is_directory(real, ec)) {
    if (options.index.empty())
      return std::nullopt;
    real = fs::canonical(real / options.index, ec);
    if (ec || !inside(root, real))
      return std::nullopt;
  }
  return real;
}

// A regular file, open, with what its validators are made of.
struct opened {
  std::shared_ptr<file> f;
  std::uint64_t size = 0;
  std::time_t mtime = 0;
  std::string etag, modified;
};

std::optional<opened> open_regular(const fs::path& path)
{
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  opened o;
  o.f = std::make_shared<file>(fd);
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return std::nullopt;
  o.size = static_cast<std::uint64_t>(st.st_size);
  o.mtime = st.st_mtim.tv_sec;
  const auto mtime_ns = static_cast<std::uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
                        static_cast<std::uint64_t>(st.st_mtim.tv_nsec);
  o.etag = fmt::format("\"{:x}-{:x}\"", o.size, mtime_ns);
  o.modified = http_date(o.mtime);
  return o;
}

// Conditional requests: If-None-Match first, If-Modified-Since only without it.
bool unchanged(const request& req, const opened& o)
{
  if (auto none_match = req.header("If-None-Match"))
    return etag_matches(*none_match, o.etag);
  if (auto since = req.header("If-Modified-Since")) {
    auto t = parse_http_date(*since);
    return t && o.mtime <= *t;
  }
  return false;
}

// The bytes [first, last] to send: the whole file, or the one range asked
// for (206, or 416 when it cannot be satisfied: then std::nullopt).
std::optional<std::pair<std::uint64_t, std::uint64_t>> pick_range(const request& req, const opened& o, response& r)
{
  std::pair<std::uint64_t, std::uint64_t> all{0, o.size == 0 ? 0 : o.size - 1};
  auto range = req.header("Range");
  auto if_range = req.header("If-Range");
  if (!range || (if_range && *if_range != o.etag && *if_range != o.modified))
    return all;
  auto want = wanted_range(*range, o.size);
  if (!want)
    return all;
  if (want->first >= o.size) {
    r.status = status::range_not_satisfiable;
    r.headers.add("Content-Range", fmt::format("bytes */{}", o.size));
    return std::nullopt;
  }
  r.status = status::partial_content;
  r.headers.add("Content-Range", fmt::format("bytes {}-{}/{}", want->first, want->second, o.size));
  return want;
}

// A big body, streamed in pieces, each read when the client has taken the last.
response streamed_body(response& r, std::shared_ptr<file> f, std::uint64_t first, std::uint64_t length)
{
  auto type = std::string(*r.headers.get("Content-Type"));
  r.headers.remove("Content-Type");
  auto streamed = response::streamed(r.status, type, [f, first, length](body_writer& out) -> task<void> {
    std::string buffer(piece, '\0');
    for (std::uint64_t sent = 0; sent < length;) {
      auto n = static_cast<std::size_t>(std::min<std::uint64_t>(piece, length - sent));
      if (!read_at(f->fd, buffer.data(), n, first + sent))
        throw std::runtime_error("static files: a read failed while sending");
      co_await out.write(std::string_view(buffer.data(), n));
      sent += n;
    }
  });
  for (auto& [name, value] : r.headers)
    streamed.headers.add(name, value);
  return streamed;
}

response serve_file(const fs::path& root, const file_options& options, const request& req)
{
  auto path = resolve(root, options, req);
  auto o = path ? open_regular(*path) : std::nullopt;
  if (!o)
    return not_found();
  response r;
  r.headers.add("ETag", o->etag);
  r.headers.add("Last-Modified", o->modified);
  r.headers.add("Accept-Ranges", "bytes");
  r.headers.add("Cache-Control",
    options.max_age.count() > 0 ? fmt::format("public, max-age={}", options.max_age.count()) : "no-cache");
  if (unchanged(req, *o)) {
    r.status = status::not_modified;
    return r;
  }
  r.headers.add("Content-Type", std::string(content_type(path->native())));
  auto range = pick_range(req, *o, r);
  if (!range)
    return r;
  const std::uint64_t length = o->size == 0 ? 0 : range->second - range->first + 1;
  if (length > in_memory_limit)
    return streamed_body(r, o->f, range->first, length);
  r.body.resize(static_cast<std::size_t>(length));
  if (!read_at(o->f->fd, r.body.data(), r.body.size(), range->first))
    throw std::runtime_error(fmt::format("static files: reading {} failed", path->native()));
  return r;
}

} // namespace

handler files(std::string dir, file_options options)
{
  std::error_code ec;
  fs::path root = fs::canonical(dir, ec);
  if (ec || !fs::is_directory(root))
    throw std::invalid_argument(fmt::format("static files: '{}' is not a directory", dir));
  return [root, options](request& req) -> task<response> { co_return serve_file(root, options, req); };
}

void router::files(std::string_view pattern, std::string dir)
{
  get(pattern, http::files(std::move(dir)));
}

void router::files(std::string_view pattern, std::string dir, const file_options& options)
{
  get(pattern, http::files(std::move(dir), options));
}

} // namespace coronet::http
