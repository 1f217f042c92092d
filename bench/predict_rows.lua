-- wrk: each request POSTs one line of ROWS_FILE (JSON bodies, one per line), picked at random.
local path = os.getenv("PREDICT_PATH") or "/v1/predict"
local bodies = {}
for line in io.lines(os.getenv("ROWS_FILE")) do bodies[#bodies + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
local headers = {["Content-Type"] = "application/json"}

request = function()
  return wrk.format("POST", path, headers, bodies[math.random(#bodies)])
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
