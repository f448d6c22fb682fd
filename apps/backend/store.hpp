#pragma once
// Where coronet-backend keeps its users and orders: in memory (the default,
// made-up data for users 1..1000000 plus what was written since the start)
// or in PostgreSQL with an optional Redis cache (database.hpp).
#include <coronet/task.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace backend {

using json = nlohmann::json;
using coronet::task;

inline constexpr std::int64_t made_up_users = 1000000;

// A user's fields as a write gives them: absent ones stay as they are.
struct user_change {
  std::optional<std::string> name;
  std::optional<std::string> email;
};

// Every call may throw a coronet::status_error (the database out of reach:
// 503) or http::error; a write that breaks a rule (an email taken, an order
// for no user) is a 409.
class store {
public:
  virtual ~store() = default;
  // {"id","name","email"}, nullopt when there is no such user.
  virtual task<std::optional<json>> user(std::int64_t id) = 0;
  // The new user, with its id.
  virtual task<json> create_user(std::string name, std::string email) = 0;
  // The user as changed, nullopt when there is no such user.
  virtual task<std::optional<json>> update_user(std::int64_t id, user_change change) = 0;
  // {"user", "orders": [{"id","total"}...]}: none for a user with none.
  virtual task<json> orders(std::int64_t user) = 0;
  // The new order {"id","user","total"}.
  virtual task<json> create_order(std::int64_t user, double total) = 0;
};

std::unique_ptr<store> make_memory_store();

// A small, well-mixed hash: made-up data that looks varied but never changes.
std::uint64_t mix(std::uint64_t x);

// The made-up data of user `id` (1..made_up_users), the same in both stores.
json made_up_user(std::int64_t id);
json made_up_orders(std::int64_t id);

} // namespace backend
