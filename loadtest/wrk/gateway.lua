-- wrk script: the gateway's dashboard for a random user id (1..1000), so
-- the backends' answers vary. Usage: wrk -s gateway.lua http://HOST:PORT
math.randomseed(os.time())

request = function()
  return wrk.format("GET", "/api/users/" .. math.random(1, 1000) .. "/dashboard")
end

dofile("report.lua")
