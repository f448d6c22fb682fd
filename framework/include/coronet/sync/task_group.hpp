#pragma once
// task_group: Go's errgroup.WithContext (+ SetLimit).
//
//   coronet::task_group group{4};                 // at most 4 children at once
//   for (auto id : ids)
//     group.spawn(fetch(id));
//   co_await group.wait();                        // rethrows the first failure
//
// The first child to fail cancels every other running child (their pending
// operations throw operation_aborted) and drops children still waiting for a
// slot; wait() then rethrows that first exception. Beyond the limit, children
// wait in order for a slot. A group belongs to the worker that created it and
// its children run there; use it from that worker. Destroying a group whose
// children are still running cancels them, so none outlives it doing work.
#include <coronet/task.hpp>

#include <cstddef>
#include <exception>
#include <memory>

namespace coronet {

class task_group final {
public:
  // limit == 0: no limit.
  explicit task_group(std::size_t limit = 0);
  ~task_group();
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  void spawn(task<void> child);
  // Waits for every child; rethrows the first failure.
  task<void> wait();
  // Cancels the running children and drops the queued ones.
  void cancel();

  std::size_t running() const noexcept;
  bool cancelled() const noexcept;

  struct state;

private:
  std::shared_ptr<state> state_;
};

} // namespace coronet
