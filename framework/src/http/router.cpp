#include <coronet/http/router.hpp>

#include <stdexcept>

namespace coronet::http {

namespace {

std::vector<std::string_view> split(std::string_view path)
{
  std::vector<std::string_view> parts;
  std::size_t at = 0;
  while (at < path.size()) {
    if (path[at] == '/') {
      ++at;
      continue;
    }
    auto end = path.find('/', at);
    if (end == std::string_view::npos)
      end = path.size();
    parts.push_back(path.substr(at, end - at));
    at = end;
  }
  return parts;
}

} // namespace

void router::add(std::string method, std::string_view pattern, handler h)
{
  if (pattern.empty() || pattern.front() != '/')
    throw std::invalid_argument("route pattern must start with '/': " + std::string(pattern));
  route r{std::move(method), {}, std::move(h)};
  auto parts = split(pattern);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == "*" && i + 1 != parts.size())
      throw std::invalid_argument("'*' must be the last segment: " + std::string(pattern));
    r.segments.emplace_back(parts[i]);
  }
  routes_.push_back(std::move(r));
}

router::match router::find(request& req) const
{
  auto parts = split(req.path);
  match m;
  for (auto& r : routes_) {
    std::vector<std::pair<std::string, std::string>> params;
    bool ok = true;
    std::size_t i = 0;
    for (; i < r.segments.size() && ok; ++i) {
      const std::string& seg = r.segments[i];
      if (seg == "*") {
        i = r.segments.size();
        break;
      }
      if (i >= parts.size()) {
        ok = false;
      } else if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}') {
        params.emplace_back(seg.substr(1, seg.size() - 2), std::string(parts[i]));
      } else if (seg != parts[i]) {
        ok = false;
      }
    }
    bool wildcard = !r.segments.empty() && r.segments.back() == "*";
    if (!ok || (!wildcard && parts.size() != r.segments.size()) || (wildcard && parts.size() < r.segments.size() - 1))
      continue;
    bool method_ok = r.method == req.method || (req.method == "HEAD" && r.method == "GET");
    if (!method_ok) {
      if (m.allow.find(r.method) == std::string::npos)
        m.allow += (m.allow.empty() ? "" : ", ") + r.method;
      m.status = status::method_not_allowed;
      continue;
    }
    req.params = std::move(params);
    m.target = &r.h;
    m.status = status::ok;
    return m;
  }
  return m;
}

} // namespace coronet::http
