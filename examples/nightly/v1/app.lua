-- Build v1 of a small service used by examples/nightly.sh: a session table, a message log
-- that keeps the last 200 messages, and per-request garbage.
sessions, log = {}, {}

local function remember_session(id)
  sessions[id] = { id = id, name = "user" .. id }
end

local function log_message(text)
  log[#log % 200 + 1] = text
end

local function handle(id)
  remember_session(id % 500)
  local parts = {}
  for i = 1, 5 do parts[i] = ("%d:%d"):format(id, i) end
  log_message(table.concat(parts, ","))
end

for id = 1, tonumber(arg[1] or "20000") do handle(id) end
collectgarbage()
collectgarbage()
