-- Re-runs itself through the interpreter prefix in arg[-n], as Penlight's pl.app, busted and
-- the Lua test suite do, with a lua5.3 option in between; prints what the child printed.
if arg[1] == "child" then
    print("child", x, select("#", ...))
    return
end
local lowest = -1
while arg[lowest - 1] do lowest = lowest - 1 end
local words = {}
for i = lowest, -1 do words[#words + 1] = string.format("%q", arg[i]) end
local command = table.concat(words, " ") .. " -e \"x = 42\" " .. string.format("%q", arg[0]) .. " child"
local child = assert(io.popen(command))
io.write(child:read("a"))
print("parent", child:close())
