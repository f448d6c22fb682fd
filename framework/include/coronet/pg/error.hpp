#pragma once
// What a PostgreSQL call can fail with: a few kinds a handler can act on,
// from the server's SQLSTATE or from what happened to the connection.
//
//   try {
//     co_await db.execute("insert into orders (user_id, item) values ($1, $2)", user, item);
//   } catch (const pg::error& e) {
//     if (e.kind() == pg::errc::constraint)   // e.constraint(): "orders_user_id_fkey"
//       throw http::error(http::status::conflict, "no such user");
//     throw;                                  // answered http_status(e.kind()): 503, 504, 500
//   }
//
// A pg::error a handler lets through is a coronet::status_error: the server
// answers it with http_status(kind()) and a message that names no SQL.
#include <coronet/error.hpp>

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace coronet::pg {

enum class errc {
  unavailable,   // no connection: refused, unreachable, the server shutting down or full (08, 53, 57P0x)
  timeout,       // the deadline or statement_timeout passed; the query was cancelled (57014)
  constraint,    // a constraint refused the row: unique, foreign key, check, not null (class 23)
  serialization, // a serialization failure or deadlock: the transaction may be retried (40001, 40P01)
  bad_query,     // anything else the server refused: syntax, types, permissions, bad input (42, 22, ...)
  connection,    // the connection broke during the call: whether it took effect is unknown
};

std::string_view to_string(errc kind) noexcept;
// The answer a handler would give: 503, 504, 409, 409, 500, 503.
int http_status(errc kind) noexcept;
// The kind of a SQLSTATE (five characters).
errc kind_of(std::string_view sqlstate) noexcept;

class error final : public status_error {
public:
  error(errc kind, const std::string& message, std::string sqlstate = {}, std::string constraint = {})
    : status_error(pg::http_status(kind), message), kind_(kind), sqlstate_(std::move(sqlstate)),
      constraint_(std::move(constraint))
  {
  }
  // "the database is out of reach", "... did not answer in time", "a
  // constraint refused it (orders_user_id_fkey)", "... refused the query".
  std::string client_message() const override;
  errc kind() const noexcept { return kind_; }
  // The server's SQLSTATE ("23505"), empty when the error is not the server's.
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  // The constraint that refused the row (errc::constraint), when the server names one.
  const std::string& constraint() const noexcept { return constraint_; }

private:
  errc kind_;
  std::string sqlstate_;
  std::string constraint_;
};

// The failure of statement `index` of a call's `count`: a server's error
// names the statement's position when there are several; others as they are.
std::exception_ptr at_position(std::exception_ptr why, std::size_t index, std::size_t count);

} // namespace coronet::pg
