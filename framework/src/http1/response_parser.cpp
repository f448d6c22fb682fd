#include "http1/response_parser.hpp"

#include <utility>

namespace coronet::http::detail {

namespace {

response_parser& self(llhttp_t* p)
{
  return *static_cast<response_parser*>(p->data);
}

} // namespace

// The callbacks are the same for every parser: one table for all.
const llhttp_settings_t& response_parser::settings()
{
  static const llhttp_settings_t table = [] {
    llhttp_settings_t t;
    llhttp_settings_init(&t);
    t.on_message_begin = on_message_begin;
    t.on_status = on_status;
    t.on_header_field = on_header_field;
    t.on_header_value = on_header_value;
    t.on_header_value_complete = on_header_value_complete;
    t.on_headers_complete = on_headers_complete;
    t.on_body = on_body;
    t.on_message_complete = on_message_complete;
    return t;
  }();
  return table;
}

response_parser::response_parser(std::size_t max_header_bytes, std::size_t max_body_bytes, bool head_request)
  : max_header_bytes_(max_header_bytes), max_body_bytes_(max_body_bytes), head_(head_request)
{
  llhttp_init(&parser_, HTTP_RESPONSE, &settings());
  parser_.data = this;
}

int response_parser::fail(std::string message, bool too_large)
{
  error_ = std::move(message);
  failed_by_us_ = true;
  too_large_ = too_large;
  return HPE_USER;
}

int response_parser::on_message_begin(llhttp_t* p)
{
  auto& s = self(p);
  s.current_ = parsed_response{};
  s.field_.clear();
  s.value_.clear();
  s.header_bytes_ = 0;
  return HPE_OK;
}

int response_parser::on_status(llhttp_t* p, const char*, std::size_t n)
{
  auto& s = self(p);
  s.header_bytes_ += n;
  return s.header_bytes_ > s.max_header_bytes_ ? s.fail("response headers too large", true) : HPE_OK;
}

int response_parser::on_header_field(llhttp_t* p, const char* at, std::size_t n)
{
  auto& s = self(p);
  s.header_bytes_ += n;
  if (s.header_bytes_ > s.max_header_bytes_)
    return s.fail("response headers too large", true);
  s.field_.append(at, n);
  return HPE_OK;
}

int response_parser::on_header_value(llhttp_t* p, const char* at, std::size_t n)
{
  auto& s = self(p);
  s.header_bytes_ += n;
  if (s.header_bytes_ > s.max_header_bytes_)
    return s.fail("response headers too large", true);
  s.value_.append(at, n);
  return HPE_OK;
}

int response_parser::on_header_value_complete(llhttp_t* p)
{
  auto& s = self(p);
  s.current_.headers.add(std::move(s.field_), std::move(s.value_));
  s.field_.clear();
  s.value_.clear();
  return HPE_OK;
}

int response_parser::on_headers_complete(llhttp_t* p)
{
  auto& s = self(p);
  // status-code = 3DIGIT (RFC 9112 4); llhttp takes "02" or "0" as well.
  if (p->status_code < 100 || p->status_code > 999)
    return s.fail("malformed status code " + std::to_string(p->status_code), false);
  s.current_.status = p->status_code;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s.max_body_bytes_)
    return s.fail("response body larger than " + std::to_string(s.max_body_bytes_) + " bytes", true);
  // A response to HEAD has no body whatever its headers say, nor has a 101
  // (no 1xx has content, RFC 9110 15.2; llhttp reads one by Content-Length
  // after a 101 that names no upgrade: found by fuzzing).
  return (s.head_ && p->status_code >= 200) || p->status_code == 101 ? 1 : HPE_OK;
}

int response_parser::on_body(llhttp_t* p, const char* at, std::size_t n)
{
  auto& s = self(p);
  if (s.current_.body.size() + n > s.max_body_bytes_)
    return s.fail("response body larger than " + std::to_string(s.max_body_bytes_) + " bytes", true);
  s.current_.body.append(at, n);
  return HPE_OK;
}

int response_parser::on_message_complete(llhttp_t* p)
{
  auto& s = self(p);
  if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101)
    return HPE_OK; // interim (100 Continue...): the real response follows
  // After a 101 the connection speaks another protocol: never reused.
  s.current_.keep_alive = p->status_code != 101 && llhttp_should_keep_alive(p) != 0;
  s.complete_ = true;
  return HPE_PAUSED;
}

response_parser::result response_parser::check(llhttp_errno_t err)
{
  if (complete_)
    return result::complete;
  if (err == HPE_OK)
    return result::need_more;
  if (!failed_by_us_)
    error_ = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_);
  return result::error;
}

response_parser::result response_parser::feed(std::string_view data)
{
  if (!data.empty())
    started_ = true;
  auto err = llhttp_execute(&parser_, data.data(), data.size());
  if (err == HPE_PAUSED && complete_) {
    // Bytes after the response on a connection we did not pipeline on:
    // the server is confused; do not reuse the connection.
    auto used = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data.data());
    if (used < data.size())
      current_.keep_alive = false;
  }
  return check(err);
}

response_parser::result response_parser::finish()
{
  if (complete_)
    return result::complete;
  auto err = llhttp_finish(&parser_);
  if (err == HPE_OK && !complete_) {
    error_ = started_ ? "connection closed in the middle of the response" : "connection closed before a response";
    return result::error;
  }
  return check(err);
}

} // namespace coronet::http::detail
