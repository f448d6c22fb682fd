#include <coronet/runtime.hpp>

#include <coronet/config.hpp>
#include <coronet/error.hpp>
#include <coronet/detail/parked_op.hpp>
#include <coronet/detail/worker.hpp>

#include <asio/detail/thread_context.hpp>
#include <asio/detail/thread_info_base.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/signal_set.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <system_error>
#include <mutex>
#include <utility>

namespace coronet {

namespace detail {

namespace {

// Asio recycles coroutine frames and handler memory through a per-thread
// cache that it finds on its "thread call stack", which only run()/poll()
// push. The worker loop resumes tasks outside those calls, so it pushes a
// cache of its own for the thread's whole life.
class recycling_scope final : public asio::detail::thread_context {
public:
  recycling_scope() : scope_(this, cache_) {}

private:
  asio::detail::thread_info_base cache_;
  thread_call_stack::context scope_;
};

} // namespace

void worker::run()
{
  recycling_scope recycling;
  current_ = this;
  auto guard = asio::make_work_guard(context_);
  int busy_rounds = 0;
  while (!context_.stopped()) {
    std::size_t ran = run_ready() + run_remote();
    // Woken tasks first; but the reactor is polled at least every 8 rounds,
    // so a busy ping-pong between tasks never starves I/O.
    if (ran > 0 && ++busy_rounds < 8)
      continue;
    busy_rounds = 0;
    // Asio handlers (I/O, timers, posts) in bounded batches too, so a handler
    // that keeps posting itself cannot starve the woken tasks.
    for (std::size_t handlers = 0; handlers < 64 && context_.poll_one(); ++handlers)
      ++ran;
    if (ran > 0 || !ready_.empty() || spin_for_remote(spin_))
      continue;
    // Announce sleep, then look once more: a thread pushing a wake-up either
    // sees `sleeping_` and nudges us, or we see its wake-up here.
    sleeping_.store(true, std::memory_order_seq_cst);
    if (!has_remote_.load(std::memory_order_seq_cst))
      context_.run_one();
    sleeping_.store(false, std::memory_order_relaxed);
  }
  current_ = nullptr;
}

bool worker::run_leftovers()
{
  recycling_scope recycling;
  current_ = this;
  std::size_t ran = run_ready() + run_remote();
  current_ = nullptr;
  return ran > 0;
}

std::size_t worker::drop_tasks()
{
  std::size_t dropped = 0;
  // Woken but never to run now. A parked op among them is still listed as
  // parked, and abandoned from there.
  for (ready_queue* queue : {&ready_, &remote_}) {
    ready_queue woken = queue->take();
    while (resumable* r = woken.pop()) {
      r->discard();
      ++dropped;
    }
  }
  has_remote_.store(false, std::memory_order_relaxed);
  while (parked_task* t = parked_.take()) {
    t->abandon();
    ++dropped;
  }
  // Destroys the handlers queued and pending here, and with them the frames
  // they own (those just abandoned included), keeping the services alive.
  context_.destroy_handlers();
  return dropped;
}

std::size_t worker::run_ready()
{
  std::size_t n = 0;
  for (; n < 256; ++n) {
    resumable* r = ready_.pop();
    if (!r)
      break;
    r->resume();
  }
  return n;
}

void worker::schedule_remote(resumable* r)
{
  {
    std::lock_guard lock{remote_lock_};
    remote_.push(r);
    has_remote_.store(true, std::memory_order_seq_cst);
  }
  if (sleeping_.load(std::memory_order_seq_cst))
    asio::post(context_, [] {}); // wakes run_one; the loop then runs the list
}

std::size_t worker::run_remote()
{
  if (!has_remote_.load(std::memory_order_acquire))
    return 0;
  ready_queue batch;
  {
    std::lock_guard lock{remote_lock_};
    batch = remote_.take();
    has_remote_.store(false, std::memory_order_relaxed);
  }
  fruitless_spins_ = 0; // other workers hand work here: spinning may pay again
  std::size_t n = 0;
  for (; resumable* r = batch.pop(); ++n)
    r->resume();
  return n;
}

bool worker::spin_for_remote(std::chrono::microseconds spin)
{
  // Spinning pays only while work comes from other workers. After a few
  // spins that found nothing (a server whose connections stay on their
  // worker) stop spinning, and leave the core to others, until remote work
  // shows up again.
  if (spin.count() <= 0 || fruitless_spins_ >= max_fruitless_spins)
    return false;
  // At most one spinner per CPU: two workers spinning on one CPU would hand
  // work to each other only when one of them yields. Each CPU has a slot on
  // a cache line of its own; a count shared by all spinners would move its
  // line between them on every wake-up.
  int cpu = ::sched_getcpu();
  if (cpu < 0 || static_cast<std::size_t>(cpu) >= cpus_)
    return false;
  spin_slot& slot = spin_slots_[cpu];
  if (slot.taken.load(std::memory_order_relaxed) || slot.taken.exchange(true, std::memory_order_relaxed))
    return false;
  bool found = false;
  auto until = std::chrono::steady_clock::now() + spin;
  do {
    for (int i = 0; i < 256 && !found; ++i) {
      found = has_remote_.load(std::memory_order_relaxed);
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    // With more runnable threads than cores, give the core to one of them.
    if (!found)
      std::this_thread::yield();
  } while (!found && std::chrono::steady_clock::now() < until);
  slot.taken.store(false, std::memory_order_relaxed);
  fruitless_spins_ = found ? 0 : fruitless_spins_ + 1;
  return found;
}

void report_task_failure(std::exception_ptr e) noexcept
{
  try {
    std::rethrow_exception(e);
  } catch (const config_error& ex) {
    spdlog::critical("config error: {}", ex.what()); // as the apps say it for a bad flag
  } catch (const startup_error& ex) {
    spdlog::critical("cannot start: {}", ex.what());
  } catch (const std::exception& ex) {
    spdlog::error("task failed: {}", ex.what());
  } catch (...) {
    spdlog::error("task failed: unknown exception");
  }
}

} // namespace detail

namespace {

using entry_point = asio::awaitable<asio::detail::awaitable_thread_entry_point, asio::any_io_executor>;

// Counts a task's end on its worker, whichever way it comes: completed,
// failed, or dropped unfinished by the runtime's teardown (a parameter of the
// task's bottom frame, so it is destroyed with the frame even if the task
// never started). One word, as the worker pointer it replaced: the counters'
// address, with the way it ended in its low bits (they are 64-aligned).
class task_end final {
public:
  explicit task_end(detail::worker* w) noexcept : bits_(reinterpret_cast<std::uintptr_t>(&w->counters())) {}
  task_end(task_end&& other) noexcept : bits_(std::exchange(other.bits_, 0)) {}
  task_end& operator=(task_end&&) = delete;
  ~task_end()
  {
    if (!bits_)
      return;
    auto& c = *reinterpret_cast<detail::task_counters*>(bits_ & ~how_mask);
    auto how = bits_ & how_mask;
    detail::task_counters::bump(how == completed_bit ? c.completed : how == failed_bit ? c.failed : c.dropped);
  }
  void completed() noexcept { bits_ |= completed_bit; }
  void failed() noexcept { bits_ |= failed_bit; }

private:
  static constexpr std::uintptr_t completed_bit = 1, failed_bit = 2, how_mask = 3;
  static_assert(alignof(detail::task_counters) > how_mask);
  std::uintptr_t bits_;
};

// The bottom frame of every spawned task: counts its end and logs a failure,
// so an exception from a spawned task never vanishes.
entry_point run_task(task<void> t, task_end end)
{
  try {
    co_await std::move(t);
  } catch (...) {
    end.failed();
    detail::report_task_failure(std::current_exception());
    co_return;
  }
  end.completed();
}

// A new task waiting on the ready list for its first run. Asio's co_spawn
// does the same with two work guards, a dispatch and a posted completion per
// task; the workers keep their io_contexts alive themselves, so none of that
// is needed here.
class launch final : public detail::resumable {
public:
  launch(task<void> t, detail::worker& w, asio::cancellation_slot cancel)
    : thread_(run_task(std::move(t), task_end{&w}), w.executor(), cancel, asio::cancellation_state(cancel))
  {
  }

