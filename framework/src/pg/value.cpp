#include <coronet/pg/value.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace coronet::pg {

param to_param(std::nullopt_t)
{
  return param{{}, true, false};
}

param to_param(bool v)
{
  return param{v ? "t" : "f"};
}

param to_param(std::int64_t v)
{
  return param{std::to_string(v)};
}

param to_param(std::uint64_t v)
{
  return param{std::to_string(v)};
}

param to_param(double v)
{
  if (std::isnan(v))
    return param{"NaN"};
  if (std::isinf(v))
    return param{v > 0 ? "Infinity" : "-Infinity"};
  return param{fmt::format("{}", v)}; // the shortest text that reads back as v
}

param to_param(std::string_view v)
{
  if (v.find('\0') != std::string_view::npos)
    throw error(errc::bad_query, "a text parameter holds a NUL byte, which PostgreSQL's text cannot; pass bytes as pg::bytea");
  return param{std::string(v)};
}

param to_param(const bytea& v)
{
  return param{v.bytes, false, true};
}

param to_param(timestamp v)
{
  using namespace std::chrono;
  if (v == timestamp::max())
    return param{"infinity"};
  if (v == timestamp::min())
    return param{"-infinity"};
  auto days = floor<std::chrono::days>(v);
  year_month_day date{days};
  hh_mm_ss<microseconds> time{v - days};
  return param{fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00", static_cast<int>(date.year()),
    static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()), time.hours().count(),
    time.minutes().count(), time.seconds().count(), time.subseconds().count())};
}

namespace detail {

void append_array_element(std::string& out, const param& p)
{
  if (p.null) {
    out += "NULL";
    return;
  }
  std::string_view text = p.value;
  std::string hex;
  if (p.binary) { // bytea inside an array: its text form
    hex = "\\x";
    for (unsigned char c : p.value)
      hex += fmt::format("{:02x}", c);
    text = hex;
  }
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '"';
}

void bad_value(std::string_view text, std::string_view type, std::string_view what)
{
  if (text.size() > 40)
    text = text.substr(0, 40);
  throw error(errc::bad_query, fmt::format("column \"{}\": '{}' is not {}", what, text, type));
}

bool decode_bool(std::string_view text, std::string_view what)
{
  if (text == "t")
    return true;
  if (text == "f")
    return false;
  bad_value(text, "a boolean", what);
}

std::int64_t decode_int(std::string_view text, std::int64_t min, std::int64_t max, std::string_view what)
{
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < min || v > max)
    bad_value(text, "an integer in range", what);
  return v;
}

std::uint64_t decode_uint(std::string_view text, std::uint64_t max, std::string_view what)
{
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v > max)
    bad_value(text, "an unsigned integer in range", what);
  return v;
}

double decode_double(std::string_view text, std::string_view what)
{
  if (text == "NaN")
    return std::nan("");
  if (text == "Infinity")
    return HUGE_VAL;
  if (text == "-Infinity")
    return -HUGE_VAL;
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size())
    bad_value(text, "a number", what);
  return v;
}

bytea decode_bytea(std::string_view text, std::string_view what)
{
  // bytea_output = hex (the default since 9.0): \x then two digits a byte.
  if (!text.starts_with("\\x") || text.size() % 2)
    bad_value(text, "bytea in hex form", what);
  bytea out;
  out.bytes.reserve(text.size() / 2 - 1);
  for (std::size_t i = 2; i < text.size(); i += 2) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + i + 2, v, 16);
    if (ec != std::errc{} || end != text.data() + i + 2)
      bad_value(text, "bytea in hex form", what);
    out.bytes += static_cast<char>(v);
  }
  return out;
}

