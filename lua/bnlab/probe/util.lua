-- Shared machinery of the probes (docs/probe.md): layer selection, the
-- guard that leaves a model exactly as it found it, gradients, losses.
--
-- The promise every probe keeps: afterwards the parameters, the buffers
-- (BatchNorm running statistics), the parameters' .grad, every module's
-- train/eval flag, the global random generator and the grad mode are what
-- they were before, bit for bit. Probes observe layers through pattern
-- hooks on the names modules give their outputs; they never patch a model.
local bn = require "bnlab"
local nutil = require "bnlab.nn.util"

local U = {}

U.options = nutil.options
U.set = nutil.set
U.show = nutil.show
U.shape_str = nutil.shape_str

function U.fail(where, message, level)
  error(where .. ": " .. message, (level or 1) + 1)
end

local WEIGHT_TYPES = { "Conv2d", "Linear" }
local DEFAULT_TYPES = { "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "BasicBlock" }
U.WEIGHT_TYPES, U.DEFAULT_TYPES = WEIGHT_TYPES, DEFAULT_TYPES

function U.check_net(net, where)
  if type(net) ~= "table" or type(net.named_parameters) ~= "function" or type(net.named_modules) ~= "function" then
    U.fail(where, ("argument #1 (net) expected a bn.nn module, got %s"):format(U.show(net)), 3)
  end
end

-- ---- selecting layers by name ---------------------------------------------------

--- A glob ('*' any run of characters, dots included; '?' one character;
-- everything else literal, the whole name must match) as a Lua pattern.
function U.glob_pattern(glob)
  local out = { "^" }
  for ch in glob:gmatch(".") do
    if ch == "*" then out[#out + 1] = ".*"
    elseif ch == "?" then out[#out + 1] = "."
    elseif ch:match("%W") then out[#out + 1] = "%" .. ch
    else out[#out + 1] = ch end
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

--- The paths of net's modules of the given types, in registration
-- (pre-order) order: for the bn.models networks, forward order.
function U.paths_of(net, types)
  local out = {}
  for _, e in ipairs(net:named_modules(types)) do
    if e[1] ~= "" then out[#out + 1] = e[1] end
  end
  return out
end

--- A function(name) -> bool from a layer selection: nil (the default
-- types: Conv2d, Linear, BatchNorm1d/2d, BasicBlock), a glob string, a list
-- of globs, or a function(name) -> bool. `types` (a module type name or a
-- list of them, e.g. "BasicBlock") keeps only the outputs of modules of
-- those types (and, with spec, those the spec also accepts).
function U.selector(net, spec, where, what, types)
  what = what or "option 'layers'"
  if types ~= nil then
    if type(types) == "string" then types = { types } end
    if type(types) ~= "table" or #types == 0 then
      U.fail(where, ("option 'types' expected a module type name or a list of them, got %s"):format(U.show(types)), 3)
    end
    local set = U.set(U.paths_of(net, types))
    local inner = spec ~= nil and U.selector(net, spec, where, what) or function() return true end
    return function(name) return set[name] == true and inner(name) end
  end
  if spec == nil then
    local set = U.set(U.paths_of(net, DEFAULT_TYPES))
    return function(name) return set[name] == true end
  elseif type(spec) == "string" then
    local pat = U.glob_pattern(spec)
    return function(name) return name:match(pat) ~= nil end
  elseif type(spec) == "function" then
    return function(name) return spec(name) and true or false end
  elseif type(spec) == "table" then
    local pats = {}
    for i, g in ipairs(spec) do
      if type(g) ~= "string" then
        U.fail(where, ("%s[%d] expected a glob string, got %s"):format(what, i, U.show(g)), 3)
      end
      pats[i] = U.glob_pattern(g)
    end
    if #pats == 0 then U.fail(where, what .. " expected a non-empty list of globs", 3) end
    return function(name)
      for _, p in ipairs(pats) do
        if name:match(p) then return true end
      end
      return false
    end
  end
  U.fail(where, ("%s expected nil, a glob string, a list of globs or a function, got %s"):format(what, U.show(spec)), 3)
end

-- ---- the guard ------------------------------------------------------------------------

local function snapshot(list)
  return bn.no_grad(function()
    local s = {}
    for i, e in ipairs(list) do s[i] = { e[2], e[2]:detach():clone() } end
    return s
  end)
end

local function restore(snap)
  if not snap then return end
  bn.no_grad(function()
    for _, e in ipairs(snap) do e[1]:copy(e[2]) end
  end)
end
U.restore = restore

--- Runs fn(ctx) with the model in `mode` ("train", "eval" or nil: as it
-- is) and restores everything afterwards, also when fn raises (the error is
-- re-raised). keep_params: also snapshot the parameters (for probes that
-- move them). ctx.params is the ordered {name, tensor} list; ctx.base[i]
-- the snapshot copy of parameter i (when keep_params); ctx:hook(pattern,
-- fwd, bwd) adds a pattern hook removed on exit.
U.running = 0 -- probes in progress (watch ignores their forward passes)

function U.guard(net, mode, keep_params, fn)
  local modules = net:modules()
  local flags = {}
  for i, m in ipairs(modules) do flags[i] = m.training end
  local params = net:named_parameters()
  local buffers = snapshot(net:named_buffers())
  local psnap = keep_params and snapshot(params) or nil
  local grads = {}
  for i, e in ipairs(params) do
    grads[i] = e[2].grad
    e[2].grad = nil
  end
  local rng = bn.rng_state()
  local grad_mode = bn.is_grad_enabled()
  local hooks = {}
  local ctx = { params = params, base = {}, rng = rng }
  -- Before each forward of a probe that compares forwards: the same random
  -- numbers (dropout masks) every time.
  function ctx.same_noise() bn.set_rng_state(rng) end
  if psnap then for i, e in ipairs(psnap) do ctx.base[i] = e[2] end end
  function ctx.hook(_, pattern, fwd, bwd)
    local id = bn.hooks_add(pattern, fwd, bwd)
    hooks[#hooks + 1] = id
    return id
  end
  if mode == "train" then net:train(true) elseif mode == "eval" then net:train(false) end

  U.running = U.running + 1
  local res = table.pack(pcall(fn, ctx))
  U.running = U.running - 1

  for _, id in ipairs(hooks) do pcall(bn.hooks_remove, id) end
  bn.set_grad_enabled(grad_mode)
  restore(psnap)
  restore(buffers)
  for i, e in ipairs(params) do
    local p = e[2]
    p.grad = nil
    if grads[i] ~= nil then p.grad = grads[i] end
  end
  bn.set_rng_state(rng)
  for i, m in ipairs(modules) do m.training = flags[i] end
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- The mode option: nil, "train" or "eval".
function U.mode(v, where)
  if v ~= nil and v ~= "train" and v ~= "eval" then
    U.fail(where, ("option 'mode' expected 'train' or 'eval' (default: the net's current mode), got %s"):format(U.show(v)), 3)
  end
  return v
end

-- ---- losses and gradients ---------------------------------------------------------

--- The loss: opts.loss(output, y) -> 0-d tensor, or mean cross-entropy.
function U.loss_fn(opts, where)
  local f = opts.loss
  if f == nil then return function(out, y) return bn.cross_entropy(out, y) end end
  if type(f) ~= "function" then U.fail(where, ("option 'loss' expected a function(output, y), got %s"):format(U.show(f)), 3) end
  return f
end

--- One-hot [B x K] of 1-based labels (a table or a 1-D tensor).
function U.one_hot(y, classes)
  local labels = bn.is_tensor(y) and y:totable() or y
  local t = bn.zeros(#labels, classes)
  for i, c in ipairs(labels) do
    local row = t[i]
    row[math.tointeger(c)] = 1
  end
  return t
end

--- The per-example loss: opts.per_example_loss(output, y) -> [B] tensor,
-- or cross-entropy per example, -log_softmax(out)[i, y_i].
function U.per_example_loss_fn(opts, where)
  local f = opts.per_example_loss
  if f == nil then
    return function(out, y)
      local logp = bn.log_softmax(out, 2)
      return -(logp * U.one_hot(y, out:size(2))):sum(2)
    end
  end
  if type(f) ~= "function" then
    U.fail(where, ("option 'per_example_loss' expected a function(output, y) -> [B] tensor, got %s"):format(U.show(f)), 3)
  end
  return f
end

--- Forward + loss + backward with grad mode on; returns the loss (a
-- number) and, aligned with `params` ({name, tensor} list), each gradient
-- (zeros for a parameter the loss does not reach). Every .grad is left nil.
function U.gradient(net, params, x, y, lossfn)
  local was = bn.set_grad_enabled(true)
  local ok, loss = pcall(function()
    local l = lossfn(net(x), y)
    l:backward()
    return l:item()
  end)
  bn.set_grad_enabled(was)
  if not ok then error(loss, 0) end
  local grads = {}
  for i, e in ipairs(params) do
    local p = e[2]
    local g = p.grad
    p.grad = nil
    grads[i] = g or bn.zeros_like(p)
  end
  return loss, grads
end

--- Sets parameter i to base[i] + f * dir[i] (dir may be nil: base itself),
-- or exactly base[i] when f == 0.
function U.set_params(params, base, dir, f)
  bn.no_grad(function()
    for i, e in ipairs(params) do
      if f == 0 or dir == nil or dir[i] == nil then e[2]:copy(base[i])
      else e[2]:copy(base[i] + f * dir[i]) end
    end
  end)
end

--- Σ over a list of tensors of Σ a·b, accumulated in double (per tensor
-- the sum is float32).
function U.dot(a, b)
  local s = 0
  for i = 1, #a do s = s + (a[i] * b[i]):sum():item() end
  return s
end

function U.norm(list) return math.sqrt(U.dot(list, list)) end

-- ---- statistics -----------------------------------------------------------------

--- Per-channel statistics of an activation [N x C x ...] (C = 1 for a 1-D
-- tensor): mean, var (population), std, absmax as [C] tensors.
function U.channel_stats(t)
  if t:dim() < 2 then t = t:reshape(-1, 1) end
  local mean, var, absmax = bn._probe.channel_stats(t)
  return { mean = mean, var = var, std = var:sqrt(), absmax = absmax }
end

--- Histogram of every value: {counts = [bins] tensor, lo =, hi =, edges =
-- [bins + 1] tensor}; range = {lo, hi} or nil (the finite min and max).
function U.histogram(t, bins, range)
  local counts, lo, hi = bn._probe.histc(t, bins, range and range[1] or 0, range and range[2] or 0)
  return { counts = counts, lo = lo, hi = hi, edges = bn.linspace(lo, hi, bins + 1) }
end

--- A [rows x width] tensor, row i = list[i] (1-D, padded with NaN).
function U.pad_rows(list, width)
  local out = bn.full({ #list, math.max(width, 1) }, 0 / 0)
  bn.no_grad(function()
    for i, v in ipairs(list) do
      local n = v:numel()
      if n > 0 then out[i]:narrow(1, 1, n):copy(v:reshape(n)) end
    end
  end)
  return out
end

--- Rows of a tensor (bn.cat of narrow views) or of a table, by 1-based index.
function U.take(t, idx)
  if bn.is_tensor(t) then
    local run = #idx > 0
    for k = 2, #idx do if idx[k] ~= idx[1] + k - 1 then run = false break end end
    if run then return t:narrow(1, idx[1], #idx) end
    local parts = {}
    for k, i in ipairs(idx) do parts[k] = t:narrow(1, i, 1) end
    return bn.cat(parts, 1)
  end
  local out = {}
  for k, i in ipairs(idx) do out[k] = t[i] end
  return out
end

function U.count(y)
  if bn.is_tensor(y) then return y:size(1) end
  return #y
end

--- A small deterministic generator (xorshift64*) for the probes' own draws,
-- so they never touch the global stream.
function U.rng(seed)
  local s = (math.tointeger(seed) or 0) * 2654435761 + 88172645463325252
  if s == 0 then s = 1 end
  local r = {}
  function r.next()
    s = s ~ (s >> 12); s = s ~ (s << 25); s = s ~ (s >> 27)
    return (s * 2685821657736338717) >> 11 -- 53 bits
  end
  function r.uniform() return r.next() / 9007199254740992.0 end
  function r.int(n) return 1 + math.floor(r.uniform() * n) end
  --- k distinct indices from 1..n (a partial Fisher-Yates shuffle).
  function r.sample(n, k)
    local perm, out = {}, {}
    for i = 1, k do
      local j = i - 1 + r.int(n - i + 1)
      local a, b = perm[i] or i, perm[j] or j
      perm[i], perm[j] = b, a
      out[i] = b
    end
    return out
  end
  return r
end

return U
