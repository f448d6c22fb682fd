#pragma once
// Header fields in arrival order, looked up case-insensitively.
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::http {

bool iequals(std::string_view a, std::string_view b) noexcept;

// The items of a comma-separated field value, blanks trimmed and empty ones
// dropped: "a, b,,c" -> a b c.
std::vector<std::string_view> list_items(std::string_view value);
// `v` without the spaces and tabs around it.
std::string_view trim_blanks(std::string_view v) noexcept;

class headers final {
public:
  using field = std::pair<std::string, std::string>;

  headers() = default;
  // headers{{"Accept", "application/json"}, {"X-Request-Id", id}}
  headers(std::initializer_list<field> fields) : fields_(fields) {}

  // The first value of `name`, if any.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  bool contains(std::string_view name) const noexcept { return get(name).has_value(); }
  std::size_t count(std::string_view name) const noexcept;

  void add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }
  // Replaces every value of `name` by one.
  void set(std::string_view name, std::string value);
  void remove(std::string_view name);

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  auto begin() const noexcept { return fields_.begin(); }
  auto end() const noexcept { return fields_.end(); }
  void clear() noexcept { fields_.clear(); }

private:
  std::vector<field> fields_;
};

} // namespace coronet::http
