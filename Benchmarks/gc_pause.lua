-- Full-collection time with 100k distinct allocation sites alive, the case where the tracker's
-- per-GC-cycle pass over every counter slot runs on the Lua thread. Compare:
--   lua5.3 Benchmarks/gc_pause.lua
--   .build/release/luamem run --max-sites 200000 Benchmarks/gc_pause.lua
local n = tonumber(arg[1] or "100000")
kept = {}
for i = 1, n do kept[i] = assert(load("return {" .. i .. "}", "=s" .. i))() end
local worst, total = 0, 0
for round = 1, 20 do
  local start = os.clock()
  collectgarbage()
  local spent = os.clock() - start
  total = total + spent
  if spent > worst then worst = spent end
end
print(("full GC: mean %.2f ms, worst %.2f ms"):format(total / 20 * 1000, worst * 1000))
