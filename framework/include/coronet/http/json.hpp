#pragma once
// JSON in and out, with nlohmann-json:
//
//   struct new_user { std::string name; int age; };
//   void from_json(const nlohmann::json& j, new_user& u)
//   {
//     u.name = http::field<std::string>(j, "name");   // 400 'missing field "name"'
//     u.age = http::field<int>(j, "age");             // 400 '"age" must be an integer'
//   }
//
//   router.post("/users", [](http::request& req) -> task<http::response> {
//     auto u = http::json_body<new_user>(req);        // 415 / 400 before the handler goes on
//     co_return http::json_response(http::status::created, {{"name", u.name}, {"age", u.age}});
//   });
//
// A body that is not JSON is answered by the server: 415 when the
// Content-Type is not application/json (or a +json type), 400 naming the
// problem ("malformed JSON at byte 17: ...", "empty body, JSON expected",
// 'missing field "name"', '"age" must be an integer'). The body's size was
// already bounded by http.max_body_bytes (413) before any of it is parsed.
#include <coronet/http/error.hpp>
#include <coronet/http/request.hpp>
#include <coronet/http/response.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace coronet::http {

// The request body parsed (also req.json()); throws http::error 415 or 400.
nlohmann::json json_body(const request& req);

namespace detail {
[[noreturn]] void json_field_error(std::string_view name, const nlohmann::json& value, const char* expected);
[[noreturn]] void json_shape_error(const nlohmann::json::exception& e);

template <class T>
const char* json_kind() noexcept
{
  if constexpr (std::is_same_v<T, bool>)
    return "true or false";
  else if constexpr (std::is_integral_v<T>)
    return "an integer";
  else if constexpr (std::is_floating_point_v<T>)
    return "a number";
  else if constexpr (std::is_convertible_v<T, std::string_view>)
    return "a string";
  else
    return "of another type";
}

template <class T>
bool json_is(const nlohmann::json& v) noexcept
{
  if constexpr (std::is_same_v<T, bool>)
    return v.is_boolean();
  else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned())
      return std::in_range<T>(v.template get<std::uint64_t>());
    return v.is_number_integer() && std::in_range<T>(v.template get<std::int64_t>());
  }
  else if constexpr (std::is_floating_point_v<T>)
    return v.is_number();
  else if constexpr (std::is_convertible_v<T, std::string_view>)
    return v.is_string();
  else
    return true; // its own from_json says
}
} // namespace detail

// The member `name` of the object `j` as a T: http::error 400 'missing
// field "name"' when absent, '"name" must be an integer' (a number, a
// string...) when of another type or out of T's range.
template <class T>
T field(const nlohmann::json& j, std::string_view name)
{
  if (!j.is_object())
    throw error{status::bad_request, "a JSON object expected"};
  auto it = j.find(name);
  if (it == j.end())
    throw error{status::bad_request, "missing field \"" + std::string(name) + "\""};
  if (!detail::json_is<T>(*it))
    detail::json_field_error(name, *it, detail::json_kind<T>());
  try {
    return it->template get<T>();
  } catch (const nlohmann::json::exception&) {
    detail::json_field_error(name, *it, detail::json_kind<T>());
  }
}

// The same for a member that may be absent (or null).
template <class T>
std::optional<T> optional_field(const nlohmann::json& j, std::string_view name)
{
  if (!j.is_object())
    throw error{status::bad_request, "a JSON object expected"};
  auto it = j.find(name);
  if (it == j.end() || it->is_null())
    return std::nullopt;
  return field<T>(j, name);
}

// The request body as a T (through its from_json): 415 or 400 as above;
// nlohmann's own errors from a plain get<>() become 400 too.
template <class T>
T json_body(const request& req)
{
  auto j = json_body(req);
  try {
    return j.template get<T>();
  } catch (const error&) {
    throw;
  } catch (const nlohmann::json::exception& e) {
    detail::json_shape_error(e);
  }
}

// `value` serialised as the body, Content-Type: application/json.
inline response json_response(status s, const nlohmann::json& value)
{
  return response::json(s, value.dump());
}

} // namespace coronet::http
