-- JSON for the engines' test. Empty tables become {}: Argo CD and CEL read [] and {} alike there.
local function json(v, out)
  local kind = type(v)
  if v == nil then
    out[#out + 1] = "null"
  elseif kind == "boolean" then
    out[#out + 1] = tostring(v)
  elseif math.type(v) == "integer" then
    out[#out + 1] = string.format("%d", v)
  elseif kind == "number" then
    out[#out + 1] = string.format("%.17g", v)
  elseif kind == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  elseif #v > 0 then
    out[#out + 1] = "["
    for i, item in ipairs(v) do
      out[#out + 1] = i > 1 and "," or ""
      json(item, out)
    end
    out[#out + 1] = "]"
  else
    out[#out + 1] = "{"
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for i, k in ipairs(keys) do
      out[#out + 1] = i > 1 and "," or ""
      json(k, out)
      out[#out + 1] = ":"
      json(v[k], out)
    end
    out[#out + 1] = "}"
  end
end

-- Writes `items` to `path` as a JSON array, one item a line.
local function export(path, items)
  local out = { "[" }
  for _, item in ipairs(items) do
    out[#out + 1] = #out > 1 and ",\n" or "\n"
    json(item, out)
  end
  out[#out + 1] = "\n]\n"
  local f = assert(io.open(path, "w"))
  f:write(table.concat(out))
  f:close()
end

return { encode = json, export = export }