  // Its frame goes back to its io_context, which destroys it unstarted.
  void discard() noexcept override { delete this; }

  void resume() override
  {
    detail::asio_thread thread = std::move(thread_);
    delete this;
    thread.launch();
  }

private:
  detail::asio_thread thread_;
};

// Counts the task's end on its worker and logs a failure: an exception from
// a spawned task is never dropped silently.
struct spawn_completion {
  detail::worker* w;
  void operator()(std::exception_ptr e) const
  {
    if (e) {
      detail::task_counters::bump(w->counters().failed);
      detail::report_task_failure(e);
    } else {
      detail::task_counters::bump(w->counters().completed);
    }
  }
};

std::size_t default_threads(std::size_t requested)
{
  if (requested != 0)
    return requested;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}


} // namespace

namespace {

// As Go does at startup: a server wants every descriptor the hard limit
// allows, and the usual soft limit (1024) would refuse connections long
// before the machine runs out of anything.
void raise_open_file_limit()
{
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max)
    return;
  auto soft = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0)
    spdlog::debug("open file limit raised from {} to {}", soft, limit.rlim_max);
}

} // namespace

runtime::runtime(std::size_t threads, std::size_t blocking_threads, std::chrono::microseconds spin)
  : blocking_(blocking_threads == 0 ? 1 : blocking_threads)
{
  // The logger registry is built on first use; build it before the workers
  // start, so they never race to create it.
  (void)spdlog::default_logger_raw();
  raise_open_file_limit();
  threads = default_threads(threads);
  // CPU numbers run up to the count configured, which can exceed the count
  // online (a CPU number past it makes its worker sleep without spinning).
  long configured = ::sysconf(_SC_NPROCESSORS_CONF);
  std::size_t cpus = std::max<std::size_t>({1, std::thread::hardware_concurrency(),
    configured > 0 ? static_cast<std::size_t>(configured) : 0});
  spin_slots_ = std::make_unique<detail::spin_slot[]>(cpus);
  workers_.reserve(threads);
  try {
    for (std::size_t i = 0; i < threads; ++i) {
      workers_.push_back(std::make_unique<detail::worker>(*this, i, spin, spin_slots_.get(), cpus));
#if defined(ASIO_HAS_IO_URING_AS_DEFAULT)
      // Asio creates a context's ring on its first I/O, on the worker's own
      // thread: created here, a refusal is this constructor's error.
      asio::use_service<asio::detail::io_uring_service>(workers_.back()->context());
#endif
    }
  } catch (const std::system_error& e) {
#if defined(ASIO_HAS_IO_URING_AS_DEFAULT)
    throw std::runtime_error(fmt::format("this build runs on io_uring (CORONET_REACTOR=io_uring) and no ring "
      "could be created: {}; io_uring may be disabled (kernel.io_uring_disabled) or forbidden by a seccomp profile: "
      "use a build configured with -DCORONET_REACTOR=epoll", e.what()));
#else
    throw std::runtime_error(fmt::format("the reactor cannot start: {}", e.what()));
#endif
  }
  threads_.reserve(threads);
  for (auto& w : workers_)
    threads_.emplace_back([w = w.get()] { w->run(); });
}

