-- bn.nn.Module: the base of every layer and container (docs/nn.md).
--
-- A module is a Lua table whose metatable is its class. It holds its
-- parameters, buffers and children under their names (self.weight,
-- self.running_mean, self.conv1) and keeps three ordered name lists
-- (_params, _buffers, _modules) so that walks have a stable order. Those
-- fields are the only truth: assigning self.weight = t replaces the
-- parameter everywhere.
--
-- Calling a module (net(x)) runs :forward(x) and, on the way, works out the
-- module's dotted path from the modules already running (the call stack):
-- a child's path is its parent's path plus the name the parent registered it
-- under. The path names the output tensor (out:name(path), the hook point of
-- bn.hooks_add) and is appended to an error raised inside, once, by the
-- innermost module.
local bn = require "bnlab"
local util = require "bnlab.nn.util"

local Module = {}

-- ---- classes -----------------------------------------------------------------

-- Metamethods are looked up raw in the metatable, so every class carries its
-- own copy of them.
local METAMETHODS = { "__call", "__tostring" }

--- bn.nn.class(name, parent): a new module class. Construct instances with
-- Class(...), which calls Class.__init(self, ...); call parent.__init(self,
-- ...) from there.
local function class(name, parent)
  if type(name) ~= "string" then error("bn.nn.class: argument #1 (name) expected a string", 2) end
  local cls = {}
  cls.__index = cls
  cls.__typename = name
  cls.__parent = parent
  if parent then
    for _, mm in ipairs(METAMETHODS) do cls[mm] = rawget(parent, mm) end
  end
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, ...)
      local self = setmetatable({}, c)
      self:__init(...)
      return self
    end,
    __tostring = function() return "bn.nn." .. name end,
  })
end

Module.__index = Module
Module.__typename = "Module"
setmetatable(Module, {
  __call = function(c, ...)
    local self = setmetatable({}, c)
    self:__init(...)
    return self
  end,
  __tostring = function() return "bn.nn.Module" end,
})

