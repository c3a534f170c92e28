-- A short, quiet run: keeps 1,000 strings of 256 bytes on line 5 in a local of the main chunk
-- and makes little garbage, so few GC cycles complete before it ends with os.exit.
local kept = {}
for i = 1, 1000 do
    kept[i] = string.rep("k", 250) .. string.format("%06d", i)
end
local stop = os.clock() + 0.3
while os.clock() < stop do end
os.exit(0)
