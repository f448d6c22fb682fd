#include <coronet/http/error.hpp>
#include <coronet/http/request.hpp>

#include <charconv>
#include <string>

namespace coronet::http {

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
