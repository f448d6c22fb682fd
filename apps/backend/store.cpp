#include "store.hpp"

#include <coronet/http/error.hpp>

#include <charconv>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace backend {

namespace http = coronet::http;

namespace {

std::string made_up_email(std::int64_t id)
{
  return "user" + std::to_string(id) + "@example.com";
}

// The made-up user whose email `email` is, or 0.
std::int64_t made_up_owner(const std::string& email)
{
  std::string_view e = email;
  if (!e.starts_with("user") || !e.ends_with("@example.com"))
    return 0;
  auto digits = e.substr(4, e.size() - 4 - 12);
  std::int64_t id = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc{} || end != digits.data() + digits.size() || id < 1 || id > made_up_users ||
      made_up_email(id) != email)
    return 0;
  return id;
}

[[noreturn]] void email_taken(const std::string& email)
{
  throw http::error{http::status::conflict, "the email " + email + " is taken"};
}

// Shared by the workers: one lock, held for map operations only.
class memory_store final : public store {
public:
  task<std::optional<json>> user(std::int64_t id) override
  {
    std::lock_guard lock{mutex_};
    co_return find(id);
  }

  task<json> create_user(std::string name, std::string email) override
  {
    std::lock_guard lock{mutex_};
    if (owner(email) != 0)
      email_taken(email);
    auto id = next_user_++;
    json u{{"id", id}, {"name", std::move(name)}, {"email", email}};
    users_[id] = u;
    emails_[email] = id;
    co_return u;
  }

  task<std::optional<json>> update_user(std::int64_t id, user_change change) override
  {
    std::lock_guard lock{mutex_};
    auto u = find(id);
    if (!u)
      co_return std::nullopt;
    if (change.email && *change.email != (*u)["email"].get<std::string>()) {
      if (owner(*change.email) != 0)
        email_taken(*change.email);
      emails_.erase((*u)["email"].get<std::string>());
      emails_[*change.email] = id;
      (*u)["email"] = *change.email;
    }
    if (change.name)
      (*u)["name"] = *change.name;
    users_[id] = *u;
    co_return u;
  }

  task<json> orders(std::int64_t user) override
  {
    std::lock_guard lock{mutex_};
    auto out = user <= made_up_users ? made_up_orders(user) : json{{"user", user}, {"orders", json::array()}};
    if (auto it = orders_.find(user); it != orders_.end())
      for (auto& o : it->second)
        out["orders"].push_back(o);
    co_return out;
  }

  task<json> create_order(std::int64_t user, double total) override
  {
    std::lock_guard lock{mutex_};
    if (!find(user))
      throw http::error{http::status::conflict, "no user " + std::to_string(user)};
    json o{{"id", next_order_++}, {"total", total}};
    orders_[user].push_back(o);
    o["user"] = user;
    co_return o;
  }

private:
  std::optional<json> find(std::int64_t id) const
  {
    if (auto it = users_.find(id); it != users_.end())
      return it->second;
    if (id >= 1 && id <= made_up_users)
      return made_up_user(id);
    return std::nullopt;
  }
  // Whose email it is, or 0.
  std::int64_t owner(const std::string& email) const
  {
    if (auto it = emails_.find(email); it != emails_.end())
      return it->second;
    auto id = made_up_owner(email);
    return id != 0 && !users_.contains(id) ? id : 0; // a changed user may have given it up
  }

  std::mutex mutex_;
  std::unordered_map<std::int64_t, json> users_;       // created or changed
  std::unordered_map<std::string, std::int64_t> emails_; // theirs
  std::unordered_map<std::int64_t, std::vector<json>> orders_; // created, by user
  std::int64_t next_user_ = made_up_users + 1;
  std::int64_t next_order_ = 1000000000;
};

} // namespace

std::uint64_t mix(std::uint64_t x)
{
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

json made_up_user(std::int64_t id)
{
  return {{"id", id}, {"name", "User " + std::to_string(id)}, {"email", made_up_email(id)}};
}

json made_up_orders(std::int64_t id)
{
  json list = json::array();
  auto count = mix(static_cast<std::uint64_t>(id)) % 4 + 1;
  for (std::uint64_t i = 0; i < count; ++i) {
    auto cents = mix(static_cast<std::uint64_t>(id) * 31 + i) % 50000 + 100;
    list.push_back({{"id", id * 100 + static_cast<std::int64_t>(i)}, {"total", static_cast<double>(cents) / 100}});
  }
  return {{"user", id}, {"orders", std::move(list)}};
}

std::unique_ptr<store> make_memory_store()
{
  return std::make_unique<memory_store>();
}

} // namespace backend
