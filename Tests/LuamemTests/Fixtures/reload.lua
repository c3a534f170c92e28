-- Chunks are loaded, used and dropped again and again, so new chunks' source strings reuse the
-- addresses of collected ones. Each generation keeps exactly 7 tables from its own chunk.
kept = {}
for generation = 1, 150 do
  local code = "local t = {} for i = 1, 7 do t[i] = {} end return t"
  local chunk = assert(load(code, "=gen" .. generation))
  kept[generation] = chunk()
  chunk = nil
  collectgarbage()
end
