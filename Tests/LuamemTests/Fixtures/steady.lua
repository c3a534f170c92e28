-- Runs for arg[1] seconds keeping 5000 tables (line 6), then prints a fixed result and exits
-- with status 7: the output and status luamem must leave alone whatever happens to its database.
kept = {}
local stop, i = os.clock() + tonumber(arg[1] or "1"), 0
while os.clock() < stop do
  i = i + 1; kept[i % 5000 + 1] = { i % 5000 }                             -- line 6
end
local sum = 0
for _, t in ipairs(kept) do sum = sum + t[1] end
print("kept", #kept, "sum", sum)
os.exit(7)
