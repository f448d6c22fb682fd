// The service kit: the in-process test client and the scripted upstream
// (coronet/testing/http.hpp), compression both ways, static files.
#include <coronet/client/client.hpp>
#include <coronet/middleware/compress.hpp>
#include <coronet/http/error.hpp>
#include <coronet/middleware/files.hpp>
#include <coronet/http/json.hpp>
#include <coronet/testing/http.hpp>

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace http = coronet::http;
using coronet::task;
using namespace std::chrono_literals;

namespace {

std::string gzip(std::string_view in)
{
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string gunzip(std::string_view in)
{
  z_stream z{};
  inflateInit2(&z, 16 + 15);
  std::string out;
  char chunk[16384];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int r = Z_OK;
  while (r == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    r = inflate(&z, Z_NO_FLUSH);
    out.append(chunk, sizeof chunk - z.avail_out);
  }
  inflateEnd(&z);
  REQUIRE(r == Z_STREAM_END);
  return out;
}

std::string unzstd(std::string_view in)
{
  std::string out;
  ZSTD_DCtx* z = ZSTD_createDCtx();
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  char chunk[16384];
  while (input.pos < input.size) {
    ZSTD_outBuffer output{chunk, sizeof chunk, 0};
    auto r = ZSTD_decompressStream(z, &output, &input);
    REQUIRE_FALSE(ZSTD_isError(r));
    out.append(chunk, output.pos);
  }
  ZSTD_freeDCtx(z);
  return out;
}

std::string unbrotli(std::string_view in)
{
  std::string out(1 << 20, '\0');
  std::size_t size = out.size();
  REQUIRE(BrotliDecoderDecompress(in.size(), reinterpret_cast<const std::uint8_t*>(in.data()), &size,
            reinterpret_cast<std::uint8_t*>(out.data())) == BROTLI_DECODER_RESULT_SUCCESS);
  out.resize(size);
  return out;
}

std::string text_of(std::size_t n)
{
  std::string s;
  while (s.size() < n)
    s += "the quick brown fox jumps over the lazy dog " + std::to_string(s.size()) + "\n";
  s.resize(n);
  return s;
}

http::router kit_routes()
{
  http::router r;
  r.get("/users/{id}", [](http::request& req) -> task<http::response> {
    auto id = http::positive_integer(req.param("id"), "id");
    co_return http::json_response(http::status::ok, {{"id", id}, {"name", "User " + std::to_string(id)}});
  });
  r.post("/users", [](http::request& req) -> task<http::response> {
    auto body = http::json_body(req);
    auto name = http::field<std::string>(body, "name");
    co_return http::json_response(http::status::created, {{"name", name}});
  });
  r.get("/ticks", [](http::request&) -> task<http::response> {
    co_return http::response::streamed(http::status::ok, "text/plain", [](http::body_writer& out) -> task<void> {
      for (int i = 0; i < 3; ++i)
        co_await out.write("tick " + std::to_string(i) + "\n");
    });
  });
  r.get("/budget", [](http::request& req) -> task<http::response> {
    co_return http::response::text(http::status::ok, req.deadline == coronet::clock::time_point::max() ? "none" : "set");
  });
  r.use([](http::request& req, http::next next) -> task<http::response> {
    auto resp = co_await next(req);
    resp.headers.add("X-Seen-By", "middleware");
    co_return resp;
  });
  return r;
}

} // namespace

TEST_CASE("test kit: a request goes through the router, middleware and error mapping without a socket")
{
  auto routes = kit_routes();
  http::testing::client t{routes};
  auto r = t.get("/users/7");
  CHECK(r.status == 200);
  CHECK(r.json()["name"] == "User 7");
  CHECK(r.header("X-Seen-By") == "middleware");
  CHECK(t.get("/users/x").status == 400);
  CHECK(t.get("/nowhere").status == 404);
  CHECK(t.send("DELETE", "/users/7").status == 405);
  CHECK(t.post("/users", R"({"name":"ann"})").json()["name"] == "ann");
  auto bad = t.post("/users", R"({"name":1})");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("name") != std::string::npos);
  CHECK(t.get("/ticks").body == "tick 0\ntick 1\ntick 2\n");
  CHECK(t.send("HEAD", "/users/7").body.empty());
  CHECK(t.get("/budget").body == "none");
  CHECK(t.get("/budget", {{"X-Request-Timeout-Ms", "500"}}).body == "set");
  CHECK(t.get("/budget", {{"X-Request-Timeout-Ms", "0"}}).status == 504);
}

