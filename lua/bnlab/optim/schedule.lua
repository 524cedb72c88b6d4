-- bn.optim.schedule: learning-rate schedules with the semantics of
-- torch.optim.lr_scheduler (docs/optim.md).
--
-- A schedule owns its optimizer's learning rates: it sets every group's lr
-- when it is made and at each :step(). Step, multistep and cosine are
-- computed in closed form from the group's lr at construction (its "base")
-- and the number of steps taken, so their state is just that count.
-- warmup(inner) multiplies inner's rate by a linear factor, as PyTorch's
-- ChainedScheduler of LinearLR and inner does. plateau keeps its own rates and
-- divides them when a metric stops improving (ReduceLROnPlateau).
-- Every schedule takes :step([metric]); those that need no metric ignore
-- it, so a training loop can pass the validation loss to any of them.
local bn = require "bnlab"
local check = require "bnlab.optim.check"

local schedule = {}

-- ---- the shared part -------------------------------------------------------------

local Schedule = {}
Schedule.__index = Schedule

local function is_schedule(v)
  return type(v) == "table" and type(v._advance) == "function" and type(v._value) == "function"
end

local function check_optimizer(opt, where)
  local ok = type(opt) == "table" and not bn.is_tensor(opt) and type(rawget(opt, "param_groups")) == "table"
    and #opt.param_groups > 0
  if ok then
    for _, g in ipairs(opt.param_groups) do
      ok = ok and type(g) == "table" and check.finite(g.lr)
    end
  end
  if not ok then
    check.fail(where, ("argument #1 (optimizer) expected an optimizer such as bn.optim.SGD (param_groups with "
      .. "numeric lr), got %s"):format(check.show(opt)), 2)
  end
  return opt
end

-- Sets every group's lr to what the schedule says now.
function Schedule:_apply()
  local groups = self.opt.param_groups
  if #groups ~= self.n_groups then
    error(("%s: the optimizer has %d parameter group(s); the schedule was made for %d"):format(self.where, #groups,
      self.n_groups), 3)
  end
  for i, g in ipairs(groups) do g.lr = self:_value(i) end
end

function Schedule:_needs_metric() return false end

--- sched:step([metric]): advances one step (an epoch, usually) and sets the
-- optimizer's learning rates; returns group 1's new lr. metric (a number or
-- a one-element tensor) is required by plateau and ignored by the others.
function Schedule:step(metric)
  if self:_needs_metric() then
    if bn.is_tensor(metric) and not metric:is_closed() and metric:numel() == 1 then metric = metric:item() end
    if type(metric) ~= "number" then
      check.fail(self.where .. ":step", ("argument #2 (metric) expected a number or a one-element tensor, got %s"):format(
        check.show(metric)), 1)
    end
  end
  self:_advance(metric)
  self:_apply()
  return self.opt.param_groups[1].lr
end

--- sched:last_lr(): the learning rate of every group, as a list.
function Schedule:last_lr()
  local out = {}
  for i, g in ipairs(self.opt.param_groups) do out[i] = g.lr end
  return out
end

--- sched:state(): a table of plain numbers (no tensors) for checkpoints.
function Schedule:state() return self:_state() end

--- sched:load_state(s): restores a state from sched:state() of a schedule
-- made the same way, and sets the optimizer's learning rates from it.
function Schedule:load_state(s)
  local where = self.where .. ":load_state"
  if type(s) ~= "table" or bn.is_tensor(s) then
    check.fail(where, ("argument #2 (state) expected a table from sched:state(), got %s"):format(check.show(s)), 1)
  end
  self:_check_state(s, where, "state", 1)
  self:_load(s)
  self:_apply()
  return self
end

