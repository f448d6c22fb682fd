#include <coronet/middleware/cors.hpp>

#include <coronet/config.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <string_view>

namespace coronet::http {

namespace {

std::string join(const std::vector<std::string>& items)
{
  std::string out;
  for (auto& i : items)
    out.append(out.empty() ? "" : ", ").append(i);
  return out;
}

bool contains(const std::vector<std::string>& items, std::string_view value, bool case_blind)
{
  return std::any_of(items.begin(), items.end(),
    [&](const std::string& i) { return case_blind ? iequals(i, value) : i == value; });
}

// What one middleware instance keeps: the options and the header values
// made from them once.
struct cors_state {
  explicit cors_state(cors_options o)
    : options(std::move(o)),
      any_origin(contains(options.allowed_origins, "*", false)),
      any_header(contains(options.allowed_headers, "*", false)),
      methods(join(options.allowed_methods)),
      exposed(join(options.exposed_headers)),
      max_age(std::to_string(options.max_age.count()))
  {
  }
  cors_options options;
  bool any_origin;
  bool any_header;
  std::string methods;
  std::string exposed;
  std::string max_age;

  bool allows(std::string_view origin) const
  {
    return any_origin || contains(options.allowed_origins, origin, false);
  }
  // "*" only when any origin is allowed and no credentials go with it; else
  // the origin itself.
  std::string allow_origin(std::string_view origin) const
  {
    return any_origin && !options.allow_credentials ? std::string("*") : std::string(origin);
  }
};

response refuse(std::string why)
{
  auto r = response::text(status::forbidden, "CORS: " + why + "\n");
  r.headers.add("Vary", "Origin");
  return r;
}

// The preflight's answer, or a refusal naming what is not allowed.
response preflight(const cors_state& st, const request& req, std::string_view origin, std::string_view method)
{
  if (!st.allows(origin))
    return refuse(fmt::format("origin {} is not allowed", origin));
  if (!contains(st.options.allowed_methods, method, false))
    return refuse(fmt::format("method {} is not allowed", method));
  std::string headers;
  if (auto asked = req.header("Access-Control-Request-Headers")) {
    for (auto h : list_items(*asked)) {
      if (!st.any_header && !contains(st.options.allowed_headers, h, true))
        return refuse(fmt::format("request header {} is not allowed", h));
      headers.append(headers.empty() ? "" : ", ").append(h);
    }
  }
  response r{status::no_content, {}, {}, {}, {}, {}};
  r.headers.add("Access-Control-Allow-Origin", st.allow_origin(origin));
  r.headers.add("Access-Control-Allow-Methods", st.methods);
  if (!headers.empty())
    r.headers.add("Access-Control-Allow-Headers", headers);
  if (st.options.allow_credentials)
    r.headers.add("Access-Control-Allow-Credentials", "true");
  r.headers.add("Access-Control-Max-Age", st.max_age);
  r.headers.add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
  return r;
}

} // namespace

cors_options cors_options::from(const config& cfg)
{
  cors_options o;
  o.allowed_origins = cfg.get_list("cors.allowed_origins");
  for (auto& origin : o.allowed_origins)
    if (origin != "*" && origin.find("://") == std::string::npos)
      cfg.fail("cors.allowed_origins", fmt::format("'{}' is not an origin (scheme://host[:port]) or *", origin));
  o.allowed_methods = cfg.get_list("cors.allowed_methods");
  o.allowed_headers = cfg.get_list("cors.allowed_headers");
  o.exposed_headers = cfg.get_list("cors.exposed_headers");
  o.allow_credentials = cfg.get_bool("cors.allow_credentials");
  o.max_age = std::chrono::seconds{cfg.get_int("cors.max_age_s")}; // bounded by cors_keys
  return o;
}

middleware cors(cors_options options)
{
  auto st = std::make_shared<const cors_state>(std::move(options));
  return [st](request& req, next rest) -> task<response> {
    auto origin = req.header("Origin");
    if (!origin)
      co_return co_await rest(req); // not a cross-origin request from a browser
    auto asked = req.header("Access-Control-Request-Method");
    if (req.method == "OPTIONS" && asked)
      co_return preflight(*st, req, *origin, *asked);
    std::string from{*origin};
    auto r = co_await rest(req);
    if (st->allows(from)) {
      r.headers.set("Access-Control-Allow-Origin", st->allow_origin(from));
      if (st->options.allow_credentials)
        r.headers.set("Access-Control-Allow-Credentials", "true");
      if (!st->exposed.empty())
        r.headers.set("Access-Control-Expose-Headers", st->exposed);
    }
    auto vary = r.headers.get("Vary");
    if (!vary)
      r.headers.add("Vary", "Origin");
    else if (vary->find("Origin") == std::string_view::npos && *vary != "*")
      r.headers.set("Vary", std::string(*vary) + ", Origin");
    co_return r;
  };
}

} // namespace coronet::http
