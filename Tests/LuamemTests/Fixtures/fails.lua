local function inner() error("boom from fixture") end
local function outer() inner() end
outer()
