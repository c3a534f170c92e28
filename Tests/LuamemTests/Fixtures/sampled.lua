-- Known retained bytes for checking sampled estimates: 20000 tables of 56 bytes (line 4) and
-- 2000 strings of 1000 characters (line 5, 1025 bytes each with Lua's header).
small, large = {}, {}
for i = 1, 20000 do small[i] = {} end
for i = 1, 2000 do large[i] = string.rep(string.char(65 + i % 26), 999) .. i % 10 end
collectgarbage()
collectgarbage()
