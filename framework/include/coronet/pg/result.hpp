#pragma once
// What a statement returned: rows of text columns, read as C++ types.
//
//   pg::result r = co_await db.execute("select id, name from users where id = $1", 5);
//   for (pg::row row : r)
//     fmt::print("{} {}\n", row.get<int>(0), row.get<std::optional<std::string>>("name"));
//   r.affected();                                 // rows an insert/update/delete touched
//
// A row reads as a whole (row.as<T>(), db.query<T>) into:
//   - a type with `static T from_row(const pg::row&)`;
//   - a column type (int, std::string, ...; see value.hpp), from a one-column row;
//   - std::tuple<...>, column by column;
//   - an aggregate (struct user { int id; std::string name; }), its fields
//     in the order of the columns (up to 16 fields).
// The number of columns must match; a NULL reads only into std::optional.
#include <coronet/pg/error.hpp>
#include <coronet/pg/value.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

struct pg_result; // libpq's PGresult

namespace coronet::pg {

class row;

class result final {
public:
  result() = default;
  explicit result(pg_result* r) noexcept; // takes it
  result(result&&) noexcept = default;
  result& operator=(result&&) noexcept = default;

  std::size_t size() const noexcept;
  bool empty() const noexcept { return size() == 0; }
  int columns() const noexcept;
  std::string_view column_name(int column) const noexcept;
  // The column named `name`, or -1.
  int column_index(std::string_view name) const noexcept;
  // Rows an INSERT, UPDATE, DELETE, MERGE, SELECT or COPY touched.
  std::uint64_t affected() const noexcept;

  row operator[](std::size_t index) const noexcept;
  class iterator;
  iterator begin() const noexcept;
  iterator end() const noexcept;

  // Every row as T.
  template <class T>
  std::vector<T> as() const;

  pg_result* native() const noexcept { return res_.get(); }

private:
  struct clear {
    void operator()(pg_result* r) const noexcept;
  };
  std::unique_ptr<pg_result, clear> res_;
};

class row final {
public:
  row(const result& r, std::size_t index) noexcept : result_(&r), index_(static_cast<int>(index)) {}

  int size() const noexcept { return result_->columns(); }
  bool is_null(int column) const;
  // The column's text; nullopt for NULL. Valid while the result lives.
  std::optional<std::string_view> text(int column) const;

  template <class T>
  T get(int column) const
  {
    if constexpr (is_optional<T>) {
      auto t = text(column);
      if (!t)
        return std::nullopt;
      return T{decoder<typename T::value_type>::decode(*t, result_->column_name(column))};
    } else {
      auto t = text(column);
      if (!t)
        null_into_non_optional(column);
      return decoder<T>::decode(*t, result_->column_name(column)); // (no string made unless it fails)
    }
  }
  template <class T>
  T get(std::string_view column_name) const
  {
    return get<T>(named(column_name));
  }

  template <class T>
  T as() const;

private:
  std::string describe(int column) const;
  int named(std::string_view column_name) const;
  [[noreturn]] void null_into_non_optional(int column) const;
  void expect_columns(int n, std::string_view type) const;
  template <class T, std::size_t... I>
  T tuple_of(std::index_sequence<I...>) const
  {
    return T{get<std::tuple_element_t<I, T>>(static_cast<int>(I))...};
  }

