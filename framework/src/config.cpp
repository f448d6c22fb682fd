#include <coronet/config.hpp>

#include <coronet/log.hpp>
#include <coronet/text.hpp>
#include <coronet/utf8.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <cstdlib>
#include <iostream>
#include <fstream>
#include <sstream>
#include <utility>
#include <variant>

extern char** environ;

namespace coronet {

namespace {

constexpr std::string_view common_defaults = R"(
[runtime]
threads = 0            # worker threads; 0 = one per hardware thread
blocking_threads = 4   # threads for spawn_blocking
spin_us = 20           # an idle worker waits this long for work from others before sleeping

[log]
level = "info"         # trace, debug, info, warn, error, critical, off
access = false         # HTTP apps: one access log line per request on stdout

[server]
listen = "127.0.0.1:8080"

[http]
max_request_line_bytes = 8192  # longer -> 414
max_header_bytes = 65536       # more -> 431
max_headers = 100              # more -> 431
max_body_bytes = 1048576       # more -> 413, refused before the body is read
header_timeout_ms = 10000      # headers not complete in time -> 408 and close
body_timeout_ms = 30000        # body not complete in time -> close
idle_timeout_ms = 60000        # keep-alive connection idle this long -> close
write_timeout_ms = 30000       # a response not written in time -> close
max_connections = 10000        # at the limit, accepting pauses
shutdown_timeout_ms = 10000    # on SIGINT/SIGTERM, how long in-flight requests get
max_concurrent_requests = 0    # handlers running at once per worker; beyond: 503 + Retry-After (0: no limit)
queue_timeout_ms = 0           # how long a request beyond the limit may wait for a handler to finish
request_timeout_ms = 0         # caps the deadline a caller sends (X-Request-Timeout-Ms, grpc-timeout); 0: none
trusted_proxies = ""           # CIDRs ("10.0.0.0/8, ::1") whose X-Forwarded-For / Forwarded set the client's address

[http2]
enabled = true                 # h2 by ALPN on a TLS listener, h2c (prior knowledge) on a plain one
max_concurrent_streams = 100   # more at once -> RST_STREAM REFUSED_STREAM
initial_window_bytes = 65535   # per stream: what a client may send before we read it
connection_window_bytes = 1048576 # the whole connection's receive window
max_header_list_bytes = 65536  # decoded header list; more -> 431 on that stream
max_frame_bytes = 16384        # largest frame a peer may send (16384..16777215)

[tls]
cert_file = ""                 # PEM certificate (chain); with key_file, the listener speaks TLS
key_file = ""                  # PEM private key; SIGHUP reloads both for new connections
client_ca_file = ""            # when set, clients must present a certificate this CA signed (mTLS)
min_version = "1.2"            # "1.2" or "1.3"
handshake_timeout_ms = 10000   # a handshake not done in time closes the connection

[client]
max_connections_per_host = 256 # per worker; calls past it wait for a free one
max_idle_per_host = 256        # per worker; kept open for reuse
connect_timeout_ms = 1000      # TCP connect, and the TLS handshake after it
request_timeout_ms = 10000     # default budget of a call, connect to last byte
idle_timeout_ms = 30000        # a pooled connection unused this long is not reused
max_response_body_bytes = 16777216
ca_file = ""                   # PEM CAs to trust for https://; empty: the system's store
cert_file = ""                 # a client certificate to present (mTLS), PEM
key_file = ""                  # its private key, PEM
insecure_skip_verify = false   # trust any server certificate (logged as a warning)
http2 = "auto"                 # "auto": h2 when an https:// server offers it by ALPN; "prior_knowledge": h2c to http:// too; "off"
h2c_targets = ""               # origins called over h2c whatever `http2` says: "http://10.0.0.5:8081, http://users:8081"
dns_refresh_ms = 5000          # a host name with several addresses (replicas) is resolved again this often
eject_after_failures = 5       # a replica failing this many calls in a row is left out; 0: never
eject_ms = 10000               # for this long, doubling while it keeps failing; then one probe call
max_ejected_percent = 50       # of a target's replicas, at most
retry_budget_percent = 20      # retries and hedges may add this share of calls...
retry_budget_min_per_second = 10 # ...plus this many a second
max_retries = 2                # per call, after the first attempt
retry_backoff_ms = 10          # before the first retry; doubles, jittered

[compress]
min_bytes = 1024               # http::compress: smaller answers go as they are
codings = "zstd, br, gzip"     # the codings it may answer with (Accept-Encoding chooses)
gzip_level = 6                 # 1-9
zstd_level = 3                 # 1-19
brotli_quality = 4             # 0-11
max_ratio = 100                # a compressed request body may grow this many times, and to http.max_body_bytes

[cors]
allowed_origins = ""           # http::cors_options::from: comma-separated origins (https://app.example.com) or "*"
allowed_methods = "GET, HEAD, POST, PUT, PATCH, DELETE"
allowed_headers = "Content-Type" # request headers a page may send beyond the safelisted ones; "*" for any
exposed_headers = ""           # response headers a page may read
allow_credentials = false      # cookies and HTTP authentication (the origin is echoed, never *)
max_age_s = 600                # how long a browser may cache a preflight

[ws]
max_message_bytes = 1048576    # a bigger WebSocket message -> close 1009
send_queue_messages = 64       # messages waiting to go out; then send() waits
write_timeout_ms = 10000       # a peer that reads nothing this long is dropped
idle_timeout_ms = 60000        # a silent peer is pinged at half this, dropped at the full time
close_timeout_ms = 5000        # how long to wait for the peer's close frame
)";

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

} // namespace

