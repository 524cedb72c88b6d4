-- Shared helpers of bn.plot: errors raised at the user's line, option
-- checks, colours, and turning tensors/tables into Lua arrays. Not part of
-- the public API.
local core = require "bnlab.core"

local util = {}

local THIS_DIR = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")

-- Level (for error()) of the first frame outside lua/bnlab/plot, so an error
-- points at the user's line however deep inside bn.plot it was found.
local function user_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return 1 end
    local dir = info.source:match("^@(.*)/[^/]*$")
    if dir ~= THIS_DIR then return level - 1 end
    level = level + 1
  end
end

--- Raises "bn.plot.<fn>: <message>" at the user's line.
function util.fail(fn, fmt, ...)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  error("bn.plot." .. fn .. ": " .. msg, user_level())
end

--- Runs f(...); a Lua error from the C primitives ("bn.render.x: msg") is
-- raised again as "bn.plot.<fn>: msg" at the user's line.
function util.guard(fn, f, ...)
  local ok, a, b, c = pcall(f, ...)
  if ok then return a, b, c end
  local msg = tostring(a)
  if msg:find("^bn%.plot%.") then error(msg, 0) end
  msg = msg:gsub("^[^:]*:%d+: ", ""):gsub("^bn%.render%.[%w_]+: ", "")
  util.fail(fn, "%s", msg)
end

function util.shape_str(t)
  return "[" .. table.concat(t:shape(), " x ") .. "]"
end

--- A short description of a value for messages.
function util.describe(v)
  local t = type(v)
  if t == "string" then return ("string '%s'"):format(#v > 40 and v:sub(1, 37) .. "..." or v) end
  if t == "number" then return ("number %s"):format(tostring(v)) end
  if t == "boolean" then return "boolean " .. tostring(v) end
  if core.is_tensor(v) then
    return "tensor " .. (v:is_closed() and "(closed)" or util.shape_str(v))
  end
  return t
end

--- opts must be nil or a table whose string keys are all in `known` (a set).
function util.check_opts(fn, opts, known, where)
  where = where or "argument #1"
  if opts == nil then return {} end
  if type(opts) ~= "table" or core.is_tensor(opts) then
    util.fail(fn, "%s expected a table of options, got %s", where, util.describe(opts))
  end
  for k in pairs(opts) do
    if type(k) == "string" and not known[k] then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      util.fail(fn, "unknown option '%s'%s (known: %s)", k, where == "argument #1" and "" or (" in " .. where),
        table.concat(names, ", "))
    end
  end
  return opts
end

function util.set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function opt_name(name, where)
  return where and (where .. "." .. name) or ("option '" .. name .. "'")
end

function util.str(fn, opts, name, def, where)
  local v = opts[name]
  if v == nil then return def end
  if type(v) ~= "string" then util.fail(fn, "%s expected a string, got %s", opt_name(name, where), util.describe(v)) end
  return v
end

--- A label: a string, or a number (written with %g).
function util.label(fn, opts, name, where)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) == "number" then return ("%g"):format(v) end
  if type(v) ~= "string" then util.fail(fn, "%s expected a string, got %s", opt_name(name, where), util.describe(v)) end
  return v
end

function util.bool(fn, opts, name, def, where)
  local v = opts[name]
  if v == nil then return def end
  if type(v) ~= "boolean" then util.fail(fn, "%s expected a boolean, got %s", opt_name(name, where), util.describe(v)) end
  return v
end

function util.num(fn, opts, name, def, where, check, expected)
  local v = opts[name]
  if v == nil then return def end
  if type(v) ~= "number" or v ~= v or (check and not check(v)) then
    util.fail(fn, "%s expected %s, got %s", opt_name(name, where), expected or "a number", util.describe(v))
  end
  return v
end

function util.int(fn, opts, name, lo, hi, def, where)
  local v = opts[name]
  if v == nil then return def end
  local i = math.type(v) and math.tointeger(v)
  if not i or i < lo or i > hi then
    util.fail(fn, "%s expected an integer in [%d, %d], got %s", opt_name(name, where), lo, hi, util.describe(v))
  end
  return i
end

function util.choice(fn, opts, name, choices, def, where)
  local v = opts[name]
  if v == nil then return def end
  for _, c in ipairs(choices) do
    if v == c then return v end
  end
  util.fail(fn, "%s expected one of %s, got %s", opt_name(name, where), table.concat(choices, ", "), util.describe(v))
end

