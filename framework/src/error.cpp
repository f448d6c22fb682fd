#include <coronet/error.hpp>

#include <string>

namespace coronet {
namespace {

class category final : public std::error_category {
public:
  const char* name() const noexcept override { return "coronet"; }

  std::string message(int value) const override
  {
    switch (static_cast<errc>(value)) {
    case errc::channel_closed: return "send on a closed channel";
    case errc::timed_out: return "operation timed out";
    }
    return "unknown coronet error";
  }

  std::error_condition default_error_condition(int value) const noexcept override
  {
    if (static_cast<errc>(value) == errc::timed_out)
      return std::errc::timed_out;
    return {value, *this};
  }
};

} // namespace

const std::error_category& error_category() noexcept
{
  static const category instance;
  return instance;
}

} // namespace coronet
