#pragma once
// Incremental HTTP/1.1 request parser on llhttp in strict mode (no lenient
// flag), with coronet's limits. Internal to the framework: llhttp never
// appears in a public header.
//
// feed() consumes bytes until one request is complete, then stops so that
// pipelined requests are handled one at a time; the bytes after it are left
// for the next feed(). After an error the connection must answer
// error_status() and close.
#include <coronet/http/request.hpp>
#include <coronet/http/status.hpp>

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace coronet::http::detail {

struct parse_limits {
  std::size_t max_request_line_bytes = 8 * 1024; // -> 414
  std::size_t max_header_bytes = 64 * 1024;      // -> 431
  std::size_t max_headers = 100;                 // -> 431
  std::size_t max_body_bytes = 1024 * 1024;      // -> 413, before the body is read
};

// Splits req.target into path (percent-decoded) and query_string: origin-
// form, absolute-form (its path), or "*" for OPTIONS. False for anything
// else. Shared by HTTP/1 and HTTP/2.
bool split_target(request& req);

class request_parser final {
public:
  enum class result { need_more, complete, error };

  explicit request_parser(parse_limits limits = {});
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;

  // As if new, with `limits`, keeping the memory its strings hold: for a
  // parser that moves from one connection to another.
  void reset(parse_limits limits);

  // Parses from `data`; `consumed` is set to the bytes used.
  result feed(std::string_view data, std::size_t& consumed);
  // True once the headers of the current request are in (for 100-continue).
  bool headers_complete() const noexcept { return headers_done_; }
  // The finished request; the parser then starts on the next one.
  request take();
  // The finished request, used in place until the next feed() (which
  // starts the next one and clears it): no copy, no allocation per request.
  request& finished() noexcept
  {
    complete_ = false;
    headers_done_ = false;
    return current_;
  }
  // The request being parsed (headers are valid once headers_complete()).
  const request& pending() const noexcept { return current_; }

  status error_status() const noexcept { return error_status_; }
  const std::string& error_message() const noexcept { return error_message_; }

private:
  static const llhttp_settings_t& settings();
  static int on_message_begin(llhttp_t* p);
  static int on_method(llhttp_t* p, const char* at, std::size_t n);
  static int on_url(llhttp_t* p, const char* at, std::size_t n);
  static int on_version(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t n);
  static int on_message_complete(llhttp_t* p);

  // The state of one message, cleared as the next begins.
  void begin_message() noexcept;
  int fail(status s, std::string message);
  int count_line(std::size_t n);
  int count_header(std::size_t n);

  parse_limits limits_;
  llhttp_t parser_;
  request current_;
  std::string field_, value_;
  bool in_value_ = false;
  bool headers_done_ = false;
  bool complete_ = false;
  bool paused_ = false;
  std::size_t line_bytes_ = 0;
  std::size_t header_bytes_ = 0;
  bool failed_by_us_ = false;
  const char* buffer_begin_ = nullptr; // the bytes given to this feed()
  char last_byte_ = '\0';              // the last byte of the previous feed()
  status error_status_ = status::bad_request;
  std::string error_message_;
};

} // namespace coronet::http::detail
