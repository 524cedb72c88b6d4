-- bn.linalg: singular values against matrices with known spectra, random
-- products, the Fuss-Catalan density (normalized, its moments, Marchenko-
-- Pastur at k = 1, and against sampled spectra), a network's linear maps.
local bn = require "bnlab"
local check = require "check"
local L = bn.linalg

local T = {}

local function sorted_desc(t)
  table.sort(t, function(a, b) return a > b end)
  return t
end

function T.svdvals_of_known_matrices()
  local s = L.svdvals(bn.tensor { { 3, 0, 0 }, { 0, -2, 0 }, { 0, 0, 0.5 } }):totable()
  check.near(s[1], 3, 1e-6)
  check.near(s[2], 2, 1e-6)
  check.near(s[3], 0.5, 1e-6)
  -- Q diag(d) Q'^T with orthogonal Q, Q': the singular values are |d|.
  bn.manual_seed(3)
  local q1 = bn.init.orthogonal(bn.empty(6, 6))
  local q2 = bn.init.orthogonal(bn.empty(6, 6))
  local d = { 5, -4, 3, 0.25, 2, 1 }
  local m = bn.matmul(bn.matmul(q1, bn.eye(6) * bn.tensor(d)), q2:t())
  local got = L.svdvals(m):totable()
  local want = sorted_desc { 5, 4, 3, 0.25, 2, 1 }
  for i = 1, 6 do check.near(got[i], want[i], 1e-5, "singular value " .. i) end
  check.near(L.cond(m), 5 / 0.25, 1e-4)
  -- Rectangular: [2 x 4] has 2 values; its transpose the same.
  local r = bn.tensor { { 1, 0, 0, 0 }, { 0, 0, 2, 0 } }
  check.eq(L.svdvals(r):numel(), 2)
  check.near(L.svdvals(r:t()):totable()[1], 2, 1e-6)
  -- Strided input, singular matrix, NaN.
  check.near(L.svdvals(m:t()):totable()[1], 5, 1e-5)
  check.eq(L.cond(bn.tensor { { 1, 0 }, { 0, 0 } }), math.huge)
  local nan = L.svdvals(bn.tensor { { 0 / 0, 1 }, { 1, 1 } }):totable()
  check.truthy(nan[1] ~= nan[1], "NaN in, NaN out")
  check.raises(function() L.svdvals(bn.zeros(3)) end, "2-D")
  check.raises(function() L.svdvals(bn.zeros(0, 3)) end, "non-empty")
end

