-- wrk: the lookup API's POST /v1/predictions/batch for LOOKUP_KEYS random keys of the bench snapshot
-- (keys K00000000 .. K<rows-1>) per request.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local rows = tonumber(os.getenv("LOOKUP_ROWS") or "10000000")
local keys = tonumber(os.getenv("LOOKUP_KEYS") or "100")
local headers = {["Content-Type"] = "application/json"}

request = function()
  local picked = common.keys(rows, keys, '"K%08d"')
  return wrk.format("POST", "/v1/predictions/batch", headers, '{"keys": [' .. table.concat(picked, ", ") .. "]}")
end

done = common.done
