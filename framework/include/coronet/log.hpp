#pragma once
// Logging goes through spdlog's default logger; coronet only configures it.
#include <coronet/config.hpp>

#include <string_view>

namespace coronet {

inline constexpr config_key log_keys[] = {
  {"log.level", "info", "trace, debug, info, warn, error, critical, off"},
  {"log.access", false, "HTTP apps: one access log line per request on stdout"},
};

// Applies log.level (trace, debug, info, warn, error, critical, off); a bad
// level is a config_error naming where it was set.
void setup_logging(const config& cfg);

// The same from a level name; throws std::invalid_argument on a bad one.
void set_log_level(std::string_view level);

} // namespace coronet