  const result* result_;
  int index_;
};

class result::iterator {
public:
  using value_type = row;
  using difference_type = std::ptrdiff_t;
  iterator() = default;
  iterator(const result* r, std::size_t i) : r_(r), i_(i) {}
  row operator*() const noexcept { return row(*r_, i_); }
  iterator& operator++() noexcept { return ++i_, *this; }
  iterator operator++(int) noexcept { auto old = *this; ++i_; return old; }
  bool operator==(const iterator& o) const noexcept { return i_ == o.i_; }

private:
  const result* r_ = nullptr;
  std::size_t i_ = 0;
};

namespace detail {

// Converts to any field (as a reference, so that no field's own converting
// constructors compete): used only unevaluated, to count an aggregate's fields.
struct any_field {
  template <class T>
  operator T&() const&&;
};

template <class T, std::size_t... I>
constexpr bool braces_take(std::index_sequence<I...>)
{
  return requires { T{(void(I), std::declval<any_field>())...}; };
}

template <class T, std::size_t N = 0>
constexpr std::size_t field_count()
{
  if constexpr (N > 16 || !braces_take<T>(std::make_index_sequence<N + 1>{}))
    return N;
  else
    return field_count<T, N + 1>();
}

template <class T>
inline constexpr bool is_tuple = false;
template <class... A>
inline constexpr bool is_tuple<std::tuple<A...>> = true;
template <class A, class B>
inline constexpr bool is_tuple<std::pair<A, B>> = true;

template <class T>
concept from_row_type = requires(const row& r) {
  { T::from_row(r) } -> std::convertible_to<T>;
};

// Fills the aggregate's fields from the row's columns, in order.
template <class T>
void fill_fields(T& t, const row& r);

} // namespace detail

template <class T>
T row::as() const
{
  if constexpr (detail::from_row_type<T>) {
    return T::from_row(*this);
  } else if constexpr (column_type<T> || is_optional<T>) {
    expect_columns(1, "a single value");
    return get<T>(0);
  } else if constexpr (detail::is_tuple<T>) {
    expect_columns(static_cast<int>(std::tuple_size_v<T>), "a tuple");
    return tuple_of<T>(std::make_index_sequence<std::tuple_size_v<T>>{});
  } else {
    static_assert(std::is_aggregate_v<T> && std::is_default_constructible_v<T>,
      "a row reads into a column type, a tuple, an aggregate, or a type with static T from_row(const pg::row&)");
    expect_columns(static_cast<int>(detail::field_count<T>()), "the struct");
    T t{};
    detail::fill_fields(t, *this);
    return t;
  }
}

template <class T>
std::vector<T> result::as() const
{
  std::vector<T> out;
  out.reserve(size());
  for (row r : *this)
    out.push_back(r.as<T>());
  return out;
}

namespace detail {

template <class T>
void fill_fields(T& t, const row& r)
{
  constexpr auto n = field_count<T>();
  auto set = [&](auto&... f) {
    int i = 0;
    ((f = r.get<std::remove_cvref_t<decltype(f)>>(i++)), ...);
  };
  // clang-format off
  if constexpr (n == 1) { auto& [a] = t; set(a); }
  else if constexpr (n == 2) { auto& [a, b] = t; set(a, b); }
  else if constexpr (n == 3) { auto& [a, b, c] = t; set(a, b, c); }
  else if constexpr (n == 4) { auto& [a, b, c, d] = t; set(a, b, c, d); }
  else if constexpr (n == 5) { auto& [a, b, c, d, e] = t; set(a, b, c, d, e); }
  else if constexpr (n == 6) { auto& [a, b, c, d, e, f] = t; set(a, b, c, d, e, f); }
  else if constexpr (n == 7) { auto& [a, b, c, d, e, f, g] = t; set(a, b, c, d, e, f, g); }
  else if constexpr (n == 8) { auto& [a, b, c, d, e, f, g, h] = t; set(a, b, c, d, e, f, g, h); }
  else if constexpr (n == 9) { auto& [a, b, c, d, e, f, g, h, i] = t; set(a, b, c, d, e, f, g, h, i); }
  else if constexpr (n == 10) { auto& [a, b, c, d, e, f, g, h, i, j] = t; set(a, b, c, d, e, f, g, h, i, j); }
  else if constexpr (n == 11) { auto& [a, b, c, d, e, f, g, h, i, j, k] = t; set(a, b, c, d, e, f, g, h, i, j, k); }
  else if constexpr (n == 12) { auto& [a, b, c, d, e, f, g, h, i, j, k, l] = t; set(a, b, c, d, e, f, g, h, i, j, k, l); }
  else if constexpr (n == 13) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m] = t; set(a, b, c, d, e, f, g, h, i, j, k, l, m); }
  else if constexpr (n == 14) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o] = t; set(a, b, c, d, e, f, g, h, i, j, k, l, m, o); }
  else if constexpr (n == 15) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p] = t; set(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p); }
  else if constexpr (n == 16) { auto& [a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q] = t; set(a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q); }
  else static_assert(n >= 1 && n <= 16, "an aggregate row type has 1 to 16 fields");
  // clang-format on
}

} // namespace detail

} // namespace coronet::pg
