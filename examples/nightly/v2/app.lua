-- Build v2 of a small service used by examples/nightly.sh. Compared with v1 it has this longer
-- header comment, which moves every line below it,
-- and one regression: remember_session now keeps each request's history in the session.
-- (The rest is unchanged.)
sessions, log = {}, {}

local function remember_session(id)
  local session = sessions[id] or { id = id, name = "user" .. id, history = {} }
  session.history[#session.history + 1] = { at = id }
  sessions[id] = session
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
