-- Three memory patterns side by side, for `luamem leaks`. Line numbers are asserted.
local seconds, waste = tonumber(arg[1] or "2"), tonumber(arg[2] or "200")
leak, cache, load = {}, {}, {}
local function garbage() local t = {} for i = 1, waste do t[i] = { i } end end
-- Paced by the wall clock, the axis leaks fits against: on a busy machine a CPU-time pace
-- would squeeze the second half of the leak into the last moments of the run.
local function now() local f = io.open("/proc/uptime") local s = f:read("n") f:close() return s end
local start, tick = now(), 0
local elapsed = 0
while elapsed < seconds do
  tick = tick + 1
  local progress = elapsed / seconds
  while #leak < 400 * elapsed do leak[#leak + 1] = { tick, "leaked" } end  -- line 13: steady leak
  if progress < 0.2 then cache[#cache + 1] = { tick, "cached" } end         -- line 14: warm-up cache
  local want = math.floor(300 + 300 * math.sin(progress * 6 * math.pi))
  while #load < want do load[#load + 1] = { tick } end                      -- line 16: follows load
  while #load > want do load[#load] = nil end
  garbage()
  local stop = os.clock() + 0.002
  while os.clock() < stop do end
  elapsed = now() - start
end
