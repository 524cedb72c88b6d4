-- bn.optim: SGD trajectories and learning-rate schedules against PyTorch
-- (tests/fixtures/make_sgd_fixtures.py wrote the references), state
-- round-trips for checkpoints, and the error messages.
local bn = require "bnlab"
local check = require "check"

local T = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/lua"
local FIX = here .. "/../fixtures/sgd/"

local json_decode = require("bnlab.json").decode

local function read_json(name)
  local f = assert(io.open(FIX .. name, "rb"))
  local text = f:read("a")
  f:close()
  return json_decode(text)
end

-- ---- helpers --------------------------------------------------------------------

-- |got - want| <= atol + rtol |want| everywhere; the message names the worst element.
local function assert_close(got, want, rtol, atol, what)
  check.eq(got:shape(), want:shape(), what .. " shape")
  local g, w = got:reshape(-1):totable(), want:reshape(-1):totable()
  if type(g) ~= "table" then g, w = { g }, { w } end
  local worst, wi = -math.huge, 0
  for i = 1, #w do
    local excess = math.abs(g[i] - w[i]) - (atol + rtol * math.abs(w[i]))
    if excess ~= excess then excess = math.huge end
    if excess > worst then worst, wi = excess, i end
  end
  if worst > 0 then
    error(("%s: element %d is %.9g, PyTorch %.9g (rtol %g, atol %g)"):format(what, wi, g[wi], w[wi], rtol, atol), 2)
  end
end

local function rel_close(got, want, rtol, what)
  if not (math.abs(got - want) <= rtol * math.abs(want)) then
    error(("%s: got %.17g, PyTorch %.17g"):format(what, got, want), 2)
  end
end

local function leaf(t) return t:detach():clone():requires_grad(true) end

-- ---- SGD trajectories against PyTorch ---------------------------------------------------

local function run_trajectory(case, steps, rtol, atol)
  local X, Y = bn.load(FIX .. "X.npy"), bn.load(FIX .. "Y.npy")
  local W, b = leaf(bn.load(FIX .. "W0.npy")), leaf(bn.load(FIX .. "b0.npy"))
  local params = { W, b }
  if case.groups then
    local g1, g2 = { params = { W } }, { params = { b } }
    for k, v in pairs(case.groups[1]) do g1[k] = v end
    for k, v in pairs(case.groups[2]) do g2[k] = v end
    params = { g1, g2 }
  end
  local opt = bn.optim.SGD(params, case.opts)
  local Ws, bs, losses = bn.load(FIX .. case.name .. ".W.npy"), bn.load(FIX .. case.name .. ".b.npy"),
    bn.load(FIX .. case.name .. ".loss.npy")
  for s = 1, steps do
    local new_lr = case.set_lr and case.set_lr[tostring(s)]
    if new_lr then opt.lr = new_lr end
    opt:zero_grad()
    local loss = bn.mse_loss(bn.linear(X, W, b), Y)
    rel_close(loss:item(), losses[s], rtol, ("%s step %d loss"):format(case.name, s))
    loss:backward()
    opt:step()
    assert_close(W, Ws[s], rtol, atol, ("%s step %d W"):format(case.name, s))
    assert_close(b, bs[s], rtol, atol, ("%s step %d b"):format(case.name, s))
  end
  check.eq(opt.num_steps, steps)
  local state = opt:state()
  if (case.opts.momentum or 0) ~= 0 then
    assert_close(state.momentum_buffers[1], bn.load(FIX .. case.name .. ".buf_W.npy"), rtol, atol, case.name .. " buf W")
    assert_close(state.momentum_buffers[2], bn.load(FIX .. case.name .. ".buf_b.npy"), rtol, atol, case.name .. " buf b")
  else
    check.eq(next(state.momentum_buffers), nil, case.name .. ": no buffers without momentum")
  end
end

