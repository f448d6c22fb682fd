// JSON request bodies and responses (coronet/http/json.hpp), through a
// router (no sockets): what a malformed body of each kind answers.
#include <coronet/http/json.hpp>
#include <coronet/http/router.hpp>
#include <coronet/runtime.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>

namespace http = coronet::http;
using coronet::task;

namespace {

struct new_user {
  std::string name;
  int age = 0;
  std::optional<std::string> email;
};

void from_json(const nlohmann::json& j, new_user& u)
{
  u.name = http::field<std::string>(j, "name");
  u.age = http::field<int>(j, "age");
  u.email = http::optional_field<std::string>(j, "email");
}

struct plain {
  std::uint8_t level = 0;
};

void from_json(const nlohmann::json& j, plain& p)
{
  p.level = j.at("level").get<std::uint8_t>(); // nlohmann's own errors, mapped too
}

http::router routes()
{
  http::router r;
  r.post("/users", [](http::request& req) -> task<http::response> {
    auto u = http::json_body<new_user>(req);
    co_return http::json_response(http::status::created,
      {{"name", u.name}, {"age", u.age}, {"email", u.email ? nlohmann::json(*u.email) : nlohmann::json()}});
  });
  r.post("/plain", [](http::request& req) -> task<http::response> {
    auto p = http::json_body<plain>(req);
    co_return http::json_response(http::status::ok, {{"level", p.level}});
  });
  r.post("/any", [](http::request& req) -> task<http::response> {
    co_return http::json_response(http::status::ok, req.json());
  });
  return r;
}

http::response post(const char* path, std::string body, const char* type = "application/json")
{
  static const http::router r = routes();
  http::request req;
  req.method = "POST";
  req.target = req.path = path;
  if (type)
    req.headers.add("Content-Type", type);
  req.body = std::move(body);
  coronet::runtime rt{1};
  return rt.block_on([](http::request req) -> task<http::response> { co_return co_await r.handle(req); }(
    std::move(req)));
}

} // namespace

TEST_CASE("json: a typed body in, a value out")
{
  auto r = post("/users", R"({"name":"Ann","age":37})");
  CHECK(r.status == http::status::created);
  CHECK(r.headers.get("Content-Type") == "application/json");
  CHECK(nlohmann::json::parse(r.body) == nlohmann::json{{"name", "Ann"}, {"age", 37}, {"email", nullptr}});
  CHECK(post("/users", R"({"name":"Bo","age":5,"email":"bo@example.com"})", "application/json; charset=utf-8")
          .status == http::status::created);
  CHECK(post("/any", R"([1,2,{"a":null}])", "application/problem+json").body == R"([1,2,{"a":null}])");
}

TEST_CASE("json: each malformed body is answered with what is wrong")
{
  auto said = [](const http::response& r) { return std::to_string(http::code(r.status)) + " " + r.body; };
  CHECK(said(post("/users", R"({"name":"Ann","age":37})", "text/plain")) ==
        "415 Content-Type must be application/json, not text/plain\n");
  CHECK(said(post("/users", R"({"name":"Ann"})", nullptr)) == "415 Content-Type must be application/json, not none\n");
  CHECK(said(post("/users", "")) == "400 empty body, JSON expected\n");
  CHECK(said(post("/users", R"({"name":"Ann","age":x})")).starts_with("400 malformed JSON at byte 21: syntax error"));
  CHECK(said(post("/users", R"({"name":"Ann")")) ==
        "400 malformed JSON at byte 14: syntax error while parsing object - unexpected end of input; expected '}'\n");
  CHECK(said(post("/users", R"({"age":37})")) == "400 missing field \"name\"\n");
  CHECK(said(post("/users", R"({"name":"Ann","age":"37"})")) == "400 \"age\" must be an integer, not a string\n");
  CHECK(said(post("/users", R"({"name":"Ann","age":1e3})")) == "400 \"age\" must be an integer, not a number\n");
  CHECK(said(post("/users", R"({"name":"Ann","age":99999999999})")) == "400 \"age\" is out of range\n");
  // A number no double holds (found by fuzzing: it escaped as a 500).
  CHECK(said(post("/users", R"({"name":"Ann","age":1e999999})")).starts_with("400 unusable JSON: number overflow"));
  CHECK(said(post("/users", R"({"name":["Ann"],"age":1})")) == "400 \"name\" must be a string, not an array\n");
  CHECK(said(post("/users", R"({"name":"Ann","age":1,"email":7})")) == "400 \"email\" must be a string, not an integer\n");
  CHECK(said(post("/users", R"([1,2])")) == "400 a JSON object expected\n");
  CHECK(said(post("/plain", R"({})")) == "400 missing field \"level\"\n");
  CHECK(said(post("/plain", R"({"level":"high"})")).starts_with("400 JSON of the wrong shape: type must be number"));
  // deeply nested input is parsed without recursion trouble, within the body limit
  CHECK(post("/any", std::string(5000, '[') + std::string(5000, ']')).status == http::status::ok);
}
