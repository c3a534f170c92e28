-- A game-server tick: entities as tables, closures as callbacks, coroutines as scripted
-- behaviours, short-lived event tables every tick.
local ticks = tonumber(arg and arg[1]) or 20000
local entities = {}
local function spawn(id)
  local e = { id = id, x = 0, y = 0, hp = 100, buffs = {} }
  e.ai = coroutine.wrap(function()
    while true do
      for step = 1, 4 do
        e.x = e.x + step
        coroutine.yield({ kind = "move", id = e.id, x = e.x })
      end
      e.buffs[#e.buffs % 8 + 1] = { name = "haste", until_tick = e.x + 10 }
      coroutine.yield({ kind = "buff", id = e.id })
    end
  end)
  e.on_hit = function(damage) e.hp = e.hp - damage; return e.hp end
  return e
end
for id = 1, 200 do entities[id] = spawn(id) end
local events = 0
for tick = 1, ticks do
  local queue = {}
  for id = 1, #entities, 4 do
    local e = entities[(id + tick) % #entities + 1]
    queue[#queue + 1] = e.ai()
    if tick % 7 == 0 then e.on_hit(1) end
  end
  for _, event in ipairs(queue) do
    if event.kind == "move" then events = events + 1 end
  end
  if tick % 500 == 0 then
    local old = table.remove(entities, 1)
    entities[#entities + 1] = spawn(old.id + 1000)
  end
end
print("events", events)
