#include <coronet/app/app.hpp>

#include <coronet/client/client.hpp>
#include <coronet/grpc/server.hpp>
#include <coronet/http/server_options.hpp>
#include <coronet/log.hpp>
#include <coronet/middleware/compress.hpp>
#include <coronet/middleware/cors.hpp>
#include <coronet/net/tls.hpp>
#include <coronet/runtime.hpp>
#include <coronet/websocket/websocket.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>

namespace coronet {

std::vector<std::span<const config_key>> framework_keys()
{
  return {runtime_keys, log_keys, http::server_keys, net::tls_keys, http::client_keys, net::tls_client_keys,
    http::compress_keys, http::cors_keys, http::ws_keys, grpc::grpc_keys};
}

namespace {

// --help's list of keys: the last declaration of each wins, as in load().
std::string key_list(const std::vector<std::span<const config_key>>& tables)
{
  std::map<std::string_view, const config_key*> keys;
  for (auto table : tables)
    for (auto& k : table)
      keys[k.name] = &k;
  std::string out = "\nKeys (a TOML file's [section] key, CORONET_SECTION_KEY, or --set section.key=value):\n";
  for (auto& [name, k] : keys)
    out += fmt::format("  {} = {}\n      {}\n", name, k->default_text(), k->help);
  return out;
}

// The command line, parsed; exits at once for --help, --version and a bad flag.
struct command_line {
  config::sources from;
  bool print_config = false, print_keys = false;

  command_line(int argc, char** argv, std::string_view app, const std::vector<config::flag>& flags,
    config::sources with_keys)
    : from(std::move(with_keys))
  {
    CLI::App cli{fmt::format("coronet-{}", app)};
    cli.set_version_flag("--version", "coronet 0.1.0");
    cli.footer(key_list(from.keys));
    std::string file, listen, log_level;
    std::optional<std::int64_t> threads;
    cli.add_option("-c,--config", file, "TOML config file")->check(CLI::ExistingFile);
    cli.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port)");
    cli.add_option("--threads", threads, "worker threads (0: one per hardware thread)");
    cli.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off");
    cli.add_option("--set", from.sets, "section.key=value, overrides any key (repeatable)");
    cli.add_flag("--print-config", print_config, "print the effective configuration, with where each value came from");
    cli.add_flag("--print-keys", print_keys, "print every key with its default, bounds and help (Markdown)");
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
    if (!listen.empty())
      add("--listen", "server.listen", listen);
    if (threads)
      add("--threads", "runtime.threads", std::to_string(*threads));
    if (!log_level.empty())
      add("--log-level", "log.level", log_level);
    for (std::size_t i = 0; i < flags.size(); ++i)
      if (!extra[i].empty())
        add("--" + flags[i].name, flags[i].key, extra[i]);
  }

  void add(const std::string& flag, const std::string& key, const std::string& value)
  {
    from.sets.push_back(key + "=" + value);
    from.set_origins.push_back(flag);
  }
};

} // namespace

config load_config(int argc, char** argv, std::string_view app, std::span<const config_key> app_keys,
  const std::vector<config::flag>& flags)
{
  auto keys = framework_keys();
  keys.push_back(app_keys);
  config::sources with_keys;
  with_keys.keys = keys;
  command_line line{argc, argv, app, flags, std::move(with_keys)};
  try {
    if (line.print_keys) {
      config::sources defaults_only;
      defaults_only.keys = keys;
      const char* const no_environment[] = {nullptr};
      defaults_only.environment = no_environment;
      std::cout << config::load(app, defaults_only).describe();
      std::exit(0);
    }
    auto cfg = config::load(app, line.from);
    setup_logging(cfg);
    if (line.print_config) {
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