runtime::runtime(const config& cfg)
try : runtime(static_cast<std::size_t>(cfg.get_int("runtime.threads")),
        static_cast<std::size_t>(cfg.get_int("runtime.blocking_threads")),
        std::chrono::microseconds{cfg.get_int("runtime.spin_us")}) {
} catch (const std::runtime_error& e) {
  spdlog::critical("cannot start: {}", e.what());
  std::exit(2);
}

// run_until_signal's signal set, on worker 0.
struct runtime::signal_watch {
  explicit signal_watch(asio::io_context& ctx) : set(ctx, SIGINT, SIGTERM, SIGHUP) {}
  asio::signal_set set;
};

runtime::~runtime()
{
  stop();
  // A task woken just before its worker stopped (a channel closed, a wait
  // group done) has not run since: run it on to its next suspension, so it
  // ends or waits where the teardown below finds it. A task that keeps
  // waking others is given a bounded number of rounds.
  for (int round = 0; round < 64; ++round) {
    bool ran = false;
    for (auto& w : workers_)
      ran |= w->run_leftovers();
    if (!ran)
      break;
  }
  destroy_tasks();
  if (signals_) {
    // Destroying the set would give these signals back their default
    // action, and one arriving now would kill a process that is ending
    // cleanly (a second SIGTERM, a late SIGHUP): they are ignored instead.
    signals_.reset();
    for (int signo : {SIGINT, SIGTERM, SIGHUP})
      std::signal(signo, SIG_IGN);
  }
  // Each io_context is destroyed only now, when no frame is left that owns
  // an I/O object of another worker; the last worker first, the reverse of
  // their making.
  while (!workers_.empty())
    workers_.pop_back();
}

