-- wrk script: POST a body of `size` bytes (default 1024) to the URL.
-- Usage: wrk -s post.lua URL -- SIZE
init = function(args)
  local size = tonumber(args[1]) or 1024
  local body = string.rep("coronet!", math.ceil(size / 8)):sub(1, size)
  req = wrk.format("POST", nil, {["Content-Type"] = "application/octet-stream"}, body)
end

request = function()
  return req
end

dofile("report.lua")
