#include "http1/request_parser.hpp"

#include <coronet/detail/memory.hpp>

#include <cstring>
#include <utility>

namespace coronet::http::detail {

namespace {

// "TOKEN SP" at the start of `data`: a method, by RFC 9110's grammar.
bool is_method_token(std::string_view data)
{
  auto tchar = [](unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view{"!#$%&'*+-.^_`|~"}.find(static_cast<char>(c)) != std::string_view::npos;
  };
  std::size_t n = 0;
  while (n < data.size() && tchar(static_cast<unsigned char>(data[n])))
    ++n;
  return n > 0 && n < data.size() && data[n] == ' ';
}

} // namespace

// Splits the target into path and query. Origin-form ("/a?b") is the usual
// one; absolute-form ("http://host/a?b", for proxies) is accepted and its
// path used; asterisk-form ("*") only for OPTIONS. Anything else is refused.
bool split_target(request& req)
{
  std::string_view t = req.target;
  if (t == "*") {
    if (req.method != "OPTIONS")
      return false;
    req.path.assign(1, '*');
    return true;
  }
  if (t.empty() || t.front() != '/') {
    auto scheme = t.find("://");
    if (scheme == std::string_view::npos || scheme == 0)
      return false;
    auto slash = t.find_first_of("/?", scheme + 3);
    t = slash == std::string_view::npos ? std::string_view{"/"} : t.substr(slash);
    if (t.front() == '?')
      return false; // "http://host?q" has no path to route
  }
  auto q = t.find('?');
  if (q != std::string_view::npos)
    req.query_string.assign(t.substr(q + 1));
  return percent_decode_into(req.path, t.substr(0, q), false); // into the reused request's own buffer
}


namespace {

request_parser& self(llhttp_t* p)
{
  return *static_cast<request_parser*>(p->data);
}

} // namespace

// The callbacks are the same for every parser: one table for all.
const llhttp_settings_t& request_parser::settings()
{
  static const llhttp_settings_t table = [] {
    llhttp_settings_t t;
    llhttp_settings_init(&t);
    t.on_message_begin = on_message_begin;
    t.on_method = on_method;
    t.on_url = on_url;
    t.on_version = on_version;
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

request_parser::request_parser(parse_limits limits) : limits_(limits)
{
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
}

void request_parser::reset(parse_limits limits)
{
  limits_ = limits;
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
  begin_message();
  complete_ = false;
  paused_ = false;
  failed_by_us_ = false;
  buffer_begin_ = nullptr;
  last_byte_ = '\0';
  error_status_ = status::bad_request;
  error_message_.clear();
}

int request_parser::fail(status s, std::string message)
{
  error_status_ = s;
  error_message_ = std::move(message);
  failed_by_us_ = true;
  llhttp_set_error_reason(&parser_, "coronet limit");
  return HPE_USER;
}

int request_parser::count_line(std::size_t n)
{
  line_bytes_ += n;
  if (line_bytes_ > limits_.max_request_line_bytes)
    return fail(status::uri_too_long, "request line longer than " +
      std::to_string(limits_.max_request_line_bytes) + " bytes");
  return HPE_OK;
}

void request_parser::begin_message() noexcept
{
  current_.reset();
  field_.clear();
  value_.clear();
  in_value_ = false;
  headers_done_ = false;
  line_bytes_ = 0;
  header_bytes_ = 0;
}

int request_parser::on_message_begin(llhttp_t* p)
{
  self(p).begin_message();
  return HPE_OK;
}

int request_parser::on_method(llhttp_t* p, const char* at, std::size_t n)
{
  auto& s = self(p);
  s.current_.method.append(at, n);
  return s.count_line(n);
}

int request_parser::on_url(llhttp_t* p, const char* at, std::size_t n)
{
  auto& s = self(p);
  s.current_.target.append(at, n);
  return s.count_line(n);
}

int request_parser::on_version(llhttp_t* p, const char*, std::size_t n)
{
  return self(p).count_line(n);
}

int request_parser::on_header_field(llhttp_t* p, const char* at, std::size_t n)
{
  auto& s = self(p);
  if (s.in_value_) {
    s.field_.clear();
    s.value_.clear();
    s.in_value_ = false;
  }
  s.field_.append(at, n);
  return s.count_header(n);
}

int request_parser::count_header(std::size_t n)
{
  header_bytes_ += n;
  if (header_bytes_ > limits_.max_header_bytes)
    return fail(status::request_header_fields_too_large,
      "headers larger than " + std::to_string(limits_.max_header_bytes) + " bytes");
  return HPE_OK;
}

int request_parser::on_header_value(llhttp_t* p, const char* at, std::size_t n)
{
  auto& s = self(p);
  // A second piece of the same value that starts on a fresh line is an
  // obsolete line fold, which llhttp 8.1 accepts even in strict mode.
  if (s.in_value_ && n > 0) {
    char before = at > s.buffer_begin_ ? at[-1] : s.last_byte_;
    if (before == '\n')
      return s.fail(status::bad_request, "obsolete line folding in header '" + s.field_ + "'");
  }
  s.in_value_ = true;
  s.value_.append(at, n);
  return s.count_header(n);
}

int request_parser::on_header_value_complete(llhttp_t* p)
{
  auto& s = self(p);
  // "Host : x" (whitespace before the colon) is a smuggling vector; llhttp
  // 8.1 hands it over as the name "Host ".
  if (s.field_.find_first_of(" \t") != std::string::npos)
    return s.fail(status::bad_request, "whitespace in header name '" + s.field_ + "'");
  if (s.current_.headers.size() >= s.limits_.max_headers)
    return s.fail(status::request_header_fields_too_large,
      "more than " + std::to_string(s.limits_.max_headers) + " header fields");
  s.current_.headers.add(std::string_view(s.field_), std::string_view(s.value_)); // the parser keeps its buffers
  s.field_.clear();
  s.value_.clear();
  s.in_value_ = false;
  return HPE_OK;
}

int request_parser::on_headers_complete(llhttp_t* p)
{
  auto& s = self(p);
  s.headers_done_ = true;
  s.current_.version_major = p->http_major;
  s.current_.version_minor = p->http_minor;
  s.current_.keep_alive = llhttp_should_keep_alive(p) != 0;
  if (p->http_major != 1)
    return s.fail(status::http_version_not_supported, "only HTTP/1.x is served");
  if (!split_target(s.current_))
    return s.fail(status::bad_request, "malformed request target");
  // Refused before a byte of the body is read.
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s.limits_.max_body_bytes)
    return s.fail(status::payload_too_large,
      "body larger than " + std::to_string(s.limits_.max_body_bytes) + " bytes");
  // RFC 9112 3.2: an HTTP/1.1 request names its host exactly once.
  auto hosts = s.current_.headers.count("Host");
  if (hosts > 1)
    return s.fail(status::bad_request, "more than one Host header");
  if (hosts == 0 && p->http_minor >= 1)
    return s.fail(status::bad_request, "HTTP/1.1 request without a Host header");
  return HPE_OK;
}

int request_parser::on_body(llhttp_t* p, const char* at, std::size_t n)
{
  auto& s = self(p);
  if (s.current_.body.size() + n > s.limits_.max_body_bytes)
    return s.fail(status::payload_too_large,
      "body larger than " + std::to_string(s.limits_.max_body_bytes) + " bytes");
  if (s.current_.body.empty() && !coronet::detail::holds_memory(s.current_.body)) // moved out by the last handler
    s.current_.body = coronet::detail::take_string();
  s.current_.body.append(at, n);
  return HPE_OK;
}

int request_parser::on_message_complete(llhttp_t* p)
{
  auto& s = self(p);
  s.complete_ = true;
  // Stop here: a pipelined request after this one waits for the next feed().
  return HPE_PAUSED;
}

request_parser::result request_parser::feed(std::string_view data, std::size_t& consumed)
{
  consumed = 0;
  if (paused_) {
    llhttp_resume(&parser_);
    paused_ = false;
  }
  buffer_begin_ = data.data();
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  if (err == HPE_OK) {
    consumed = data.size();
    if (consumed > 0)
      last_byte_ = data.back();
    return result::need_more;
  }
  if (err == HPE_PAUSED && complete_) {
    consumed = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data.data());
    if (consumed > 0)
      last_byte_ = data[consumed - 1];
    paused_ = true;
    return result::complete;
  }
  // Errors from our callbacks come back as HPE_USER or HPE_CB_*; their
  // status is already set.
  if (!failed_by_us_) {
    switch (err) {
    case HPE_INVALID_METHOD:
      // 501 only for a well-formed method the server does not know ("BREW /
      // ..."); bytes that cannot begin a request line (TLS on the plain port,
      // binary noise) are a bad request (RFC 9112 3, RFC 9110 15.6.2).
      error_status_ = is_method_token(data) ? status::not_implemented : status::bad_request;
      break;
    case HPE_INVALID_VERSION: error_status_ = status::http_version_not_supported; break;
    default: error_status_ = status::bad_request; break;
    }
    error_message_ = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_);
  }
  return result::error;
}

request request_parser::take()
{
  complete_ = false;
  headers_done_ = false;
  return std::move(current_);
}

} // namespace coronet::http::detail
