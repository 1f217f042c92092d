-- wrk: Feast's POST /get-online-features for random keys of the bench snapshot (K00000000 .. K<rows-1>),
-- LOOKUP_KEYS entities per request (1: a single-key request), the view's score and label.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local rows = tonumber(os.getenv("LOOKUP_ROWS") or "10000000")
local keys = tonumber(os.getenv("LOOKUP_KEYS") or "1")
local view = os.getenv("FEAST_VIEW") or "predictions"
local head = string.format('{"features": ["%s:score", "%s:label"], "entities": {"entity_key": [', view, view)
local headers = {["Content-Type"] = "application/json"}

request = function()
  local picked = common.keys(rows, keys, '"K%08d"')
  return wrk.format("POST", "/get-online-features", headers, head .. table.concat(picked, ", ") .. "]}}")
end

done = common.done
