-- Too short for a GC cycle to complete: ten tables on line 3. The explicit return skips the
kept = {}
for i = 1, 10 do kept[i] = {} end
return -- collection that `luamem run` puts at the end of a chunk