TEST_CASE("test kit: the scripted upstream answers, delays, resets and cuts short as told")
{
  coronet::runtime rt{1};
  http::testing::upstream_server up{rt, [](const http::testing::seen_request& req, std::size_t i) {
    http::testing::answer a;
    if (req.target == "/reset")
      a.reset = true;
    else if (req.target == "/cut")
      a = {200, {}, std::string(1000, 'x'), 0ms, false, 60};
    else if (req.target == "/slow")
      a.delay = 300ms;
    a.body = a.body.empty() ? "answer " + std::to_string(i) : a.body;
    return a;
  }};
  http::client client{rt};
  auto kind = [&](std::string path, std::chrono::milliseconds timeout) {
    return rt.block_on([](http::client& c, std::string url, std::chrono::milliseconds timeout)
                         -> task<std::optional<http::client_errc>> {
      http::request_options o;
      o.timeout = timeout;
      try {
        co_await c.get(std::move(url), std::move(o));
      } catch (const http::client_error& e) {
        co_return e.kind();
      }
      co_return std::nullopt;
    }(client, up.url(path), timeout));
  };
  CHECK(kind("/a", 1s) == std::nullopt);
  CHECK(kind("/reset", 1s) == http::client_errc::closed);
  CHECK(kind("/cut", 1s) == http::client_errc::closed);
  CHECK(kind("/slow", 100ms) == http::client_errc::timeout);
  REQUIRE(up.requests().size() >= 4);
  CHECK(up.requests()[0].target == "/a");
  CHECK(up.requests()[0].headers.get("X-Request-Timeout-Ms").has_value());
}

TEST_CASE("compress: Accept-Encoding with q-values chooses the coding, small, binary and HEAD answers stay as they are")
{
  http::router r;
  auto big = text_of(5000);
  r.get("/text", [big](http::request&) -> task<http::response> { co_return http::response::text(http::status::ok, big); });
  r.get("/small", [](http::request&) -> task<http::response> { co_return http::response::text(http::status::ok, "hi"); });
  r.get("/png", [big](http::request&) -> task<http::response> {
    auto resp = http::response::text(http::status::ok, big);
    resp.headers.set("Content-Type", "image/png");
    co_return resp;
  });
  r.get("/tagged", [big](http::request&) -> task<http::response> {
    auto resp = http::response::text(http::status::ok, big);
    resp.headers.add("ETag", "\"v1\"");
    co_return resp;
  });
  r.get("/stream", [](http::request&) -> task<http::response> {
    co_return http::response::streamed(http::status::ok, "text/event-stream", [](http::body_writer& out) -> task<void> {
      for (int i = 0; i < 50; ++i)
        co_await out.write("data: event " + std::to_string(i) + "\n\n");
    });
  });
  r.use(http::compress());
  http::testing::client t{r};
  auto with = [&](const char* path, std::string accept) {
    return t.get(path, accept.empty() ? http::headers{} : http::headers{{"Accept-Encoding", accept}});
  };

  auto g = with("/text", "gzip");
  CHECK(g.header("Content-Encoding") == "gzip");
  CHECK(g.header("Vary") == "Accept-Encoding");
  CHECK(gunzip(g.body) == big);
  CHECK(with("/text", "gzip, deflate, br, zstd").header("Content-Encoding") == "zstd");
  CHECK(unzstd(with("/text", "zstd").body) == big);
  CHECK(unbrotli(with("/text", "br").body) == big);
  CHECK(with("/text", "gzip;q=1, zstd;q=0.5, br;q=0.8").header("Content-Encoding") == "gzip");
  CHECK_FALSE(with("/text", "gzip;q=0").header("Content-Encoding"));
  CHECK(with("/text", "*").header("Content-Encoding") == "zstd");
  CHECK(with("/text", "*;q=0, gzip").header("Content-Encoding") == "gzip");
  CHECK_FALSE(with("/text", "identity;q=0").header("Content-Encoding")); // nothing else offered: sent as it is
  CHECK_FALSE(with("/text", "gzip;q=2").header("Content-Encoding"));    // a malformed q is not a yes
  CHECK_FALSE(with("/text", "").header("Content-Encoding"));
  CHECK(with("/text", "").body == big);

  auto small = with("/small", "gzip");
  CHECK_FALSE(small.header("Content-Encoding"));
  CHECK(small.header("Vary") == "Accept-Encoding");
  CHECK_FALSE(with("/png", "gzip").header("Content-Encoding"));
  auto head = t.send("HEAD", "/text", {}, {{"Accept-Encoding", "gzip"}});
  CHECK_FALSE(head.header("Content-Encoding"));
  CHECK(with("/tagged", "gzip").header("ETag") == "W/\"v1\"");

  auto s = with("/stream", "gzip");
  CHECK(s.header("Content-Encoding") == "gzip");
  std::string expected;
  for (int i = 0; i < 50; ++i)
    expected += "data: event " + std::to_string(i) + "\n\n";
  CHECK(gunzip(s.body) == expected);
}

