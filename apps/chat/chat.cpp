#include "chat.hpp"

#include <coronet/utf8.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

namespace chat {

namespace {

struct member {
  std::shared_ptr<client> who;
  std::string nick;
};

// Sends `text` to every member. A member whose outbox is full is dropped
// from the room and disconnected; the others hear that it left, unless the
// room is bigger than `announce_limit`.
void broadcast(std::vector<member>& members, const std::string& room_name, const settings& cfg, line text)
{
  const auto outbox_messages = cfg.outbox_messages;
  std::vector<std::string> dropped;
  for (std::size_t i = 0; i < members.size();) {
    if (members[i].who->deliver(text)) {
      ++i;
      continue;
    }
    if (members[i].who->end(fmt::format("error: too slow: {} messages waiting, disconnected", outbox_messages),
          close_policy, true))
      spdlog::info("client {} ({}) too slow, disconnected", members[i].who->id, members[i].nick);
    dropped.push_back(std::move(members[i].nick));
    members[i] = std::move(members.back());
    members.pop_back();
  }
  if (members.size() >= cfg.announce_limit)
    return;
  for (auto& nick : dropped)
    broadcast(members, room_name, cfg, make_line(fmt::format("* {} left {} (too slow)", nick, room_name)));
}

// A room's members, touched only by the room's task (an actor: no lock).
struct roster {
  const std::string& name;
  const settings& cfg;
  std::vector<member> members{};

  void apply(room_event& e)
  {
    switch (e.what) {
    case room_event::kind::join: join(e); break;
    case room_event::kind::leave: leave(e); break;
    case room_event::kind::rename: rename(e); break;
    case room_event::kind::say: broadcast(members, name, cfg, std::move(e.text)); break;
    case room_event::kind::who: e.reply->try_send(who()); break;
    }
  }

  void join(const room_event& e)
  {
    members.push_back({e.from, e.nick});
    auto notice = make_line(fmt::format("* {} joined {}", e.nick, name));
    if (members.size() <= cfg.announce_limit)
      broadcast(members, name, cfg, std::move(notice));
    else
      e.from->deliver(notice); // a big room is not told of every arrival
  }

  void leave(const room_event& e)
  {
    auto it = find(e.from);
    if (it != members.end()) { // else already dropped as too slow
      *it = std::move(members.back());
      members.pop_back();
      if (members.size() < cfg.announce_limit)
        broadcast(members, name, cfg, make_line(fmt::format("* {} left {}", e.nick, name)));
    }
    // Everything the client sent before leaving has been delivered (the
    // inbox is in order): its session may now close the outbox.
    e.reply->try_send(std::string{});
  }

  void rename(const room_event& e)
  {
    auto it = find(e.from);
    if (it == members.end())
      return;
    auto old = std::exchange(it->nick, e.nick);
    broadcast(members, name, cfg, make_line(fmt::format("* {} is now {}", old, e.nick)));
  }

  std::string who() const
  {
    std::vector<std::string_view> nicks;
    for (auto& m : members)
      nicks.push_back(m.nick);
    std::sort(nicks.begin(), nicks.end());
    constexpr std::size_t shown = 100;
    std::string text = fmt::format("* {} in {}: {}", members.size(), name,
      fmt::join(nicks.begin(), nicks.begin() + static_cast<std::ptrdiff_t>(std::min(shown, nicks.size())), ", "));
    if (nicks.size() > shown)
      text += fmt::format(" and {} more", nicks.size() - shown);
    return text;
  }