void runtime::stop()
{
  if (detail::worker::current() && &detail::worker::current()->owner() == this)
    throw std::logic_error("runtime::stop called from one of its workers: it would deadlock");
  blocking_.join();
  for (auto& w : workers_)
    w->context().stop();
  for (auto& t : threads_)
    if (t.joinable())
      t.join();
}

// Destroys every task frame of every worker while every io_context is
// alive. A destroyed frame can release another worker's objects, wake a task
// parked elsewhere or post its own last frames to another io_context, so
// rounds go on until two in a row find nothing left to drop and no task
// ended; in practice two or three suffice.
void runtime::destroy_tasks()
{
  std::uint64_t last_alive = stats().alive();
  for (int round = 0, quiet = 0; round < 64 && quiet < 2; ++round) {
    std::size_t dropped = 0;
    for (auto& w : workers_)
      dropped += w->drop_tasks();
    std::uint64_t alive = stats().alive();
    quiet = dropped == 0 && alive == last_alive ? quiet + 1 : 0;
    last_alive = alive;
  }
}

asio::any_io_executor runtime::executor(std::size_t worker) const
{
  return workers_.at(worker)->context().get_executor();
}

asio::any_io_executor runtime::next_executor() noexcept
{
  return workers_[next_.fetch_add(1, std::memory_order_relaxed) % workers_.size()]->context().get_executor();
}

namespace {

void refuse_if_stopped(detail::worker& w)
{
  // After stop() nothing would ever run it (and block_on would wait forever).
  if (w.context().stopped())
    throw std::logic_error("runtime::spawn after the runtime has stopped");
}

} // namespace

void runtime::spawn(task<void> t)
{
  refuse_if_stopped(*workers_[0]);
  start_on(*workers_[next_.fetch_add(1, std::memory_order_relaxed) % workers_.size()], std::move(t));
}

void runtime::spawn(std::size_t worker, task<void> t)
{
  refuse_if_stopped(*workers_.at(worker));
  start_on(*workers_.at(worker), std::move(t));
}

void runtime::start_on(detail::worker& w, task<void> t, asio::cancellation_slot cancel)
{
  if (w.is_current())
    detail::task_counters::bump(w.counters().spawned);
  else
    w.counters().spawned_remote.fetch_add(1, std::memory_order_relaxed);
  // From its own worker a new task runs at once, up to its first suspension:
  // its frames are then recycled while still in cache, which makes spawning
  // twice as cheap as queueing. A chain of tasks spawning tasks is queued past
  // a small depth, so the stack stays bounded.
  static thread_local int inline_depth = 0;
  if (w.is_current() && inline_depth < 8) {
    ++inline_depth;
    detail::asio_thread thread{run_task(std::move(t), task_end{&w}), w.executor(), cancel,
      asio::cancellation_state(cancel)};
    thread.launch();
    --inline_depth;
    return;
  }
  w.schedule(new launch(std::move(t), w, cancel));
}

void spawn(task<void> t)
{
  detail::worker* w = detail::worker::current();
  if (!w)
    throw std::logic_error("coronet::spawn called outside a runtime worker; use runtime::spawn");
  w->owner().start_on(*w, std::move(t));
}

