-- 60 strings of 3,000 bytes (3,025 with Lua's header) kept on line 4: a workload whose sampled
-- estimate at --sample 4KiB can be compared with the exact 181,500 bytes.
kept = {}
for i = 1, 60 do kept[i] = string.rep("x", 3000) end
collectgarbage()
collectgarbage()
