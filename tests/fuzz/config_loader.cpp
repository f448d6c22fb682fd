// libFuzzer target for the config loader: a TOML file, --set flags and
// environment variables, all made of the input (split at NUL bytes: file,
// then flags one per line, then variables one per line), over the backend's
// and the common schema. Must never crash or hang; anything it refuses is a
// config_error with a message naming where the bad value came from; what it
// accepts reads back with the schema's types.
#include <coronet/config.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace {

constexpr const char* schema = R"(
[backend]
role = "users"
latency_ms = 0
error_rate = 0.0
verbose = false
replicas = ""
)";

std::vector<std::string> lines(std::string_view text)
{
  std::vector<std::string> out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    out.emplace_back(text.substr(0, nl));
    if (nl == std::string_view::npos)
      break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto first = in.find('\0');
  auto file_text = in.substr(0, first);
  std::string_view rest = first == std::string_view::npos ? std::string_view{} : in.substr(first + 1);
  auto second = rest.find('\0');
  auto flags = rest.substr(0, second);
  std::string_view env_text = second == std::string_view::npos ? std::string_view{} : rest.substr(second + 1);

  static const std::string path = "/tmp/coronet-fuzz-config-" + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream f{path, std::ios::binary | std::ios::trunc};
    f.write(file_text.data(), static_cast<std::streamsize>(file_text.size()));
  }
  coronet::config::sources from;
  from.app_defaults = schema;
  from.file = path;
  from.sets = lines(flags);
  auto env = lines(env_text);
  std::vector<const char*> envp;
  for (auto& e : env)
    envp.push_back(e.c_str());
  envp.push_back(nullptr);
  from.environment = envp.data();
  try {
    auto cfg = coronet::config::load("backend", from);
    (void)cfg.get_string("backend.role");
    (void)cfg.get_int("backend.latency_ms");
    (void)cfg.get_double("backend.error_rate");
    (void)cfg.get_bool("backend.verbose");
    (void)cfg.get_list("backend.replicas");
    (void)cfg.origin("backend.role");
  } catch (const coronet::config_error& e) {
    if (std::string_view(e.what()).empty())
      std::abort();
  }
  return 0;
}
