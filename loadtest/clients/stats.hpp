#pragma once
// What the load clients measure: latencies (exact percentiles from every
// sample) and counts, printed as one JSON object.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <coronet/sync/wait_group.hpp>
#include <coronet/time.hpp>
#include <fmt/format.h>

namespace load {

using clock = std::chrono::steady_clock;

// Prints "window: start" and "window: end" on stdout as the measured window
// opens and closes, so whoever watches the server (loadtest/suite.py) takes
// its CPU time over the same window; then counts itself done in `wg`.
inline coronet::task<void> announce_window(clock::time_point start, clock::time_point end, coronet::wait_group& wg)
{
  co_await coronet::sleep_until(start);
  std::printf("window: start\n");
  std::fflush(stdout);
  co_await coronet::sleep_until(end);
  std::printf("window: end\n");
  std::fflush(stdout);
  wg.done();
}

// Samples in microseconds. Each task keeps its own and merges once at the end.
class latencies {
public:
  void add(clock::duration d) { us_.push_back(std::chrono::duration<double, std::micro>(d).count()); }
  void merge(latencies& other)
  {
    std::lock_guard lock{mutex_};
    us_.insert(us_.end(), other.us_.begin(), other.us_.end());
    other.us_.clear();
  }
  std::size_t size() const noexcept { return us_.size(); }
  // The q-quantile (0..1); 0 when there are no samples.
  double quantile(double q)
  {
    if (us_.empty())
      return 0;
    auto k = static_cast<std::size_t>(q * static_cast<double>(us_.size() - 1));
    std::nth_element(us_.begin(), us_.begin() + static_cast<std::ptrdiff_t>(k), us_.end());
    return us_[k];
  }
  // "p50_us":..,"p90_us":..,"p99_us":..,"p999_us":..
  std::string json_percentiles()
  {
    return fmt::format(R"("p50_us":{:.1f},"p90_us":{:.1f},"p99_us":{:.1f},"p999_us":{:.1f})", quantile(0.5),
      quantile(0.9), quantile(0.99), quantile(0.999));
  }

private:
  std::mutex mutex_;
  std::vector<double> us_;
};

} // namespace load
