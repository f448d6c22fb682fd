#include <coronet/config.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

constexpr const char* app_defaults = R"(
[backend]
role = "users"
latency_ms = 5
error_rate = 0.0
verbose = false
)";

struct temp_file {
  std::filesystem::path path;
  explicit temp_file(const std::string& text)
  {
    path = std::filesystem::temp_directory_path() /
      ("coronet-config-" + std::to_string(reinterpret_cast<std::uintptr_t>(this)) + ".toml");
    std::ofstream{path} << text;
  }
  ~temp_file() { std::filesystem::remove(path); }
};

std::string error_of(const coronet::config::sources& from)
{
  try {
    coronet::config::load("backend", from);
  } catch (const coronet::config_error& e) {
    return e.what();
  }
  return "no error";
}

const char* const no_env[] = {nullptr};

} // namespace

TEST_CASE("config defaults apply with no file, variable or flag")
{
  coronet::config::sources from{app_defaults, {}, {}, no_env};
  auto cfg = coronet::config::load("backend", from);
  CHECK(cfg.get_string("backend.role") == "users");
  CHECK(cfg.get_int("backend.latency_ms") == 5);
  CHECK(cfg.get_ms("backend.latency_ms").count() == 5);
  CHECK(cfg.get_double("backend.error_rate") == 0.0);
  CHECK_FALSE(cfg.get_bool("backend.verbose"));
  CHECK(cfg.get_int("runtime.threads") == 0);
  CHECK(cfg.get_string("log.level") == "info");
  CHECK(cfg.origin("backend.role") == "default");
}

TEST_CASE("config precedence: default < file < environment < --set")
{
  temp_file file{"[backend]\nrole = \"orders\"\nlatency_ms = 10\nerror_rate = 1\n"};
  const char* env[] = {"CORONET_BACKEND_LATENCY_MS=20", "UNRELATED=1", nullptr};
  coronet::config::sources from{app_defaults, file.path.string(), {"backend.verbose=true"}, env};
  auto cfg = coronet::config::load("backend", from);
  CHECK(cfg.get_string("backend.role") == "orders");
  CHECK(cfg.origin("backend.role") == file.path.string() + ":2");
  CHECK(cfg.get_int("backend.latency_ms") == 20);
  CHECK(cfg.origin("backend.latency_ms") == "environment CORONET_BACKEND_LATENCY_MS");
  CHECK(cfg.get_double("backend.error_rate") == 1.0); // an integer is accepted for a number
  CHECK(cfg.get_bool("backend.verbose"));

  from.sets.push_back("backend.latency_ms=30");
  CHECK(coronet::config::load("backend", from).get_int("backend.latency_ms") == 30);
}

TEST_CASE("config rejects bad input naming where it came from")
{
  SUBCASE("unknown key in the file, with its line")
  {
    temp_file file{"[backend]\nrole = \"orders\"\nlatnecy_ms = 10\n"};
    coronet::config::sources from{app_defaults, file.path.string(), {}, no_env};
    CHECK(error_of(from) == file.path.string() + ":3: unknown key 'backend.latnecy_ms'");
  }
  SUBCASE("wrong type in the file")
  {
    temp_file file{"[backend]\nlatency_ms = \"fast\"\n"};
    coronet::config::sources from{app_defaults, file.path.string(), {}, no_env};
    CHECK(error_of(from) == file.path.string() + ":2: key 'backend.latency_ms' must be an integer, got string");
  }
  SUBCASE("TOML syntax error")
  {
    temp_file file{"[backend\nrole = 1\n"};
    coronet::config::sources from{app_defaults, file.path.string(), {}, no_env};
    CHECK(error_of(from).rfind(file.path.string() + ":1: ", 0) == 0);
  }
  SUBCASE("missing file")
  {
    coronet::config::sources from{app_defaults, "/nonexistent/coronet.toml", {}, no_env};
    CHECK(error_of(from) == "/nonexistent/coronet.toml: cannot read config file");
  }
  SUBCASE("bad environment value")
  {
    const char* env[] = {"CORONET_RUNTIME_THREADS=many", nullptr};
    coronet::config::sources from{app_defaults, {}, {}, env};
    CHECK(error_of(from) == "environment CORONET_RUNTIME_THREADS: key 'runtime.threads' must be an integer, got 'many'");
  }
  SUBCASE("unknown --set key")
  {
    coronet::config::sources from{app_defaults, {}, {"backend.colour=red"}, no_env};
    CHECK(error_of(from) == "--set backend.colour: unknown key 'backend.colour'");
  }
  SUBCASE("malformed --set")
  {
    coronet::config::sources from{app_defaults, {}, {"backend.role"}, no_env};
    CHECK(error_of(from) == "--set backend.role: expected section.key=value");
  }
  SUBCASE("a bad value is reported with its origin")
  {
    coronet::config::sources from{app_defaults, {}, {"backend.latency_ms=-5"}, no_env};
    auto cfg = coronet::config::load("backend", from);
    CHECK_THROWS_WITH_AS(cfg.fail("backend.latency_ms", "must not be negative"),
      "--set backend.latency_ms: key 'backend.latency_ms' must not be negative", coronet::config_error);
  }
}

TEST_CASE("config dump shows every key with its origin")
{
  coronet::config::sources from{app_defaults, {}, {"backend.role=orders"}, no_env};
  auto text = coronet::config::load("backend", from).dump();
  CHECK(text.find("[backend]\n") != std::string::npos);
  CHECK(text.find("role = \"orders\"   # --set backend.role") != std::string::npos);
  CHECK(text.find("threads = 0   # default") != std::string::npos);
}
