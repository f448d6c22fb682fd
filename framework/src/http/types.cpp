#include <coronet/http/error.hpp>
#include <coronet/http/headers.hpp>
#include <coronet/http/request.hpp>
#include <coronet/http/status.hpp>

#include "../op_memory.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

namespace coronet::http {

std::string_view reason(status s) noexcept
{
  switch (s) {
  case status::continue_: return "Continue";
  case status::switching_protocols: return "Switching Protocols";
  case status::ok: return "OK";
  case status::created: return "Created";
  case status::accepted: return "Accepted";
  case status::no_content: return "No Content";
  case status::moved_permanently: return "Moved Permanently";
  case status::found: return "Found";
  case status::see_other: return "See Other";
  case status::partial_content: return "Partial Content";
  case status::not_modified: return "Not Modified";
  case status::temporary_redirect: return "Temporary Redirect";
  case status::permanent_redirect: return "Permanent Redirect";
  case status::bad_request: return "Bad Request";
  case status::unauthorized: return "Unauthorized";
  case status::forbidden: return "Forbidden";
  case status::not_found: return "Not Found";
  case status::method_not_allowed: return "Method Not Allowed";
  case status::not_acceptable: return "Not Acceptable";
  case status::request_timeout: return "Request Timeout";
  case status::conflict: return "Conflict";
  case status::gone: return "Gone";
  case status::length_required: return "Length Required";
  case status::payload_too_large: return "Payload Too Large";
  case status::range_not_satisfiable: return "Range Not Satisfiable";
  case status::uri_too_long: return "URI Too Long";
  case status::unsupported_media_type: return "Unsupported Media Type";
  case status::expectation_failed: return "Expectation Failed";
  case status::unprocessable_entity: return "Unprocessable Entity";
  case status::upgrade_required: return "Upgrade Required";
  case status::too_many_requests: return "Too Many Requests";
  case status::request_header_fields_too_large: return "Request Header Fields Too Large";
  case status::internal_server_error: return "Internal Server Error";
  case status::not_implemented: return "Not Implemented";
  case status::bad_gateway: return "Bad Gateway";
  case status::service_unavailable: return "Service Unavailable";
  case status::gateway_timeout: return "Gateway Timeout";
  case status::http_version_not_supported: return "HTTP Version Not Supported";
  }
  return "Unknown";
}

bool iequals(std::string_view a, std::string_view b) noexcept
{
  // ASCII only, as header names and tokens are (no locale, no libc call).
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; };
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return x == y || lower(x) == lower(y); });
}

std::string_view trim_blanks(std::string_view v) noexcept
{
  auto first = v.find_first_not_of(" \t");
  if (first == std::string_view::npos)
    return {};
  return v.substr(first, v.find_last_not_of(" \t") - first + 1);
}

std::vector<std::string_view> list_items(std::string_view value)
{
  std::vector<std::string_view> items;
  while (!value.empty()) {
    auto comma = value.find(',');
    if (auto item = trim_blanks(value.substr(0, comma)); !item.empty())
      items.push_back(item);
    if (comma == std::string_view::npos)
      break;
    value.remove_prefix(comma + 1);
  }
  return items;
}

std::optional<std::string_view> headers::get(std::string_view name) const noexcept
{
  for (auto& [k, v] : fields_)
    if (iequals(k, name))
      return std::string_view{v};
  return std::nullopt;
}

std::size_t headers::count(std::string_view name) const noexcept
{
  return static_cast<std::size_t>(
    std::count_if(fields_.begin(), fields_.end(), [&](const field& f) { return iequals(f.first, name); }));
}

namespace {

// This thread's spare header storage (see headers.hpp).
struct header_pool {
  static constexpr std::size_t max_strings = 256;
  static constexpr std::size_t max_string_bytes = 1024;
  static constexpr std::size_t max_vectors = 64;
  static constexpr std::size_t max_vector_fields = 64;
  std::vector<std::string> strings;
  std::vector<std::vector<headers::field>> vectors;
  header_pool()
  {
    strings.reserve(max_strings);
    vectors.reserve(max_vectors);
  }
  ~header_pool();
};

// Set once the thread's pool is destroyed (a trivial thread_local, still
// readable then): headers that outlive it free their storage as usual.
thread_local bool pool_gone = false;

header_pool::~header_pool()
{
  pool_gone = true;
}

header_pool* pool() noexcept
{
  if (pool_gone)
    return nullptr;
  thread_local header_pool p;
  return &p;
}

} // namespace

