#include <coronet/metrics.hpp>

#include <fmt/format.h>

#include <stdexcept>

namespace coronet::metrics {

void histogram::observe(double seconds) noexcept
{
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (seconds <= bounds[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  auto ns = seconds > 0 ? static_cast<std::uint64_t>(seconds * 1e9) : 0;
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

std::string escape_label(std::string_view value)
{
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

namespace {

std::string label_text(const std::vector<std::string>& names, const std::vector<std::string>& values,
  std::string_view extra_name = {}, std::string_view extra_value = {})
{
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i)
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i], escape_label(values[i]));
  if (!extra_name.empty())
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", extra_name, extra_value);
  return out.empty() ? out : "{" + out + "}";
}

const char* type_of(const counter*) { return "counter"; }
const char* type_of(const gauge*) { return "gauge"; }
const char* type_of(const histogram*) { return "histogram"; }

void render_one(std::string& out, const std::string& name, const std::string& labels, const counter& c)
{
  out += fmt::format("{}{} {}\n", name, labels, c.value());
}

void render_one(std::string& out, const std::string& name, const std::string& labels, const gauge& g)
{
  out += fmt::format("{}{} {}\n", name, labels, g.value());
}

} // namespace

template <class Metric>
Metric& family<Metric>::with(std::initializer_list<std::string_view> values)
{
  return find(values.begin(), values.size());
}

template <class Metric>
Metric& family<Metric>::with(const std::vector<std::string_view>& values)
{
  return find(values.data(), values.size());
}

template <class Metric>
Metric& family<Metric>::find(const std::string_view* values, std::size_t n)
{
  if (n != labels_.size())
    throw std::invalid_argument(fmt::format("metric {} takes {} labels, got {}", name_, labels_.size(), n));
  std::string key;
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0)
      key += '\x1f';
    key += values[i];
  }
  std::lock_guard guard{lock_};
  if (auto it = index_.find(key); it != index_.end())
    return *series_[it->second].second;
  std::vector<std::string> copy(values, values + n);
  series_.emplace_back(std::move(copy), std::make_unique<Metric>());
  index_.emplace(std::move(key), series_.size() - 1);
  return *series_.back().second;
}

template <class Metric>
void family<Metric>::render(std::string& out) const
{
  std::lock_guard guard{lock_};
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name_, help_, name_, type_of(static_cast<Metric*>(nullptr)));
  for (auto& [values, metric] : series_) {
    if constexpr (std::is_same_v<Metric, histogram>) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < histogram::bounds.size(); ++i) {
        cumulative += metric->bucket(i);
        out += fmt::format("{}_bucket{} {}\n", name_, label_text(labels_, values, "le", fmt::format("{}", histogram::bounds[i])),
          cumulative);
      }
      out += fmt::format("{}_bucket{} {}\n", name_, label_text(labels_, values, "le", "+Inf"), metric->count());
      out += fmt::format("{}_sum{} {}\n", name_, label_text(labels_, values), metric->sum());
      out += fmt::format("{}_count{} {}\n", name_, label_text(labels_, values), metric->count());
    } else {
      render_one(out, name_, label_text(labels_, values), *metric);
    }
  }
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

registry& registry::global()
{
  static registry r;
  return r;
}

template <class Metric>
family<Metric>& registry::get(std::vector<std::unique_ptr<family<Metric>>>& all, std::string_view name,
  std::string_view help, std::vector<std::string> labels)
{
  std::lock_guard guard{lock_};
  for (auto& f : all) {
    if (f->name() == name) {
      if (f->labels() != labels)
        throw std::invalid_argument(fmt::format("metric {} registered again with other labels", name));
      return *f;
    }
  }
  all.push_back(std::make_unique<family<Metric>>(std::string(name), std::string(help), std::move(labels)));
  return *all.back();
}

family<counter>& registry::counters(std::string_view name, std::string_view help, std::vector<std::string> labels)
{
  return get(counters_, name, help, std::move(labels));
}

family<gauge>& registry::gauges(std::string_view name, std::string_view help, std::vector<std::string> labels)
{
  return get(gauges_, name, help, std::move(labels));
}

family<histogram>& registry::histograms(std::string_view name, std::string_view help, std::vector<std::string> labels)
{
  return get(histograms_, name, help, std::move(labels));
}

void registry::add_collector(std::function<void(std::string&)> collect)
{
  std::lock_guard guard{lock_};
  collectors_.push_back(std::move(collect));
}

std::string registry::render() const
{
  std::string out;
  std::lock_guard guard{lock_};
  for (auto& c : collectors_)
    c(out);
  for (auto& f : counters_)
    f->render(out);
  for (auto& f : gauges_)
    f->render(out);
  for (auto& f : histograms_)
    f->render(out);
  return out;
}

} // namespace coronet::metrics
