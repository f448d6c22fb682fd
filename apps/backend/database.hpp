#pragma once
// coronet-backend's store in PostgreSQL (backend.store = "postgres://..."),
// with Redis as a read-through cache (backend.cache = "redis://...").
#include "store.hpp"

#include <coronet/pg/database.hpp>
#include <coronet/redis/client.hpp>

#include <chrono>
#include <optional>

namespace coronet {
class runtime;
}

namespace backend {

struct database_settings {
  coronet::pg::options pg;
  std::optional<coronet::redis::options> cache; // none: every read goes to PostgreSQL
  std::chrono::milliseconds cache_ttl{60000};
  std::int64_t seed_users = 10000; // made-up users put in an empty database
};

std::unique_ptr<store> make_database_store(coronet::runtime& rt, database_settings s);

// Creates the tables when they are missing, and fills empty ones with the
// made-up users and their orders. Several backends may start at once: one
// does it, under an advisory lock.
task<void> prepare_database(store& s);

} // namespace backend