-- The state checks take `level` as check.fail does: the frame to blame,
-- counted from the caller (1 = the caller's caller).
local function check_kind(self, s, where, what, level)
  if s.kind ~= self.kind then
    check.fail(where, ("%s.kind expected '%s', got %s"):format(what, self.kind, check.show(s.kind)), level + 1)
  end
  check.integer(s.steps, where, what .. ".steps", 0, level + 1)
end

local function check_list(v, n, where, what, lo, level)
  if type(v) ~= "table" or #v ~= n then
    check.fail(where, ("%s expected a list of %d number(s), got %s"):format(what, n, check.show(v)), level + 1)
  end
  for i = 1, n do check.number(v[i], where, ("%s[%d]"):format(what, i), lo, level + 1) end
end

local function copy(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  return out
end

local function class(name)
  local cls = setmetatable({}, { __index = Schedule })
  cls.__index = cls
  cls.__name = "bn.optim.schedule." .. name
  cls.__tostring = function(self)
    return ("bn.optim.schedule.%s (step %d, lr %g)"):format(self.kind, self.steps, self.opt.param_groups[1].lr)
  end
  return cls
end

-- ---- closed forms: step, multistep, cosine (and constant, warmup's default inner) ----

local Closed = class("closed")

function Closed:_advance() self.steps = self.steps + 1 end
function Closed:_value(i) return self._f(self.base_lrs[i], self.steps) end
function Closed:_state() return { kind = self.kind, steps = self.steps, base_lrs = copy(self.base_lrs) } end
function Closed:_check_state(s, where, what, level)
  check_kind(self, s, where, what, level + 1)
  check_list(s.base_lrs, self.n_groups, where, what .. ".base_lrs", 0, level + 1)
end
function Closed:_load(s)
  self.steps = math.tointeger(s.steps)
  self.base_lrs = copy(s.base_lrs)
end

local function closed(opt, kind, where, options, f)
  local self = setmetatable({ kind = kind, where = where, opt = opt, options = options, steps = 0, base_lrs = {},
    n_groups = #opt.param_groups, _f = f }, Closed)
  for i, g in ipairs(opt.param_groups) do self.base_lrs[i] = g.lr end
  self:_apply()
  return self
end

--- schedule.step(opt, {step_size =, gamma = 0.1}): lr = base * gamma^floor(t / step_size)
-- after t steps (StepLR).
function schedule.step(opt, opts)
  local where = "bn.optim.schedule.step"
  check_optimizer(opt, where)
  opts = check.options(opts, where, 2, { "step_size", "gamma" }, 1)
  local step_size = check.integer(opts.step_size, where, "option 'step_size'", 1, 1)
  local gamma = check.number(opts.gamma == nil and 0.1 or opts.gamma, where, "option 'gamma'", 0, 1)
  return closed(opt, "step", where, { step_size = step_size, gamma = gamma },
    function(base, t) return base * gamma ^ (t // step_size) end)
end

--- schedule.multistep(opt, {milestones = {...}, gamma = 0.1}): lr = base *
-- gamma^(number of milestones <= t) (MultiStepLR; a repeated milestone
-- counts twice, as there).
function schedule.multistep(opt, opts)
  local where = "bn.optim.schedule.multistep"
  check_optimizer(opt, where)
  opts = check.options(opts, where, 2, { "milestones", "gamma" }, 1)
  local ms = opts.milestones
  if type(ms) ~= "table" or bn.is_tensor(ms) then
    check.fail(where, ("option 'milestones' expected a list of integers >= 1, got %s"):format(check.show(ms)), 1)
  end
  local milestones = {}
  for i = 1, #ms do milestones[i] = check.integer(ms[i], where, ("option 'milestones' element %d"):format(i), 1, 1) end
  table.sort(milestones)
  local gamma = check.number(opts.gamma == nil and 0.1 or opts.gamma, where, "option 'gamma'", 0, 1)
  return closed(opt, "multistep", where, { milestones = copy(milestones), gamma = gamma }, function(base, t)
    local k = 0
    for _, m in ipairs(milestones) do
      if m <= t then k = k + 1 end
    end
    return base * gamma ^ k
  end)
end

--- schedule.cosine(opt, {T_max =, eta_min = 0}): lr = eta_min + (base -
-- eta_min) (1 + cos(pi t / T_max)) / 2 (CosineAnnealingLR; past T_max the
-- cosine goes on, back up, as there).
function schedule.cosine(opt, opts)
  local where = "bn.optim.schedule.cosine"
  check_optimizer(opt, where)
  opts = check.options(opts, where, 2, { "T_max", "eta_min" }, 1)
  local T = check.integer(opts.T_max, where, "option 'T_max'", 1, 1)
  local eta_min = check.number(opts.eta_min == nil and 0 or opts.eta_min, where, "option 'eta_min'", 0, 1)
  return closed(opt, "cosine", where, { T_max = T, eta_min = eta_min },
    function(base, t) return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T)) / 2 end)
end

-- ---- warmup --------------------------------------------------------------------------

local Warmup = class("warmup")

function Warmup:_needs_metric() return self.inner:_needs_metric() end
function Warmup:_advance(metric)
  self.inner:_advance(metric)
  self.steps = self.steps + 1
end
function Warmup:factor()
  local o = self.options
  return o.start_factor + (o.end_factor - o.start_factor) * math.min(self.steps, o.total_iters) / o.total_iters
end
function Warmup:_value(i) return self.inner:_value(i) * self:factor() end
function Warmup:_state() return { kind = "warmup", steps = self.steps, inner = self.inner:_state() } end
function Warmup:_check_state(s, where, what, level)
  check_kind(self, s, where, what, level + 1)
  if type(s.inner) ~= "table" then
    check.fail(where, ("%s.inner expected a table, got %s"):format(what, check.show(s.inner)), level + 1)
  end
  self.inner:_check_state(s.inner, where, what .. ".inner", level + 1)
end
function Warmup:_load(s)
  self.steps = math.tointeger(s.steps)
  self.inner:_load(s.inner)
end

--- schedule.warmup(inner_or_opt, {start_factor = 1/3, end_factor = 1, total_iters = 5}):
-- multiplies the rate of `inner` (a schedule; or, given an optimizer, the
-- constant base rate) by start_factor + (end_factor - start_factor) *
-- min(t, total_iters) / total_iters (LinearLR, chained).
function schedule.warmup(inner, opts)
  local where = "bn.optim.schedule.warmup"
  if not is_schedule(inner) then
    local opt = check_optimizer(inner, where)
    inner = closed(opt, "constant", where, {}, function(base) return base end)
  end
  if rawget(inner, "_wrapped") then
    check.fail(where, "argument #1 (inner) is already wrapped by another warmup; wrap each schedule once", 1)
  end
  opts = check.options(opts, where, 2, { "start_factor", "end_factor", "total_iters" }, 1)
  local start = opts.start_factor == nil and 1 / 3 or opts.start_factor
  if not (check.finite(start) and start > 0 and start <= 1) then
    check.fail(where, ("option 'start_factor' expected a number in (0, 1], got %s"):format(check.show(start)), 1)
  end
  local stop = opts.end_factor == nil and 1 or opts.end_factor
  if not (check.finite(stop) and stop >= 0 and stop <= 1) then
    check.fail(where, ("option 'end_factor' expected a number in [0, 1], got %s"):format(check.show(stop)), 1)
  end
  local total = check.integer(opts.total_iters == nil and 5 or opts.total_iters, where, "option 'total_iters'", 1, 1)
  rawset(inner, "_wrapped", true)
  local self = setmetatable({ kind = "warmup", where = where, opt = inner.opt, inner = inner, steps = 0,
    n_groups = inner.n_groups, options = { start_factor = start, end_factor = stop, total_iters = total } }, Warmup)
  self:_apply()
  return self
end

-- ---- plateau ---------------------------------------------------------------------------

local Plateau = class("plateau")

function Plateau:_needs_metric() return true end

function Plateau:_is_better(a)
  local o, best = self.options, self.best
  if o.mode == "min" then
    if o.threshold_mode == "rel" then return a < best * (1 - o.threshold) end
    return a < best - o.threshold
  end
  if o.threshold_mode == "rel" then return a > best * (1 + o.threshold) end
  return a > best + o.threshold
end

function Plateau:_advance(metric)
  local o = self.options
  self.steps = self.steps + 1
  if self:_is_better(metric) then -- NaN is never better: it counts as a bad epoch
    self.best = metric
    self.num_bad_epochs = 0
  else
    self.num_bad_epochs = self.num_bad_epochs + 1
  end
  if self.cooldown_counter > 0 then
    self.cooldown_counter = self.cooldown_counter - 1
    self.num_bad_epochs = 0 -- bad epochs in cooldown do not count
  end
  if self.num_bad_epochs > o.patience then
    for i, old in ipairs(self.lrs) do
      local new = math.max(old * o.factor, o.min_lr[i])
      if old - new > o.eps then self.lrs[i] = new end
    end
    self.cooldown_counter = o.cooldown
    self.num_bad_epochs = 0
  end
end

function Plateau:_value(i) return self.lrs[i] end

local function worst(mode) return mode == "min" and math.huge or -math.huge end

function Plateau:_state()
  -- best is nil until a metric improved on the start (±inf), which keeps
  -- the state free of infinities for JSON.
  local best = self.best
  if best == math.huge or best == -math.huge then best = nil end
  return { kind = "plateau", steps = self.steps, lrs = copy(self.lrs), best = best,
    num_bad_epochs = self.num_bad_epochs, cooldown_counter = self.cooldown_counter }
end
function Plateau:_check_state(s, where, what, level)
  check_kind(self, s, where, what, level + 1)
  check_list(s.lrs, self.n_groups, where, what .. ".lrs", 0, level + 1)
  if s.best ~= nil then check.number(s.best, where, what .. ".best", nil, level + 1) end
  check.integer(s.num_bad_epochs, where, what .. ".num_bad_epochs", 0, level + 1)
  check.integer(s.cooldown_counter, where, what .. ".cooldown_counter", 0, level + 1)
end
function Plateau:_load(s)
  self.steps = math.tointeger(s.steps)
  self.lrs = copy(s.lrs)
  self.best = s.best == nil and worst(self.options.mode) or s.best
  self.num_bad_epochs = math.tointeger(s.num_bad_epochs)
  self.cooldown_counter = math.tointeger(s.cooldown_counter)
end

--- schedule.plateau(opt, {mode = "min", factor = 0.1, patience = 10,
-- threshold = 1e-4, threshold_mode = "rel", cooldown = 0, min_lr = 0, eps = 1e-8}):
-- multiplies the rates by factor when the metric given to :step(metric)
-- has not improved for more than patience steps (ReduceLROnPlateau).
function schedule.plateau(opt, opts)
  local where = "bn.optim.schedule.plateau"
  check_optimizer(opt, where)
  opts = check.options(opts, where, 2,
    { "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps" }, 1)
  local function default(k, v) if opts[k] == nil then return v end return opts[k] end
  local o = {}
  o.mode = check.choice(default("mode", "min"), where, "option 'mode'", { "min", "max" }, 1)
  o.factor = default("factor", 0.1)
  if not (check.finite(o.factor) and o.factor >= 0 and o.factor < 1) then
    check.fail(where, ("option 'factor' expected a number in [0, 1), got %s"):format(check.show(o.factor)), 1)
  end
  o.patience = check.integer(default("patience", 10), where, "option 'patience'", 0, 1)
  o.threshold = check.number(default("threshold", 1e-4), where, "option 'threshold'", 0, 1)
  o.threshold_mode = check.choice(default("threshold_mode", "rel"), where, "option 'threshold_mode'",
    { "rel", "abs" }, 1)
  o.cooldown = check.integer(default("cooldown", 0), where, "option 'cooldown'", 0, 1)
  o.eps = check.number(default("eps", 1e-8), where, "option 'eps'", 0, 1)
  local n = #opt.param_groups
  local min_lr = default("min_lr", 0)
  o.min_lr = {}
  if type(min_lr) == "table" and not bn.is_tensor(min_lr) then
    if #min_lr ~= n then
      check.fail(where, ("option 'min_lr' expected a number or a list of %d (one per parameter group), got a list of %d"
        ):format(n, #min_lr), 1)
    end
    for i = 1, n do o.min_lr[i] = check.number(min_lr[i], where, ("option 'min_lr' element %d"):format(i), 0, 1) end
  else
    check.number(min_lr, where, "option 'min_lr'", 0, 1)
    for i = 1, n do o.min_lr[i] = min_lr end
  end
  local self = setmetatable({ kind = "plateau", where = where, opt = opt, options = o, steps = 0, lrs = {},
    n_groups = n, best = worst(o.mode), num_bad_epochs = 0, cooldown_counter = 0 }, Plateau)
  for i, g in ipairs(opt.param_groups) do self.lrs[i] = g.lr end
  self:_apply()
  return self
end

return schedule
