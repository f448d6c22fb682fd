#include <coronet/middleware/compress.hpp>

#include <coronet/config.hpp>
#include <coronet/http/error.hpp>
#include <coronet/http/headers.hpp>

#include "middleware/codec.hpp"

#include <brotli/encode.h>
#include <fmt/format.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <string_view>


// GCC 12 misreads the coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace coronet::http {

namespace {

using detail::coding;
using detail::coding_named;
using detail::decompress;
using detail::name_of;

// "gzip;q=0.5" -> ("gzip", 500); a malformed q counts as 0 (not acceptable).
std::pair<std::string_view, int> coding_and_q(std::string_view item)
{
  auto semi = item.find(';');
  auto token = trim_blanks(item.substr(0, semi));
  int q = 1000;
  while (semi != std::string_view::npos) {
    auto rest = item.substr(semi + 1);
    auto next = rest.find(';');
    auto param = trim_blanks(rest.substr(0, next));
    semi = next == std::string_view::npos ? next : semi + 1 + next;
    if (param.size() < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=')
      continue;
    auto v = param.substr(2);
    // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    if (v.empty() || (v[0] != '0' && v[0] != '1') || (v.size() > 1 && (v[1] != '.' || v.size() > 5)))
      return {token, 0};
    int thousandths = (v[0] - '0') * 1000;
    for (std::size_t i = 2, scale = 100; i < v.size(); ++i, scale /= 10) {
      if (!std::isdigit(static_cast<unsigned char>(v[i])))
        return {token, 0};
      thousandths += (v[i] - '0') * static_cast<int>(scale);
    }
    q = std::min(thousandths, 1000);
  }
  return {token, q};
}

// The coding to answer with: the acceptable one (q > 0) with the highest
// q, ties going to zstd, br, gzip in that order; identity when none is.
coding negotiate(const request& req, const compress_options& o)
{
  constexpr std::array<coding, 3> ours{coding::zstd, coding::br, coding::gzip};
  std::array<int, 3> q{-1, -1, -1}; // -1: not named
  int star = -1;
  bool any_header = false;
  for (auto& [name, value] : req.headers) {
    if (!iequals(name, "Accept-Encoding"))
      continue;
    any_header = true;
    for (auto item : list_items(value)) {
      auto [token, weight] = coding_and_q(item);
      if (token == "*")
        star = weight;
      for (std::size_t i = 0; i < ours.size(); ++i)
        if (iequals(token, name_of(ours[i])) || (ours[i] == coding::gzip && iequals(token, "x-gzip")))
          q[i] = std::max(q[i], weight);
    }
  }
  if (!any_header)
    return coding::identity; // RFC 9110 12.5.3: no header, any coding is fine; identity is the safe one
  const std::array<bool, 3> enabled{o.zstd, o.brotli, o.gzip};
  coding best = coding::identity;
  int best_q = 0;
  for (std::size_t i = 0; i < ours.size(); ++i) {
    int weight = q[i] >= 0 ? q[i] : star;
    if (enabled[i] && weight > best_q) {
      best = ours[i];
      best_q = weight;
    }
  }
  return best;
}

bool compressible(std::string_view type) noexcept
{
  auto semi = type.find(';');
  type = trim_blanks(type.substr(0, semi));
  auto starts = [&](std::string_view p) { return type.size() >= p.size() && iequals(type.substr(0, p.size()), p); };
  auto ends = [&](std::string_view s) {
    return type.size() >= s.size() && iequals(type.substr(type.size() - s.size()), s);
  };
  return starts("text/") || iequals(type, "application/json") || iequals(type, "application/javascript") ||
         iequals(type, "application/xml") || iequals(type, "image/svg+xml") || iequals(type, "application/wasm") ||
         iequals(type, "application/x-ndjson") || ends("+json") || ends("+xml");
}

// --- streaming encoders: each write compressed and flushed ----------------------------

class encoder {
public:
  virtual ~encoder() = default;
  // Compresses `in` and appends it to `out`; `last` ends the stream.
  virtual void put(std::string_view in, bool last, std::string& out) = 0;
};

class gzip_encoder final : public encoder {
public:
  explicit gzip_encoder(int level)
  {
    if (deflateInit2(&z_, level, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw std::runtime_error("zlib: deflateInit2 failed");
  }
  ~gzip_encoder() override { deflateEnd(&z_); }
  void put(std::string_view in, bool last, std::string& out) override
  {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    int flush = last ? Z_FINISH : Z_SYNC_FLUSH;
    for (;;) {
      std::array<char, 16 * 1024> chunk;
      z_.next_out = reinterpret_cast<Bytef*>(chunk.data());
      z_.avail_out = chunk.size();
      int r = deflate(&z_, flush);
      out.append(chunk.data(), chunk.size() - z_.avail_out);
      if (r == Z_STREAM_END || (z_.avail_out != 0 && z_.avail_in == 0))
        break;
      if (r != Z_OK && r != Z_BUF_ERROR)
        throw std::runtime_error("zlib: deflate failed");
    }
  }

private:
  z_stream z_{};
};

class zstd_encoder final : public encoder {
public:
  explicit zstd_encoder(int level) : z_(ZSTD_createCCtx())
  {
    if (!z_)
      throw std::bad_alloc();
    ZSTD_CCtx_setParameter(z_, ZSTD_c_compressionLevel, level);
  }
  ~zstd_encoder() override { ZSTD_freeCCtx(z_); }
  void put(std::string_view in, bool last, std::string& out) override
  {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    auto mode = last ? ZSTD_e_end : ZSTD_e_flush;
    for (;;) {
      std::array<char, 16 * 1024> chunk;
      ZSTD_outBuffer output{chunk.data(), chunk.size(), 0};
      auto left = ZSTD_compressStream2(z_, &output, &input, mode);
      if (ZSTD_isError(left))
        throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(left));
      out.append(chunk.data(), output.pos);
      if (left == 0)
        break;
    }
  }

private:
  ZSTD_CCtx* z_;
};

class brotli_encoder final : public encoder {
public:
  explicit brotli_encoder(int quality) : b_(BrotliEncoderCreateInstance(nullptr, nullptr, nullptr))
  {
    if (!b_)
      throw std::bad_alloc();
    BrotliEncoderSetParameter(b_, BROTLI_PARAM_QUALITY, static_cast<std::uint32_t>(quality));
  }
  ~brotli_encoder() override { BrotliEncoderDestroyInstance(b_); }
  void put(std::string_view in, bool last, std::string& out) override
  {
    auto op = last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
    std::size_t avail_in = in.size();
    auto* next_in = reinterpret_cast<const std::uint8_t*>(in.data());
    for (;;) {
      std::array<std::uint8_t, 16 * 1024> chunk;
      std::size_t avail_out = chunk.size();
      std::uint8_t* next_out = chunk.data();
      if (!BrotliEncoderCompressStream(b_, op, &avail_in, &next_in, &avail_out, &next_out, nullptr))
        throw std::runtime_error("brotli: compression failed");
      out.append(reinterpret_cast<const char*>(chunk.data()), chunk.size() - avail_out);
      bool done = last ? BrotliEncoderIsFinished(b_) : avail_in == 0 && !BrotliEncoderHasMoreOutput(b_);
      if (done)
        break;
    }
  }

private:
  BrotliEncoderState* b_;
};

std::unique_ptr<encoder> make_encoder(coding c, const compress_options& o)
{
  switch (c) {
  case coding::gzip: return std::make_unique<gzip_encoder>(o.gzip_level);
  case coding::zstd: return std::make_unique<zstd_encoder>(o.zstd_level);
  case coding::br: return std::make_unique<brotli_encoder>(o.brotli_quality);
  default: return nullptr;
  }
}

// A streamed body, compressed on its way to the real writer.
class compressing_writer final : public body_writer {
public:
  compressing_writer(body_writer& to, std::unique_ptr<encoder> e)
    : body_writer(to.trailers()), to_(to), e_(std::move(e))
  {
  }
  task<void> write(std::string_view data) override
  {
    out_.clear();
    e_->put(data, false, out_);
    if (!out_.empty())
      co_await to_.write(out_);
  }
  task<void> finish()
  {
    out_.clear();
    e_->put({}, true, out_);
    if (!out_.empty())
      co_await to_.write(out_);
  }

private:
  body_writer& to_;
  std::unique_ptr<encoder> e_;
  std::string out_;
};

// --- request bodies ------------------------------------------------------------------

void decode_request(request& req, const compress_options& o)
{
  auto encoding = req.header("Content-Encoding");
  if (!encoding)
    return;
  auto codings = list_items(*encoding);
  if (codings.empty() || (codings.size() == 1 && iequals(codings[0], "identity")))
    return;
  if (codings.size() > 1)
    throw error{status::unsupported_media_type, "only one Content-Encoding is supported"};
  auto c = coding_named(codings[0]);
  if (!c || *c == coding::identity)
    throw error{status::unsupported_media_type, fmt::format("unsupported Content-Encoding '{}'", codings[0])};
  auto limit = std::min(o.max_body_bytes, std::max<std::size_t>(req.body.size(), 1) * o.max_ratio);
  req.body = decompress(*c, req.body, limit);
  req.headers.remove("Content-Encoding");
  req.headers.set("Content-Length", std::to_string(req.body.size()));
}

bool skip_response(const request& req, const response& r) noexcept
{
  int c = code(r.status);
  return req.method == "HEAD" || c < 200 || c == 204 || c == 304 || c == 206 || r.upgrade ||
         r.headers.contains("Content-Encoding") || r.headers.contains("Content-Range");
}

void add_vary(response& r)
{
  if (auto vary = r.headers.get("Vary")) {
    for (auto item : list_items(*vary))
      if (item == "*" || iequals(item, "Accept-Encoding"))
        return;
    r.headers.set("Vary", std::string(*vary) + ", Accept-Encoding");
  } else {
    r.headers.add("Vary", "Accept-Encoding");
  }
}

void weaken_etag(response& r)
{
  if (auto etag = r.headers.get("ETag"); etag && !etag->starts_with("W/"))
    r.headers.set("ETag", "W/" + std::string(*etag));
}

} // namespace

compress_options compress_options::from(const config& cfg)
{
  compress_options o;
  // Bounds are compress_keys'.
  o.min_bytes = static_cast<std::size_t>(cfg.get_int("compress.min_bytes"));
  o.gzip_level = static_cast<int>(cfg.get_int("compress.gzip_level"));
  o.zstd_level = static_cast<int>(cfg.get_int("compress.zstd_level"));
  o.brotli_quality = static_cast<int>(cfg.get_int("compress.brotli_quality"));
  o.max_ratio = static_cast<std::size_t>(cfg.get_int("compress.max_ratio"));
  o.max_body_bytes = static_cast<std::size_t>(cfg.get_positive("http.max_body_bytes"));
  o.gzip = o.zstd = o.brotli = false;
  for (auto& c : cfg.get_list("compress.codings")) {
    if (iequals(c, "gzip"))
      o.gzip = true;
    else if (iequals(c, "zstd"))
      o.zstd = true;
    else if (iequals(c, "br"))
      o.brotli = true;
    else
      cfg.fail("compress.codings", fmt::format("'{}' is not one of zstd, br, gzip", c));
  }
  return o;
}

middleware compress(compress_options o)
{
  return [o](request& req, next rest) -> task<response> {
    decode_request(req, o);
    response r = co_await rest(req);
    if (skip_response(req, r))
      co_return r;
    auto type = r.headers.get("Content-Type");
    if (!type || !compressible(*type))
      co_return r;
    add_vary(r); // whether compressed or not, the answer depends on Accept-Encoding
    if (!r.stream && r.body.size() < o.min_bytes)
      co_return r;
    auto c = negotiate(req, o);
    if (c == coding::identity)
      co_return r;
    r.headers.set("Content-Encoding", std::string(name_of(c)));
    r.headers.remove("Content-Length");
    weaken_etag(r);
    if (!r.stream) {
      std::string packed;
      make_encoder(c, o)->put(r.body, true, packed);
      r.body = std::move(packed);
      co_return r;
    }
    // Streamed: compressed as it goes, each piece flushed.
    auto producer = std::move(r.stream);
    r.stream = [producer = std::move(producer), c, o](body_writer& out) -> task<void> {
      compressing_writer packing{out, make_encoder(c, o)};
      co_await producer(packing);
      co_await packing.finish();
    };
    co_return r;
  };
}

} // namespace coronet::http
