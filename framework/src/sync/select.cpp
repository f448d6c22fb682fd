#include <coronet/sync/select.hpp>

#include <random>

namespace coronet {

void after_case::arm(detail::parked_op* op, int index)
{
  link_ = std::make_shared<link>(link{op});
  timer_.emplace(executor_, delay_);
  timer_->async_wait([l = link_, index](std::error_code ec) {
    if (ec || !l->op)
      return;
    if (l->op->try_claim(index))
      l->op->wake();
  });
}

void after_case::disarm() noexcept
{
  if (link_) {
    link_->op = nullptr;
    link_.reset();
  }
  if (timer_)
    timer_->cancel();
}

namespace detail {

std::uint32_t select_random() noexcept
{
  // xorshift32, seeded once per thread: select only needs an unbiased-enough
  // shuffle, and a shared generator would be a contended cache line.
  thread_local std::uint32_t x = std::random_device{}() | 1u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

} // namespace detail
} // namespace coronet
