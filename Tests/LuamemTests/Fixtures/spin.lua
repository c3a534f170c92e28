-- Allocates in a loop for arg[1] seconds (default 30), or until a signal ends it.
local kept, started, seconds = {}, os.time(), tonumber(arg[1]) or 30
while os.time() - started < seconds do
    for i = 1, 1000 do kept[i] = string.rep("x", 100) .. i end
end
