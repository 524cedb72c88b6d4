-- bn.init: weight initializations (docs/nn.md#initializations), loaded as
-- require "bnlab.initializers" (bn.init is an alias).
--
-- Every function fills its tensor in place under bn.no_grad and returns it.
-- Random ones draw from bnlab's global generator: seed it with
-- bn.manual_seed(s), or pass {seed = s}, which calls bn.manual_seed(s) first
-- (so it also fixes what is drawn after). Fans follow PyTorch: for a weight
-- [out x in x k...], fan_in = in * prod(k) and fan_out = out * prod(k).
local bn = require "bnlab"
local util = require "bnlab.nn.util"

local init = {}

local function check_tensor(t, where, min_dim)
  if not bn.is_tensor(t) then
    util.fail(where, ("argument #1 expected a tensor, got %s"):format(util.show(t)), 2)
  end
  if min_dim and t:dim() < min_dim then
    util.fail(where, ("argument #1 expected a tensor with at least %d dims (fans need [out x in ...]), got %s")
      :format(min_dim, util.shape_str(t)), 2)
  end
end

local function seed_from(opts, where)
  if opts.seed ~= nil then bn.manual_seed(util.integer(opts.seed, where, "option 'seed'", 0)) end
end

local function fill(t, values)
  bn.no_grad(function() t:copy(values) end)
  return t
end

--- fan_in, fan_out of a weight tensor (at least 2 dims).
function init.fans(t)
  check_tensor(t, "bn.init.fans", 2)
  local receptive = 1
  for d = 3, t:dim() do receptive = receptive * t:size(d) end
  return t:size(2) * receptive, t:size(1) * receptive
end

local GAINS = { linear = 1, conv2d = 1, sigmoid = 1, identity = 1, tanh = 5 / 3, relu = math.sqrt(2) }

--- The recommended gain for a nonlinearity, as PyTorch's calculate_gain:
-- linear/conv2d/sigmoid/identity 1, tanh 5/3, relu sqrt(2), leaky_relu
-- sqrt(2 / (1 + a^2)) with slope a (default 0.01).
function init.calculate_gain(nonlinearity, a)
  if nonlinearity == "leaky_relu" then
    a = a or 0.01
    util.number(a, "bn.init.calculate_gain", "argument #2 (negative slope)")
    return math.sqrt(2 / (1 + a * a))
  end
  local g = GAINS[nonlinearity]
  if not g then
    util.fail("bn.init.calculate_gain", ("unknown nonlinearity %s (known: identity, leaky_relu, linear, conv2d, relu, sigmoid, tanh)")
      :format(util.show(nonlinearity)))
  end
  return g
end

local function normal_values(t, mean, std) return bn.randn(t:shape()) * std + mean end
local function uniform_values(t, lo, hi) return bn.rand(t:shape()) * (hi - lo) + lo end

local KAIMING = util.set { "mode", "nonlinearity", "a", "seed" }

local function kaiming_std(t, opts, where)
  local fan_in, fan_out = init.fans(t)
  local mode = util.choice(opts.mode or "fan_in", where, "option 'mode'", { "fan_in", "fan_out" })
  local gain = init.calculate_gain(opts.nonlinearity or "relu", opts.a)
  return gain / math.sqrt(mode == "fan_in" and fan_in or fan_out)
end

--- kaiming_normal(t [, {mode = "fan_in" | "fan_out", nonlinearity = "relu",
-- a = slope for leaky_relu, seed = s}]): N(0, std^2), std = gain / sqrt(fan).
function init.kaiming_normal(t, opts)
  local where = "bn.init.kaiming_normal"
  check_tensor(t, where, 2)
  opts = util.options(opts, where, KAIMING)
  local std = kaiming_std(t, opts, where)
  seed_from(opts, where)
  return fill(t, normal_values(t, 0, std))
end

--- kaiming_uniform(t [, opts as kaiming_normal]): U(-b, b), b = gain * sqrt(3 / fan).
function init.kaiming_uniform(t, opts)
  local where = "bn.init.kaiming_uniform"
  check_tensor(t, where, 2)
  opts = util.options(opts, where, KAIMING)
  local bound = math.sqrt(3) * kaiming_std(t, opts, where)
  seed_from(opts, where)
  return fill(t, uniform_values(t, -bound, bound))
end

local XAVIER = util.set { "gain", "seed" }

local function xavier_std(t, opts, where)
  local fan_in, fan_out = init.fans(t)
  local gain = util.number(opts.gain or 1, where, "option 'gain'", 0)
  return gain * math.sqrt(2 / (fan_in + fan_out))
end

--- xavier_normal(t [, {gain = 1, seed = s}]): std = gain * sqrt(2 / (fan_in + fan_out)).
function init.xavier_normal(t, opts)
  local where = "bn.init.xavier_normal"
  check_tensor(t, where, 2)
  opts = util.options(opts, where, XAVIER)
  local std = xavier_std(t, opts, where)
  seed_from(opts, where)
  return fill(t, normal_values(t, 0, std))
end

--- xavier_uniform(t [, {gain = 1, seed = s}]): U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)).
function init.xavier_uniform(t, opts)
  local where = "bn.init.xavier_uniform"
  check_tensor(t, where, 2)
  opts = util.options(opts, where, XAVIER)
  local bound = math.sqrt(3) * xavier_std(t, opts, where)
  seed_from(opts, where)
  return fill(t, uniform_values(t, -bound, bound))
end

