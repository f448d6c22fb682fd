#pragma once
// What every coronet app shares: its command line and its configuration.
//
//   inline constexpr coronet::config_key hello_keys[] = {
//     {"server.listen", "127.0.0.1:8080", "HOST:PORT to listen on"},  // the app's own default
//     {"hello.greeting", "world", "who to greet"},
//   };
//   int main(int argc, char** argv)
//   {
//     auto cfg = coronet::load_config(argc, argv, "hello", hello_keys);
//     coronet::runtime rt{cfg};
//     ...
//
// The flags: --config FILE, --listen HOST:PORT, --threads N, --log-level
// LEVEL, --set section.key=value (any key, repeatable), --print-config (the
// effective configuration, each value with where it came from: default,
// FILE:LINE, environment CORONET_SECTION_KEY or the flag), --print-keys
// (every key with its default, bounds and help, as a Markdown table) and
// --help (the flags, then every key). A bad flag or config prints a message
// naming the file and line, the variable or the flag, and exits 2.
#include <coronet/config.hpp>

#include <span>
#include <string_view>
#include <vector>

namespace coronet {

// The framework's keys: [runtime], [log], server.listen, [http], [http2],
// [tls], [client], [compress], [cors], [ws]. Each table lives beside the
// options it fills (runtime.hpp, log.hpp, http/server_options.hpp, ...).
std::vector<std::span<const config_key>> framework_keys();

// `app_keys`: the app's own keys; one that names a framework key gives the
// app's default for it. `flags`: the app's own flags, each setting a key.
config load_config(int argc, char** argv, std::string_view app, std::span<const config_key> app_keys = {},
  const std::vector<config::flag>& flags = {});

} // namespace coronet
