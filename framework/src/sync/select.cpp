#include <coronet/sync/select.hpp>

#include <random>

namespace coronet {

void after_case::arm(detail::parked_op* op, int index)
{
  alarm_.emplace(executor_, [op, index] {
    if (op->try_claim(index))
      op->wake();
  });
  alarm_->ring_at(clock::now() + delay_);
}

void after_case::disarm() noexcept
{
  alarm_.reset();
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
