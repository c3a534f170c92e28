-- Runs out of memory on purpose (under ulimit -v): fills the address space with strings, gives
-- a little back, then makes new lines allocate while memory is short, so that the tracker's own
-- tables need memory that is not there. Prints what happened, then frees everything.
local hog = {}
pcall(function() while true do hog[#hog + 1] = string.rep("x", 65000) .. #hog end end)
local filled = #hog
for _ = 1, 8 do hog[#hog] = nil end
collectgarbage()
local chunks, errors = 0, 0
for round = 1, 400 do
  local ok = pcall(function()
    local lines = {}
    for i = 1, 150 do lines[i] = "t[" .. i .. "] = { " .. round .. " }" end
    local chunk = assert(load("local t = {}\n" .. table.concat(lines, "\n") .. "\nreturn t", "=gen" .. round))
    keep = keep or {}
    keep[#keep + 1] = chunk()
  end)
  if ok then chunks = chunks + 1 else errors = errors + 1 end
end
hog, keep = nil, nil
collectgarbage()
print(string.format("filled %d, chunks %d, errors %d", filled, chunks, errors))
