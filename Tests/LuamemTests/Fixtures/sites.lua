-- Known allocation sites. Line numbers are asserted by SiteTests: keep them where they are.
retained = {}
local function keep_tables(n)
  for i = 1, n do
    retained[i] = {}                                   -- line 5: 300 tables kept
  end
end
keep_tables(300)

local function make_garbage()
  for i = 1, 200 do
    local s = string.format("garbage %d %s", i, ("y"):rep(64))  -- line 12: freed by the collect below
  end
end
make_garbage()

repeated = string.rep("abc", 1000)                     -- line 17: 3000 bytes via string.rep
joined = table.concat({ repeated, repeated }, "|")     -- line 18: via table.concat

local co = coroutine.create(function(n)
  local mine = {}
  for i = 1, n do mine[i] = { i } end                  -- line 22: inside a coroutine
  coroutine.yield(mine)
  return mine
end)
local ok, from_coroutine = coroutine.resume(co, 50)    -- line 26
kept_from_coroutine = from_coroutine

local gen = coroutine.wrap(function()
  while true do coroutine.yield({ "wrapped" }) end    -- line 30: inside coroutine.wrap
end)
wrapped = {}
for i = 1, 40 do wrapped[i] = gen() end                -- line 33
collectgarbage()
collectgarbage()
