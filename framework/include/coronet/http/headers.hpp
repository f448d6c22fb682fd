#pragma once
// Header fields in arrival order, looked up case-insensitively.
#include <coronet/detail/memory.hpp>
#include <coronet/text.hpp>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace coronet::http {

using coronet::iequals;    // header names and tokens
using coronet::list_items; // a comma-separated field value
using coronet::trim_blanks;

// Field storage is recycled per thread (coronet/detail/memory.hpp): the
// vector and the values longer than a short string's inline room go back
// to the worker's memory when a headers object is cleared or destroyed, and
// the next one built on that thread takes them, so a keep-alive request's
// headers cost no allocation.
class headers final {
public:
  using field = std::pair<std::string, std::string>;

  headers() = default;
  // headers{{"Accept", "application/json"}, {"X-Request-Id", id}}
  headers(std::initializer_list<field> fields) : fields_(fields) {}
  headers(const headers&) = default;
  headers(headers&& o) noexcept : fields_(std::move(o.fields_)) {}
  headers& operator=(const headers&) = default;
  headers& operator=(headers&& o) noexcept
  {
    if (this != &o) {
      recycle();
      fields_ = std::move(o.fields_);
    }
    return *this;
  }
  ~headers() { recycle(); }

  // The first value of `name`, if any.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  bool contains(std::string_view name) const noexcept { return get(name).has_value(); }
  std::size_t count(std::string_view name) const noexcept;

  // Strings given by value are moved in; anything else a string_view can
  // be made of is copied into recycled storage.
  void add(std::string name, std::string value);
  template <class Name, class Value>
    requires std::is_convertible_v<const Name&, std::string_view> &&
             std::is_convertible_v<const Value&, std::string_view> &&
             (!std::is_same_v<Name, std::string> || !std::is_same_v<Value, std::string>)
  void add(const Name& name, const Value& value)
  {
    add_copy(std::string_view(name), std::string_view(value));
  }
  // Replaces every value of `name` by one.
  void set(std::string_view name, std::string value);
  void set(std::string_view name, const char* value) { set_copy(name, value); }
  void set(std::string_view name, std::string_view value) { set_copy(name, value); }
  void remove(std::string_view name);

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  auto begin() const noexcept { return fields_.begin(); }
  auto end() const noexcept { return fields_.end(); }
  // Empties the fields, keeping the vector's room; values go to the pool.
  void clear() noexcept;

private:
  void add_copy(std::string_view name, std::string_view value);
  void set_copy(std::string_view name, std::string_view value);
  void recycle() noexcept;

  std::vector<field> fields_;
};

} // namespace coronet::http
