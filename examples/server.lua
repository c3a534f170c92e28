-- A small simulated game server for trying luamem:
--   luamem run --interval 0.5 examples/server.lua [ticks] [seconds_per_tick]
-- Every tick it handles player requests, builds reply messages and runs NPC behaviour in
-- coroutines. Most of that is garbage the collector takes back. One bug leaks steadily: every
-- reply is appended to a request log that nothing ever trims (see `log_request`).

local ticks = tonumber(arg[1]) or 300
local seconds_per_tick = tonumber(arg[2]) or 0.01

local players = {}
local request_log = {}
local name_cache = {}

local function wait(seconds)
  -- Lua has no sleep; spin on the CPU clock without allocating.
  local stop = os.clock() + seconds
  while os.clock() < stop do end
end

local function display_name(id)
  local name = name_cache[id]
  if not name then
    name = ("player-%04d"):format(id)             -- cached: grows only until every id is seen
    name_cache[id] = name
  end
  return name
end

local function log_request(message)
  request_log[#request_log + 1] = { at = os.time(), text = message }   -- the leak
end

local function handle_request(player, tick)
  local parts = {}
  for i = 1, 8 do
    parts[i] = ("%s:%d:%d"):format(display_name(player.id), tick, i)
  end
  local reply = table.concat(parts, ";")           -- garbage after the tick
  log_request(reply)
  return #reply
end

local function npc(id)
  return coroutine.wrap(function()
    local path = {}
    while true do
      for step = 1, 16 do
        path[step] = { x = id + step, y = step }  -- reused: 16 steps per NPC
        coroutine.yield(step)
      end
    end
  end)
end

for id = 1, 200 do
  players[id] = { id = id, inventory = {} }
end
local npcs = {}
for id = 1, 20 do npcs[id] = npc(id) end

local sent = 0
for tick = 1, ticks do
  for n = 1, 10 do
    local player = players[(tick * 7 + n) % #players + 1]
    sent = sent + handle_request(player, tick)
  end
  for _, step in ipairs(npcs) do step() end
  wait(seconds_per_tick)
end
print(("served %d ticks, %d bytes of replies, %d log entries"):format(ticks, sent, #request_log))
