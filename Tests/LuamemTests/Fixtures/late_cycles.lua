-- A steady leak and a warm-up cache, with the GC cycles run by hand: four early in the run and one
-- late, as a growing heap spaces them; each is flushed at once. Line numbers are asserted.
collectgarbage("stop")
local luamem, seconds = require "luamem", tonumber(arg[1] or "2")
local collections = { 0.05, 0.1, 0.15, 0.2, 0.7 }  -- shares of the run
local function now() local f = io.open("/proc/uptime") local s = f:read("n") f:close() return s end
leak, cache = {}, {}
local start, elapsed, done = now(), 0, 0
while elapsed < seconds do
  local progress = elapsed / seconds
  while #leak < 400 * elapsed do leak[#leak + 1] = { "leaked" } end  -- line 11: steady leak
  if progress < 0.3 then cache[#cache + 1] = { "cached" } end       -- line 12: warm-up cache
  if collections[done + 1] and progress >= collections[done + 1] then
    collectgarbage()
    -- The snapshot at once: the figures after this cycle, not the next interval's.
    assert(luamem.flush())
    done = done + 1
  end
  local stop = os.clock() + 0.002
  while os.clock() < stop do end
  elapsed = now() - start
end
assert(luamem.flush())  -- the window ends here, not at the last interval the flusher made
