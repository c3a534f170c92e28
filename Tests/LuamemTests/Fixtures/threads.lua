-- Prints this process's threads as "name nice policy" lines, from /proc (policy 0 is
-- SCHED_OTHER, 3 SCHED_BATCH). The script's own thread comes first.
local function stat(path)
  local file = assert(io.open(path))
  local text = file:read("a")
  file:close()
  -- The name is in parentheses and may hold anything; the fields after it start at field 3.
  local name, rest = text:match("^%d+ %((.*)%) (.*)$")
  local fields = {}
  for field in rest:gmatch("%S+") do fields[#fields + 1] = field end
  return name, fields[19 - 2], fields[41 - 2]
end
local pid = assert(io.open("/proc/self/stat")):read("n")
print(stat("/proc/thread-self/stat"))
local tasks = assert(io.popen("ls /proc/" .. pid .. "/task"))
for tid in tasks:lines() do print(stat("/proc/" .. pid .. "/task/" .. tid .. "/stat")) end
tasks:close()
