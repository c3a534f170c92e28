-- Ends while another process holds the database's write lock for longer than luamem waits for
-- it at the end (10 s): the final snapshot cannot be written. arg[1]: the database.
held = {}
for i = 1, 1000 do held[i] = { i } end
local marker = os.tmpname()
local holder = [[import os, sqlite3, sys, time
os.closerange(3, 4096)  # no pipe of the test's stays open behind luamem
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('BEGIN IMMEDIATE'); open(sys.argv[2], 'w').write('locked'); time.sleep(13)]]
local function quoted(text) return "'" .. text:gsub("'", "'\\''") .. "'" end
assert(os.execute(("python3 -c %s %s %s >/dev/null 2>&1 &"):format(
  quoted(holder), quoted(arg[1]), quoted(marker))))
local deadline = os.time() + 20
repeat
  local f = io.open(marker)
  local text = f and f:read("a")
  if f then f:close() end
until text == "locked" or os.time() > deadline
os.remove(marker)
print("locked")
