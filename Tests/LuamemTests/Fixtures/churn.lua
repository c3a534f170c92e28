-- 500 sites whose figures change all the time, for arg[1] CPU seconds: every snapshot writes a
-- row for each, so the file grows steadily unless history is removed.
local sites, pools = {}, {}
for i = 1, 500 do
    sites[i] = assert(load("local pool = ... pool[#pool % 50 + 1] = {}", "=site" .. i))
    pools[i] = {}
end
local stop = os.clock() + tonumber(arg[1] or "8")
while os.clock() < stop do
    for i = 1, 500 do sites[i](pools[i]) end
end
print("churned")
