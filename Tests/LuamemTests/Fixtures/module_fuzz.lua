-- Random option tables for luamem.start (arg[1]: database directory, arg[2]: seed). Every call
-- must either work or fail cleanly: raise "bad argument" or return nil and a message.
local luamem = require "luamem"
math.randomseed(tonumber(arg[2]))
local keys = { "db", "interval", "build", "name", "depth", "bogus", 1 }
local function value()
  local pick = math.random(12)
  if pick == 1 then return math.random(-5, 40) end
  if pick == 2 then return math.random() * 10 - 1 end
  if pick == 3 then return 0 / 0 end
  if pick == 4 then return math.huge end
  if pick == 5 then return arg[1] .. "/fuzz" .. math.random(3) .. ".db" end
  if pick == 6 then return "" end
  if pick == 7 then return {} end
  if pick == 8 then return true end
  if pick == 9 then return print end
  if pick == 10 then return "/nonexistent/" .. math.random(9) .. ".db" end
  if pick == 11 then return math.random(1, 32) end
  return nil
end
local worked, raised, refused = 0, 0, 0
for _ = 1, 300 do
  local options = {}
  for _ = 1, math.random(0, 4) do options[keys[math.random(#keys)]] = value() end
  local ok, result, message = pcall(luamem.start, math.random(10) == 1 and value() or options)
  if not ok then
    assert(type(result) == "string" and result:find("bad argument #1 to 'luamem.start'", 1, true), result)
    raised = raised + 1
  elseif result == true then
    worked = worked + 1
    local junk = {} for i = 1, 100 do junk[i] = { i } end
    assert(luamem.flush() == true)
    assert(luamem.stop() == true)
  else
    assert(result == nil and type(message) == "string" and #message > 0)
    refused = refused + 1
  end
end
assert(luamem.stats().live_bytes > 0)
print("fuzz ok", worked > 0, raised > 0, refused > 0)
