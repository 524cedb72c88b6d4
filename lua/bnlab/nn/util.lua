-- Argument checking and formatting shared by the nn modules, the model
-- builders and the initializers: every message names the function, the
-- argument, what was expected and what came.
local bn = require "bnlab"

local util = {}

--- "[2 x 3 x 8 x 8]" (the core's spelling) for a tensor or a shape table.
function util.shape_str(t)
  local shape = bn.is_tensor(t) and t:shape() or t
  if #shape == 0 then return "[]" end
  return "[" .. table.concat(shape, " x ") .. "]"
end

--- A value as a message shows it: strings quoted, others by type and value.
function util.show(v)
  if type(v) == "string" then return ("'%s'"):format(v) end
  if type(v) == "number" then return ("number %s"):format(tostring(v)) end
  if bn.is_tensor(v) then return "tensor " .. util.shape_str(v) end
  return type(v)
end

--- 1234567 -> "1,234,567".
function util.commas(n)
  local s = tostring(math.tointeger(n) or n)
  local sign, digits = s:match("^(-?)(%d+)$")
  if not digits then return s end
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return sign .. digits
end

local function fail(where, message, level)
  error(where .. ": " .. message, (level or 1) + 2)
end
util.fail = fail

--- An integer >= min (an integral float is accepted and converted).
function util.integer(v, where, what, min)
  local i = type(v) == "number" and math.tointeger(v)
  if not i or (min and i < min) then
    fail(where, ("%s expected an integer%s, got %s"):format(what, min and (" >= " .. min) or "", util.show(v)), 2)
  end
  return i
end

--- A number or a pair {h, w} of integers >= min, returned as given (the C
-- ops accept both forms and check the pair's contents again).
function util.int_or_pair(v, where, what, min)
  if type(v) == "table" then
    if #v ~= 2 then fail(where, ("%s expected a number or a pair {h, w}, got a table of %d"):format(what, #v), 2) end
    return { util.integer(v[1], where, what .. "[1]", min), util.integer(v[2], where, what .. "[2]", min) }
  end
  return util.integer(v, where, what, min)
end

function util.number(v, where, what, lo, hi)
  if type(v) ~= "number" or v ~= v or (lo and v < lo) or (hi and v > hi) then
    local range = (lo and hi) and (" in [%g, %g]"):format(lo, hi) or lo and (" >= %g"):format(lo) or ""
    fail(where, ("%s expected a number%s, got %s"):format(what, range, util.show(v)), 2)
  end
  return v
end

function util.boolean(v, where, what)
  if type(v) ~= "boolean" then fail(where, ("%s expected a boolean, got %s"):format(what, util.show(v)), 2) end
  return v
end

--- One of the strings in `choices` (a list).
function util.choice(v, where, what, choices)
  for _, c in ipairs(choices) do
    if v == c then return v end
  end
  fail(where, ("%s expected one of '%s', got %s"):format(what, table.concat(choices, "', '"), util.show(v)), 2)
end

--- Options table check: `opts` may be nil; every key must be in `known`
-- (a set), so a misspelt option is an error, never silently ignored.
-- Integer keys 1..npos are allowed (positional arguments in the table form).
function util.options(opts, where, known, npos)
  if opts == nil then return {} end
  if type(opts) ~= "table" then fail(where, ("options expected a table, got %s"):format(util.show(opts)), 2) end
  local unknown = {}
  for k in pairs(opts) do
    local positional = math.type(k) == "integer" and k >= 1 and k <= (npos or 0)
    if not positional and not known[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    local names = {}
    for k in pairs(known) do names[#names + 1] = k end
    table.sort(names)
    fail(where, ("unknown option%s '%s' (known: %s)"):format(#unknown > 1 and "s" or "",
      table.concat(unknown, "', '"), #names > 0 and table.concat(names, ", ") or "none"), 2)
  end
  return opts
end

--- A set from a list of names.
function util.set(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

return util