function T.sgd_matches_pytorch()
  local spec = read_json("trajectories.json")
  check.truthy(#spec.cases >= 10, "trajectory cases")
  for _, case in ipairs(spec.cases) do run_trajectory(case, spec.steps, spec.rtol, spec.atol) end
end

-- ---- schedules against PyTorch ---------------------------------------------------------------

local function make_schedule(opt, kind, opts, inner)
  local S = bn.optim.schedule
  if kind == "warmup" and inner then return S.warmup(make_schedule(opt, inner.kind, inner.opts), opts) end
  return S[kind](opt, opts)
end

local function dummy_optimizer(lrs)
  local groups = {}
  for i, lr in ipairs(lrs) do groups[i] = { params = { bn.zeros(1):requires_grad(true) }, lr = lr } end
  return bn.optim.SGD(groups, { lr = lrs[1] })
end

local function group_lrs(opt)
  local out = {}
  for i, g in ipairs(opt.param_groups) do out[i] = g.lr end
  return out
end

local function check_lrs(opt, want, what)
  local got = group_lrs(opt)
  check.eq(#got, #want, what .. " groups")
  for i = 1, #want do rel_close(got[i], want[i], 1e-7, ("%s group %d"):format(what, i)) end
end

local function metric_value(m) return m == "nan" and 0 / 0 or m end

function T.schedules_match_pytorch()
  local spec = read_json("schedules.json")
  check.truthy(#spec.cases >= 14, "schedule cases")
  for _, case in ipairs(spec.cases) do
    local opt = dummy_optimizer(case.lrs)
    local sched = make_schedule(opt, case.kind, case.opts, case.inner)
    check_lrs(opt, case.expected[1], case.name .. " at construction")
    for t = 1, #case.expected - 1 do
      local m = case.metrics and metric_value(case.metrics[t]) or nil
      local lr = sched:step(m)
      check_lrs(opt, case.expected[t + 1], ("%s after step %d"):format(case.name, t))
      check.eq(lr, opt.param_groups[1].lr)
    end
    check.eq(sched.steps, #case.expected - 1)
    check.eq(sched:last_lr(), group_lrs(opt))
  end
end

-- Stopping half-way, saving both states, and resuming in fresh objects gives
-- the same rates as running through.
function T.schedule_state_round_trip()
  local spec = read_json("schedules.json")
  for _, case in ipairs(spec.cases) do
    local n = #case.expected - 1
    local half = n // 2
    local opt = dummy_optimizer(case.lrs)
    local sched = make_schedule(opt, case.kind, case.opts, case.inner)
    local function metric(t) return case.metrics and metric_value(case.metrics[t]) or nil end
    for t = 1, half do sched:step(metric(t)) end
    local saved = sched:state()
    for _, v in pairs(saved) do check.truthy(not bn.is_tensor(v), case.name .. ": plain values only") end
    local opt2 = dummy_optimizer(case.lrs)
    local sched2 = make_schedule(opt2, case.kind, case.opts, case.inner)
    sched2:load_state(saved)
    check.eq(group_lrs(opt2), group_lrs(opt), case.name .. " after load_state")
    for t = half + 1, n do
      sched2:step(metric(t))
      check_lrs(opt2, case.expected[t + 1], ("%s resumed, step %d"):format(case.name, t))
    end
  end
end

-- The plateau state has no infinities before a metric improved (JSON-safe).
function T.plateau_state_without_best()
  local opt = dummy_optimizer({ 0.1 })
  local s = bn.optim.schedule.plateau(opt, { mode = "max" })
  local st = s:state()
  check.eq(st.best, nil)
  s:step(0.5)
  check.eq(s:state().best, 0.5)
  s:load_state(st)
  check.eq(s.best, -math.huge)
end

-- ---- SGD behaviour ---------------------------------------------------------------------------

-- Checkpoint: stop after 3 steps, save, restore into a fresh optimizer over
-- copies of the parameters: the next steps are bit-identical.
function T.sgd_state_round_trip()
  local X, Y = bn.load(FIX .. "X.npy"), bn.load(FIX .. "Y.npy")
  local function loss_of(W, b) return bn.mse_loss(bn.linear(X, W, b), Y) end
  local W, b = leaf(bn.load(FIX .. "W0.npy")), leaf(bn.load(FIX .. "b0.npy"))
  local opt = bn.optim.SGD({ W, b }, { lr = 0.05, momentum = 0.9, weight_decay = 1e-4, nesterov = true })
  local function step(o, w, bb)
    o:zero_grad()
    loss_of(w, bb):backward()
    o:step()
  end
  for _ = 1, 3 do step(opt, W, b) end
  local state = opt:state()
  check.eq(state.step, 3)
  check.eq(state.param_groups[1].n_params, 2)
  check.eq(state.param_groups[1].nesterov, true)
  local W2, b2 = leaf(W), leaf(b)
  for _ = 1, 2 do step(opt, W, b) end
  -- The snapshot is a copy: later steps did not change it.
  check.truthy(not bn.equal(state.momentum_buffers[1], opt:momentum_buffer(W)), "state holds copies")

  local opt2 = bn.optim.SGD({ W2, b2 }, { lr = 1 }) -- hyperparameters come from the state
  opt2:load_state(state)
  check.eq(opt2.lr, 0.05)
  check.eq(opt2.param_groups[1].momentum, 0.9)
  check.eq(opt2.num_steps, 3)
  for _ = 1, 2 do step(opt2, W2, b2) end
  check.truthy(bn.equal(W, W2), "W resumed bit-identically")
  check.truthy(bn.equal(b, b2), "b resumed bit-identically")
  check.truthy(bn.equal(opt:momentum_buffer(W), opt2:momentum_buffer(W2)), "buffer resumed")
end

-- Parameters without .grad are skipped: no update, no buffer (PyTorch).
function T.sgd_skips_params_without_grad()
  local a, b = bn.tensor{ 1, 2 }:requires_grad(true), bn.tensor{ 3, 4 }:requires_grad(true)
  local opt = bn.optim.SGD({ a, b }, { lr = 0.5, momentum = 0.9 })
  ;(a * a):sum():backward()
  opt:step()
  check.eq(a:totable(), { 0.0, 0.0 })
  check.eq(b:totable(), { 3.0, 4.0 })
  check.truthy(opt:momentum_buffer(a) ~= nil, "a has a buffer")
  check.eq(opt:momentum_buffer(b), nil)
  local s = opt:state()
  check.truthy(s.momentum_buffers[1] ~= nil and s.momentum_buffers[2] == nil, "sparse buffers in the state")
end

function T.zero_grad_modes()
  local a = bn.tensor{ 1, 2 }:requires_grad(true)
  local opt = bn.optim.SGD({ a }, { lr = 0.1 })
  ;(a * 3):sum():backward()
  opt:zero_grad(false)
  check.eq(a.grad:totable(), { 0.0, 0.0 })
  opt:zero_grad()
  check.eq(a.grad, nil)
  check.raises(function() opt:zero_grad("yes") end, "bn.optim.SGD:zero_grad: argument #2 (set_to_none) expected a boolean")
end

function T.lr_property_and_groups()
  local a, b = bn.zeros(2):requires_grad(true), bn.zeros(3):requires_grad(true)
  local opt = bn.optim.SGD({ { params = { a } }, { params = { b }, lr = 0.5, weight_decay = 0.1 } },
    { lr = 0.1, momentum = 0.9 })
  check.eq(opt.lr, 0.1)
  check.eq(opt.param_groups[2].lr, 0.5)
  check.eq(opt.param_groups[2].momentum, 0.9)
  check.eq(opt.param_groups[1].weight_decay, 0)
  opt.lr = 0.01 -- every group
  check.eq(opt.param_groups[1].lr, 0.01)
  check.eq(opt.param_groups[2].lr, 0.01)
  local c = bn.zeros(1):requires_grad(true)
  opt:add_param_group{ params = { c }, nesterov = true }
  check.eq(#opt.param_groups, 3)
  check.eq(opt.param_groups[3].lr, 0.1) -- the defaults, not the current lr
  check.contains(tostring(opt), "bn.optim.SGD (3 groups, 3 tensors, 6 values; lr 0.01, momentum 0.9")
  check.raises(function() opt:add_param_group{ params = { a } } end, "is the same tensor as")
end

function T.step_closure()
  local w = bn.tensor{ 2 }:requires_grad(true)
  local opt = bn.optim.SGD({ w }, { lr = 0.25 })
  local loss = bn.no_grad(function()
    return opt:step(function()
      opt:zero_grad()
      local l = (w * w):sum() -- grad mode is on inside the closure
      l:backward()
      return l
    end)
  end)
  check.eq(loss:item(), 4.0)
  check.eq(w:totable(), { 1.0 })
end

function T.module_parameters()
  if not bn.nn or not bn.nn.Linear then check.skip("bn.nn.Linear is not there") end
  bn.manual_seed(3)
  local net = bn.nn.Linear(3, 2)
  local opt = bn.optim.SGD(net, { lr = 0.1 }) -- a module: its :parameters()
  check.eq(#opt.param_groups[1].params, #net:parameters())
  local before = net.weight:clone()
  net(bn.ones(4, 3)):sum():backward()
  opt:step()
  check.truthy(not bn.equal(before, net.weight), "the module's weight moved")
end

-- A long run keeps no graph nodes and no growing memory.
function T.no_leaks()
  local w = bn.randn(64, 64):requires_grad(true)
  local opt = bn.optim.SGD({ w }, { lr = 1e-3, momentum = 0.9 })
  local function step()
    opt:zero_grad()
    ;(w * w):sum():backward()
    opt:step()
  end
  for _ = 1, 5 do step() end
  collectgarbage()
  local mem = bn.mem_in_use()
  for _ = 1, 200 do step() end
  collectgarbage()
  check.eq(bn.nodes_alive(), 0)
  check.truthy(bn.mem_in_use() <= mem, ("memory grew from %d to %d"):format(mem, bn.mem_in_use()))
end

-- ---- errors ------------------------------------------------------------------------------------

function T.sgd_errors()
  local w = bn.zeros(2):requires_grad(true)
  local SGD = bn.optim.SGD
  check.raises(SGD, "bn.optim.SGD: option 'lr' expected a finite number >= 0, got number -0.1", { w }, { lr = -0.1 })
  check.raises(SGD, "option 'lr' expected a finite number >= 0, got number nan", { w }, { lr = 0 / 0 })
  check.raises(SGD, "option 'lr' expected a finite number >= 0, got string '0.1'", { w }, { lr = "0.1" })
  check.raises(SGD, "bn.optim.SGD: argument #2 (opts) needs 'lr'", { w }, { momentum = 0.9 })
  check.raises(SGD, "bn.optim.SGD: argument #2 (opts) needs 'lr'", { w })
  check.raises(SGD, "option 'momentum' expected a finite number >= 0, got number -1", { w }, { lr = 1, momentum = -1 })
  check.raises(SGD, "option 'weight_decay' expected a finite number >= 0", { w }, { lr = 1, weight_decay = -1e-4 })
  check.raises(SGD, "bn.optim.SGD: option 'nesterov' requires momentum > 0 and dampening == 0, got momentum 0",
    { w }, { lr = 0.1, nesterov = true })
  check.raises(SGD, "option 'nesterov' requires momentum > 0 and dampening == 0, got momentum 0.9, dampening 0.1",
    { w }, { lr = 0.1, momentum = 0.9, dampening = 0.1, nesterov = true })
  check.raises(SGD, "option 'nesterov' expected a boolean, got number 1", { w }, { lr = 0.1, nesterov = 1 })
  check.raises(SGD, "bn.optim.SGD: unknown option 'moment' (known: dampening, lr, maximize, momentum, nesterov, weight_decay)",
    { w }, { lr = 0.1, moment = 0.9 })
  check.raises(SGD, "argument #2 (opts) expected a table of options, got number 0.1", { w }, 0.1)
  check.raises(SGD, "bn.optim.SGD: argument #1 (params) element 2 expected a tensor, got string 'w'", { w, "w" }, { lr = 1 })
  check.raises(SGD, "argument #1 (params) expected a list of tensors, a list of parameter groups or a module, got tensor [2]",
    w, { lr = 1 })
  check.raises(SGD, "argument #1 (params) expected a list of tensors, a list of parameter groups or a module, got nil",
    nil, { lr = 1 })
  check.raises(SGD, "bn.optim.SGD: argument #1 (params) is an empty parameter list", {}, { lr = 1 })
  check.raises(SGD, "got a table without list entries (a name -> tensor map?", { weight = w }, { lr = 1 })
  check.raises(SGD, "argument #1 (params) element 1 is not a leaf (made by mul)", { w * 2 }, { lr = 1 })
  check.raises(SGD, "argument #1 (params) element 2 is the same tensor as element 1", { w, w }, { lr = 1 })
  local closed
  do
    local t <close> = bn.zeros(1)
    closed = t
  end
  check.raises(SGD, "element 1 expected a tensor, got a closed tensor", { closed }, { lr = 1 })
  check.raises(SGD, "argument #1 (params) group 2 option 'lr' expected a finite number >= 0, got number -1",
    { { params = { w } }, { params = { bn.zeros(1) }, lr = -1 } }, { lr = 1 })
  check.raises(SGD, "argument #1 (params) group 1 unknown key 'lrate'", { { params = { w }, lrate = 1 } }, { lr = 1 })
  check.raises(SGD, "argument #1 (params) group 1 has no 'params'", { { lr = 1 } }, { lr = 1 })
  check.raises(SGD, "group 2 element 1 is the same tensor as group 1 element 1",
    { { params = { w } }, { params = { w } } }, { lr = 1 })

  local opt = SGD({ w }, { lr = 0.1 })
  local err = check.raises(function() opt.lr = -1 end, "bn.optim.SGD: opt.lr expected a finite number >= 0, got number -1")
  check.contains(err, "test_optim.lua:", "blames the assignment's line")
  check.eq(opt.lr, 0.1)
  opt.param_groups[1].momentum = -0.5
  check.raises(function() opt:step() end, "bn.optim.SGD:step: group 1 option 'momentum' expected a finite number >= 0")
  opt.param_groups[1].momentum = 0
  check.raises(function() opt:step(42) end, "bn.optim.SGD:step: argument #2 (closure) expected a function, got number 42")

  -- load_state checks everything before changing anything.
  local s = opt:state()
  check.raises(function() opt:load_state(nil) end, "bn.optim.SGD:load_state: argument #2 (state) expected a table")
  check.raises(function() opt:load_state{ step = 1, param_groups = {} } end,
    "state.param_groups expected a list of 1 group(s), got 0")
  s.momentum_buffers = { [1] = bn.zeros(3) }
  check.raises(function() opt:load_state(s) end, "state.momentum_buffers[1] expected shape [2] (its parameter's), got [3]")
  s.momentum_buffers = { [2] = bn.zeros(2) }
  check.raises(function() opt:load_state(s) end, "state.momentum_buffers has key number 2; expected parameter numbers 1..1")
  s.momentum_buffers = {}
  s.param_groups[1].lr = -3
  check.raises(function() opt:load_state(s) end, "state.param_groups[1] option 'lr' expected a finite number >= 0")
  s.param_groups[1].lr = 0.1
  s.extra = 1
  check.raises(function() opt:load_state(s) end, "state has an unknown key 'extra'")
end

function T.sgd_step_binding_errors()
  local w = bn.zeros(2):requires_grad(true)
  ;(w * 2):sum():backward()
  local f = bn.sgd_step
  check.raises(f, "bn.sgd_step: argument #1 (params) expected a table of tensors, got tensor [2]", w, {}, { lr = 1 })
  check.raises(f, "bn.sgd_step: argument #3 (opts) expected a table of options with at least lr, got no value", { w }, {})
  check.raises(f, "bn.sgd_step: argument #3 (opts) needs field 'lr'", { w }, {}, {})
  check.raises(f, "bn.sgd_step: option 'lr' expected a finite number >= 0, got number -1", { w }, {}, { lr = -1 })
  check.raises(f, "bn.sgd_step: option 'lr' expected a finite number >= 0, got number inf", { w }, {}, { lr = math.huge })
  check.raises(f, "bn.sgd_step: option 'nesterov' requires momentum > 0 and dampening == 0", { w }, {},
    { lr = 1, nesterov = true })
  check.raises(f, "unknown option", { w }, {}, { lr = 1, lrr = 2 })
  check.raises(f, "bn.sgd_step: argument #1 (params) element 2 expected a tensor, got number 3", { w, 3 }, {}, { lr = 1 })
  check.raises(f, "bn.sgd_step: argument #2 (bufs) expected a table (the momentum buffers, filled in here), got nil",
    { w }, nil, { lr = 1, momentum = 0.9 })
  check.raises(f, "bn.sgd_step: argument #2 (bufs) element 1 expected a tensor or nil, got string 'x'", { w }, { "x" },
    { lr = 1, momentum = 0.9 })
  check.raises(f, "bn.sgd_step: argument #2 (bufs) element 1 expected shape [2] (its parameter's), got [3]", { w },
    { bn.zeros(3) }, { lr = 1, momentum = 0.9 })
  -- Views sharing memory are caught by the core.
  local base = bn.zeros(4)
  local v1, v2 = base:narrow(1, 1, 3):requires_grad(true), base:narrow(1, 2, 3):requires_grad(true)
  v1.grad, v2.grad = bn.ones(3), bn.ones(3)
  check.raises(f, "bn.sgd_step: params[0] and params[1] share memory", { v1, v2 }, {}, { lr = 1 })
  check.eq(w:totable(), { 0.0, 0.0 }, "nothing was updated")

  -- The direct form works and fills the buffers table.
  local bufs = {}
  f({ w }, bufs, { lr = 0.5, momentum = 0.9 })
  check.eq(w:totable(), { -1.0, -1.0 })
  check.eq(bufs[1]:totable(), { 2.0, 2.0 })
  f({ w }, bufs, { lr = 0.5, momentum = 0.9, dampening = 0.5 })
  check.near(bufs[1]:totable()[2], 0.9 * 2 + 0.5 * 2, 1e-6) -- dampened after the first step
end

function T.schedule_errors()
  local S = bn.optim.schedule
  local opt = dummy_optimizer({ 0.1 })
  check.raises(S.step, "bn.optim.schedule.step: option 'step_size' expected an integer >= 1, got nil", opt, {})
  check.raises(S.step, "option 'step_size' expected an integer >= 1, got number 0", opt, { step_size = 0 })
  check.raises(S.step, "bn.optim.schedule.step: unknown option 'stepsize'", opt, { stepsize = 2 })
  check.raises(S.step, "argument #1 (optimizer) expected an optimizer such as bn.optim.SGD", {}, { step_size = 2 })
  check.raises(S.multistep, "option 'milestones' expected a list of integers >= 1, got number 3", opt, { milestones = 3 })
  check.raises(S.multistep, "option 'milestones' element 2 expected an integer >= 1, got number 2.5", opt,
    { milestones = { 1, 2.5 } })
  check.raises(S.cosine, "bn.optim.schedule.cosine: option 'T_max' expected an integer >= 1, got nil", opt, {})
  check.raises(S.cosine, "option 'eta_min' expected a finite number >= 0, got number -1", opt, { T_max = 3, eta_min = -1 })
  check.raises(S.warmup, "bn.optim.schedule.warmup: option 'start_factor' expected a number in (0, 1], got number 0", opt,
    { start_factor = 0 })
  check.raises(S.warmup, "option 'end_factor' expected a number in [0, 1], got number 2", opt, { end_factor = 2 })
  check.raises(S.warmup, "option 'total_iters' expected an integer >= 1, got number 0", opt, { total_iters = 0 })
  local inner = S.step(opt, { step_size = 2 })
  S.warmup(inner)
  check.raises(S.warmup, "already wrapped", inner)
  check.raises(S.plateau, "bn.optim.schedule.plateau: option 'factor' expected a number in [0, 1), got number 1", opt,
    { factor = 1 })
  check.raises(S.plateau, "option 'mode' expected one of 'min', 'max', got string 'avg'", opt, { mode = "avg" })
  check.raises(S.plateau, "option 'threshold_mode' expected one of 'rel', 'abs'", opt, { threshold_mode = "relative" })
  check.raises(S.plateau, "option 'patience' expected an integer >= 0, got number -1", opt, { patience = -1 })
  check.raises(S.plateau, "option 'min_lr' expected a number or a list of 1 (one per parameter group), got a list of 2",
    opt, { min_lr = { 0, 0 } })
  local p = S.plateau(dummy_optimizer({ 0.1 }))
  check.raises(function() p:step() end, "bn.optim.schedule.plateau:step: argument #2 (metric) expected a number or a one-element tensor, got nil")
  check.raises(function() p:step(bn.zeros(2)) end, "got tensor [2]")
  check.eq(p:step(bn.tensor{ 1.5 }), 0.1) -- a loss tensor is fine
  local w = S.warmup(S.plateau(dummy_optimizer({ 0.1 })))
  check.raises(function() w:step() end, "bn.optim.schedule.warmup:step: argument #2 (metric)")

  -- load_state
  local c = S.cosine(opt, { T_max = 5 })
  check.raises(function() c:load_state(p:state()) end, "bn.optim.schedule.cosine:load_state: state.kind expected 'cosine', got string 'plateau'")
  check.raises(function() c:load_state{ kind = "cosine", steps = -1, base_lrs = { 0.1 } } end, "state.steps expected an integer >= 0")
  check.raises(function() c:load_state{ kind = "cosine", steps = 1, base_lrs = {} } end,
    "state.base_lrs expected a list of 1 number(s)")
  local ww = S.warmup(S.cosine(opt, { T_max = 5 }))
  check.raises(function() ww:load_state{ kind = "warmup", steps = 1, inner = { kind = "step", steps = 1 } } end,
    "state.inner.kind expected 'cosine', got string 'step'")
  -- Groups added after the schedule was made are an error, not silently skipped.
  local opt2 = dummy_optimizer({ 0.1 })
  local s2 = S.step(opt2, { step_size = 1 })
  opt2:add_param_group{ params = { bn.zeros(1) } }
  check.raises(function() s2:step() end, "the optimizer has 2 parameter group(s); the schedule was made for 1")
end

-- Schedules that need no metric ignore one, so a training loop can always pass it.
function T.schedules_ignore_metric()
  local opt = dummy_optimizer({ 1.0 })
  local s = bn.optim.schedule.step(opt, { step_size = 1, gamma = 0.5 })
  check.eq(s:step(123.0), 0.5)
  check.eq(s:step("anything"), 0.25)
  check.contains(tostring(s), "bn.optim.schedule.step (step 2, lr 0.25)")
end

return T
