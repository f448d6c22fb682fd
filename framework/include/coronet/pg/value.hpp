#pragma once
// C++ values to PostgreSQL parameters and back, in PostgreSQL's text format
// (bytea parameters travel as binary: no escaping).
//
//   bool, integers, float, double        boolean, smallint .. bigint, real, double precision, numeric
//   std::string, std::string_view, const char*   text, varchar, numeric (exact), json, uuid, ...
//   pg::bytea                            bytea
//   pg::timestamp                        timestamptz (UTC, microseconds); a timestamp reads as UTC
//   std::optional<T>, std::nullopt       NULL
//   std::vector<T>                       one-dimensional arrays (T[]), NULL elements as optional
//
// Every session runs with DateStyle ISO and TimeZone UTC, so the text of a
// timestamp has one form. A text parameter cannot hold a NUL byte (the
// server's text cannot): it throws pg::error (bad_query) before anything is
// sent; use pg::bytea for bytes.
#include <coronet/pg/error.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace coronet::pg {

struct bytea {
  std::string bytes;
  bool operator==(const bytea&) const = default;
};
using timestamp = std::chrono::sys_time<std::chrono::microseconds>;

// One parameter as libpq takes it.
struct param {
  std::string value;
  bool null = false;
  bool binary = false;
};

param to_param(std::nullopt_t);
param to_param(bool v);
param to_param(std::int64_t v);
param to_param(std::uint64_t v);
param to_param(double v);
param to_param(std::string_view v);
param to_param(const bytea& v);
param to_param(timestamp v);
inline param to_param(const char* v) { return to_param(std::string_view(v)); }
inline param to_param(const std::string& v) { return to_param(std::string_view(v)); }
template <std::signed_integral T>
  requires(!std::same_as<T, std::int64_t>)
param to_param(T v)
{
  return to_param(static_cast<std::int64_t>(v));
}
template <std::unsigned_integral T>
  requires(!std::same_as<T, std::uint64_t> && !std::same_as<T, bool>)
param to_param(T v)
{
  return to_param(static_cast<std::uint64_t>(v));
}
inline param to_param(float v) { return to_param(static_cast<double>(v)); }
template <class T>
param to_param(const std::optional<T>& v)
{
  return v ? to_param(*v) : to_param(std::nullopt);
}

namespace detail {
// An element of an array literal: quoted, with " and \ escaped.
void append_array_element(std::string& out, const param& p);
} // namespace detail

template <class T>
param to_param(const std::vector<T>& v)
{
  param p;
  p.value += '{'; // (not = "{": GCC 12 warns of an overlap that is not there, -Wrestrict)
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i)
      p.value += ',';
    detail::append_array_element(p.value, to_param(v[i]));
  }
  p.value += '}';
  return p;
}

// Reading a column's text as T; `what` names the column in the error when
// the text is not a T ("column 2 (\"price\")").
template <class T>
struct decoder;

namespace detail {
[[noreturn]] void bad_value(std::string_view text, std::string_view type, std::string_view what);
bool decode_bool(std::string_view text, std::string_view what);
std::int64_t decode_int(std::string_view text, std::int64_t min, std::int64_t max, std::string_view what);
std::uint64_t decode_uint(std::string_view text, std::uint64_t max, std::string_view what);
double decode_double(std::string_view text, std::string_view what);
bytea decode_bytea(std::string_view text, std::string_view what);
timestamp decode_timestamp(std::string_view text, std::string_view what);
// The elements of a one-dimensional array literal, nullopt for NULL.
std::vector<std::optional<std::string>> split_array(std::string_view text, std::string_view what);
} // namespace detail

template <>
struct decoder<bool> {
  static bool decode(std::string_view t, std::string_view what) { return detail::decode_bool(t, what); }
};
template <std::integral T>
  requires(!std::same_as<T, bool>)
struct decoder<T> {
  static T decode(std::string_view t, std::string_view what)
  {
    if constexpr (std::is_signed_v<T>)
      return static_cast<T>(detail::decode_int(t, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), what));
    else
      return static_cast<T>(detail::decode_uint(t, std::numeric_limits<T>::max(), what));
  }
};
template <std::floating_point T>
struct decoder<T> {
  static T decode(std::string_view t, std::string_view what) { return static_cast<T>(detail::decode_double(t, what)); }
};
template <>
struct decoder<std::string> {
  static std::string decode(std::string_view t, std::string_view) { return std::string(t); }
};
// Valid while the result it came from lives.
template <>
struct decoder<std::string_view> {
  static std::string_view decode(std::string_view t, std::string_view) { return t; }
};
template <>
struct decoder<bytea> {
  static bytea decode(std::string_view t, std::string_view what) { return detail::decode_bytea(t, what); }
};
template <>
struct decoder<timestamp> {
  static timestamp decode(std::string_view t, std::string_view what) { return detail::decode_timestamp(t, what); }
};
template <class T>
inline constexpr bool is_optional = false;
template <class T>
inline constexpr bool is_optional<std::optional<T>> = true;

template <class T>
struct decoder<std::vector<T>> {
  static std::vector<T> decode(std::string_view t, std::string_view what)
  {
    std::vector<T> out;
    for (auto& element : detail::split_array(t, what)) {
      if constexpr (is_optional<T>) {
        out.push_back(element ? T{decoder<typename T::value_type>::decode(*element, what)} : T{std::nullopt});
      } else {
        if (!element)
          throw error(errc::bad_query, std::string(what) + ": the array holds a NULL; read it as std::vector<std::optional<T>>");
        out.push_back(decoder<T>::decode(*element, what));
      }
    }
    return out;
  }
};

// Whether a column can be read as T (optional<T> when T can).
template <class T>
concept column_type = requires(std::string_view t) {
  { decoder<T>::decode(t, t) } -> std::convertible_to<T>;
};

} // namespace coronet::pg
