#include <coronet/http/json.hpp>

#include <fmt/format.h>

namespace coronet::http {

namespace {

// application/json, or a structured +json type (application/problem+json),
// whatever its parameters.
bool json_media_type(std::string_view type)
{
  type = type.substr(0, type.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
    type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t'))
    type.remove_prefix(1);
  return iequals(type, "application/json") ||
         (type.size() > 5 && iequals(type.substr(type.size() - 5), "+json"));
}

// nlohmann's message without its "[json.exception...]" tag, its position
// (said apart) or the bytes it last read (the client's own).
std::string reason_of(const nlohmann::json::exception& e)
{
  std::string_view what = e.what();
  if (auto tag = what.find("] "); tag != std::string_view::npos)
    what.remove_prefix(tag + 2);
  if (auto at = what.find(": "); what.substr(0, 11) == "parse error" && at != std::string_view::npos)
    what.remove_prefix(at + 2);
  if (auto last = what.find("; last read"); last != std::string_view::npos)
    what = what.substr(0, last);
  return std::string(what);
}

const char* kind_of(const nlohmann::json& v)
{
  switch (v.type()) {
  case nlohmann::json::value_t::null: return "null";
  case nlohmann::json::value_t::object: return "an object";
  case nlohmann::json::value_t::array: return "an array";
  case nlohmann::json::value_t::string: return "a string";
  case nlohmann::json::value_t::boolean: return "a boolean";
  case nlohmann::json::value_t::number_integer:
  case nlohmann::json::value_t::number_unsigned: return "an integer";
  case nlohmann::json::value_t::number_float: return "a number";
  default: return "something else";
  }
}

} // namespace

nlohmann::json json_body(const request& req)
{
  auto type = req.header("Content-Type");
  if (!type || !json_media_type(*type))
    throw error{status::unsupported_media_type,
      fmt::format("Content-Type must be application/json, not {}", type ? std::string(*type) : "none")};
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos)
    throw error{status::bad_request, "empty body, JSON expected"};
  try {
    return nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::parse_error& e) {
    throw error{status::bad_request, fmt::format("malformed JSON at byte {}: {}", e.byte, reason_of(e))};
  } catch (const nlohmann::json::exception& e) { // 1e999999: "number overflow" (out_of_range), found by fuzzing
    throw error{status::bad_request, fmt::format("unusable JSON: {}", reason_of(e))};
  }
}

nlohmann::json request::json() const
{
  return json_body(*this);
}

namespace detail {

void json_field_error(std::string_view name, const nlohmann::json& value, const char* expected)
{
  if (std::string_view{expected} == "an integer" && value.is_number_integer())
    throw error{status::bad_request, fmt::format("\"{}\" is out of range", name)};
  throw error{status::bad_request, fmt::format("\"{}\" must be {}, not {}", name, expected, kind_of(value))};
}

void json_shape_error(const nlohmann::json::exception& e)
{
  // "key 'name' not found" from a plain at("name")
  std::string reason = reason_of(e);
  if (auto key = reason.find("key '"); key != std::string::npos && reason.ends_with("' not found"))
    throw error{status::bad_request,
      fmt::format("missing field \"{}\"", reason.substr(key + 5, reason.size() - key - 5 - 11))};
  throw error{status::bad_request, "JSON of the wrong shape: " + reason};
}

} // namespace detail

} // namespace coronet::http
