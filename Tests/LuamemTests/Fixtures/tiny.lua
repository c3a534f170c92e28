-- Too short for a GC cycle to complete: ten tables on line 3.
kept = {}
for i = 1, 10 do kept[i] = {} end
