#include <coronet/log.hpp>

#include <coronet/config.hpp>

#include <spdlog/spdlog.h>

#include <array>
#include <stdexcept>
#include <string>

namespace coronet {

void set_log_level(std::string_view level)
{
  static constexpr std::array<std::string_view, 7> names{
    "trace", "debug", "info", "warn", "error", "critical", "off"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == level) {
      spdlog::set_level(static_cast<spdlog::level::level_enum>(i));
      return;
    }
  }
  throw std::invalid_argument("unknown log level '" + std::string(level) +
    "' (expected trace, debug, info, warn, error, critical or off)");
}

void setup_logging(const config& cfg)
{
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  try {
    set_log_level(cfg.get_string("log.level"));
  } catch (const std::invalid_argument& e) {
    cfg.fail("log.level", e.what());
  }
}

} // namespace coronet
