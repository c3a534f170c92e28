-- String building: concatenation, string.format, table.concat, gsub and string.rep, the way
-- servers build messages and logs.
local rounds = tonumber(arg and arg[1]) or 2000
local total = 0
for round = 1, rounds do
  local parts = {}
  for i = 1, 500 do
    parts[#parts + 1] = string.format("%d:%s;", i, ("k" .. i))
  end
  local message = table.concat(parts, ",")
  local escaped = message:gsub(";", "|")
  local padded = string.rep("-", 64) .. escaped .. string.rep("=", 64)
  local s = ""
  for i = 1, 50 do s = s .. i .. "," end
  total = total + #padded + #s + #message:upper()
end
print("bytes built", total)
