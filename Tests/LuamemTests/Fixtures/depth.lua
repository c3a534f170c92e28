local function leaf() local t = { "leaf" } return t end    -- line 1
local function middle() local t = leaf() return t end      -- line 2
local function top() local t = middle() return t end       -- line 3
deep = top()                                               -- line 4
