-- bn.init (lua/bnlab/initializers.lua): statistics, orthogonality, fans,
-- determinism and argument checks.
local bn = require "bnlab"
local check = require "check"
local init = require "bnlab.initializers"

local T = {}

local function stats(t)
  return t:mean():item(), t:std():item(), t:abs():max():item()
end

function T.fans_follow_pytorch()
  local fi, fo = init.fans(bn.empty(64, 32, 3, 3))
  check.eq(fi, 32 * 9)
  check.eq(fo, 64 * 9)
  fi, fo = init.fans(bn.empty(10, 784))
  check.eq(fi, 784)
  check.eq(fo, 10)
  check.raises(function() init.fans(bn.empty(5)) end, "at least 2 dims")
end

function T.gains()
  check.near(init.calculate_gain("relu"), math.sqrt(2))
  check.near(init.calculate_gain("tanh"), 5 / 3)
  check.near(init.calculate_gain("linear"), 1)
  check.near(init.calculate_gain("leaky_relu", 0.2), math.sqrt(2 / 1.04))
  check.raises(function() init.calculate_gain("swish") end, "unknown nonlinearity 'swish'")
end

function T.kaiming_normal_std_is_sqrt_2_over_fan()
  local w = bn.empty(128, 64, 3, 3) -- 73,728 draws: std within ~0.5%
  init.kaiming_normal(w, { seed = 1 })
  local mean, std = stats(w)
  local want = math.sqrt(2 / (64 * 9))
  check.near(mean, 0, 0.02 * want)
  check.near(std, want, 0.02 * want, "fan_in std")
  init.kaiming_normal(w, { mode = "fan_out", seed = 2 })
  _, std = stats(w)
  check.near(std, math.sqrt(2 / (128 * 9)), 0.02 * math.sqrt(2 / (128 * 9)), "fan_out std")
  init.kaiming_normal(w, { nonlinearity = "linear", seed = 3 })
  _, std = stats(w)
  check.near(std, math.sqrt(1 / (64 * 9)), 0.02 * math.sqrt(1 / (64 * 9)), "linear gain")
end

function T.kaiming_uniform_bound()
  local w = bn.empty(256, 512)
  init.kaiming_uniform(w, { seed = 1 })
  local bound = math.sqrt(3) * math.sqrt(2 / 512)
  local _, std, max = stats(w)
  check.truthy(max <= bound, "within the bound")
  check.truthy(max > 0.99 * bound, "reaches near the bound")
  check.near(std, bound / math.sqrt(3), 0.01 * bound)
end

function T.xavier()
  local w = bn.empty(300, 200)
  init.xavier_normal(w, { seed = 4 })
  local _, std = stats(w)
  check.near(std, math.sqrt(2 / 500), 0.02 * math.sqrt(2 / 500))
  init.xavier_uniform(w, { gain = 2, seed = 4 })
  local _, _, max = stats(w)
  local bound = 2 * math.sqrt(6 / 500)
  check.truthy(max <= bound and max > 0.99 * bound, "xavier_uniform bound")
end

function T.orthogonal_gives_orthonormal_rows_or_columns()
  local wide = init.orthogonal(bn.empty(20, 50), { seed = 1 })
  check.truthy(bn.allclose(bn.matmul(wide, wide:t()), bn.eye(20), 0, 1e-5), "Q Q^T = I (wide)")
  local tall = init.orthogonal(bn.empty(60, 15), { seed = 1 })
  check.truthy(bn.allclose(bn.matmul(tall:t(), tall), bn.eye(15), 0, 1e-5), "Q^T Q = I (tall)")
  local square = init.orthogonal(bn.empty(64, 64), { gain = 3, seed = 2 })
  check.truthy(bn.allclose(bn.matmul(square:t(), square), bn.eye(64) * 9, 0, 1e-4), "gain")
  local conv = init.orthogonal(bn.empty(16, 8, 3, 3), { seed = 3 })
  local m = conv:view(16, 72)
  check.truthy(bn.allclose(bn.matmul(m, m:t()), bn.eye(16), 0, 1e-5), "conv weight rows")
  -- a wider matrix, to exercise many Gram-Schmidt steps
  local big = init.orthogonal(bn.empty(256, 300), { seed = 4 })
  local err = (bn.matmul(big, big:t()) - bn.eye(256)):abs():max():item()
  check.truthy(err < 1e-5, "256 rows orthonormal, max error " .. err)
