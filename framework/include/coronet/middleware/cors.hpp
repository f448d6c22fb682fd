#pragma once
// Cross-origin requests from browsers (CORS, the Fetch standard):
//
//   http::cors_options o;
//   o.allowed_origins = {"https://app.example.com"};
//   o.allowed_headers = {"Content-Type", "Authorization"};
//   router.use(http::cors(o));          // or http::cors(http::cors_options::from(config))
//
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
// answered by the middleware itself, without reaching a handler: 204 with
// the Access-Control-Allow-* headers when the origin, the method and every
// requested header are allowed, else 403 naming what is not. Any other
// request from an allowed origin goes to its handler and its response gets
// Access-Control-Allow-Origin (and -Credentials, -Expose-Headers); one from
// another origin is served without them, so the browser withholds the
// answer from the page. Responses say `Vary: Origin`, so caches keep them
// apart.
#include <coronet/config.hpp>
#include <coronet/http/router.hpp>
#include <coronet/text.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace coronet::http {

inline constexpr config_key cors_keys[] = {
  {"cors.allowed_origins", "", "http::cors_options::from: comma-separated origins (https://app.example.com) or \"*\""},
  {"cors.allowed_methods", "GET, HEAD, POST, PUT, PATCH, DELETE", "methods a page may use"},
  {"cors.allowed_headers", "Content-Type", "request headers a page may send beyond the safelisted ones; \"*\" for any"},
  {"cors.exposed_headers", "", "response headers a page may read"},
  {"cors.allow_credentials", false, "cookies and HTTP authentication (the origin is echoed, never *)"},
  {"cors.max_age_s", 600, "how long a browser may cache a preflight", 0},
};

struct cors_options {
  // Exact origins ("https://app.example.com", scheme://host[:port]), or "*"
  // for any (not with allow_credentials: then the origin is echoed).
  std::vector<std::string> allowed_origins;
  std::vector<std::string> allowed_methods = list_of(config_default<std::string_view>(cors_keys, "cors.allowed_methods"));
  // Request headers a page may send beyond the CORS-safelisted ones; "*"
  // for any.
  std::vector<std::string> allowed_headers = list_of(config_default<std::string_view>(cors_keys, "cors.allowed_headers"));
  std::vector<std::string> exposed_headers; // response headers a page may read
  bool allow_credentials = config_default<bool>(cors_keys, "cors.allow_credentials");
  std::chrono::seconds max_age{config_default<std::int64_t>(cors_keys, "cors.max_age_s")};

  // The [cors] section: allowed_origins, allowed_methods, allowed_headers,
  // exposed_headers (comma-separated), allow_credentials, max_age_s. A bad
  // value is a config_error naming the key.
  static cors_options from(const config& cfg);
};

middleware cors(cors_options options);

} // namespace coronet::http