config config::load(std::string_view app, const sources& from)
{
  config cfg;
  cfg.app_ = std::string(app);

  auto add_defaults = [&](std::string_view text, std::string_view source) {
    walk(parse_toml(text, source), "", [&](const std::string& key, const toml::node& node) {
      config::value v;
      if (auto i = node.value_exact<std::int64_t>())
        v = *i;
      else if (auto d = node.value_exact<double>())
        v = *d;
      else if (auto b = node.value_exact<bool>())
        v = *b;
      else if (auto s = node.value_exact<std::string>())
        v = *s;
      else
        throw config_error(fmt::format("{}: built-in default {} must be a scalar", source, key));
      cfg.entries_[key] = entry{std::move(v), "default"};
    });
  };
  add_defaults(common_defaults, "common defaults");
  if (!from.app_defaults.empty())
    add_defaults(from.app_defaults, std::string(app) + " defaults");

  auto set = [&](const std::string& key, std::optional<config::value> v, const std::string& origin,
               std::string_view got) {
    auto it = cfg.entries_.find(key);
    if (it == cfg.entries_.end())
      throw config_error(fmt::format("{}: unknown key '{}'", origin, key));
    if (!v)
      throw config_error(
        fmt::format("{}: key '{}' must be {}, got {}", origin, key, type_name(it->second.v), got));
    it->second = entry{std::move(*v), origin};
  };

  if (from.file) {
    std::ifstream in{*from.file};
    if (!in)
      throw config_error(fmt::format("{}: cannot read config file", *from.file));
    std::stringstream text;
    text << in.rdbuf();
    auto table = parse_toml(text.str(), *from.file);
    walk(table, "", [&](const std::string& key, const toml::node& node) {
      std::string origin = location(node.source(), *from.file);
      auto it = cfg.entries_.find(key);
      std::optional<config::value> v;
      if (it != cfg.entries_.end())
        v = convert(node, it->second.v);
      std::ostringstream type;
      type << node.type();
      std::string got = type.str();
      set(key, std::move(v), origin, got);
    });
  }

  const char* const* env = from.environment ? from.environment : environ;
  for (auto& [key, e] : cfg.entries_) {
    std::string name = env_name(key);
    for (const char* const* p = env; p && *p; ++p) {
      std::string_view var{*p};
      if (var.size() > name.size() && var.substr(0, name.size()) == name && var[name.size()] == '=') {
        auto text = var.substr(name.size() + 1);
        auto v = parse_text(text, e.v);
        if (!v)
          throw config_error(fmt::format("environment {}: key '{}' must be {}, got '{}'", name, key,
            type_name(e.v), text));
        e = entry{std::move(*v), "environment " + name};
      }
    }
  }
  // A variable naming a known section but no key in it is a typo, not
  // someone else's variable (CORONET_JOBS has no [jobs] section: ignored).
  for (const char* const* p = env; p && *p; ++p) {
    std::string_view var{*p};
    auto eq = var.find('=');
    if (var.substr(0, 8) != "CORONET_" || eq == std::string_view::npos)
      continue;
    auto name = var.substr(0, eq);
    bool known_key = false, known_section = false;
    for (auto& [key, e] : cfg.entries_) {
      auto full = env_name(key);
      known_key = known_key || full == name;
      auto section = env_name(key.substr(0, key.find('.'))) + "_";
      known_section = known_section || name.substr(0, section.size()) == section;
    }
    if (known_section && !known_key)
      throw config_error(fmt::format("environment {}: no such key (see --print-config for the keys)", name));
  }

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
  auto text = get_string(key);
  auto items = list_items(text);
  return {items.begin(), items.end()};
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
    std::string text = std::visit(
      [](const auto& v) -> std::string {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::string>)
          return fmt::format("\"{}\"", v);
        else if constexpr (std::is_same_v<V, bool>)
          return v ? "true" : "false";
        else
          return fmt::format("{}", v);
      },
      e.v);
    out += fmt::format("{} = {}   # {}\n", key.substr(dot + 1), text, e.origin);
  }
  return out;
}

