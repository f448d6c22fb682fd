#pragma once
// The chat's model: clients, rooms and the hub that names them.
//
// Every client has a bounded outbox (a channel of lines) drained by its own
// writer task. A room is a task reading its inbox (a channel of events:
// join, leave, rename, say, who); it fans each line out with try_send into
// the members' outboxes, so a member that cannot keep up never slows the
// room: when its outbox is full it is disconnected with a reason. The hub
// holds the rooms and nicks, under a mutex, for every worker.
#include "protocol.hpp"

#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/sync/wait_group.hpp>
#include <coronet/task.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace chat {

using line = std::shared_ptr<const std::string>;

inline line make_line(std::string text)
{
  return std::make_shared<const std::string>(std::move(text));
}

// WebSocket close codes for the ways a client ends.
inline constexpr std::uint16_t close_normal = 1000;
inline constexpr std::uint16_t close_going_away = 1001;
inline constexpr std::uint16_t close_policy = 1008;

class client {
public:
  client(std::uint64_t id, std::size_t outbox_messages) : id(id), outbox(outbox_messages) {}

  const std::uint64_t id;
  coronet::channel<line> outbox;

  // Queues a line; false when the outbox is full or closed.
  bool deliver(const line& l)
  {
    auto copy = l;
    try {
      return outbox.try_send(copy);
    } catch (const std::system_error&) {
      return false; // closed: the client is leaving
    }
  }

  // Ends the client: its writer sends what is queued (or, when `drop_queued`,
  // only `farewell`), then the farewell line, then disconnects. The first
  // call wins; later ones return false.
  bool end(std::string farewell, std::uint16_t code, bool drop_queued = false)
  {
    bool expected = false;
    if (!ending_.compare_exchange_strong(expected, true))
      return false;
    farewell_ = std::move(farewell);
    code_ = code;
    drop_queued_.store(drop_queued, std::memory_order_release);
    outbox.close(); // publishes the fields above to the writer
    return true;
  }
  bool ending() const noexcept { return ending_.load(); }
  // Read by the writer once the outbox is closed.
  const std::string& farewell() const noexcept { return farewell_; }
  std::uint16_t close_code() const noexcept { return code_; }
  // Atomic: the writer may ask as soon as ending() is true, before end()
  // has closed the outbox (which publishes the farewell and the code).
  bool drop_queued() const noexcept { return drop_queued_.load(std::memory_order_acquire); }

private:
  std::atomic<bool> ending_{false};
  std::string farewell_;
  std::uint16_t code_ = close_normal;
  std::atomic<bool> drop_queued_{false};
};

struct room_event {
  enum class kind { join, leave, rename, say, who };
  kind what;
  std::shared_ptr<client> from;
  std::string nick;                      // join, leave, rename: the (new) nick
  line text;                             // say: the formatted line
  std::optional<coronet::channel<std::string>> reply; // who: where the list goes; leave: told when done
};

class room {
public:
  room(std::string name, const settings& s) : name(std::move(name)), inbox(1024), settings_(s) {}
  const std::string name;
  coronet::channel<room_event> inbox;

  // The room's task: ends when the hub closes the inbox (last member gone),
  // and then counts itself done in `running`.
  static coronet::task<void> run(std::shared_ptr<room> self, coronet::wait_group& running);

private:
  friend class hub;
  static coronet::task<void> serve(room& self);
  std::size_t members_ = 0; // guarded by the hub's mutex
  const settings& settings_;
};

class hub {
public:
  hub(coronet::runtime& rt, settings s) : rt_(rt), settings_(s) {}
  const settings& config() const noexcept { return settings_; }

  // Registers a client; nullptr when the server is stopping.
  std::shared_ptr<client> connect();
  void disconnect(const client& c);

  // Takes `nick` for a client that had `old` (empty: none); false when taken.
  bool claim_nick(const std::string& nick, const std::string& old);
  void release_nick(const std::string& nick);

  // The room, made (and its task started) if new; counts the member.
  std::shared_ptr<room> enter(const std::string& name);
  // Uncounts a member; the last one out closes the room.
  void leave(const std::shared_ptr<room>& r);
  std::string list_rooms();

  // Says goodbye to every client (server stopping).
  void shutdown();
  // Returns once every room's task has ended (each after its last member).
  coronet::task<void> rooms_closed() { return rooms_running_.wait(); }

private:
  coronet::runtime& rt_;
  const settings settings_;
  std::mutex mutex_;
  bool stopping_ = false;
  std::uint64_t next_id_ = 1;
  std::map<std::string, std::shared_ptr<room>, std::less<>> rooms_;
  std::unordered_set<std::string> nicks_;
  std::unordered_map<std::uint64_t, std::weak_ptr<client>> clients_;
  coronet::wait_group rooms_running_;
};

// The protocol, whatever the transport: one per connected client.
class session {
public:
  session(hub& h, std::shared_ptr<client> c);
  // Handles one line from the client; false once it asked to quit.
  coronet::task<bool> handle(std::string_view text);
  // Leaves the room and frees the nick.
  coronet::task<void> finish();
  void reply(std::string text) { client_->deliver(make_line(std::move(text))); }

private:
  std::optional<room_event> said(std::string_view text);
  coronet::task<void> rename(command& c);
  coronet::task<void> who();
  coronet::task<void> join(std::string name);
  coronet::task<void> leave_room();
  bool take_token();

  hub& hub_;
  std::shared_ptr<client> client_;
  std::string nick_;
  std::shared_ptr<room> room_;
  double tokens_;
  std::chrono::steady_clock::time_point refilled_;
};

inline constexpr std::string_view welcome =
  "* welcome to coronet-chat. Commands: /nick NAME, /join ROOM, /rooms, /who, /quit";

} // namespace chat
