#pragma once
// Errors reported by coronet's primitives. They are std::error_code values in
// their own category, so `catch (const std::system_error& e)` and
// `e.code() == coronet::errc::timed_out` both work.
#include <stdexcept>
#include <string>
#include <system_error>

namespace coronet {

enum class errc {
  channel_closed = 1, // send on a closed channel (Go panics; we throw)
  timed_out,          // a with_timeout / deadline expired
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept
{
  return {static_cast<int>(e), error_category()};
}

// Thrown by with_timeout and with_deadline when the time runs out. The awaited
// operation has been cancelled by then.
class timeout_error final : public std::system_error {
public:
  timeout_error() : std::system_error(make_error_code(errc::timed_out)) {}
};

// A service cannot start: its address is in use, a file it needs cannot be
// used. run_until_signal exits with status 2 on it, as on a config_error.
class startup_error final : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// An error from a layer below HTTP that knows the status a server answers
// it with: pg::error is 503 when the database is out of reach, 504 past a
// deadline, 409 for a constraint. A handler lets it through and the HTTP
// server answers "<reason>: <client_message()>" with that status, and logs
// what() for a 5xx (what() may name more than a client should see: SQL,
// addresses).
class status_error : public std::runtime_error {
public:
  status_error(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int http_status() const noexcept { return status_; }
  // What the client is told; what() by default.
  virtual std::string client_message() const { return what(); }

private:
  int status_;
};

} // namespace coronet

template <>
struct std::is_error_code_enum<coronet::errc> : std::true_type {};