--- n orthonormal rows of length m (n <= m): Gram-Schmidt on a Gaussian
-- matrix, each vector orthogonalized twice against the previous ones
-- ("twice is enough", Giraud et al. 2005), which keeps Q^T Q = I to float
-- precision. Orthogonalizing a Gaussian matrix this way (R with a positive
-- diagonal) gives a uniformly (Haar) distributed Q.
local function orthonormal_rows(n, m)
  local a = bn.randn(n, m)
  local q = bn.empty(n, m)
  for i = 1, n do
    local v = a[i]
    if i > 1 then
      local prev = q:narrow(1, 1, i - 1)
      for _ = 1, 2 do v = v - bn.matmul(bn.matmul(prev, v), prev) end
    end
    local norm = v:norm():item()
    if not (norm > 1e-6) then -- a draw in the span of the others: vanishingly rare
      v = bn.randn(m)
      if i > 1 then
        local prev = q:narrow(1, 1, i - 1)
        for _ = 1, 2 do v = v - bn.matmul(bn.matmul(prev, v), prev) end
      end
      norm = v:norm():item()
    end
    q[i] = v / norm
  end
  return q
end

--- orthogonal(t [, {gain = 1, seed = s}]): t viewed as [rows x cols]
-- (rows = size of dim 1) gets orthonormal rows (rows <= cols) or columns,
-- times gain, as PyTorch's orthogonal_.
function init.orthogonal(t, opts)
  local where = "bn.init.orthogonal"
  check_tensor(t, where, 2)
  opts = util.options(opts, where, XAVIER)
  local gain = util.number(opts.gain or 1, where, "option 'gain'")
  seed_from(opts, where)
  local rows = t:size(1)
  local cols = t:numel() // rows
  if t:numel() == 0 then return t end
  return bn.no_grad(function()
    local q
    if rows <= cols then q = orthonormal_rows(rows, cols) else q = orthonormal_rows(cols, rows):t() end
    return fill(t, (q * gain):reshape(t:shape()))
  end)
end

--- normal(t [, std = 1 [, mean = 0]]) or normal(t, {std =, mean =, seed =}).
function init.normal(t, std, mean)
  local where = "bn.init.normal"
  check_tensor(t, where)
  local opts = type(std) == "table" and util.options(std, where, util.set { "std", "mean", "seed" }) or { std = std, mean = mean }
  std = util.number(opts.std or 1, where, "std", 0)
  mean = util.number(opts.mean or 0, where, "mean")
  seed_from(opts, where)
  return fill(t, normal_values(t, mean, std))
end

--- uniform(t [, a = 0 [, b = 1]]) or uniform(t, {a =, b =, seed =}).
function init.uniform(t, a, b)
  local where = "bn.init.uniform"
  check_tensor(t, where)
  local opts = type(a) == "table" and util.options(a, where, util.set { "a", "b", "seed" }) or { a = a, b = b }
  local lo = util.number(opts.a or 0, where, "a")
  local hi = util.number(opts.b or 1, where, "b", lo)
  seed_from(opts, where)
  return fill(t, uniform_values(t, lo, hi))
end

--- constant(t, value); zeros(t); ones(t).
function init.constant(t, value)
  check_tensor(t, "bn.init.constant")
  util.number(value, "bn.init.constant", "argument #2 (value)")
  bn.no_grad(function() t:fill(value) end)
  return t
end
function init.zeros(t) return init.constant(t, 0) end
function init.ones(t) return init.constant(t, 1) end

-- ---- schemes for whole models ------------------------------------------------

local SCHEMES = {
  kaiming_normal = true, kaiming_uniform = true, xavier_normal = true, xavier_uniform = true,
  orthogonal = true, normal = true,
}

--- init.apply(net, scheme [, {types = {"Conv2d", "Linear"}, defaults = {...}, seed = s}]):
-- re-initializes the weight of every module of the listed types (biases keep
-- their value). `scheme` is
--   "default"                       leaves the layers as constructed (PyTorch's defaults),
--   a name ("kaiming_normal", "kaiming_uniform", "xavier_normal",
--   "xavier_uniform", "orthogonal", "normal") with options from `defaults`,
--   a table {name, option = value, ...} (e.g. {"kaiming_normal", mode = "fan_in"}),
--   or a function(module, path) that does anything it likes.
-- Returns net.
function init.apply(net, scheme, opts)
  local where = "bn.init.apply"
  opts = util.options(opts, where, util.set { "types", "defaults", "seed" })
  if opts.seed ~= nil then bn.manual_seed(util.integer(opts.seed, where, "option 'seed'", 0)) end
  local types = opts.types or { "Conv2d", "Linear" }
  local fn
  if type(scheme) == "function" then
    fn = scheme
  else
    local name, options = scheme, {}
    if type(scheme) == "table" then
      name = scheme[1]
      for k, v in pairs(scheme) do if k ~= 1 then options[k] = v end end
    end
    if name == "default" then return net end
    -- One seed for the whole net (a per-layer seed would repeat the same draw).
    if options.seed ~= nil then
      bn.manual_seed(util.integer(options.seed, where, "option 'seed'", 0))
      options.seed = nil
    end
    if not SCHEMES[name] then
      util.fail(where, ("scheme expected 'default', one of %s, a table {name, ...} or a function, got %s")
        :format("kaiming_normal, kaiming_uniform, xavier_normal, xavier_uniform, orthogonal, normal", util.show(name)))
    end
    for k, v in pairs(opts.defaults or {}) do
      if options[k] == nil and (name:match("^kaiming") or (k ~= "mode" and k ~= "nonlinearity")) then options[k] = v end
    end
    if name == "normal" then
      fn = function(m) init.normal(m.weight, { std = options.std, mean = options.mean }) end
    else
      fn = function(m) init[name](m.weight, options) end
    end
  end
  for _, e in ipairs(net:named_modules()) do
    local m = e[2]
    for _, ty in ipairs(types) do
      if m:typename() == ty then
        fn(m, e[1])
        break
      end
    end
  end
  return net
end

return init
