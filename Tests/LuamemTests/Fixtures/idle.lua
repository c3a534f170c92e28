-- Allocates once, then spins without allocating for a while: interval snapshots in between
-- must not add per-site rows. With a second argument, creates that file when the spin begins.
held = {}
for i = 1, 100 do held[i] = { i } end
if arg[2] then assert(io.open(arg[2], "w")):close() end
local stop = os.clock() + tonumber(arg[1] or "0.5")
while os.clock() < stop do end
