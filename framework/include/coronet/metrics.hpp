#pragma once
// Counters, gauges and histograms with labels, rendered in the Prometheus
// text format. Safe from any worker: values are atomics; a labelled series
// is created once, under a lock, and then reused.
//
//   auto& hits = metrics::registry::global().counters("app_hits_total", "Hits.", {"page"});
//   hits.with({"home"}).inc();
//
// The framework records its own series here (tasks, connections, HTTP
// requests, client calls); http::observe() serves them on /metrics.
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace coronet::metrics {

class counter final {
public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::uint64_t> value_{0};
};

class gauge final {
public:
  void add(std::int64_t n) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  void set(std::int64_t n) noexcept { value_.store(n, std::memory_order_relaxed); }
  std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::int64_t> value_{0};
};

// Latency histogram in seconds, with fixed buckets from 100 µs to 10 s.
class histogram final {
public:
  static constexpr std::array<double, 15> bounds{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

  void observe(double seconds) noexcept;
  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  double sum() const noexcept { return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9; }
  // Observations <= bounds[i] (not cumulative).
  std::uint64_t bucket(std::size_t i) const noexcept { return buckets_[i].load(std::memory_order_relaxed); }

private:
  std::array<std::atomic<std::uint64_t>, bounds.size()> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// One metric name with its labelled series.
template <class Metric>
class family final {
public:
  family(std::string name, std::string help, std::vector<std::string> labels)
    : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels))
  {
  }

  // The series for these label values (as many as the family has labels).
  Metric& with(std::initializer_list<std::string_view> values);
  Metric& with(const std::vector<std::string_view>& values);

  const std::string& name() const noexcept { return name_; }
  const std::vector<std::string>& labels() const noexcept { return labels_; }
  void render(std::string& out) const;

private:
  Metric& find(const std::string_view* values, std::size_t n);

  std::string name_, help_;
  std::vector<std::string> labels_;
  mutable std::mutex lock_;
  // Key: label values joined by '\x1f'; kept in creation order for output.
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<std::pair<std::vector<std::string>, std::unique_ptr<Metric>>> series_;
};

class registry final {
public:
  // The process-wide registry the framework records into.
  static registry& global();

  // Get-or-create by name; the same name must keep the same labels (else
  // std::invalid_argument).
  family<counter>& counters(std::string_view name, std::string_view help, std::vector<std::string> labels = {});
  family<gauge>& gauges(std::string_view name, std::string_view help, std::vector<std::string> labels = {});
  family<histogram>& histograms(std::string_view name, std::string_view help, std::vector<std::string> labels = {});

  // Called at each render to append series computed on demand (for values
  // that live elsewhere, such as the runtime's task counters).
  void add_collector(std::function<void(std::string& out)> collect);

  // Everything, in the Prometheus text exposition format 0.0.4.
  std::string render() const;

private:
  template <class Metric>
  family<Metric>& get(std::vector<std::unique_ptr<family<Metric>>>& all, std::string_view name, std::string_view help,
    std::vector<std::string> labels);

  mutable std::mutex lock_;
  std::vector<std::unique_ptr<family<counter>>> counters_;
  std::vector<std::unique_ptr<family<gauge>>> gauges_;
  std::vector<std::unique_ptr<family<histogram>>> histograms_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

// Escapes a label value for the text format (backslash, quote, newline).
std::string escape_label(std::string_view value);

} // namespace coronet::metrics
