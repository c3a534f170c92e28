-- Run by stock lua5.3 with luamem.so on LUA_CPATH; arg[1] is the database.
local luamem = require "luamem"
assert(luamem.stop() == nil, "stop before start")
assert(luamem.flush() == nil, "flush before start")
assert(luamem.start{ db = arg[1], interval = 0.05, build = "mod-build", name = "gate" } == true)
local ok, message = luamem.start{ db = arg[1] }
assert(ok == nil and message == "luamem is already tracking this Lua state", message)
module_kept = {}
for i = 1, 400 do module_kept[i] = {} end                                  -- line 9
local gen = coroutine.wrap(function()
  while true do coroutine.yield({ "in coroutine" }) end                    -- line 11
end)
module_wrapped = {}
for i = 1, 25 do module_wrapped[i] = gen() end                             -- line 14
local lua_bytes = math.tointeger(collectgarbage("count") * 1024)
local stats = luamem.stats()
assert(stats.live_bytes + stats.untracked_bytes == lua_bytes,
  ("tracked %d + untracked %d ~= %d"):format(stats.live_bytes, stats.untracked_bytes, lua_bytes))
assert(stats.untracked_bytes > 0 and stats.tracking == true)
assert(luamem.flush() == true)
assert(luamem.stop() == true)
assert(luamem.stats().tracking == false)
local again, why = luamem.stop()
assert(again == nil and why == "luamem is not tracking this Lua state", why)
assert(luamem.flush() == nil, "flush after stop")
after_stop = {}
for i = 1, 50 do after_stop[i] = {} end                                    -- line 26: not recorded
print("module ok")
