-- Loads 40 chunks; each keeps 10 tables and leaves 300 as garbage, so GC cycles free old blocks
-- all the time: the post-GC figures must never exceed the live ones at any snapshot.
kept = {}
for n = 1, 40 do
    local chunk = assert(load([[
        local garbage = {}
        for i = 1, 300 do garbage[i] = { i } end
        local keep = {}
        for i = 1, 10 do keep[i] = { i } end
        return keep
    ]], "=chunk" .. n))
    kept[n] = chunk()
    local stop = os.clock() + 0.01
    while os.clock() < stop do end
end
