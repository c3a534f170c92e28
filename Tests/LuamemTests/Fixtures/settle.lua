-- 300 sites (chunks settle1 … settle300, line 1), several groups of counter slots: each
-- allocates its five tables in one GC cycle and never again.
local kept = {}
for i = 1, 300 do
  kept[i] = assert(load("local t = {} for j = 1, 4 do t[j] = {} end return t", "=settle" .. i))()
end
collectgarbage()
-- Freed one cycle after they were allocated (young at that cycle's end): every odd site keeps 4.
for i = 1, 300, 2 do kept[i][1] = nil end
collectgarbage()
collectgarbage()
print(#kept)
