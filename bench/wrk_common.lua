-- Shared by the bench/*.lua wrk scripts: random snapshot keys and the RESULT line the bench scripts parse.
--   local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local common = {}

math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)

-- `n` random keys of a snapshot of `rows` keys (K00000000 .. K<rows-1>), each formatted with `fmt`.
function common.keys(rows, n, fmt)
  local picked = {}
  for i = 1, n do
    picked[i] = string.format(fmt or "K%08d", math.random(0, rows - 1))
  end
  return picked
end

-- wrk's done(): one line, RESULT requests=.. duration_us=.. p50_us=.. p99_us=.. non2xx=.. socket_errors=..
function common.done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

return common
