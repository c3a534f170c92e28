-- Three memory patterns side by side, for `luamem leaks`. Line numbers are asserted.
local seconds, waste = tonumber(arg[1] or "2"), tonumber(arg[2] or "200")
leak, cache, load = {}, {}, {}
local function garbage() local t = {} for i = 1, waste do t[i] = { i } end end
local start = os.clock()
local tick = 0
while os.clock() - start < seconds do
  tick = tick + 1
  local progress = (os.clock() - start) / seconds
  leak[#leak + 1] = { tick, "leaked" }                                      -- line 10: steady leak
  if progress < 0.2 then cache[#cache + 1] = { tick, "cached" } end         -- line 11: warm-up cache
  local want = math.floor(300 + 300 * math.sin(progress * 6 * math.pi))
  while #load < want do load[#load + 1] = { tick } end                      -- line 13: follows load
  while #load > want do load[#load] = nil end
  garbage()
  local stop = os.clock() + 0.002
  while os.clock() < stop do end
end
