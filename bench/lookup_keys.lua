-- wrk: each request asks for a random key of the bench snapshot (keys K00000000 .. K<rows-1>).
local rows = tonumber(os.getenv("LOOKUP_ROWS") or "10000000")
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)

request = function()
  return wrk.format("GET", string.format("/v1/predictions/K%08d", math.random(0, rows - 1)))
end

done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
