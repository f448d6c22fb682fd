#include <coronet/sync/task_group.hpp>

#include <coronet/detail/intrusive_list.hpp>
#include <coronet/detail/parked_op.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>

#include <deque>
#include <list>
#include <stdexcept>

namespace coronet {

namespace {

class group_waiter final : public detail::parked_op {
public:
  explicit group_waiter(detail::intrusive_list<group_waiter>& list) : list_(list) {}
  ~group_waiter() { list_.remove(this); }
  group_waiter* prev_ = nullptr;
  group_waiter* next_ = nullptr;
  bool linked_ = false;

private:
  // Everything in a group runs on its worker, so no lock is needed.
  void unpark() override { list_.remove(this); }
  detail::intrusive_list<group_waiter>& list_;
};

} // namespace

// Lives as long as the group or its last running child.
struct task_group::state : std::enable_shared_from_this<task_group::state> {
  detail::worker* owner = nullptr;
  std::size_t limit = 0;
  std::list<asio::cancellation_signal> running;
  std::deque<task<void>> queued;
  std::exception_ptr first_error;
  bool cancelled = false;
  detail::intrusive_list<group_waiter> waiters;

  void check_owner(const char* what) const
  {
    if (detail::worker::current() != owner)
      throw std::logic_error(std::string("task_group::") + what +
        " called from another thread than the group's worker");
  }

  bool idle() const noexcept { return running.empty() && queued.empty(); }

  void start(task<void> child)
  {
    auto signal = running.emplace(running.end());
    detail::task_counters::bump(owner->counters().spawned);
    asio::co_spawn(owner->context(), std::move(child),
      asio::bind_cancellation_slot(signal->slot(),
        [self = shared_from_this(), signal](std::exception_ptr e) { self->finished(signal, e); }));
  }

  void finished(std::list<asio::cancellation_signal>::iterator signal, std::exception_ptr e)
  {
    running.erase(signal);
    detail::task_counters::bump(e ? owner->counters().failed : owner->counters().completed);
    if (e && !cancelled) {
      first_error = e;
      cancel();
    }
    while (!queued.empty() && (limit == 0 || running.size() < limit)) {
      auto next = std::move(queued.front());
      queued.pop_front();
      start(std::move(next));
    }
    if (idle())
      while (group_waiter* w = waiters.pop_front())
        if (w->try_claim(0))
          w->wake();
  }

  void cancel()
  {
    cancelled = true;
    queued.clear();
    // Cancellation handlers only schedule wake-ups, so `running` is stable here.
    for (auto& signal : running)
      signal.emit(asio::cancellation_type::terminal);
  }
};

task_group::task_group(std::size_t limit) : state_(std::make_shared<state>())
{
  state_->owner = detail::worker::current();
  if (!state_->owner)
    throw std::logic_error("task_group created outside a runtime worker");
  state_->limit = limit;
}

task_group::~task_group()
{
  if (!state_->idle())
    state_->cancel();
}

void task_group::spawn(task<void> child)
{
  state_->check_owner("spawn");
  if (state_->cancelled)
    return;
  if (state_->limit != 0 && state_->running.size() >= state_->limit)
    state_->queued.push_back(std::move(child));
  else
    state_->start(std::move(child));
}

task<void> task_group::wait()
{
  state_->check_owner("wait");
  if (!state_->idle()) {
    group_waiter parked{state_->waiters};
    co_await parked.park([&] { state_->waiters.push_back(&parked); });
    parked.rethrow_if_failed();
  }
  if (state_->first_error)
    std::rethrow_exception(state_->first_error);
}

void task_group::cancel()
{
  state_->check_owner("cancel");
  state_->cancel();
}

std::size_t task_group::running() const noexcept
{
  return state_->running.size();
}

bool task_group::cancelled() const noexcept
{
  return state_->cancelled;
}

} // namespace coronet
