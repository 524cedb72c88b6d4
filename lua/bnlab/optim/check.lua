-- Argument checks for bn.optim (internal): every message names the function,
-- the argument or option, what was expected and what came, e.g.
-- "bn.optim.SGD: option 'lr' expected a finite number >= 0, got number -1".
local bn = require "bnlab"

local check = {}

function check.shape_str(t)
  local shape = t:shape()
  if #shape == 0 then return "[]" end
  return "[" .. table.concat(shape, " x ") .. "]"
end

--- A value as messages show it.
function check.show(v)
  if v == nil then return "nil" end
  if type(v) == "string" then return ("string '%s'"):format(#v > 40 and v:sub(1, 37) .. "..." or v) end
  if type(v) == "number" then
    return "number " .. (v ~= v and "nan" or tostring(v))
  end
  if type(v) == "boolean" then return "boolean " .. tostring(v) end
  if bn.is_tensor(v) then
    if v:is_closed() then return "a closed tensor" end
    return "tensor " .. check.shape_str(v)
  end
  return type(v)
end

--- Raises "<where>: <message>" at the level of the public function's caller
-- (level counts from the function that called check.fail).
function check.fail(where, message, level)
  error(where .. ": " .. message, (level or 1) + 2)
end

local function finite(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end
check.finite = finite

--- A finite number, >= lo when lo is given; `what` is "option 'lr'" etc.
function check.number(v, where, what, lo, level)
  if not finite(v) or (lo and v < lo) then
    check.fail(where, ("%s expected a finite number%s, got %s"):format(what, lo and (" >= %g"):format(lo) or "",
      check.show(v)), (level or 1) + 1)
  end
  return v
end

--- An integer >= lo (an integral float is converted).
function check.integer(v, where, what, lo, level)
  local i = type(v) == "number" and math.tointeger(v)
  if not i or (lo and i < lo) then
    check.fail(where, ("%s expected an integer%s, got %s"):format(what, lo and (" >= %d"):format(lo) or "",
      check.show(v)), (level or 1) + 1)
  end
  return i
end

function check.boolean(v, where, what, level)
  if type(v) ~= "boolean" then
    check.fail(where, ("%s expected a boolean, got %s"):format(what, check.show(v)), (level or 1) + 1)
  end
  return v
end

function check.choice(v, where, what, choices, level)
  for _, c in ipairs(choices) do
    if v == c then return v end
  end
  check.fail(where, ("%s expected one of '%s', got %s"):format(what, table.concat(choices, "', '"), check.show(v)),
    (level or 1) + 1)
end

--- The options table at argument #arg: nil gives {}; a key not in `known`
-- (a list) is an error, so a misspelt option is never silently ignored.
function check.options(opts, where, arg, known, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" or bn.is_tensor(opts) then
    check.fail(where, ("argument #%d (opts) expected a table of options, got %s"):format(arg, check.show(opts)),
      (level or 1) + 1)
  end
  local set = {}
  for _, k in ipairs(known) do set[k] = true end
  local unknown = {}
  for k in pairs(opts) do
    if not set[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    local names = {}
    for i, k in ipairs(known) do names[i] = k end
    table.sort(names)
    check.fail(where, ("unknown option%s '%s' (known: %s)"):format(#unknown > 1 and "s" or "",
      table.concat(unknown, "', '"), table.concat(names, ", ")), (level or 1) + 1)
  end
  return opts
end

return check
