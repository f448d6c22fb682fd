#pragma once
// Compression both ways, as middleware:
//
//   router.use(http::compress(http::compress_options::from(config)));
//
// Responses: compressed with zstd, brotli or gzip, as the request's
// Accept-Encoding prefers (q-values, "*", "identity;q=0"; on a tie zstd,
// then br, then gzip), when the type is text-like (text/*, JSON, JavaScript,
// XML, SVG...) and the body is at least min_bytes; a streamed body is
// compressed as it goes, each write flushed (server-sent events still
// arrive one by one). Never for HEAD, 1xx, 204, 304, a response that has a
// Content-Encoding already, or a Range answer. Compressible responses say
// `Vary: Accept-Encoding`; a strong ETag becomes weak when the body is
// compressed.
//
// Requests: a body with Content-Encoding gzip, deflate, zstd or br is
// decompressed before the handler sees it, into at most max_body_bytes and
// at most max_ratio times its compressed size (a zip bomb is answered 413,
// never inflated whole); an unknown coding is 415, a corrupt body 400.
#include <coronet/config.hpp>
#include <coronet/http/router.hpp>
#include <coronet/http/server_options.hpp>

#include <cstddef>

namespace coronet::http {

inline constexpr config_key compress_keys[] = {
  {"compress.min_bytes", 1024, "http::compress: smaller answers go as they are", 0, 1LL << 40},
  {"compress.codings", "zstd, br, gzip", "the codings it may answer with (Accept-Encoding chooses)"},
  {"compress.gzip_level", 6, "gzip's level", 1, 9},
  {"compress.zstd_level", 3, "zstd's level", 1, 19},
  {"compress.brotli_quality", 4, "brotli's quality (11 is far too slow for answers made per request)", 0, 11},
  {"compress.max_ratio", 100,
    "a compressed request body may grow this many times, and to http.max_body_bytes", 1, 100000},
};

struct compress_options {
  std::size_t min_bytes = config_default<std::size_t>(compress_keys, "compress.min_bytes");
  int gzip_level = config_default<int>(compress_keys, "compress.gzip_level");
  int zstd_level = config_default<int>(compress_keys, "compress.zstd_level");
  int brotli_quality = config_default<int>(compress_keys, "compress.brotli_quality");
  bool gzip = true, zstd = true, brotli = true; // which codings may be chosen (compress.codings)
  // a decompressed request body, at most
  std::size_t max_body_bytes = config_default<std::size_t>(server_keys, "http.max_body_bytes");
  std::size_t max_ratio = config_default<std::size_t>(compress_keys, "compress.max_ratio");

  // The [compress] section; max_body_bytes is http.max_body_bytes. A bad
  // value is a config_error naming the key.
  static compress_options from(const config& cfg);
};

middleware compress(compress_options options = {});

} // namespace coronet::http
