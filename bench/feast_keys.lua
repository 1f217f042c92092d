-- wrk: Feast's POST /get-online-features for random keys of the bench snapshot (K00000000 .. K<rows-1>),
-- LOOKUP_KEYS entities per request (1: a single-key request), the view's score and label.
local rows = tonumber(os.getenv("LOOKUP_ROWS") or "10000000")
local keys = tonumber(os.getenv("LOOKUP_KEYS") or "1")
local view = os.getenv("FEAST_VIEW") or "predictions"
local head = string.format('{"features": ["%s:score", "%s:label"], "entities": {"entity_key": [', view, view)
local headers = {["Content-Type"] = "application/json"}
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)

request = function()
  local picked = {}
  for i = 1, keys do
    picked[i] = string.format('"K%08d"', math.random(0, rows - 1))
  end
  return wrk.format("POST", "/get-online-features", headers, head .. table.concat(picked, ", ") .. "]}}")
end

done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
