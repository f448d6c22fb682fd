-- wrk script for the chaos scenario: the gateway's dashboard for a random
-- user id, counting what came back: full answers (200, "partial":false),
-- partial ones (200, "partial":true) and the rest (5xx and anything else).
-- Prints "CHAOS {...}" with the counts, then report.lua's JSON line.
math.randomseed(os.time())

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

full, partial, failed = 0, 0, 0

request = function()
  return wrk.format("GET", "/api/users/" .. math.random(1, 1000) .. "/dashboard")
end

response = function(status, headers, body)
  if status == 200 and string.find(body, '"partial":false', 1, true) then
    full = full + 1
  elseif status == 200 and string.find(body, '"partial":true', 1, true) then
    partial = partial + 1
  else
    failed = failed + 1
  end
end

dofile("report.lua")
local report = done
function done(summary, latency, requests)
  local f, p, x = 0, 0, 0
  for _, t in ipairs(threads) do
    f, p, x = f + t:get("full"), p + t:get("partial"), x + t:get("failed")
  end
  io.write(string.format('CHAOS {"full":%d,"partial":%d,"failed":%d}\n', f, p, x))
  report(summary, latency, requests)
end
