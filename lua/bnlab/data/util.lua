-- Shared helpers of bn.data: errors raised at the user's line, option
-- checks, and seed derivation. Not part of the public API.
local core = require "bnlab.core"

local util = {}

local THIS_DIR = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")

-- Level (for error()) of the first frame outside lua/bnlab/data, counted
-- from the function that calls error(): errors point at the user's line
-- however deep inside bn.data they were found.
local function user_level()
  local level = 3 -- 1 = this function's caller (util.fail), 2 = its caller
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return 1 end
    local dir = info.source:match("^@(.*)/[^/]*$")
    if dir ~= THIS_DIR then return level - 1 end
    level = level + 1
  end
end

--- Raises "bn.data.<fn>: <message>" at the user's line.
function util.fail(fn, fmt, ...)
  local msg = select("#", ...) > 0 and fmt:format(...) or fmt
  error("bn.data." .. fn .. ": " .. msg, user_level())
end

--- A short description of a value for messages.
function util.describe(v)
  local t = type(v)
  if t == "string" then return ("string '%s'"):format(#v > 40 and v:sub(1, 37) .. "..." or v) end
  if t == "number" then return ("number %s"):format(tostring(v)) end
  if core.is_tensor(v) then
    return "tensor " .. (v:is_closed() and "(closed)" or ("[" .. table.concat(v:shape(), " x ") .. "]"))
  end
  return t
end

--- opts must be nil or a table whose keys are all in `known` (a set).
function util.check_opts(fn, opts, known, argname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    util.fail(fn, "%s expected a table of options, got %s", argname or "argument #1", util.describe(opts))
  end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      util.fail(fn, "unknown option %s (known: %s)", type(k) == "string" and ("'" .. k .. "'") or util.describe(k),
        table.concat(names, ", "))
    end
  end
  return opts
end

--- An integer option in [lo, hi] (integral floats accepted), or def.
function util.int(fn, opts, name, lo, hi, def)
  local v = opts[name]
  if v == nil then return def end
  local i = math.type(v) and math.tointeger(v)
  if not i or i < lo or (hi and i > hi) then
    util.fail(fn, "option '%s' expected an integer %s, got %s", name,
      hi and ("in [%d, %d]"):format(lo, hi) or (">= %d"):format(lo), util.describe(v))
  end
  return i
end

function util.bool(fn, opts, name, def)
  local v = opts[name]
  if v == nil then return def end
  if type(v) ~= "boolean" then util.fail(fn, "option '%s' expected a boolean, got %s", name, util.describe(v)) end
  return v
end

function util.str(fn, opts, name, choices, def)
  local v = opts[name]
  if v == nil then return def end
  for _, c in ipairs(choices) do
    if v == c then return v end
  end
  util.fail(fn, "option '%s' expected one of \"%s\", got %s", name, table.concat(choices, "\", \""), util.describe(v))
end

--- A string option (a name), or def.
function util.name(fn, opts, name, def)
  local v = opts[name]
  if v == nil then return def end
  if type(v) ~= "string" then util.fail(fn, "option '%s' expected a string, got %s", name, util.describe(v)) end
  return v
end

-- splitmix64 (Lua integers wrap around): a well-mixed 64-bit function.
local function splitmix(x)
  x = x + 0x9E3779B97F4A7C15
  x = (x ~ (x >> 30)) * 0xBF58476D1CE4E5B9
  x = (x ~ (x >> 27)) * 0x94D049BB133111EB
  return x ~ (x >> 31)
end

--- A seed in [0, 2^63) for one use (`stream`: 1 order, 2 augmentation,
-- 3 splits, ...) of one epoch under a user's seed: independent streams that
-- depend on nothing else.
function util.derive(seed, epoch, stream)
  return splitmix(splitmix(splitmix(seed) + epoch) + stream) & math.maxinteger
end

return util
