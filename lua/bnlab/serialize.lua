-- Plain Lua values (nil, booleans, numbers, strings, nested tables with
-- string or integer keys) to a string and back, exactly: numbers keep their
-- integer/float kind and every bit (NaN and infinities included). Used for
-- checkpoint metadata and sweep state. Decoding first checks that the text
-- holds only what encode writes (constants, table constructors, 0/0 and
-- +-1/0), then loads it in an empty environment: a hostile checkpoint can
-- neither call anything nor loop ("(function() while true do end end)()"
-- would otherwise hang bn.train.load_checkpoint).

local serialize = {}

local function encode_number(x)
  if math.type(x) == "integer" then return string.format("%d", x) end
  if x ~= x then return "0/0" end
  if x == math.huge then return "1/0" end
  if x == -math.huge then return "-1/0" end
  return string.format("%.17g", x):gsub("^(-?%d+)$", "%1.0")
end

local function encode(v, out, seen)
  local t = type(v)
  if t == "nil" or t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "number" then
    out[#out + 1] = encode_number(v)
  elseif t == "string" then
    out[#out + 1] = string.format("%q", v)
  elseif t == "table" then
    if seen[v] then error("serialize: cycle in table", 3) end
    seen[v] = true
    out[#out + 1] = "{"
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) == type(b) then return a < b end
      return type(a) == "number"
    end)
    for _, k in ipairs(keys) do
      if type(k) ~= "string" and math.type(k) ~= "integer" then
        error("serialize: keys expected strings or integers, got " .. type(k), 3)
      end
      out[#out + 1] = "["
      encode(k, out, seen)
      out[#out + 1] = "]="
      encode(v[k], out, seen)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
    seen[v] = nil
  else
    error("serialize: cannot store a " .. t, 3)
  end
end

--- serialize.encode(value) -> string
function serialize.encode(value)
  local out = {}
  encode(value, out, {})
  return table.concat(out)
end

-- nil, or what makes `text` more than data: every token must be one
-- encode writes.
local WORDS = { ["true"] = true, ["false"] = true, ["nil"] = true }
local function not_data(text)
  local i, n = 1, #text
  while i <= n do
    local c = text:sub(i, i)
    if c:find("^[%s{}%[%]=,]") then
      i = i + 1
    elseif c == '"' then -- a %q string: up to the next unescaped quote
      local j = i + 1
      while true do
        local d = text:sub(j, j)
        if d == "" then return "an unfinished string" end
        if d == '"' then break end
        j = j + (d == "\\" and 2 or 1)
      end
      i = j + 1
    else
      local tok = text:match("^%-?1/0", i) or text:match("^0/0", i)
        or text:match("^%-?%d+%.?%d*[eE][%+%-]?%d+", i) or text:match("^%-?%d+%.?%d*", i)
        or text:match("^[%a_][%w_]*", i)
      if not tok or (tok:find("^[%a_]") and not WORDS[tok]) then
        return ("unexpected %q at byte %d"):format(tok or c, i)
      end
      i = i + #tok
    end
  end
  return nil
end

--- serialize.decode(text[, source]) -> value
function serialize.decode(text, source)
  local bad = type(text) ~= "string" and "not a string" or not_data(text)
  if bad then error("serialize: " .. (source or "data") .. " is corrupt: " .. bad, 2) end
  local chunk, err = load("return " .. text, "=" .. (source or "serialized data"), "t", {})
  if not chunk then error("serialize: " .. (source or "data") .. " is corrupt: " .. err, 2) end
  local ok, value = pcall(chunk)
  if not ok then error("serialize: " .. (source or "data") .. " is corrupt: " .. tostring(value), 2) end
  return value
end

return serialize
