-- Prints whether Foundation is mapped into this process, and what LUAMEM_RUN_OPTIONS holds.
local maps = assert(io.open("/proc/self/maps")):read("a")
print(maps:find("Foundation", 1, true) ~= nil, os.getenv("LUAMEM_RUN_OPTIONS"))