config load_config(int argc, char** argv, std::string_view app, std::string_view app_defaults,
  const std::vector<config::flag>& flags)
{
  CLI::App cli{fmt::format("coronet-{}", app)};
  cli.set_version_flag("--version", "coronet 0.1.0");
  config::sources from;
  from.app_defaults = std::string(app_defaults);
  std::string file, listen, log_level;
  std::optional<std::int64_t> threads;
  bool print = false;
  cli.add_option("-c,--config", file, "TOML config file")->check(CLI::ExistingFile);
  cli.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port)");
  cli.add_option("--threads", threads, "worker threads (0: one per hardware thread)");
  cli.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off");
  cli.add_option("--set", from.sets, "section.key=value, overrides any key (repeatable)");
  cli.add_flag("--print-config", print, "print the effective configuration and exit");
  std::vector<std::string> extra(flags.size());
  for (std::size_t i = 0; i < flags.size(); ++i)
    cli.add_option("--" + flags[i].name, extra[i], flags[i].help + " (" + flags[i].key + ")");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(cli.exit(e));
  }
  if (!file.empty())
    from.file = file;
  // Flags are applied as --set values, after the explicit --set ones.
  from.set_origins.resize(from.sets.size());
  auto add = [&](const std::string& flag, const std::string& key, const std::string& value) {
    from.sets.push_back(key + "=" + value);
    from.set_origins.push_back(flag);
  };
  if (!listen.empty())
    add("--listen", "server.listen", listen);
  if (threads)
    add("--threads", "runtime.threads", std::to_string(*threads));
  if (!log_level.empty())
    add("--log-level", "log.level", log_level);
  for (std::size_t i = 0; i < flags.size(); ++i)
    if (!extra[i].empty())
      add("--" + flags[i].name, flags[i].key, extra[i]);

  try {
    auto cfg = config::load(app, from);
    setup_logging(cfg);
    if (print) {
      std::cout << cfg.dump();
      std::exit(0);
    }
    return cfg;
  } catch (const config_error& e) {
    std::cerr << "coronet-" << app << ": config error: " << e.what() << '\n';
    std::exit(2);
  }
}

} // namespace coronet
