-- Chunks whose names hold a newline, a terminal escape sequence, bytes that are not UTF-8, a
-- semicolon and 1,200 characters; each keeps its own number of tables, to tell them apart.
local names = {
    "=a\nb", "=\27[31mred", "=bad\255name", "=bad\254name", "=semi;colon name",
    "=" .. string.rep("x", 1200) .. "end",
}
kept = {}
for index, name in ipairs(names) do
    local chunk = assert(load("local t = {} for i = 1, ... do t[i] = {} end return t", name))
    kept[index] = chunk(10 + index)
end
