-- wrk through the serving tier's balancer: each request is a random line of REQUESTS_FILE, tab-separated
--   GET<TAB>path                      (lookups)
--   POST<TAB>path<TAB>key<TAB>body    (predictions: the key goes in X-Entity-Key, which the balancer hashes)
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local requests = {}
for line in io.lines(os.getenv("REQUESTS_FILE")) do
  local method, path, key, body = line:match("^([^\t]+)\t([^\t]+)\t?([^\t]*)\t?(.*)$")
  if method == "POST" then
    requests[#requests + 1] = wrk.format("POST", path, {["Content-Type"] = "application/json",
                                                         ["X-Entity-Key"] = key}, body)
  else
    requests[#requests + 1] = wrk.format("GET", path)
  end
end

request = function()
  return requests[math.random(#requests)]
end

-- The RESULT line of wrk_common.lua, plus the socket errors by kind.
done = function(summary, latency, requests)
  common.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("ERRORS connect=%d read=%d write=%d timeout=%d\n", e.connect, e.read, e.write, e.timeout))
end