end

function T.seed_makes_draws_repeat()
  for _, name in ipairs({ "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "orthogonal" }) do
    local a = init[name](bn.empty(12, 9), { seed = 42 })
    local b = init[name](bn.empty(12, 9), { seed = 42 })
    local c = init[name](bn.empty(12, 9), { seed = 43 })
    check.truthy(bn.equal(a, b), name .. ": same seed, same values")
    check.truthy(not bn.equal(a, c), name .. ": other seed, other values")
  end
  bn.manual_seed(7)
  local a = init.normal(bn.empty(100), 2)
  bn.manual_seed(7)
  local b = init.normal(bn.empty(100), 2)
  check.truthy(bn.equal(a, b), "bn.manual_seed drives the draws")
end

function T.simple_fills()
  local t = bn.empty(3, 4)
  check.eq(init.constant(t, 2.5), t, "returns its tensor")
  check.near(t:min():item(), 2.5, 0)
  check.near(t:max():item(), 2.5, 0)
  check.near(init.zeros(t):abs():max():item(), 0, 0)
  check.near(init.ones(t):sum():item(), 12, 0)
  local n = init.normal(bn.empty(20000), { std = 0.5, mean = 3, seed = 1 })
  check.near(n:mean():item(), 3, 0.01)
  check.near(n:std():item(), 0.5, 0.01)
  local u = init.uniform(bn.empty(20000), -2, 4)
  check.truthy(u:min():item() >= -2 and u:max():item() < 4, "uniform range")
  check.near(u:mean():item(), 1, 0.05)
end

function T.parameters_are_filled_in_place_with_grad_on()
  -- parameters require grad; the fills run under no_grad and keep identity
  local lin = bn.nn.Linear(30, 20)
  local w = lin.weight
  check.truthy(bn.is_grad_enabled(), "grad mode on")
  init.kaiming_normal(w, { seed = 1 })
  init.orthogonal(w, { seed = 1 })
  check.truthy(rawequal(lin.weight, w) and w:requires_grad(), "same tensor, still a parameter")
  check.truthy(w.is_leaf, "still a leaf")
end

function T.apply_to_a_network()
  local net = bn.nn.Sequential(bn.nn.Conv2d(3, 8, 3), bn.nn.ReLU(), bn.nn.Flatten(), bn.nn.Linear(8, 4))
  init.apply(net, "xavier_uniform", { seed = 1 })
  local bound = math.sqrt(6 / (27 + 72))
  check.truthy(net[1].weight:abs():max():item() <= bound, "conv reinitialized")
  init.apply(net, { "normal", std = 0 }, { types = { "Linear" } })
  check.near(net[4].weight:abs():max():item(), 0, 0)
  check.truthy(net[1].weight:abs():max():item() > 0, "conv left alone")
  check.raises(function() init.apply(net, "he") end, "scheme expected")
  check.raises(function() init.apply(net, "orthogonal", { tpyes = {} }) end, "unknown option 'tpyes'")
end

function T.arguments_are_checked()
  check.raises(function() init.kaiming_normal(bn.empty(4)) end, "at least 2 dims")
  check.raises(function() init.kaiming_normal(bn.empty(4, 4), { mode = "fan_avg" }) end, "option 'mode' expected one of")
  check.raises(function() init.kaiming_normal(bn.empty(4, 4), { mdoe = "fan_in" }) end, "unknown option 'mdoe'")
  check.raises(function() init.xavier_normal({}) end, "argument #1 expected a tensor")
  check.raises(function() init.orthogonal(bn.empty(4, 4), { seed = -1 }) end, "option 'seed'")
  check.raises(function() init.normal(bn.empty(4), -1) end, "std expected a number >= 0")
end

return T