void spawn(task<void> t, asio::cancellation_slot cancel)
{
  detail::worker* w = detail::worker::current();
  if (!w)
    throw std::logic_error("coronet::spawn called outside a runtime worker; use runtime::spawn");
  w->owner().start_on(*w, std::move(t), cancel);
}

namespace {

class yield_op final : public detail::parked_op {
  void unpark() override {}
};

} // namespace

task<void> yield()
{
  yield_op op;
  co_await op.park([&] {
    op.try_claim(0);
    op.wake();
  });
}

task_stats runtime::stats() const noexcept
{
  task_stats s;
  for (auto& w : workers_) {
    auto& c = w->counters();
    s.spawned += c.spawned.load(std::memory_order_relaxed) + c.spawned_remote.load(std::memory_order_relaxed);
    s.completed += c.completed.load(std::memory_order_relaxed);
    s.failed += c.failed.load(std::memory_order_relaxed);
    s.dropped += c.dropped.load(std::memory_order_relaxed);
  }
  return s;
}

std::optional<std::size_t> runtime::current_worker() noexcept
{
  detail::worker* w = detail::worker::current();
  return w ? std::optional<std::size_t>{w->index()} : std::nullopt;
}

runtime* runtime::current() noexcept
{
  detail::worker* w = detail::worker::current();
  return w ? &w->owner() : nullptr;
}

void runtime::request_stop()
{
  if (done_.close())
    spdlog::info("stopping: draining in-flight work");
}

void runtime::on_reload(std::function<void()> f)
{
  std::lock_guard lock{reload_mutex_};
  reloaders_.push_back(std::move(f));
}

namespace {

// A service that could not start: exit status 2, as for a bad flag.
bool exits_with_2(std::exception_ptr e)
{
  try {
    std::rethrow_exception(e);
  } catch (const config_error&) {
    return true;
  } catch (const startup_error&) {
    return true;
  } catch (...) {
    return false;
  }
}

// SIGHUP: the on_reload() callbacks, called outside the lock (one may add another).
void run_reloaders(std::mutex& mutex, const std::vector<std::function<void()>>& all)
{
  std::vector<std::function<void()>> reloaders;
  {
    std::lock_guard lock{mutex};
    reloaders = all;
  }
  spdlog::info("received SIGHUP: {}", reloaders.empty() ? "nothing to reload" : "reloading");
  for (auto& f : reloaders)
    f();
}

} // namespace

int runtime::run_until_signal(task<void> main)
{
  std::mutex mutex;
  std::condition_variable finished_cv;
  bool finished = false;
  int exit_code = 0;
  auto finish = [&](int code) {
    std::lock_guard lock{mutex};
    if (!finished) {
      finished = true;
      exit_code = code;
    }
    finished_cv.notify_all();
  };

  // A member rather than a local: it stays (and keeps the signals caught)
  // until the teardown, which destroys its pending wait unrun.
  signals_ = std::make_unique<signal_watch>(workers_[0]->context());
  auto& signals = signals_->set;
  std::function<void(std::error_code, int)> on_signal = [&](std::error_code ec, int signo) {
    if (ec)
      return;
    if (signo == SIGHUP) {
      run_reloaders(reload_mutex_, reloaders_);
      signals.async_wait(on_signal);
      return;
    }
    if (!stop_requested()) {
      spdlog::info("received signal {}", signo);
      request_stop();
      signals.async_wait(on_signal);
    } else {
      spdlog::warn("received signal {} again: stopping now", signo);
      finish(130);
    }
  };
  signals.async_wait(on_signal);

  detail::worker& w0 = *workers_[0];
  w0.counters().spawned_remote.fetch_add(1, std::memory_order_relaxed);
  asio::co_spawn(w0.context(), std::move(main), [&](std::exception_ptr e) {
    spawn_completion{&w0}(e);
    finish(!e ? 0 : exits_with_2(e) ? 2 : 1);
  });

  std::unique_lock lock{mutex};
  finished_cv.wait(lock, [&] { return finished; });
  lock.unlock();
  // As when Go's main returns, nothing runs any more. The handlers still
  // pending (the signal wait among them) refer to this frame, but are only
  // ever destroyed now, never run.
  stop();
  return exit_code;
}

} // namespace coronet