function T.random_products()
  local p = L.random_product(50, 1, { seed = 4 })
  check.eq(p:shape(), { 50, 50 })
  check.near(p:var(nil, false, 0):item(), 1 / 50, 0.1, "entry variance 1/n")
  local a = L.random_product(8, 3, { seed = 1 })
  local b = L.random_product(8, 3, { seed = 1 })
  check.truthy(bn.equal(a, b), "same seed, same product")
  local list = L.random_product(8, 3, { seed = 1, partial = true })
  check.eq(#list, 3)
  check.truthy(bn.allclose(list[3], a, 1e-6, 1e-7), "the last partial product is the product")
  -- The condition number grows with the number of factors.
  local c1 = L.cond(L.random_product(64, 1, { seed = 2 }))
  local c6 = L.cond(L.random_product(64, 6, { seed = 2 }))
  check.truthy(c6 > 10 * c1, ("cond grows: %g -> %g"):format(c1, c6))
end

-- ∫ f(x) dx over (0, xmax] by the substitution x = u^(k+1), which removes
-- the x^(-k/(k+1)) singularity at 0 (midpoint rule in u).
local function integrate(f, k, n)
  local _, xmax = L.fuss_catalan_support(k)
  local umax = xmax ^ (1 / (k + 1))
  local h, s = umax / n, 0
  for i = 1, n do
    local u = (i - 0.5) * h
    local x = u ^ (k + 1)
    s = s + f(x) * (k + 1) * u ^ k * h
  end
  return s
end

function T.fuss_catalan_density_is_a_probability_density()
  for k = 1, 4 do
    local _, xmax = L.fuss_catalan_support(k)
    check.near(xmax, (k + 1) ^ (k + 1) / k ^ k, 1e-12)
    local xs, n = {}, 2000
    local umax = xmax ^ (1 / (k + 1))
    for i = 1, n do xs[i] = ((i - 0.5) * umax / n) ^ (k + 1) end
    local dens = L.fuss_catalan_density(xs, k)
    local i = 0
    local function f() i = i + 1; return dens[i] end
    local mass = integrate(f, k, n)
    i = 0
    local mean = integrate(function(x) return x * f() end, k, n)
    i = 0
    local m2 = integrate(function(x) return x * x * f() end, k, n)
    check.near(mass, 1, 2e-3, "k = " .. k .. ": mass")
    check.near(mean, 1, 2e-3, "k = " .. k .. ": mean (Fuss-Catalan number 1)")
    check.near(m2, k + 1, 2e-3 * (k + 1), "k = " .. k .. ": second moment (k + 1)")
    check.eq(L.fuss_catalan_density(-1, k), 0)
    check.eq(L.fuss_catalan_density(xmax * 1.01, k), 0)
    check.near(L.fuss_catalan_cdf(xmax * (1 - 1e-9), k), 1, 1e-6)
    check.near(L.fuss_catalan_cdf(0, k), 0, 0)
  end
  -- k = 1 is Marchenko-Pastur with ratio 1: sqrt((4 - x) / x) / (2π).
  for _, x in ipairs({ 0.01, 0.5, 1, 2, 3.5 }) do
    check.near(L.fuss_catalan_density(x, 1), math.sqrt((4 - x) / x) / (2 * math.pi), 1e-9, "MP at " .. x)
  end
  -- Tensors in, tensors out, same shape.
  local t = L.fuss_catalan_density(bn.tensor { { 0.5, 1 }, { 2, 3 } }, 2)
  check.eq(t:shape(), { 2, 2 })
end

-- Many small SVDs run faster (and steadier on a loaded machine) on one thread.
local function one_thread(fn)
  local old = bn.num_threads()
  bn.num_threads(1)
  local ok, err = pcall(fn)
  bn.num_threads(old)
  if not ok then error(err, 0) end
end

function T.fuss_catalan_matches_sampled_spectra()
  one_thread(function()
  for k = 1, 3 do
    local samples = {}
    for d = 1, 3 do
      local p = L.random_product(120, k, { seed = 10 * k + d })
      for _, s in ipairs(L.svdvals(p):totable()) do samples[#samples + 1] = s * s end
    end
    local ks = L.ks_distance(samples, function(x) return L.fuss_catalan_cdf(x, k) end)
    check.truthy(ks < 0.04, ("k = %d: KS distance %g"):format(k, ks))
    -- and a wrong law is far: samples of k factors against the k + 2 law.
    local wrong = L.ks_distance(samples, function(x) return L.fuss_catalan_cdf(x, k + 2) end)
    check.truthy(wrong > 3 * ks, ("k = %d: KS to the wrong law %g"):format(k, wrong))
  end
  end)
end

function T.network_layer_matrices_and_products()
  local net = bn.models.resnet { depth = 20, norm = "none", seed = 1 }
  local mats = L.layer_matrices(net)
  check.eq(#mats, 20, "19 convs + fc on the main path")
  check.eq(mats[1].path, "conv1")
  check.eq(mats[1].shape, { 16, 3 })
  check.eq(mats[20].path, "fc")
  local w = net.stage1.block1.conv1.weight
  check.truthy(bn.equal(mats[2].matrix, w:select(3, 2):select(3, 2):contiguous()), "centre tap")
  local flat = L.layer_matrices(net, { form = "flat", layers = "conv1" })
  check.eq(#flat, 1)
  check.eq(flat[1].shape, { 16, 27 })
  local sum = L.layer_matrices(net, { form = "sum", layers = { "stage1.block1.conv1" } })
  check.truthy(bn.allclose(sum[1].matrix, w:sum(4):sum(3), 1e-6, 1e-7), "sum of taps")
  local sp = L.network_spectra(net)
  check.eq(#sp, 20)
  check.eq(sp[20].shape, { 10, 3 })
  for d, r in ipairs(sp) do check.truthy(r.cond >= 1, "cond >= 1 at depth " .. d) end
  check.truthy(sp[19].cond > sp[2].cond, "the product's condition number grows with depth")
  local direct = L.svdvals(bn.matmul(mats[2].matrix, mats[1].matrix)):totable()
  check.near(sp[2].singular_values:totable()[1], direct[1], 1e-5)
  check.raises(function() L.product_spectra({ bn.zeros(3, 4), bn.zeros(3, 4) }) end, "does not chain")
  local b = bn.models.resnet { depth = 8, shortcut = "B", seed = 1 }
  check.eq(#L.layer_matrices(b), 8, "option-B shortcut convs are left out by default")
  check.eq(#L.layer_matrices(b, { layers = "*" }), 10)
end

return T
