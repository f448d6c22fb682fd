#include <coronet/pg/error.hpp>

#include <fmt/format.h>

namespace coronet::pg {

std::string_view to_string(errc kind) noexcept
{
  switch (kind) {
  case errc::unavailable: return "unavailable";
  case errc::timeout: return "timeout";
  case errc::constraint: return "constraint";
  case errc::serialization: return "serialization";
  case errc::bad_query: return "bad_query";
  case errc::connection: return "connection";
  }
  return "unknown";
}

int http_status(errc kind) noexcept
{
  switch (kind) {
  case errc::unavailable:
  case errc::connection: return 503;
  case errc::timeout: return 504;
  case errc::constraint:
  case errc::serialization: return 409;
  case errc::bad_query: return 500;
  }
  return 500;
}

std::string error::client_message() const
{
  switch (kind_) {
  case errc::unavailable:
  case errc::connection: return "the database is out of reach";
  case errc::timeout: return "the database did not answer in time";
  case errc::constraint:
    return constraint_.empty() ? "a constraint refused it" : "a constraint refused it (" + constraint_ + ")";
  case errc::serialization: return "it conflicted with another transaction; try again";
  case errc::bad_query: break;
  }
  return "the database refused the query";
}

errc kind_of(std::string_view sqlstate) noexcept
{
  auto cls = sqlstate.substr(0, 2);
  if (cls == "23")
    return errc::constraint;
  if (sqlstate == "40001" || sqlstate == "40P01")
    return errc::serialization;
  if (sqlstate == "57014")
    return errc::timeout;
  // Connection exceptions, insufficient resources (too many connections),
  // operator intervention (shutdown, crash, cannot connect now).
  if (cls == "08" || cls == "53" || sqlstate.starts_with("57P"))
    return errc::unavailable;
  return errc::bad_query;
}

std::exception_ptr at_position(std::exception_ptr why, std::size_t index, std::size_t count)
{
  if (count < 2)
    return why;
  try {
    std::rethrow_exception(why);
  } catch (const error& e) {
    if (e.sqlstate().empty())
      return why;
    return std::make_exception_ptr(error(e.kind(), fmt::format("statement {} of {}: {}", index + 1, count, e.what()),
      e.sqlstate(), e.constraint()));
  } catch (...) {
  }
  return why;
}

} // namespace coronet::pg
