-- wrk: each request POSTs one line of ROWS_FILE (JSON bodies, one per line), picked at random.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local path = os.getenv("PREDICT_PATH") or "/v1/predict"
local bodies = {}
for line in io.lines(os.getenv("ROWS_FILE")) do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/json"}

request = function()
  return wrk.format("POST", path, headers, bodies[math.random(#bodies)])
end

done = common.done
