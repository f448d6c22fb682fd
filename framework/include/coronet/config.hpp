#pragma once
// Configuration: built-in defaults < TOML file < CORONET_SECTION_KEY
// environment variables < command-line flags (`--set section.key=value`
// reaches any key). Each component declares its keys once, beside the
// options they fill: name, type and default, bounds, one line of help. A key
// that is not declared, a value of the wrong type or out of bounds is
// rejected with the file and line (or the variable or flag) that set it.
//
//   inline constexpr config_key hello_keys[] = {
//     {"hello.greeting", "world", "who to greet"},
//     {"hello.times", 1, "how often", 1, 100},
//   };
//   struct hello_options {
//     std::string greeting{config_default<std::string_view>(hello_keys, "hello.greeting")};
//   };
//   auto cfg = coronet::load_config(argc, argv, "hello", hello_keys);   // app/app.hpp
//   auto who = cfg.get_string("hello.greeting");
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace coronet {

// One configuration key, declared once. An integer key may carry bounds
// (checked when the configuration loads); a duration's name ends in _ms, _us
// or _s.
struct config_key {
  using default_value_type = std::variant<std::int64_t, double, bool, std::string_view>;
  std::string_view name; // "section.key"
  default_value_type default_value;
  std::string_view help; // one line
  std::int64_t min = std::numeric_limits<std::int64_t>::min();
  std::int64_t max = std::numeric_limits<std::int64_t>::max();

  // The default as TOML writes it: 8080, true, "127.0.0.1:8080".
  std::string default_text() const;
};

// The default a key table declares for `name`, as T; a name that is not in
// the table, or of another type, does not compile.
template <class T, std::size_t N>
consteval T config_default(const config_key (&keys)[N], std::string_view name)
{
  for (const auto& k : keys) {
    if (k.name != name)
      continue;
    if constexpr (std::is_same_v<T, bool>)
      return std::get<bool>(k.default_value);
    else if constexpr (std::is_floating_point_v<T>)
      return static_cast<T>(std::get<double>(k.default_value));
    else if constexpr (std::is_integral_v<T>)
      return static_cast<T>(std::get<std::int64_t>(k.default_value));
    else
      return T{std::get<std::string_view>(k.default_value)};
  }
  throw std::invalid_argument("no such key in the table");
}

class config_error final : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class config final {
public:
  using value = std::variant<std::int64_t, double, bool, std::string>;

  // A flag of the app's own that sets a key: {"role", "backend.role", "..."}
  // makes `--role X` mean `--set backend.role=X`.
  struct flag {
    std::string name;
    std::string key;
    std::string help;
  };

  struct sources {
    // The declared keys: the framework's and the app's; a key declared again
    // later (an app's own default for server.listen) takes the later default.
    std::vector<std::span<const config_key>> keys;
    std::string app_defaults;              // more keys, as TOML text: name = default  # help
    std::optional<std::string> file;       // TOML file path
    std::vector<std::string> sets;         // "section.key=value", applied in order
    const char* const* environment = nullptr; // envp-style; nullptr: the process's
    std::vector<std::string> set_origins;  // how each of `sets` was given ("--listen"); default "--set KEY"
  };

  // Throws config_error naming the file/line, variable or flag at fault.
  static config load(std::string_view app, const sources& from);

  const std::string& app() const noexcept { return app_; }
  bool contains(std::string_view key) const;

  std::string get_string(std::string_view key) const;
  // A string holding a comma-separated list (or, in a file, a TOML array of
  // strings): its items, blanks trimmed,
  // empty ones dropped ("a, b,,c" -> a b c).
  std::vector<std::string> get_list(std::string_view key) const;
  std::int64_t get_int(std::string_view key) const;
  double get_double(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::chrono::milliseconds get_ms(std::string_view key) const { return std::chrono::milliseconds{get_int(key)}; }
  // An integer that must be > 0 (sizes, limits, timeouts); fail()s otherwise.
  std::int64_t get_positive(std::string_view key) const;
  std::chrono::milliseconds get_positive_ms(std::string_view key) const
  {
    return std::chrono::milliseconds{get_positive(key)};
  }

  // Where the key's value came from: "default", "FILE:LINE",
  // "environment CORONET_X_Y" or "--set".
  const std::string& origin(std::string_view key) const;

  // Throws config_error "<origin>: <key> <message>" for a value that has the
  // right type but is not acceptable.
  [[noreturn]] void fail(std::string_view key, std::string_view message) const;

  // The effective configuration as TOML, with origins as comments.
  std::string dump() const;
  // Every key as declared: a Markdown table of key, default, bounds and help.
  std::string describe() const;

private:
  friend struct config_loader;
  struct entry {
    value v;
    std::string origin;
    const config_key* declared = nullptr; // its declaration, when it came from a key table
  };
  const entry& at(std::string_view key) const;

  std::string app_;
  std::map<std::string, entry, std::less<>> entries_;
};

} // namespace coronet
