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
#include <coronet/http/router.hpp>

#include <cstddef>

namespace coronet {
class config;
}

namespace coronet::http {

struct compress_options {
  std::size_t min_bytes = 1024;       // smaller bodies go as they are
  int gzip_level = 6;                 // 1-9
  int zstd_level = 3;                 // 1-19
  int brotli_quality = 4;             // 0-11 (11 is far too slow for answers made per request)
  bool gzip = true, zstd = true, brotli = true; // which codings may be chosen
  std::size_t max_body_bytes = 1024 * 1024;     // a decompressed request body, at most
  std::size_t max_ratio = 100;                  // decompressed / compressed, at most

  // The [compress] section: min_bytes, gzip_level, zstd_level,
  // brotli_quality, codings ("zstd, br, gzip": the ones allowed),
  // max_ratio; max_body_bytes is http.max_body_bytes. A bad value is a
  // config_error naming the key.
  static compress_options from(const config& cfg);
};

middleware compress(compress_options options = {});

} // namespace coronet::http
