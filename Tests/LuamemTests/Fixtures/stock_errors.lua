-- Replaced library functions called wrongly: the messages must be the stock ones.
print(pcall(os.exit, "x"))
print(pcall(coroutine.resume, nil))
print(pcall(coroutine.resume))
print(pcall(coroutine.wrap, 1))
print(select(2, pcall(function() coroutine.resume(nil) end)))
print(select(2, pcall(function() os.exit({}) end)))
print(select(2, pcall(function() coroutine.wrap(1) end)))
print(select(2, pcall(function() coroutine.wrap(function() error("inside") end)() end)))
print(coroutine.resume(coroutine.create(function() end), 1))
local dead = coroutine.create(function() end)
coroutine.resume(dead)
print(coroutine.resume(dead))
print(debug.getinfo(os.exit, "u").nups, debug.getinfo(coroutine.resume, "u").nups)
-- Tracking goes on after a failed os.exit, when there is tracking.
local ok, luamem = pcall(require, "luamem")
if ok and luamem.stats().tracking then
    print("flush", luamem.flush())
end
