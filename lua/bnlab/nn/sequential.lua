-- bn.nn.Sequential: children called one after the other, each on the
-- previous one's output. Children are named "1", "2", ... unless a name is
-- given (paths read "features.3" or "stem.conv"); seq[i] and seq:get(i) are
-- the i-th child whatever its name.
local M = require "bnlab.nn.module"
local util = require "bnlab.nn.util"

local Sequential = M.class("Sequential", M.Module)

local function child_at(self, i)
  local names = rawget(self, "_modules")
  if not names then return nil end
  if i < 0 then i = #names + 1 + i end
  local name = names[i]
  return name and rawget(self, name)
end

-- Integer keys index the children; everything else is the class's.
function Sequential.__index(self, k)
  if math.type(k) == "integer" then return child_at(self, k) end
  return Sequential[k]
end

--- Sequential(m1, m2, ...) or Sequential{m1, m2, ...}; Sequential{ {"conv",
-- m1}, {"bn", m2} } names the children.
function Sequential:__init(...)
  M.Module.__init(self)
  local args = { ... }
  if #args == 1 and type(args[1]) == "table" and not M.is_module(args[1]) then args = args[1] end
  for i, a in ipairs(args) do
    if type(a) == "table" and not M.is_module(a) then
      self:add(a[2], a[1])
    elseif M.is_module(a) then
      self:add(a)
    else
      error(("bn.nn.Sequential: argument #%d expected a module or a pair {name, module}, got %s"):format(i, util.show(a)), 3)
    end
  end
end

--- Appends module `m`, named `name` (default: its position). Returns self.
function Sequential:add(m, name)
  if not M.is_module(m) then
    error(("bn.nn.Sequential:add: argument #2 expected a module, got %s"):format(util.show(m)), 2)
  end
  self:register_module(name or tostring(#self._modules + 1), m)
  return self
end

--- The i-th child (negative counts from the end).
function Sequential:get(i)
  return child_at(self, util.integer(i, "bn.nn.Sequential:get", "argument #2 (index)"))
end

--- The number of children.
function Sequential:size() return #self._modules end
Sequential.__len = Sequential.size

function Sequential:forward(x, ...)
  local names = self._modules
  for i = 1, #names do
    local m = rawget(self, names[i])
    if i == 1 then x = m(x, ...) else x = m(x) end
  end
  return x
end

function Sequential:config()
  return #self._modules == 0 and "empty" or nil
end

return Sequential
