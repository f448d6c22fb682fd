#include <coronet/time.hpp>

namespace coronet {

struct alarm::state {
  state(const asio::any_io_executor& executor, std::function<void()> f) : timer(executor), ring(std::move(f)) {}

  asio::steady_timer timer;
  std::function<void()> ring;
  clock::time_point at = clock::time_point::max();    // wanted
  clock::time_point armed = clock::time_point::max(); // the timer's

  static void arm(const std::shared_ptr<state>& s, clock::time_point at)
  {
    s->armed = at;
    s->timer.expires_at(at); // a pending wait ends with operation_aborted
    s->timer.async_wait([weak = std::weak_ptr<state>(s)](std::error_code ec) {
      auto s = weak.lock();
      if (ec || !s)
        return; // re-armed, or the alarm is gone
      s->armed = clock::time_point::max();
      fired(s);
    });
  }

  static void fired(const std::shared_ptr<state>& s)
  {
    if (s->at == clock::time_point::max())
      return; // stopped
    if (s->at > clock::now()) {
      arm(s, s->at); // moved later since
      return;
    }
    s->at = clock::time_point::max();
    s->ring(); // may set the alarm again
  }
};

alarm::alarm(const asio::any_io_executor& executor, std::function<void()> ring)
  : state_(std::make_shared<state>(executor, std::move(ring)))
{
}

alarm::~alarm() = default; // the timer's end cancels its wait

void alarm::ring_at(clock::time_point at)
{
  state_->at = at;
  if (at < state_->armed)
    state::arm(state_, at);
}

void alarm::stop() noexcept
{
  state_->at = clock::time_point::max();
}

clock::time_point alarm::at() const noexcept
{
  return state_->at;
}

} // namespace coronet
