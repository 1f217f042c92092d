-- wrk: each request asks for a random key of the bench snapshot (keys K00000000 .. K<rows-1>).
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local rows = tonumber(os.getenv("LOOKUP_ROWS") or "10000000")

request = function()
  return wrk.format("GET", "/v1/predictions/" .. common.keys(rows, 1)[1])
end

done = common.done