namespace {

// Reads `n` digits at `at` (advancing it), or fails.
bool digits(std::string_view text, std::size_t& at, std::size_t n, int& v)
{
  if (at + n > text.size())
    return false;
  auto [end, ec] = std::from_chars(text.data() + at, text.data() + at + n, v);
  if (ec != std::errc{} || end != text.data() + at + n)
    return false;
  at += n;
  return true;
}

bool expect(std::string_view text, std::size_t& at, char c)
{
  if (at >= text.size() || text[at] != c)
    return false;
  ++at;
  return true;
}

// "+HH", "+HH:MM", "-HH:MM:SS": seconds east of UTC.
bool zone(std::string_view text, std::size_t& at, int& seconds)
{
  const int sign = text[at] == '-' ? -1 : 1;
  ++at;
  int h = 0, m = 0, s = 0;
  if (!digits(text, at, 2, h))
    return false;
  if (at < text.size() && !(expect(text, at, ':') && digits(text, at, 2, m)))
    return false;
  if (at < text.size() && !(expect(text, at, ':') && digits(text, at, 2, s)))
    return false;
  seconds = sign * (h * 3600 + m * 60 + s);
  return at == text.size();
}

std::optional<timestamp> parse_timestamp(std::string_view text)
{
  using namespace std::chrono;
  std::size_t at = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, offset = 0;
  if (!(digits(text, at, 4, y) && expect(text, at, '-') && digits(text, at, 2, mo) && expect(text, at, '-') &&
        digits(text, at, 2, d) && expect(text, at, ' ') && digits(text, at, 2, h) && expect(text, at, ':') &&
        digits(text, at, 2, mi) && expect(text, at, ':') && digits(text, at, 2, s)))
    return std::nullopt;
  std::int64_t micros = 0;
  if (at < text.size() && text[at] == '.') {
    ++at;
    int scale = 100000;
    for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, scale /= 10)
      micros += (text[at] - '0') * scale;
  }
  if (at < text.size() && (text[at] == '+' || text[at] == '-') && !zone(text, at, offset))
    return std::nullopt;
  if (at != text.size())
    return std::nullopt;
  year_month_day date{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!date.ok())
    return std::nullopt;
  return timestamp{sys_days{date}} + hours{h} + minutes{mi} + seconds{s - offset} + microseconds{micros};
}

} // namespace

timestamp decode_timestamp(std::string_view text, std::string_view what)
{
  if (text == "infinity")
    return timestamp::max();
  if (text == "-infinity")
    return timestamp::min();
  auto t = parse_timestamp(text);
  if (!t)
    bad_value(text, "an ISO timestamp (years 1000-9999, AD)", what);
  return *t;
}

std::vector<std::optional<std::string>> split_array(std::string_view text, std::string_view what)
{
  if (!text.empty() && text[0] == '[') { // explicit bounds: "[0:2]={...}"
    auto eq = text.find('=');
    if (eq == std::string_view::npos)
      bad_value(text, "an array", what);
    text.remove_prefix(eq + 1);
  }
  if (text.size() < 2 || text.front() != '{' || text.back() != '}')
    bad_value(text, "an array", what);
  std::vector<std::optional<std::string>> out;
  std::size_t i = 1;
  const std::size_t end = text.size() - 1;
  if (i == end)
    return out;
  for (;;) {
    if (text[i] == '{')
      bad_value(text, "a one-dimensional array", what);
    std::string element;
    bool quoted = text[i] == '"';
    if (quoted) {
      for (++i; i < end && text[i] != '"'; ++i) {
        if (text[i] == '\\' && i + 1 < end)
          ++i;
        element += text[i];
      }
      if (i >= end)
        bad_value(text, "an array", what);
      ++i; // the closing quote
    } else {
      for (; i < end && text[i] != ','; ++i)
        element += text[i];
    }
    if (!quoted && element == "NULL")
      out.emplace_back(std::nullopt);
    else
      out.emplace_back(std::move(element));
    if (i == end)
      return out;
    if (text[i] != ',')
      bad_value(text, "an array", what);
    ++i;
  }
}

} // namespace detail

} // namespace coronet::pg