TEST_CASE("compress: gzip, zstd and br request bodies are decompressed, a zip bomb is 413, junk 400, an unknown coding 415")
{
  http::router r;
  r.post("/echo", [](http::request& req) -> task<http::response> {
    co_return http::response::text(http::status::ok, req.body);
  });
  http::compress_options o;
  o.max_body_bytes = 1 << 20;
  r.use(http::compress(o));
  http::testing::client t{r};
  auto body = text_of(20000);
  auto post = [&](std::string data, const char* coding) {
    return t.post("/echo", std::move(data), {{"Content-Type", "text/plain"}, {"Content-Encoding", coding}});
  };
  CHECK(post(gzip(body), "gzip").body == body);

  std::string z(ZSTD_compressBound(body.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), body.data(), body.size(), 3));
  CHECK(post(z, "zstd").body == body);
  std::string b(BrotliEncoderMaxCompressedSize(body.size()), '\0');
  std::size_t bsize = b.size();
  BrotliEncoderCompress(4, 22, BROTLI_MODE_TEXT, body.size(), reinterpret_cast<const std::uint8_t*>(body.data()),
    &bsize, reinterpret_cast<std::uint8_t*>(b.data()));
  b.resize(bsize);
  CHECK(post(b, "br").body == body);

  auto bomb = gzip(std::string(50 << 20, '\0')); // 50 MiB of zeros in ~50 KiB
  auto refused = post(bomb, "gzip");
  CHECK(refused.status == 413);
  CHECK(post("not gzip at all", "gzip").status == 400);
  CHECK(post(gzip(body).substr(0, 100), "gzip").status == 400); // cut short
  CHECK(post(body, "compress").status == 415);
}

TEST_CASE("files: served from the directory with types, validators and ranges, nothing outside it")
{
  namespace fs = std::filesystem;
  auto dir = fs::temp_directory_path() / ("coronet-files-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "www" / "sub");
  std::ofstream(dir / "www" / "index.html") << "<h1>home</h1>";
  std::ofstream(dir / "www" / "a.txt") << "0123456789";
  std::ofstream(dir / "www" / "sub" / "b.css") << "body{}";
  std::ofstream(dir / "secret.txt") << "not for you";
  auto big = text_of(1 << 20);
  std::ofstream(dir / "www" / "big.txt") << big;
  fs::create_symlink(dir / "secret.txt", dir / "www" / "out");

  http::router r;
  r.get("/static/*", http::files((dir / "www").string()));
  http::testing::client t{r};

  auto a = t.get("/static/a.txt");
  CHECK(a.status == 200);
  CHECK(a.body == "0123456789");
  CHECK(a.header("Content-Type") == "text/plain; charset=utf-8");
  REQUIRE(a.header("ETag"));
  REQUIRE(a.header("Last-Modified"));
  CHECK(t.get("/static/sub/b.css").header("Content-Type") == "text/css; charset=utf-8");
  CHECK(t.get("/static/").body == "<h1>home</h1>");
  CHECK(t.get("/static/missing.txt").status == 404);
  CHECK(t.get("/static/sub").status == 404); // a directory without index.html

  // Validators.
  CHECK(t.get("/static/a.txt", {{"If-None-Match", std::string(*a.header("ETag"))}}).status == 304);
  CHECK(t.get("/static/a.txt", {{"If-None-Match", "\"other\""}}).status == 200);
  CHECK(t.get("/static/a.txt", {{"If-Modified-Since", std::string(*a.header("Last-Modified"))}}).status == 304);
  CHECK(t.get("/static/a.txt", {{"If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"}}).status == 200);

  // Ranges.
  auto part = t.get("/static/a.txt", {{"Range", "bytes=2-5"}});
  CHECK(part.status == 206);
  CHECK(part.body == "2345");
  CHECK(part.header("Content-Range") == "bytes 2-5/10");
  CHECK(t.get("/static/a.txt", {{"Range", "bytes=-3"}}).body == "789");
  CHECK(t.get("/static/a.txt", {{"Range", "bytes=7-"}}).body == "789");
  auto beyond = t.get("/static/a.txt", {{"Range", "bytes=10-"}});
  CHECK(beyond.status == 416);
  CHECK(beyond.header("Content-Range") == "bytes */10");
  CHECK(t.get("/static/a.txt", {{"Range", "bytes=0-1,4-5"}}).status == 200); // several: the whole file
  CHECK(t.get("/static/a.txt", {{"Range", "bytes=2-5"}, {"If-Range", "\"stale\""}}).status == 200);

  // Escapes: never outside the directory.
  CHECK(t.get("/static/../secret.txt").status == 404);
  CHECK(t.get("/static/%2e%2e/secret.txt").status == 404);
  CHECK(t.get("/static/sub/%2E%2E/%2e%2e/secret.txt").status == 404);
  CHECK(t.get("/static/out").status == 404); // a symlink that leads out
  CHECK(t.get("/static/a.txt%00.png").status == 400);

  // A big file is streamed, whole and in ranges.
  CHECK(t.get("/static/big.txt").body == big);
  CHECK(t.get("/static/big.txt", {{"Range", "bytes=100000-899999"}}).body == big.substr(100000, 800000));
  fs::remove_all(dir);
}
