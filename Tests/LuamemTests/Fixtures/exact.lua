-- The tracked live total must equal Lua's own count at the same moment.
local luamem = require "luamem"
luamem.stats()                                   -- warm up the call path
local keep, checks = {}, 0
for i = 1, 30000 do
  keep[i % 700 + 1] = { tostring(i), string.rep("x", i % 200), i * 1.5 }
  if i % 101 == 0 then
    local lua_bytes = math.tointeger(collectgarbage("count") * 1024)
    local stats = luamem.stats()
    checks = checks + 1
    if stats.live_bytes ~= lua_bytes then
      io.stderr:write(("mismatch at %d: tracked %d, lua %d\n"):format(i, stats.live_bytes, lua_bytes))
      os.exit(2)
    end
  end
end
local co = coroutine.wrap(function()
  for i = 1, 100 do coroutine.yield({ i }) end
end)
for i = 1, 100 do keep[i] = co() end
local lua_bytes = math.tointeger(collectgarbage("count") * 1024)
assert(luamem.stats().live_bytes == lua_bytes, "mismatch after coroutines")
local before = luamem.stats()
assert(before.snapshots == 1, "the start snapshot")
assert(luamem.flush() == true)
assert(luamem.stats().snapshots == 2, "flush wrote a snapshot")
print("exact", checks + 1)
