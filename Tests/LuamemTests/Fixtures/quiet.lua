-- Quiet and short: 1,000 strings of 256 bytes kept on line 5 in a local; line 11 makes 300
-- tables, garbage but the last. Few GC cycles complete before os.exit, or, given "return",
local kept = {}
for i = 1, 1000 do
    kept[i] = string.rep("k", 250) .. string.format("%06d", i)
end
-- before the chunk runs off its end.
local stop = os.clock() + 0.3
while os.clock() < stop do end
local last
for i = 1, 300 do last = {i} end
if arg[1] ~= "return" then os.exit(0) end