--- {lo, hi} limits where either may be nil (or missing).
function util.limits(fn, opts, name, where)
  local v = opts[name]
  if v == nil then return nil end
  if type(v) ~= "table" or core.is_tensor(v) then
    util.fail(fn, "%s expected {lo, hi}, got %s", opt_name(name, where), util.describe(v))
  end
  for i = 1, 2 do
    local x = v[i]
    if x ~= nil and (type(x) ~= "number" or x ~= x or x == math.huge or x == -math.huge) then
      util.fail(fn, "%s[%d] expected a finite number or nil, got %s", opt_name(name, where), i, util.describe(x))
    end
  end
  if v[1] and v[2] and not (v[1] < v[2]) then
    util.fail(fn, "%s expected lo < hi, got {%g, %g}", opt_name(name, where), v[1], v[2])
  end
  return { v[1], v[2] }
end

-- ---- colours ----------------------------------------------------------------------

util.palette = {
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
}

local named = {
  black = 0x000000, white = 0xffffff, gray = 0x808080, grey = 0x808080, lightgray = 0xd3d3d3,
  darkgray = 0x404040, red = 0xd62728, green = 0x2ca02c, blue = 0x1f77b4, orange = 0xff7f0e,
  purple = 0x9467bd, brown = 0x8c564b, pink = 0xe377c2, olive = 0xbcbd22, cyan = 0x17becf,
  yellow = 0xffd700, magenta = 0xff00ff,
}
for i, name in ipairs { "blue", "orange", "green", "red", "purple", "brown", "pink", "gray", "olive", "cyan" } do
  named["tab:" .. name] = tonumber(util.palette[i]:sub(2), 16)
  named["C" .. (i - 1)] = tonumber(util.palette[i]:sub(2), 16)
end

--- A colour as 0xRRGGBB: "#rrggbb", "#rgb", a name ("red", "tab:blue",
-- "C0".."C9"), an integer, or {r, g, b} with components in [0, 1].
function util.color(fn, v, what)
  if type(v) == "number" and math.type(v) == "integer" and v >= 0 and v <= 0xffffff then return v end
  if type(v) == "string" then
    if named[v] then return named[v] end
    local hex = v:match("^#(%x%x%x%x%x%x)$")
    if hex then return tonumber(hex, 16) end
    local r, g, b = v:match("^#(%x)(%x)(%x)$")
    if r then return tonumber(r .. r .. g .. g .. b .. b, 16) end
  elseif type(v) == "table" and #v == 3 then
    local ok, out = true, 0
    for i = 1, 3 do
      local c = v[i]
      if type(c) ~= "number" or not (c >= 0 and c <= 1) then ok = false break end
      out = out * 256 + math.floor(c * 255 + 0.5)
    end
    if ok then return out end
  end
  util.fail(fn, "%s expected a colour (\"#rrggbb\", a name such as \"red\" or \"tab:blue\", or {r, g, b} in [0, 1]), got %s",
    what, util.describe(v))
end

--- a * t + b * (1 - t), per channel.
function util.mix(a, b, t)
  local out = 0
  for shift = 16, 0, -8 do
    local x, y = (a >> shift) & 255, (b >> shift) & 255
    out = out | (math.floor(x * t + y * (1 - t) + 0.5) << shift)
  end
  return out
end

--- Relative luminance of 0xRRGGBB in [0, 1] (to pick black or white on top of it).
function util.luminance(c)
  local r, g, b = (c >> 16) & 255, (c >> 8) & 255, c & 255
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255
end

-- ---- data ----------------------------------------------------------------------------

--- A 1-D tensor or a table of numbers as a Lua array of numbers (NaN and
-- ±Inf kept); nil when `v` is neither.
function util.numbers(v)
  if core.is_tensor(v) then
    if v:is_closed() or v:dim() ~= 1 then return nil end
    return v:totable()
  end
  if type(v) ~= "table" then return nil end
  local out = {}
  local n = #v
  for i = 1, n do
    local x = v[i]
    if type(x) ~= "number" then return nil end
    out[i] = x + 0.0
  end
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return nil end
  end
  return out
end

function util.finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

-- ---- CSV -----------------------------------------------------------------------------

--- A number for CSV: nan, inf, -inf; float32 values with 9 significant
-- digits (exact for them), other numbers with as many as round-trip.
function util.csv_number(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  if math.type(v) == "integer" then return tostring(v) end
  local ok, f = pcall(string.unpack, "f", string.pack("f", v))
  if ok and f == v then return ("%.9g"):format(v) end
  local s = ("%.15g"):format(v)
  if tonumber(s) == v then return s end
  return ("%.17g"):format(v)
end

function util.csv_field(s)
  s = tostring(s)
  if s:find('[,"\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

return util