namespace detail {

// `value` in a string that may come from the pool: only a value too long
// for a short string's inline room needs one.
std::string pooled_string(std::string_view value)
{
  std::string s;
  if (value.size() > s.capacity()) {
    if (auto* p = pool(); p && !p->strings.empty()) {
      s = std::move(p->strings.back());
      p->strings.pop_back();
    }
  }
  s.assign(value);
  return s;
}

namespace {

void give_string(std::string&& s) noexcept
{
  auto* p = pool();
  if (!p || !coronet::detail::holds_memory(s) || s.capacity() > header_pool::max_string_bytes ||
      p->strings.size() >= header_pool::max_strings)
    return;
  s.clear();
  p->strings.push_back(std::move(s)); // within the capacity reserved: no allocation
}

} // namespace

void give_strings(std::vector<std::pair<std::string, std::string>>& pairs) noexcept
{
  for (auto& [name, value] : pairs) {
    give_string(std::move(name));
    give_string(std::move(value));
  }
  pairs.clear();
}

} // namespace detail

using detail::pooled_string;

void headers::add(std::string name, std::string value)
{
  if (fields_.capacity() == 0) {
    if (auto* p = pool(); p && !p->vectors.empty()) {
      fields_ = std::move(p->vectors.back());
      p->vectors.pop_back();
    }
  }
  fields_.emplace_back(std::move(name), std::move(value));
}

void headers::add_copy(std::string_view name, std::string_view value)
{
  add(pooled_string(name), pooled_string(value));
}

void headers::set(std::string_view name, std::string value)
{
  remove(name);
  add(pooled_string(name), std::move(value));
}

void headers::set_copy(std::string_view name, std::string_view value)
{
  remove(name);
  add_copy(name, value);
}

void headers::clear() noexcept
{
  detail::give_strings(fields_);
}

void headers::recycle() noexcept
{
  if (fields_.capacity() == 0)
    return;
  clear();
  auto* p = pool();
  if (p && fields_.capacity() <= header_pool::max_vector_fields && p->vectors.size() < header_pool::max_vectors)
    p->vectors.push_back(std::move(fields_));
  fields_ = {};
}

void headers::remove(std::string_view name)
{
  std::erase_if(fields_, [&](const field& f) { return iequals(f.first, name); });
}

namespace {

int hex(char c) noexcept
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace

bool percent_decode_into(std::string& out, std::string_view text, bool plus_is_space)
{
  out.clear();
  if (text.find_first_of(plus_is_space ? "%+" : "%") == std::string_view::npos) {
    out.assign(text); // nothing to decode: the common path
    return true;
  }
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size())
        return false;
      int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0)
        return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return true;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space)
{
  std::string out;
  if (!percent_decode_into(out, text, plus_is_space))
    return std::nullopt;
  return out;
}

std::int64_t positive_integer(std::optional<std::string_view> text, std::string_view what)
{
  std::int64_t n = 0;
  if (text) {
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
    if (ec == std::errc{} && end == text->data() + text->size() && n > 0)
      return n;
  }
  throw error{status::bad_request, std::string(what) + " must be a positive integer"};
}

std::int64_t positive_integer(const std::optional<std::string>& text, std::string_view what)
{
  return positive_integer(text ? std::optional<std::string_view>{*text} : std::nullopt, what);
}

std::optional<std::string> request::query(std::string_view name) const
{
  std::string_view rest = query_string;
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    if (key && *key == name)
      return eq == std::string_view::npos ? std::string{} : percent_decode(pair.substr(eq + 1), true);
  }
  return std::nullopt;
}

} // namespace coronet::http
