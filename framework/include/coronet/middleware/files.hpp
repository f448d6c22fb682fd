#pragma once
// Static files from a directory:
//
//   router.files("/static/*", "/srv/www");   // or router.get("/static/*", http::files("/srv/www"))
//
// The rest of the path after the route's literal segments names a file
// under the directory. Nothing outside it is ever served: a ".." or "."
// segment (also percent-encoded, %2e%2e) and a symlink that leads out are
// 404, a NUL byte is 400. A directory serves its index.html. Content-Type
// comes from the extension; ETag and Last-Modified are sent, and
// If-None-Match / If-Modified-Since are answered 304; a single Range
// ("bytes=0-99", "bytes=500-", "bytes=-100", with If-Range) is answered 206,
// one past the end 416; several ranges get the whole file. Files over
// 256 KiB are streamed in 64 KiB pieces, never read whole into memory.
#include <coronet/http/router.hpp>

#include <chrono>
#include <string>

namespace coronet::http {

struct file_options {
  std::string index = "index.html";    // what a directory serves; empty: 404
  std::chrono::seconds max_age{0};     // >0: Cache-Control: public, max-age=N; else no-cache (revalidate)
};

// The handler for a route whose pattern ends in "/*", made of literal
// segments before it. Throws std::invalid_argument when `dir` is not a
// directory.
handler files(std::string dir, file_options options = {});

} // namespace coronet::http
