#include <coronet/config.hpp>

#include <coronet/text.hpp>
#include <coronet/utf8.hpp>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <charconv>
#include <cstdint>
#include <optional>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>
#include <variant>

extern char** environ;

namespace coronet {

namespace {

const char* type_name(const config::value& v)
{
  switch (v.index()) {
  case 0: return "an integer";
  case 1: return "a number";
  case 2: return "a boolean";
  default: return "a string";
  }
}

std::string location(const toml::source_region& where, std::string_view fallback)
{
  std::string file = where.path ? std::string(*where.path) : std::string(fallback);
  return fmt::format("{}:{}", file, where.begin.line);
}

// Converts a TOML node to the type the schema expects; nullopt on mismatch.
std::optional<config::value> convert(const toml::node& node, const config::value& like)
{
  switch (like.index()) {
  case 0:
    if (auto i = node.value_exact<std::int64_t>())
      return config::value{*i};
    break;
  case 1:
    if (auto d = node.value<double>(); d && (node.is_floating_point() || node.is_integer()))
      return config::value{*d};
    break;
  case 2:
    if (auto b = node.value_exact<bool>())
      return config::value{*b};
    break;
  default:
    if (auto s = node.value_exact<std::string>())
      return config::value{*s};
    if (auto* list = node.as_array()) { // ["a", "b"]: the comma list get_list() reads
      std::string joined;
      for (auto&& item : *list) {
        auto s = item.value_exact<std::string>();
        if (!s || s->find(',') != std::string::npos)
          return std::nullopt;
        joined.append(joined.empty() ? "" : ", ").append(*s);
      }
      return config::value{std::move(joined)};
    }
    break;
  }
  return std::nullopt;
}

// Parses a flag or environment value as the schema's type.
std::optional<config::value> parse_text(std::string_view text, const config::value& like)
{
  switch (like.index()) {
  case 0: {
    std::int64_t i = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
    if (ec == std::errc{} && end == text.data() + text.size() && !text.empty())
      return config::value{i};
    return std::nullopt;
  }
  case 1: {
    std::string copy{text};
    char* end = nullptr;
    double d = std::strtod(copy.c_str(), &end);
    if (!copy.empty() && end == copy.c_str() + copy.size())
      return config::value{d};
    return std::nullopt;
  }
  case 2:
    if (text == "true" || text == "1" || text == "yes" || text == "on")
      return config::value{true};
    if (text == "false" || text == "0" || text == "no" || text == "off")
      return config::value{false};
    return std::nullopt;
  default:
    return config::value{std::string{text}};
  }
}

template <class F>
void walk(const toml::table& table, const std::string& prefix, F&& f)
{
  for (auto&& [key, node] : table) {
    std::string name = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (auto* sub = node.as_table())
      walk(*sub, name, f);
    else
      f(name, node);
  }
}

// The code point that starts at s[i] and its length in bytes; length 0 when
// it is not valid UTF-8.
std::pair<char32_t, std::size_t> decode_utf8(std::string_view s, std::size_t i)
{
  auto lead = static_cast<unsigned char>(s[i]);
  std::size_t n = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 0;
  if (n == 0 || i + n > s.size() || !valid_utf8(s.substr(i, n)))
    return {0, 0};
  char32_t cp = lead & (0xFF >> (n + 1));
  for (std::size_t k = 1; k < n; ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return {cp, n};
}

std::string toml_escape(char32_t cp)
{
  auto v = static_cast<std::uint32_t>(cp);
  return cp > 0xFFFF ? fmt::format("\\U{:08X}", v) : fmt::format("\\u{:04X}", v);
}

// TOML allows characters beyond ASCII only in strings and comments, and
// toml++ 3.3's whitespace test reaches __builtin_unreachable for many of them
// (U+00A1..U+0499 among others) wherever its parser or its error recovery
// looks at one, even past an error inside what looks like a string (both
// found by fuzzing the loader). So toml++ is given ASCII only: in a one-line
// basic string such a character becomes its \u escape, a one-line literal
// string holding one becomes the equal basic string, and a comment's become
// '?'. Anywhere else (or not UTF-8) it is refused, with its line.
class ascii_toml final {
public:
  explicit ascii_toml(std::string_view text) : text_(text) { out_.reserve(text.size()); }

  // The text for toml++, or the line of a character that is refused.
  std::variant<std::string, std::size_t> run()
  {
    for (i_ = 0; i_ < text_.size(); ++i_) {
      char c = text_[i_];
      if (c == '\n')
        end_line();
      else if (static_cast<unsigned char>(c) >= 0x80 ? !non_ascii() : !ascii(c))
        return line_;
    }
    end_line();
    return std::move(out_);
  }

private:
  enum class in { code, comment, basic, literal, multi_basic, multi_literal };

  bool starts(std::string_view what) const { return text_.substr(i_, what.size()) == what; }
  // A string (a value or a quoted key) can only follow '=', '[', ',', '{'
  // or '.', or begin a line: a quote anywhere else is no string for toml++
  // either, and what follows it is checked as code.
  bool string_may_start() const
  {
    std::size_t i = i_;
    while (i > 0 && (text_[i - 1] == ' ' || text_[i - 1] == '\t'))
      --i;
    return i == 0 || std::string_view("=[,{.\n").find(text_[i - 1]) != std::string_view::npos;
  }
  bool copy(std::size_t n)
  {
    out_.append(text_.substr(i_, n));
    i_ += n - 1;
    return true;
  }

  bool ascii(char c)
  {
    switch (state_) {
    case in::code:
      if (c == '#') {
        state_ = in::comment;
      } else if ((starts("\"\"\"") || starts("'''")) && string_may_start()) {
        state_ = c == '"' ? in::multi_basic : in::multi_literal;
        return copy(3);
      } else if ((c == '"' || c == '\'') && string_may_start()) {
        state_ = c == '"' ? in::basic : in::literal;
        literal_start_ = out_.size();
        literal_wide_ = false;
      }
      break;
    case in::basic:
    case in::multi_basic:
      if (c == '\\' && i_ + 1 < text_.size() && text_[i_ + 1] != '\n')
        return copy(2); // an escape: the next character is not the end
      if (state_ == in::basic && c == '"')
        state_ = in::code;
      else if (state_ == in::multi_basic && starts("\"\"\"")) {
        state_ = in::code;
        return copy(3);
      }
      break;
    case in::literal:
      if (c == '\'') {
        state_ = in::code;
        if (literal_wide_) {
          out_.replace(literal_start_, std::string::npos, as_basic_string(out_.substr(literal_start_ + 1)));
          return true;
        }
      }
      break;
    case in::multi_literal:
      if (starts("'''")) {
        state_ = in::code;
        return copy(3);
      }
      break;
    case in::comment:
      break;
    }
    out_ += c;
    return true;
  }

  bool non_ascii()
  {
    auto [cp, n] = decode_utf8(text_, i_);
    if (n == 0 || (state_ != in::basic && state_ != in::literal && state_ != in::comment))
      return false;
    if (state_ == in::basic)
      out_ += toml_escape(cp);
    else if (state_ == in::comment)
      out_ += '?';
    else
      literal_wide_ = true; // written as a basic string once it closes
    if (state_ == in::literal)
      out_.append(text_.substr(i_, n));
    i_ += n - 1;
    return true;
  }

  // A one-line string or a comment ends with its line (an unclosed string is
  // toml++'s to report, once what it must not see is escaped).
  void end_line()
  {
    if (state_ == in::literal && literal_wide_)
      out_.replace(literal_start_, std::string::npos, as_basic_string(out_.substr(literal_start_ + 1), false));
    if (state_ == in::comment || state_ == in::basic || state_ == in::literal)
      state_ = in::code;
    if (i_ < text_.size())
      out_ += '\n';
    ++line_;
  }

  // A literal string's content (everything as written) as a basic string.
  static std::string as_basic_string(std::string_view raw, bool closed = true)
  {
    std::string s = "\"";
    for (std::size_t i = 0; i < raw.size(); ++i) {
      auto [cp, n] = decode_utf8(raw, i);
      if (n > 0) {
        s += toml_escape(cp);
        i += n - 1;
      } else {
        if (raw[i] == '\\' || raw[i] == '"')
          s += '\\';
        s += raw[i];
      }
    }
    return closed ? s + '"' : s;
  }

  std::string_view text_;
  std::string out_;
  std::size_t i_ = 0;
  std::size_t line_ = 1;
  in state_ = in::code;
  std::size_t literal_start_ = 0; // where the open literal string's quote is in out_
  bool literal_wide_ = false;     // it holds a character beyond ASCII
};

toml::table parse_toml(std::string_view text, std::string_view source)
{
  auto ascii = ascii_toml(text).run();
  if (auto* line = std::get_if<std::size_t>(&ascii))
    throw config_error(fmt::format(
      "{}:{}: a character beyond ASCII outside a one-line string or a comment, or not valid UTF-8", source, *line));
  try {
    return toml::parse(std::get<std::string>(ascii), source);
  } catch (const toml::parse_error& e) {
    throw config_error(fmt::format("{}: {}", location(e.source(), source), e.description()));
  }
}

std::string env_name(std::string_view key)
{
  std::string name = "CORONET_";
  for (char c : key)
    name += (c == '.') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

// Levenshtein distance, for the closest known key to a misspelt one.
std::size_t distance(std::string_view a, std::string_view b)
{
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

config::value value_of(const config_key::default_value_type& d)
{
  return std::visit([](auto v) -> config::value {
    if constexpr (std::is_same_v<decltype(v), std::string_view>)
      return std::string(v);
    else
      return v;
  }, d);
}

std::string text_of(const config::value& v)
{
  return std::visit([](const auto& x) -> std::string {
    using V = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<V, std::string>)
      return fmt::format("\"{}\"", x);
    else if constexpr (std::is_same_v<V, bool>)
      return x ? "true" : "false";
    else
      return fmt::format("{}", x);
  }, v);
}

} // namespace

std::string config_key::default_text() const
{
  return text_of(value_of(default_value));
}

// config::load in steps, each layer over the last.
struct config_loader {
  config& cfg;

  void declare(const config_key& k)
  {
    auto v = value_of(k.default_value);
    auto it = cfg.entries_.find(k.name);
    if (it != cfg.entries_.end() && it->second.v.index() != v.index())
      throw config_error(fmt::format("key '{}' is declared twice, as {} and as {}", k.name,
        type_name(it->second.v), type_name(v)));
    cfg.entries_[std::string(k.name)] = config::entry{std::move(v), "default", &k};
  }

  void add_defaults(std::string_view text, std::string_view source)
  {
    walk(parse_toml(text, source), "", [&](const std::string& key, const toml::node& node) {
      config::value v;
      if (auto i = node.value_exact<std::int64_t>())
        v = *i;
      else if (auto d = node.value_exact<double>())
        v = *d;
      else if (auto b = node.value_exact<bool>())
        v = *b;
      else if (auto str = node.value_exact<std::string>())
        v = *str;
      else
        throw config_error(fmt::format("{}: built-in default {} must be a scalar", source, key));
      cfg.entries_[key] = config::entry{std::move(v), "default"};
    });
  }

  // An unknown key names the closest known one.
  [[noreturn]] void unknown(const std::string& origin, const std::string& key) const
  {
    const std::string* closest = nullptr;
    std::size_t best = std::string::npos;
    for (auto& [name, e] : cfg.entries_)
      if (auto d = distance(key, name); d < best)
        best = d, closest = &name;
    if (!closest)
      throw config_error(fmt::format("{}: unknown key '{}'", origin, key));
    if (best <= std::max<std::size_t>(3, key.size() / 4))
      throw config_error(fmt::format("{}: unknown key '{}' (did you mean '{}'?)", origin, key, *closest));
    throw config_error(fmt::format("{}: unknown key '{}' (the closest known key is '{}'; --print-keys lists them)",
      origin, key, *closest));
  }

  void set(const std::string& key, std::optional<config::value> v, const std::string& origin, std::string_view got)
  {
    auto it = cfg.entries_.find(key);
    if (it == cfg.entries_.end())
      unknown(origin, key);
    if (!v)
      throw config_error(fmt::format("{}: key '{}' must be {}, got {}", origin, key, type_name(it->second.v), got));
    it->second.v = std::move(*v);
    it->second.origin = origin;
  }

  void apply_file(const std::string& path)
  {
    std::ifstream in{path};
    if (!in)
      throw config_error(fmt::format("{}: cannot read config file", path));
    std::stringstream text;
    text << in.rdbuf();
    walk(parse_toml(text.str(), path), "", [&](const std::string& key, const toml::node& node) {
      auto it = cfg.entries_.find(key);
      std::optional<config::value> v;
      if (it != cfg.entries_.end())
        v = convert(node, it->second.v);
      std::ostringstream type;
      type << node.type();
      set(key, std::move(v), location(node.source(), path), type.str());
    });
  }

  void apply_environment(const char* const* env)
  {
    for (auto& [key, e] : cfg.entries_) {
      std::string name = env_name(key);
      for (const char* const* p = env; p && *p; ++p) {
        std::string_view var{*p};
        if (var.size() <= name.size() || var.substr(0, name.size()) != name || var[name.size()] != '=')
          continue;
        auto text = var.substr(name.size() + 1);
        auto v = parse_text(text, e.v);
        if (!v)
          throw config_error(fmt::format("environment {}: key '{}' must be {}, got '{}'", name, key,
            type_name(e.v), text));
        e.v = std::move(*v);
        e.origin = "environment " + name;
      }
    }
  }

  // A variable naming a known section but no key in it is a typo, not
  // someone else's variable (CORONET_JOBS has no [jobs] section: ignored).
  void check_environment(const char* const* env) const
  {
    for (const char* const* p = env; p && *p; ++p) {
      std::string_view var{*p};
      auto eq = var.find('=');
      if (var.substr(0, 8) != "CORONET_" || eq == std::string_view::npos)
        continue;
      auto name = var.substr(0, eq);
      bool known_key = false, known_section = false;
      for (auto& [key, e] : cfg.entries_) {
        known_key = known_key || env_name(key) == name;
        auto section = env_name(key.substr(0, key.find('.'))) + "_";
        known_section = known_section || name.substr(0, section.size()) == section;
      }
      if (known_section && !known_key)
        throw config_error(fmt::format("environment {}: no such key (see --print-config for the keys)", name));
    }
  }

  void apply_sets(const config::sources& from)
  {
    for (std::size_t i = 0; i < from.sets.size(); ++i) {
      const std::string& assignment = from.sets[i];
      auto eq = assignment.find('=');
      if (eq == std::string::npos || eq == 0)
        throw config_error(fmt::format("--set {}: expected section.key=value", assignment));
      std::string key = assignment.substr(0, eq);
      std::string origin = i < from.set_origins.size() && !from.set_origins[i].empty() ? from.set_origins[i]
                                                                                       : "--set " + key;
      std::string_view text = std::string_view(assignment).substr(eq + 1);
      auto it = cfg.entries_.find(key);
      std::optional<config::value> v;
      if (it != cfg.entries_.end())
        v = parse_text(text, it->second.v);
      set(key, std::move(v), origin, fmt::format("'{}'", text));
    }
  }

  // Integers within the bounds their declarations give.
  void check_bounds() const
  {
    for (auto& [key, e] : cfg.entries_) {
      if (!e.declared || e.v.index() != 0)
        continue;
      auto v = std::get<std::int64_t>(e.v);
      auto [low, high] = std::pair{e.declared->min, e.declared->max};
      if (v >= low && v <= high)
        continue;
      if (high == std::numeric_limits<std::int64_t>::max())
        cfg.fail(key, fmt::format("must be at least {}, got {}", low, v));
      cfg.fail(key, fmt::format("must be between {} and {}, got {}", low, high, v));
    }
  }
};

config config::load(std::string_view app, const sources& from)
{
  config cfg;
  cfg.app_ = std::string(app);
  config_loader loader{cfg};
  for (auto table : from.keys)
    for (auto& k : table)
      loader.declare(k);
  if (!from.app_defaults.empty())
    loader.add_defaults(from.app_defaults, std::string(app) + " defaults");
  if (from.file)
    loader.apply_file(*from.file);
  const char* const* env = from.environment ? from.environment : environ;
  loader.apply_environment(env);
  loader.check_environment(env);
  loader.apply_sets(from);
  loader.check_bounds();
  return cfg;
}

bool config::contains(std::string_view key) const
{
  return entries_.find(key) != entries_.end();
}

const config::entry& config::at(std::string_view key) const
{
  auto it = entries_.find(key);
  if (it == entries_.end())
    throw config_error(fmt::format("{}: no such config key '{}'", app_, key));
  return it->second;
}

template <class T>
static const T& typed(const config& cfg, const config::value& v, std::string_view key)
{
  if (auto* p = std::get_if<T>(&v))
    return *p;
  cfg.fail(key, "has the wrong type for this use");
}

std::string config::get_string(std::string_view key) const
{
  return typed<std::string>(*this, at(key).v, key);
}

std::vector<std::string> config::get_list(std::string_view key) const
{
  return list_of(get_string(key));
}

std::int64_t config::get_int(std::string_view key) const
{
  return typed<std::int64_t>(*this, at(key).v, key);
}

std::int64_t config::get_positive(std::string_view key) const
{
  std::int64_t v = get_int(key);
  if (v <= 0)
    fail(key, "must be positive");
  return v;
}

double config::get_double(std::string_view key) const
{
  return typed<double>(*this, at(key).v, key);
}

bool config::get_bool(std::string_view key) const
{
  return typed<bool>(*this, at(key).v, key);
}

const std::string& config::origin(std::string_view key) const
{
  return at(key).origin;
}

void config::fail(std::string_view key, std::string_view message) const
{
  throw config_error(fmt::format("{}: key '{}' {}", origin(key), key, message));
}

std::string config::dump() const
{
  std::string out;
  std::string section;
  for (auto& [key, e] : entries_) {
    auto dot = key.rfind('.');
    std::string sec = dot == std::string::npos ? "" : key.substr(0, dot);
    if (sec != section) {
      section = sec;
      out += fmt::format("\n[{}]\n", section);
    }
    out += fmt::format("{} = {}   # {}\n", key.substr(dot + 1), text_of(e.v), e.origin);
  }
  return out;
}

std::string config::describe() const
{
  std::string out = "| key | default | bounds | what it does |\n| --- | --- | --- | --- |\n";
  for (auto& [key, e] : entries_) {
    std::string bounds;
    if (e.declared && e.declared->min != std::numeric_limits<std::int64_t>::min())
      bounds = e.declared->max == std::numeric_limits<std::int64_t>::max()
        ? fmt::format("≥ {}", e.declared->min)
        : fmt::format("{}..{}", e.declared->min, e.declared->max);
    std::string help = e.declared ? std::string(e.declared->help) : "";
    for (auto& c : help)
      c = c == '|' ? '/' : c;
    out += fmt::format("| `{}` | `{}` | {} | {} |\n", key,
      e.declared ? e.declared->default_text() : text_of(e.v), bounds, help);
  }
  return out;
}

} // namespace coronet
