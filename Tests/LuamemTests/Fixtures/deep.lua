-- Deep stacks through C frames and a coroutine, for --depth 8. Line numbers are asserted.
local function leaf(n) local t = { n } return t end
local function rec(n) local t = n == 0 and leaf(n) or rec(n - 1) return t end
local function viaPcall() local _, t = pcall(rec, 3) return t end
local function viaSort() local r table.sort({ 3, 1, 2 },
  function(a, b) r = r or rec(1) return a < b end) return r end
local co = coroutine.wrap(function() local t = rec(0) coroutine.yield(t) end)
kept = { viaPcall(), viaSort(), co() }