  std::vector<member>::iterator find(const std::shared_ptr<client>& who)
  {
    return std::find_if(members.begin(), members.end(), [&](const member& m) { return m.who == who; });
  }
};

} // namespace

coronet::task<void> room::run(std::shared_ptr<room> self, coronet::wait_group& running)
{
  try {
    co_await serve(*self);
  } catch (const std::exception& e) {
    spdlog::error("room {} failed: {}", self->name, e.what());
    self->inbox.close(); // its members' sends fail instead of waiting forever
  }
  running.done();
}

coronet::task<void> room::serve(room& self)
{
  roster members{self.name, self.settings_};
  constexpr std::size_t batch = 32;
  std::size_t since_yield = 0;
  while (auto e = co_await self.inbox.receive()) {
    members.apply(*e);
    // Let the members' writers on this worker drain their outboxes before
    // the next line: a burst then costs a full outbox only to a client that
    // really does not read. But when events are waiting, take up to `batch`
    // of them first: each writer then sends their lines in one write, and a
    // room behind on its inbox catches up instead of paying a write per
    // line per member (10,000 members: the room fell behind for good).
    if (++since_yield < batch && self.inbox.size() > 0)
      continue;
    since_yield = 0;
    co_await coronet::yield();
  }
}

std::shared_ptr<client> hub::connect()
{
  std::lock_guard lock{mutex_};
  if (stopping_)
    return nullptr;
  auto c = std::make_shared<client>(next_id_++, settings_.outbox_messages);
  clients_.emplace(c->id, c);
  return c;
}

void hub::disconnect(const client& c)
{
  std::lock_guard lock{mutex_};
  clients_.erase(c.id);
}

bool hub::claim_nick(const std::string& nick, const std::string& old)
{
  std::lock_guard lock{mutex_};
  if (!nicks_.insert(nick).second)
    return false;
  if (!old.empty())
    nicks_.erase(old);
  return true;
}

void hub::release_nick(const std::string& nick)
{
  std::lock_guard lock{mutex_};
  nicks_.erase(nick);
}

std::shared_ptr<room> hub::enter(const std::string& name)
{
  std::lock_guard lock{mutex_};
  auto& r = rooms_[name];
  if (!r) {
    r = std::make_shared<room>(name, settings_);
    rooms_running_.add(1);
    rt_.spawn(room::run(r, rooms_running_));
  }
  ++r->members_;
  return r;
}

void hub::leave(const std::shared_ptr<room>& r)
{
  std::lock_guard lock{mutex_};
  if (--r->members_ == 0) {
    rooms_.erase(r->name);
    r->inbox.close(); // the room task ends after the events already queued
  }
}

std::string hub::list_rooms()
{
  std::lock_guard lock{mutex_};
  if (rooms_.empty())
    return "* no rooms yet: /join ROOM makes one";
  std::string text = "* rooms:";
  for (auto& [name, r] : rooms_)
    text += fmt::format(" {} ({})", name, r->members_);
  return text;
}

void hub::shutdown()
{
  std::vector<std::shared_ptr<client>> everyone;
  {
    std::lock_guard lock{mutex_};
    stopping_ = true;
    for (auto& [id, weak] : clients_)
      if (auto c = weak.lock())
        everyone.push_back(std::move(c));
  }
  for (auto& c : everyone)
    c->end("* server shutting down", close_going_away);
}

session::session(hub& h, std::shared_ptr<client> c)
  : hub_(h), client_(std::move(c)), tokens_(h.config().max_messages_per_second),
    refilled_(std::chrono::steady_clock::now())
{
}

// A token bucket: max_messages_per_second, with a burst of as many.
bool session::take_token()
{
  const double rate = hub_.config().max_messages_per_second;
  auto now = std::chrono::steady_clock::now();
  tokens_ = std::min(rate, tokens_ + std::chrono::duration<double>(now - refilled_).count() * rate);
  refilled_ = now;
  if (tokens_ < 1)
    return false;
  tokens_ -= 1;
  return true;
}

coronet::task<bool> session::handle(std::string_view text)
{
  using kind = command::kind;
  const auto& cfg = hub_.config();
  auto c = parse(text, cfg);
  if (c.what == kind::blank)
    co_return true;
  if (c.what == kind::bad_line) {
    reply(std::move(c.error));
    co_return true;
  }
  if (!take_token()) {
    reply(fmt::format("error: too many messages (at most {} per second), dropped", cfg.max_messages_per_second));
    co_return true;
  }
  switch (c.what) {
  case kind::say:
    if (auto e = said(c.arg))
      co_await room_->inbox.send(std::move(*e));
    break;
  case kind::nick: co_await rename(c); break;
  case kind::join:
    if (nick_.empty())
      reply("error: pick a nick first: /nick NAME");
    else if (!c.error.empty())
      reply(std::move(c.error));
    else if (!room_ || room_->name != c.arg)
      co_await join(std::string{c.arg});
    break;
  case kind::rooms: reply(hub_.list_rooms()); break;
  case kind::who: co_await who(); break;
  case kind::quit: co_return false;
  default: reply(std::move(c.error)); break; // unknown
  }
  co_return true;
}

// The room's event for a line said, or std::nullopt (and the client told
// why) when there is no room to say it in.
std::optional<room_event> session::said(std::string_view text)
{
  if (!room_) {
    reply(nick_.empty() ? "error: pick a nick with /nick NAME, then /join ROOM" : "error: join a room first: /join ROOM");
    return std::nullopt;
  }
  return room_event{room_event::kind::say, nullptr, {}, make_line(fmt::format("[{}] {}: {}", room_->name, nick_, text)),
    {}};
}

coronet::task<void> session::rename(command& c)
{
  if (!c.error.empty()) {
    reply(std::move(c.error));
    co_return;
  }
  std::string nick{c.arg};
  if (nick == nick_)
    co_return;
  if (!hub_.claim_nick(nick, nick_)) {
    reply(fmt::format("error: nick {} is taken", nick));
    co_return;
  }
  nick_ = nick;
  if (!room_) {
    reply(fmt::format("* you are {}", nick_));
    co_return;
  }
  room_event e{room_event::kind::rename, client_, nick_, nullptr, {}};
  co_await room_->inbox.send(std::move(e));
}

coronet::task<void> session::who()
{
  if (!room_) {
    reply("error: join a room first: /join ROOM");
    co_return;
  }
  coronet::channel<std::string> answer{1};
  room_event e{room_event::kind::who, client_, {}, nullptr, answer};
  co_await room_->inbox.send(std::move(e));
  if (auto list = co_await answer.receive())
    reply(std::move(*list));
}

coronet::task<void> session::join(std::string name)
{
  co_await leave_room();
  room_ = hub_.enter(name);
  room_event e{room_event::kind::join, client_, nick_, nullptr, {}};
  co_await room_->inbox.send(std::move(e));
}

coronet::task<void> session::leave_room()
{
  if (!room_)
    co_return;
  auto r = std::move(room_);
  room_ = nullptr;
  coronet::channel<std::string> done{1};
  room_event e{room_event::kind::leave, client_, nick_, nullptr, done};
  co_await r->inbox.send(std::move(e));
  co_await done.receive(); // the room has handled what came before
  hub_.leave(r);
}

coronet::task<void> session::finish()
{
  co_await leave_room();
  if (!nick_.empty())
    hub_.release_nick(nick_);
}

} // namespace chat
