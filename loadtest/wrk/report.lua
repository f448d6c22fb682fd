-- wrk's done() hook for the suite: one line "JSON {...}" with the latency
-- percentiles (microseconds), requests, errors and non-2xx responses.
-- Every scenario script ends with dofile("report.lua"); run wrk from this
-- directory (loadtest/run.sh does).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,' ..
    '"p999_us":%.1f,"max_us":%.1f,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d,"non2xx":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, e.connect, e.read, e.write, e.timeout, e.status))
end
