-- bn.optim.SGD: stochastic gradient descent with momentum, dampening, weight
-- decay and Nesterov momentum, the same rule as torch.optim.SGD (docs/optim.md).
--
-- The state lives here (parameter groups, momentum buffers, a step count);
-- the update itself is bn.sgd_step, one C loop per parameter group
-- (src/optim.c). Buffers are created on a parameter's first update, when
-- they are set to the gradient itself (PyTorch's rule: no dampening then).
local bn = require "bnlab"
local check = require "bnlab.optim.check"

local WHERE = "bn.optim.SGD"
-- The hyperparameters, in the order states and messages list them.
local HYPER = { "lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize" }
local DEFAULTS = { momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false }

local SGD = {}

-- One set of hyperparameters (the defaults, a group's, a loaded state's).
-- `prefix` says where they came from ("" or "group 2 ").
local function check_hyper(h, where, prefix, level)
  level = (level or 1) + 1
  local function what(k) return prefix .. "option '" .. k .. "'" end
  check.number(h.lr, where, what("lr"), 0, level)
  check.number(h.momentum, where, what("momentum"), 0, level)
  check.number(h.dampening, where, what("dampening"), nil, level)
  check.number(h.weight_decay, where, what("weight_decay"), 0, level)
  check.boolean(h.nesterov, where, what("nesterov"), level)
  check.boolean(h.maximize, where, what("maximize"), level)
  if h.nesterov and not (h.momentum > 0 and h.dampening == 0) then
    check.fail(where, ("%s requires momentum > 0 and dampening == 0, got momentum %s, dampening %s"):format(
      what("nesterov"), tostring(h.momentum), tostring(h.dampening)), level)
  end
end

local function is_module(v)
  return type(v) == "table" and not bn.is_tensor(v) and type(v.parameters) == "function"
end

-- A list of parameter tensors from a list or a module (anything with a
-- :parameters() method, e.g. a bn.nn module). `what` names it in messages.
local function tensor_list(v, where, what, level)
  level = (level or 1) + 1
  if is_module(v) then v = v:parameters() end
  if type(v) ~= "table" or bn.is_tensor(v) then
    check.fail(where, ("%s expected a list of tensors, a list of parameter groups or a module, got %s"):format(
      what, check.show(v)), level)
  end
  local n = #v
  if n == 0 and next(v) ~= nil then
    check.fail(where, ("%s expected a list of tensors, got a table without list entries "
      .. "(a name -> tensor map? pass a list, such as net:parameters())"):format(what), level)
  end
  local out = {}
  for i = 1, n do
    local p = v[i]
    if not bn.is_tensor(p) or p:is_closed() then
      check.fail(where, ("%s element %d expected a tensor, got %s"):format(what, i, check.show(p)), level)
    end
    if not p.is_leaf then
      check.fail(where, ("%s element %d is not a leaf (made by %s); only leaves can be optimized"):format(
        what, i, tostring(p.grad_fn)), level)
    end
    out[i] = p
  end
  return out
end

-- Builds a group: params plus every hyperparameter (the group's own, else
-- the defaults'), checked.
local function make_group(spec, defaults, where, gi, level)
  level = (level or 1) + 1
  local prefix = gi and ("argument #1 (params) group %d "):format(gi) or ""
  local group = {}
  if gi then
    for k in pairs(spec) do
      local known = k == "params"
      for _, h in ipairs(HYPER) do known = known or k == h end
      if not known then
        check.fail(where, ("%sunknown key '%s' (known: params, %s)"):format(prefix, tostring(k),
          table.concat(HYPER, ", ")), level)
      end
    end
    if spec.params == nil then check.fail(where, prefix .. "has no 'params'", level) end
    group.params = tensor_list(spec.params, where, ("argument #1 (params) group %d params"):format(gi), level)
  else
    group.params = tensor_list(spec, where, "argument #1 (params)", level)
  end
  for _, k in ipairs(HYPER) do
    local v = gi and spec[k]
    if v == nil then v = defaults[k] end
    group[k] = v
  end
  if group.lr == nil then
    check.fail(where, (gi and prefix or "argument #2 (opts) ") .. "needs 'lr' (a finite number >= 0)", level)
  end
  check_hyper(group, where, gi and prefix or "", level)
  return group
end

-- PyTorch updates a parameter listed twice twice; we refuse (the C update
-- also refuses tensors that share memory).
local function check_duplicates(groups, where, level)
  local seen = {}
  for gi, g in ipairs(groups) do
    for i, p in ipairs(g.params) do
      local here = #groups > 1 and ("group %d element %d"):format(gi, i) or ("element %d"):format(i)
      if seen[p] then
        check.fail(where, ("argument #1 (params) %s is the same tensor as %s"):format(here, seen[p]), (level or 1) + 1)
      end
      seen[p] = here
    end
  end
end

local function total_params(self)
  local n = 0
  for _, g in ipairs(self.param_groups) do n = n + #g.params end
  return n
end

local mt = {
  __name = WHERE,
  __index = function(self, k)
    if k == "lr" then return rawget(self, "param_groups")[1].lr end
    return SGD[k]
  end,
  __newindex = function(self, k, v)
    if k == "lr" then
      check.number(v, WHERE, "opt.lr", 0, 1)
      for _, g in ipairs(self.param_groups) do g.lr = v end
      return
    end
    rawset(self, k, v)
  end,
  __tostring = function(self)
    local values = 0
    for _, g in ipairs(self.param_groups) do
      for _, p in ipairs(g.params) do values = values + p:numel() end
    end
    local g = self.param_groups[1]
    local parts = { ("lr %g"):format(g.lr) }
    for _, k in ipairs({ "momentum", "dampening", "weight_decay" }) do
      if g[k] ~= 0 then parts[#parts + 1] = ("%s %g"):format(k, g[k]) end
    end
    if g.nesterov then parts[#parts + 1] = "nesterov" end
    if g.maximize then parts[#parts + 1] = "maximize" end
    return ("bn.optim.SGD (%d group%s, %d tensors, %d values; %s%s)"):format(#self.param_groups,
      #self.param_groups > 1 and "s" or "", total_params(self), values, table.concat(parts, ", "),
      #self.param_groups > 1 and " in group 1" or "")
  end,
}

--- bn.optim.SGD(params, {lr =, momentum = 0, dampening = 0, weight_decay = 0,
-- nesterov = false, maximize = false}). params: a list of tensors, a module
-- (its :parameters()), or a list of groups {params = ..., <options>} whose
-- options override opts for that group.
local function new(params, opts)
  opts = check.options(opts, WHERE, 2, HYPER, 1)
  local defaults = {}
  for _, k in ipairs(HYPER) do
    local v = opts[k]
    if v == nil then v = DEFAULTS[k] end
    defaults[k] = v
  end
  if defaults.lr ~= nil then check_hyper(defaults, WHERE, "", 1) end

  local groups = {}
  local is_groups = type(params) == "table" and not bn.is_tensor(params) and not is_module(params)
    and type(params[1]) == "table" and not bn.is_tensor(params[1])
  if is_groups then
    for gi, spec in ipairs(params) do
      if type(spec) ~= "table" or bn.is_tensor(spec) then
        check.fail(WHERE, ("argument #1 (params) group %d expected a table {params = ..., <options>}, got %s"):format(
          gi, check.show(spec)), 1)
      end
      groups[gi] = make_group(spec, defaults, WHERE, gi, 1)
    end
  else
    groups[1] = make_group(params, defaults, WHERE, nil, 1)
  end
  local n = 0
  for _, g in ipairs(groups) do n = n + #g.params end
  if n == 0 then check.fail(WHERE, "argument #1 (params) is an empty parameter list", 1) end
  check_duplicates(groups, WHERE, 1)

  local self = setmetatable({ param_groups = groups, defaults = defaults, num_steps = 0, _bufs = {}, _opts = {} }, mt)
  for gi = 1, #groups do
    self._bufs[gi] = {}
    self._opts[gi] = {}
  end
  return self
end

--- opt:add_param_group({params = ..., <options>}): adds a group (as
-- PyTorch's add_param_group); missing options come from the defaults.
function SGD:add_param_group(spec)
  local where = WHERE .. ":add_param_group"
  if type(spec) ~= "table" or bn.is_tensor(spec) then
    check.fail(where, ("argument #2 (group) expected a table {params = ..., <options>}, got %s"):format(
      check.show(spec)), 1)
  end
  local gi = #self.param_groups + 1
  local g = make_group(spec, self.defaults, where, gi, 1)
  local all = {}
  for i, old in ipairs(self.param_groups) do all[i] = old end
  all[gi] = g
  check_duplicates(all, where, 1)
  self.param_groups[gi] = g
  self._bufs[gi] = {}
  self._opts[gi] = {}
  return self
end

--- opt:step([closure]): one update of every parameter that has a .grad.
-- closure, when given, is called first (grad mode on) and its result
-- returned, as in PyTorch (re-evaluating the loss).
function SGD:step(closure)
  local loss
  if closure ~= nil then
    if type(closure) ~= "function" then
      check.fail(WHERE .. ":step", ("argument #2 (closure) expected a function, got %s"):format(check.show(closure)), 1)
    end
    local was = bn.set_grad_enabled(true)
    local ok, res = pcall(closure)
    bn.set_grad_enabled(was)
    if not ok then error(res, 0) end
    loss = res
  end
  for gi, g in ipairs(self.param_groups) do
    check_hyper(g, WHERE .. ":step", ("group %d "):format(gi), 1)
    local o = self._opts[gi]
    for _, k in ipairs(HYPER) do o[k] = g[k] end
    bn.sgd_step(g.params, self._bufs[gi], o)
  end
  self.num_steps = self.num_steps + 1
  return loss
end

--- opt:zero_grad([set_to_none = true]): drops every parameter's .grad
-- (PyTorch 2's default); zero_grad(false) fills existing gradients with 0
-- instead. Either way a parameter that gets no new gradient is skipped by
-- the next step only when its .grad was dropped.
function SGD:zero_grad(set_to_none)
  if set_to_none == nil then set_to_none = true end
  check.boolean(set_to_none, WHERE .. ":zero_grad", "argument #2 (set_to_none)", 1)
  for _, g in ipairs(self.param_groups) do
    for _, p in ipairs(g.params) do
      if set_to_none then
        p.grad = nil
      else
        local grad = p.grad
        if grad then grad:zero_() end
      end
    end
  end
  return self
end

--- opt:state(): a snapshot for checkpoints, with copies of the buffers:
--   { step = <steps taken>,
--     param_groups = { {lr =, momentum =, dampening =, weight_decay =,
--                       nesterov =, maximize =, n_params =}, ... },
--     momentum_buffers = { [k] = tensor, ... } }
-- k numbers the parameters across groups in order (group 1's first); a
-- parameter without a buffer yet has no entry.
function SGD:state()
  local s = { step = self.num_steps, param_groups = {}, momentum_buffers = {} }
  local k = 0
  for gi, g in ipairs(self.param_groups) do
    local h = { n_params = #g.params }
    for _, key in ipairs(HYPER) do h[key] = g[key] end
    s.param_groups[gi] = h
    for i = 1, #g.params do
      k = k + 1
      local b = self._bufs[gi][i]
      if b then s.momentum_buffers[k] = b:clone() end
    end
  end
  return s
end

--- opt:load_state(s): restores a state from opt:state() (hyperparameters,
-- learning rates included, the step count and copies of the buffers). All
-- is checked before anything changes; returns opt.
function SGD:load_state(s)
  local where = WHERE .. ":load_state"
  if type(s) ~= "table" or bn.is_tensor(s) then
    check.fail(where, ("argument #2 (state) expected a table from opt:state(), got %s"):format(check.show(s)), 1)
  end
  for key in pairs(s) do
    if key ~= "step" and key ~= "param_groups" and key ~= "momentum_buffers" then
      check.fail(where, ("state has an unknown key '%s' (known: step, param_groups, momentum_buffers)"):format(
        tostring(key)), 1)
    end
  end
  local step = check.integer(s.step, where, "state.step", 0, 1)
  if type(s.param_groups) ~= "table" or #s.param_groups ~= #self.param_groups then
    check.fail(where, ("state.param_groups expected a list of %d group(s), got %s"):format(#self.param_groups,
      type(s.param_groups) == "table" and ("%d"):format(#s.param_groups) or check.show(s.param_groups)), 1)
  end
  local params = {} -- flat list, the numbering of momentum_buffers
  for gi, g in ipairs(self.param_groups) do
    local h = s.param_groups[gi]
    if type(h) ~= "table" then
      check.fail(where, ("state.param_groups[%d] expected a table, got %s"):format(gi, check.show(h)), 1)
    end
    if h.n_params ~= nil and h.n_params ~= #g.params then
      check.fail(where, ("state.param_groups[%d] has %s parameters, this optimizer's group %d has %d"):format(
        gi, tostring(h.n_params), gi, #g.params), 1)
    end
    check_hyper(h, where, ("state.param_groups[%d] "):format(gi), 1)
    for i, p in ipairs(g.params) do params[#params + 1] = { gi, i, p } end
  end
  local bufs = s.momentum_buffers or {}
  if type(bufs) ~= "table" or bn.is_tensor(bufs) then
    check.fail(where, ("state.momentum_buffers expected a table, got %s"):format(check.show(bufs)), 1)
  end
  for k, b in pairs(bufs) do
    local e = math.type(k) == "integer" and params[k]
    if not e then
      check.fail(where, ("state.momentum_buffers has key %s; expected parameter numbers 1..%d"):format(
        check.show(k), #params), 1)
    end
    if not bn.is_tensor(b) or b:is_closed() then
      check.fail(where, ("state.momentum_buffers[%d] expected a tensor, got %s"):format(k, check.show(b)), 1)
    end
    local want, got = check.shape_str(e[3]), check.shape_str(b)
    if want ~= got then
      check.fail(where, ("state.momentum_buffers[%d] expected shape %s (its parameter's), got %s"):format(
        k, want, got), 1)
    end
  end

  for gi, g in ipairs(self.param_groups) do
    for _, key in ipairs(HYPER) do g[key] = s.param_groups[gi][key] end
    self._bufs[gi] = {}
  end
  for k, b in pairs(bufs) do
    local e = params[k]
    self._bufs[e[1]][e[2]] = b:detach():clone()
  end
  self.num_steps = step
  return self
end

--- opt:momentum_buffer(p): the live momentum buffer of parameter p (nil
-- before its first update or without momentum). For probes; do not resize.
function SGD:momentum_buffer(p)
  for gi, g in ipairs(self.param_groups) do
    for i, q in ipairs(g.params) do
      if rawequal(p, q) then return self._bufs[gi][i] end
    end
  end
  return nil
end

return new
