-- Allocates once, then spins without allocating for a while: interval snapshots in between
-- must not add per-site rows.
held = {}
for i = 1, 100 do held[i] = { i } end
local stop = os.clock() + tonumber(arg[1] or "0.5")
while os.clock() < stop do end
