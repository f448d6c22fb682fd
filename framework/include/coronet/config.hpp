#pragma once
// Configuration: built-in defaults < TOML file < CORONET_SECTION_KEY
// environment variables < command-line flags (`--set section.key=value`
// reaches any key). The defaults define the schema: a key that is not in them,
// a value of the wrong type or a bad value is rejected with the file and line
// (or the variable or flag) that set it.
//
//   auto cfg = coronet::load_config(argc, argv, "hello", R"(
//     [hello]
//     greeting = "world"   # who to greet
//   )");
//   auto who = cfg.get_string("hello.greeting");
//
// Every app shares [runtime] threads, blocking_threads; [log] level;
// [server] listen, and the flags --config, --listen, --threads, --log-level.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace coronet {

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
    std::string app_defaults;              // TOML text merged over the common defaults
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

private:
  struct entry {
    value v;
    std::string origin;
  };
  const entry& at(std::string_view key) const;

  std::string app_;
  std::map<std::string, entry, std::less<>> entries_;
};

// Parses the command line of an app (the contract every app shares), prints
// a clear message and exits with status 2 on a bad flag or config, and prints
// help and exits 0 for --help. Also applies log.level to the logger.
config load_config(int argc, char** argv, std::string_view app, std::string_view app_defaults = {},
  const std::vector<config::flag>& flags = {});

} // namespace coronet