--- Whether `v` is a module (an instance of Module or a subclass).
local function is_module(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  while type(mt) == "table" do
    if mt == Module then return true end
    mt = rawget(mt, "__parent")
  end
  return false
end

--- Whether module `m` is an instance of `cls` (a class, or its type name).
local function is_instance(m, cls)
  local mt = getmetatable(m)
  while type(mt) == "table" do
    if mt == cls or (type(cls) == "string" and rawget(mt, "__typename") == cls) then return true end
    if mt == Module then return false end
    mt = rawget(mt, "__parent")
  end
  return false
end

function Module:__init()
  self.training = true
  self._params, self._buffers, self._modules = {}, {}, {}
end

--- The class's type name, e.g. "Conv2d".
function Module:typename() return self.__typename end

-- ---- registration ------------------------------------------------------------

local function check_name(self, name, what)
  local where = "bn.nn." .. self.__typename .. ":register_" .. what
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    error(("%s: name expected a string of letters, digits and '_' (no dots), got %s"):format(where, util.show(name)), 3)
  end
  if rawget(self, "_params") == nil then
    error(("%s: the module is not initialized (call bn.nn.Module.__init(self) first)"):format(where), 3)
  end
  for _, list in ipairs({ self._params, self._buffers, self._modules }) do
    for _, n in ipairs(list) do
      if n == name then error(("%s: '%s' is already registered"):format(where, name), 3) end
    end
  end
  if getmetatable(self)[name] ~= nil then
    error(("%s: '%s' is the name of a method"):format(where, name), 3)
  end
  if rawget(self, name) ~= nil then
    error(("%s: '%s' is already a field of the module"):format(where, name), 3)
  end
end

--- Registers tensor `t` as parameter `name` (self[name] = t) and makes it
-- require grad. A nil `t` registers nothing (a layer without bias). Returns t.
function Module:register_parameter(name, t)
  if t == nil then return nil end
  check_name(self, name, "parameter")
  if not bn.is_tensor(t) then
    error(("bn.nn.%s:register_parameter: '%s' expected a tensor, got %s"):format(self.__typename, name, util.show(t)), 2)
  end
  if not t:requires_grad() then t:requires_grad(true) end
  self._params[#self._params + 1] = name
  rawset(self, name, t)
  return t
end

--- Registers tensor `t` as buffer `name`: state that is saved and loaded
-- but not trained (BatchNorm's running statistics). Returns t.
function Module:register_buffer(name, t)
  check_name(self, name, "buffer")
  if not bn.is_tensor(t) then
    error(("bn.nn.%s:register_buffer: '%s' expected a tensor, got %s"):format(self.__typename, name, util.show(t)), 2)
  end
  self._buffers[#self._buffers + 1] = name
  rawset(self, name, t)
  return t
end

--- Registers module `m` as child `name` (self[name] = m). Returns m.
function Module:register_module(name, m)
  check_name(self, name, "module")
  if not is_module(m) then
    error(("bn.nn.%s:register_module: '%s' expected a module, got %s"):format(self.__typename, name, util.show(m)), 2)
  end
  self._modules[#self._modules + 1] = name
  rawset(self, name, m)
  return m
end
Module.add_module = Module.register_module

-- ---- calling -------------------------------------------------------------------

local stack = {}     -- the modules whose forward is running, outermost first
local last_tagged    -- the last error message a path was appended to

--- The traceback of the last error raised inside a module's forward, taken
-- where it was raised (the error itself is re-raised from the outer call).
Module.last_traceback = nil

local function child_name(parent, child)
  local names = rawget(parent, "_modules")
  if names then
    for i = 1, #names do
      if rawget(parent, names[i]) == child then return names[i] end
    end
  end
  return nil
end

local last_seen      -- the last error value whose traceback was kept
local function on_error(err)
  if err ~= last_tagged and err ~= last_seen then
    last_seen = err
    Module.last_traceback = debug.traceback(tostring(err), 2)
  end
  return err
end

local function forward_and_name(self, path, first, ...)
  local results = table.pack(self:forward(first, ...))
  local out = results[1]
  if bn.is_tensor(out) then
    rawset(self, "_out_shape", out:shape())
    -- An output that is the input itself (Identity, Dropout in eval) keeps the
    -- name its producer gave it.
    if path and path ~= "" and not rawequal(out, first) then out:name(path) end
  end
  return results
end

--- net(x, ...): runs self:forward(x, ...), names the output with the
-- module's path and appends the path of the innermost failing module to an
-- error: "... (in stage1.block2.conv1)".
function Module:__call(...)
  local depth = #stack
  local path
  if depth == 0 then
    path = ""
  else
    local parent = stack[depth]
    local name, ppath = child_name(parent, self), rawget(parent, "_path")
    if name and ppath then path = ppath == "" and name or (ppath .. "." .. name) end
  end
  rawset(self, "_path", path)
  stack[depth + 1] = self
  local ok, results = xpcall(forward_and_name, on_error, self, path, ...)
  stack[depth + 1] = nil
  if not ok then
    if type(results) == "string" and results ~= last_tagged and path and path ~= "" then
      -- A bnlab message names its function; the position inside the layer's
      -- Lua code would only hide it.
      local rest = results:match("^[^\n]-:%d+: (bn%..*)$")
      results = (rest or results) .. " (in " .. path .. ")"
      last_tagged = results
    end
    error(results, 0)
  end
  return table.unpack(results, 1, results.n)
end

--- The computation; subclasses override it. Call the module (net(x)) rather
-- than net:forward(x) so that outputs are named and errors located.
function Module:forward()
  error(("bn.nn.%s: forward is not implemented"):format(self.__typename), 2)
end

--- The dotted path of this module during the current (or last) call, "" for
-- the module that was called from outside, nil when unknown.
function Module:path() return rawget(self, "_path") end

--- Names tensor `t` as "<path>.<suffix>" (a hook point inside a forward, such
-- as a residual block's sum) when the module's path is known; returns t.
function Module:tag(t, suffix)
  local path = rawget(self, "_path")
  if path then t:name(path == "" and suffix or (path .. "." .. suffix)) end
  return t
end

-- ---- walking -------------------------------------------------------------------

local function join(prefix, name)
  return prefix == "" and name or (prefix .. "." .. name)
end

-- Pre-order walk; a module reached twice (shared) is visited once.
local function walk(m, prefix, depth, seen, visit)
  if seen[m] then return end
  seen[m] = true
  visit(prefix, m, depth)
  for _, name in ipairs(m._modules) do
    local child = rawget(m, name)
    if child then walk(child, join(prefix, name), depth + 1, seen, visit) end
  end
end

-- filter: nil, a class, a type name, or a list of those.
local function matches(m, filter)
  if filter == nil then return true end
  if type(filter) == "table" and rawget(filter, "__typename") == nil then
    for _, f in ipairs(filter) do
      if is_instance(m, f) then return true end
    end
    return false
  end
  return is_instance(m, filter)
end

--- Ordered list of {path, module} pairs, pre-order, the module itself first
-- with path "". `filter` (a class, a type name such as "Conv2d", or a list
-- of those) keeps only those modules.
function Module:named_modules(filter)
  local out = {}
  walk(self, "", 0, {}, function(path, m)
    if matches(m, filter) then out[#out + 1] = { path, m } end
  end)
  return out
end

--- List of modules (pre-order, self first), optionally filtered as above.
function Module:modules(filter)
  local out = {}
  for i, e in ipairs(self:named_modules(filter)) do out[i] = e[2] end
  return out
end

--- Ordered list of {name, module} for the direct children.
function Module:children()
  local out = {}
  for _, name in ipairs(self._modules) do
    local child = rawget(self, name)
    if child then out[#out + 1] = { name, child } end
  end
  return out
end

--- The descendant at dotted `path` ("stage1.block2.conv1"), or nil.
function Module:submodule(path)
  local m = self
  if path == "" then return m end
  for name in tostring(path):gmatch("[^.]+") do
    if not is_module(m) or child_name(m, rawget(m, name)) ~= name then return nil end
    m = rawget(m, name)
  end
  return m
end

--- Calls fn(module, path) for every module, pre-order; returns self.
function Module:apply(fn)
  for _, e in ipairs(self:named_modules()) do fn(e[2], e[1]) end
  return self
end

local function named_tensors(self, list_field)
  local out, seen = {}, {}
  walk(self, "", 0, {}, function(path, m)
    for _, name in ipairs(m[list_field]) do
      local t = rawget(m, name)
      if t ~= nil and not seen[t] then
        seen[t] = true
        out[#out + 1] = { join(path, name), t }
      end
    end
  end)
  return out
end

--- Ordered list of {name, tensor} pairs: each module's own parameters, then
-- its children's, depth first; names are dotted paths
-- ("stage2.block3.conv1.weight"). A tensor shared by two modules appears once.
function Module:named_parameters() return named_tensors(self, "_params") end

--- The parameters as a list of tensors, in named_parameters order.
function Module:parameters()
  local out = {}
  for i, e in ipairs(named_tensors(self, "_params")) do out[i] = e[2] end
  return out
end

--- Ordered list of {name, tensor} pairs for the buffers (BN running stats).
function Module:named_buffers() return named_tensors(self, "_buffers") end

function Module:buffers()
  local out = {}
  for i, e in ipairs(named_tensors(self, "_buffers")) do out[i] = e[2] end
  return out
end

--- The number of parameter values (shared tensors counted once).
function Module:num_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p:numel() end
  return n
end

-- ---- modes and gradients -------------------------------------------------------

--- Sets training mode (default true) on this module and every descendant;
-- returns self.
function Module:train(mode)
  if mode == nil then mode = true end
  util.boolean(mode, "bn.nn.Module:train", "argument #2 (mode)")
  for _, m in ipairs(self:modules()) do m.training = mode end
  return self
end

--- Evaluation mode: train(false). Returns self.
function Module:eval() return self:train(false) end

--- Drops the gradient of every parameter (p.grad = nil); returns self.
function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p.grad = nil end
  return self
end

-- ---- state ---------------------------------------------------------------------

--- A table name -> tensor holding **copies** (detached, contiguous) of every
-- parameter and buffer: a snapshot that later training does not change.
function Module:state()
  return bn.no_grad(function()
    local s = {}
    for _, list in ipairs({ self:named_parameters(), self:named_buffers() }) do
      for _, e in ipairs(list) do s[e[1]] = e[2]:detach():clone() end
    end
    return s
  end)
end

local function list_names(names, limit)
  limit = limit or 8
  local shown = {}
  for i = 1, math.min(#names, limit) do shown[i] = names[i] end
  local s = table.concat(shown, ", ")
  if #names > limit then s = s .. (", ... and %d more"):format(#names - limit) end
  return s
end

local function same_shape(a, b)
  if a:dim() ~= b:dim() then return false end
  for d = 1, a:dim() do
    if a:size(d) ~= b:size(d) then return false end
  end
  return true
end

--- Copies `state` (name -> tensor, as from :state() or bn.load of a
-- checkpoint) into the parameters and buffers, in place (tensors keep their
-- identity, so optimizers holding them stay valid). Every name and shape is
-- checked before anything is written; an error lists the missing, unexpected
-- and mismatched names. opts.strict = false tolerates missing and unexpected
-- names (shapes are always checked) and returns the lists of both.
function Module:load_state(state, opts)
  local where = "bn.nn.Module:load_state"
  opts = util.options(opts, where, { strict = true })
  local strict = opts.strict
  if strict == nil then strict = true end
  util.boolean(strict, where, "option 'strict'")
  if type(state) ~= "table" then
    error(("%s: argument #2 (state) expected a table name -> tensor, got %s"):format(where, util.show(state)), 2)
  end
  local targets = {}
  for _, list in ipairs({ self:named_parameters(), self:named_buffers() }) do
    for _, e in ipairs(list) do targets[#targets + 1] = e end
  end
  local expected, missing, mismatched, unexpected = {}, {}, {}, {}
  for _, e in ipairs(targets) do
    local name, t = e[1], e[2]
    expected[name] = true
    local v = state[name]
    if v == nil then
      missing[#missing + 1] = name
    elseif not bn.is_tensor(v) then
      mismatched[#mismatched + 1] = ("%s (expected a tensor %s, got %s)"):format(name, util.shape_str(t), util.show(v))
    elseif not same_shape(t, v) then
      mismatched[#mismatched + 1] = ("%s (expected %s, got %s)"):format(name, util.shape_str(t), util.shape_str(v))
    end
  end
  for k in pairs(state) do
    if not expected[k] then unexpected[#unexpected + 1] = tostring(k) end
  end
  table.sort(unexpected)
  if #mismatched > 0 or (strict and (#missing > 0 or #unexpected > 0)) then
    local parts = {}
    if strict and #missing > 0 then parts[#parts + 1] = ("missing %d: %s"):format(#missing, list_names(missing)) end
    if strict and #unexpected > 0 then
      parts[#parts + 1] = ("unexpected %d: %s"):format(#unexpected, list_names(unexpected))
    end
    if #mismatched > 0 then parts[#parts + 1] = ("mismatched %d: %s"):format(#mismatched, list_names(mismatched)) end
    error(("%s: the state does not fit this %s; %s"):format(where, self.__typename, table.concat(parts, "; ")), 2)
  end
  bn.no_grad(function()
    for _, e in ipairs(targets) do
      local v = state[e[1]]
      if v ~= nil then e[2]:copy(v) end
    end
  end)
  return missing, unexpected
end

-- ---- printing ------------------------------------------------------------------

--- The one-line configuration, e.g. "Conv2d(3 -> 16, kernel 3, padding 1,
-- no bias)". Classes override :config() to fill the parentheses.
function Module:config() return nil end

function Module:describe()
  local c = self:config()
  return self.__typename .. (c and ("(" .. c .. ")") or "")
end

--- The tree: one line per module with its name, configuration, output shape
-- (after a forward) and parameter count (its own and its children's), then
-- the total.
function Module:summary()
  local rows = { { "module", "output", "parameters" } }
  local function count(m, seen)
    local n = 0
    walk(m, "", 0, {}, function(_, sub)
      for _, pname in ipairs(sub._params) do
        local t = rawget(sub, pname)
        if t ~= nil and not seen[t] then
          seen[t] = true
          n = n + t:numel()
        end
      end
    end)
    return n
  end
  walk(self, "", 0, {}, function(path, m, depth)
    local name = path:match("[^.]+$")
    local label = string.rep("  ", depth) .. (name and (name .. ": ") or "") .. m:describe()
    local shape = rawget(m, "_out_shape")
    local n = count(m, {})
    rows[#rows + 1] = { label, shape and util.shape_str(shape) or "", n > 0 and util.commas(n) or "" }
  end)
  if rows[2][2] == "" then rows[1][2] = "" end -- no shapes before a forward
  local w1, w2, w3 = 0, 0, 0
  for _, r in ipairs(rows) do
    w1, w2, w3 = math.max(w1, #r[1]), math.max(w2, #r[2]), math.max(w3, #r[3])
  end
  local lines = {}
  local function pad(s, w) return s .. string.rep(" ", w - #s) end
  for i, r in ipairs(rows) do
    lines[i] = (pad(r[1], w1) .. "  " .. pad(r[2], w2) .. "  " .. string.rep(" ", w3 - #r[3]) .. r[3]):gsub("%s+$", "")
  end
  local nbuf = 0
  for _, b in ipairs(self:buffers()) do nbuf = nbuf + b:numel() end
  lines[#lines + 1] = ("total: %s parameters in %d tensors%s"):format(util.commas(self:num_parameters()),
    #self:parameters(), nbuf > 0 and (", %s buffer values"):format(util.commas(nbuf)) or "")
  return table.concat(lines, "\n")
end

function Module:__tostring() return self:summary() end

return { Module = Module, class = class, is_module = is_module, is_instance = is_instance }
