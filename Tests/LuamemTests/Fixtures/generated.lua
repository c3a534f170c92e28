-- Generates many chunks, each with its own allocation site, and keeps one table from each.
generated = {}
for i = 1, tonumber(arg[1] or "3000") do
  local chunk = assert(load("return { " .. i .. " }", "=generated" .. i))
  generated[i] = chunk()
end
print(#generated)
