// libFuzzer target for the JSON request helper: any body, with the first
// byte choosing the Content-Type, through http::json_body and the field
// readers a handler uses. Must never crash, and must refuse only with
// http::error 400 or 415 and a message.
#include <coronet/http/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace http = coronet::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size == 0)
    return 0;
  static const char* types[] = {"application/json", "application/json; charset=utf-8", "application/problem+json",
                                "text/plain", ""};
  http::request req;
  req.method = "POST";
  if (*types[data[0] % 5])
    req.headers.add("Content-Type", types[data[0] % 5]);
  req.body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  auto refused = [](const http::error& e) {
    auto c = http::code(e.status());
    if ((c != 400 && c != 415) || std::string_view(e.what()).empty())
      std::abort();
  };
  try {
    auto doc = http::json_body(req);
    try {
      (void)http::field<std::string>(doc, "name");
    } catch (const http::error& e) {
      refused(e);
    }
    try {
      (void)http::field<int>(doc, "age");
    } catch (const http::error& e) {
      refused(e);
    }
    try {
      (void)http::optional_field<double>(doc, "score");
    } catch (const http::error& e) {
      refused(e);
    }
  } catch (const http::error& e) {
    refused(e);
  }
  return 0;
}
