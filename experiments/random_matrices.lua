-- E8 — Random matrix products (../shared/paper.md, claim 4).
-- Squared singular values of products W_M ... W_1 of N x N Gaussian matrices (entry variance 1/N)
-- against the Fuss-Catalan law (Marchenko-Pastur at M = 1); the condition number σmax/σmin
-- against M for several N, with and without rescaling the factors; and the same for the linear
-- maps of the ResNet's main path at initialization (conv centre taps, chained). Condition
-- numbers come from bnlab.experiment.spectra (double precision, past float32's ~1e7 floor).
-- Expected: the spectrum widens and the condition number grows with M; rescaling changes nothing.
local bn = require "bnlab"
local E = bn.experiment
local S = require "bnlab.experiment.spectra"

local o = E.start{
  name = "random_matrices",
  description = "E8: spectra and condition numbers of products of Gaussian matrices and of the ResNet's layer maps at init.",
  options = { factors = { 8, "largest number of factors M" }, size = { 200, "N of the histogram matrices" },
    draws = { 10, "products per M for the histograms" }, sizes = { { 10, 25, 50, 100 }, "N values for the condition number" },
    cond_draws = { 10, "products per N for the condition number" }, form = { "center", "conv weight as a matrix: center | sum" } },
  scales = { quick = { depth = 56 }, paper = { depth = 110, factors = 16, size = 400, draws = 20, sizes = { 10, 50, 100, 200 }, cond_draws = 10 },
    tiny = { depth = 8, factors = 3, size = 20, draws = 2, sizes = { 5, 10 }, cond_draws = 2 } },
}
local summary = { factors = o.factors, size = o.size, draws = o.draws, form = o.form, depth = o.depth }

-- 1. Spectra of products of 1..M factors against the Fuss-Catalan law.
local sq, panels, rows = {}, {}, {}
for d = 1, o.draws do
  for k, p in ipairs(bn.linalg.random_product(o.size, o.factors, { partial = true, seed = o.seed * 1000 + d })) do
    sq[k] = sq[k] or {}
    for _, s in ipairs(bn.linalg.svdvals(p):totable()) do sq[k][#sq[k] + 1] = s * s end
  end
end
local widens, ks_max = true, 0
for k = 1, o.factors do
  local m1, m2, lg = 0, 0, {}
  for i, v in ipairs(sq[k]) do m1, m2, lg[i] = m1 + v / #sq[k], m2 + v * v / #sq[k], math.log(v, 10) end
  local ks = bn.linalg.ks_distance(sq[k], function(x) return bn.linalg.fuss_catalan_cdf(x, k) end)
  local _, xmax = bn.linalg.fuss_catalan_support(k)
  rows[k], ks_max = { k, o.size, #sq[k], m1, 1, m2, k + 1, ks, xmax }, math.max(ks_max, ks)
  widens = widens and (k == 1 or m2 > rows[k - 1][6])
  panels[k] = { kind = "hist", values = lg, bins = 50, range = { math.log(xmax, 10) - 12, math.log(xmax, 10) + 0.2 },
    label = ("%d draws of N = %d"):format(o.draws, o.size), title = ("M = %d  (KS distance %.3f)"):format(k, ks),
    xlabel = "log_{10} \u{3c3}^{2}", ylabel = "density",
    overlay = { fn = function(t) return S.log10_fc_density(t, k) end, label = k == 1 and "Marchenko\u{2013}Pastur" or "Fuss\u{2013}Catalan" } }
end
E.csv(o, "moments.csv", { "factors", "N", "samples", "mean_sv2", "theory_mean", "mean_sv4", "theory_sv4", "ks_distance", "support_max" }, rows)
bn.plot.figure{ panels = panels, cols = math.min(4, o.factors), data = true, file = E.path(o, "spectra.png"),
  title = "Squared singular values of W_{M}\u{22ef}W_{1} (N(0, 1/N) entries) against the limit law" }
summary.ks_max, summary.spectrum_widens = ks_max, widens

-- 2. Condition number against M for several N; the same draws with every factor rescaled.
local series, crows, grows, rescale_diff, lg = {}, {}, true, 0, nil
for j, n in ipairs(o.sizes) do
  lg = { cond = {}, resc = {}, f32 = {} } -- mean over draws of log10 cond, per M
  for d = 1, o.cond_draws do
    bn.manual_seed(o.seed * 7919 + 97 * n + d)
    local ws, scaled = {}, {}
    for k = 1, o.factors do ws[k] = bn.randn(n, n) * (1 / math.sqrt(n)); scaled[k] = ws[k] * (2 ^ (4 * bn.rand(1):item() - 2)) end
    local a, b, direct = S.product_conds(ws), S.product_conds(scaled), bn.linalg.product_spectra(ws)
    for k = 1, o.factors do
      crows[#crows + 1] = { n, k, d, a[k].cond, b[k].cond, direct[k].cond }
      rescale_diff = math.max(rescale_diff, math.abs(b[k].log10_cond - a[k].log10_cond) * math.log(10))
      for key, v in pairs{ cond = a[k].log10_cond, resc = b[k].log10_cond, f32 = math.log(direct[k].cond, 10) } do
        lg[key][k] = (lg[key][k] or 0) + v / o.cond_draws
      end
    end
  end
  local y, sxy, sxx, mk = {}, 0, 0, (o.factors + 1) / 2 -- least-squares slope of log10 cond against M
  for k = 1, o.factors do y[k] = 10 ^ lg.cond[k]; sxy, sxx = sxy + (k - mk) * lg.cond[k], sxx + (k - mk) ^ 2 end
  summary["log10_cond_slope_N" .. n], summary["cond_N" .. n] = sxy / sxx, y
  grows = grows and sxy / sxx > 0.1 and y[o.factors] > y[1]
  series[j] = { y = y, label = ("N = %d"):format(n), style = "o-" }
end
local resc, f32, nmax = {}, {}, o.sizes[#o.sizes] -- the largest N: rescaled factors, float32 SVD
for k = 1, o.factors do resc[k], f32[k] = 10 ^ lg.resc[k], 10 ^ lg.f32[k] end
series[#series + 1] = { y = resc, label = ("N = %d: every factor times 2^{u} (u uniform in \u{b1}2)"):format(nmax), style = "x", color = "black" }
series[#series + 1] = { y = f32, label = ("N = %d: float32 SVD of the product (rounding floor)"):format(nmax), style = ":", color = "gray" }
E.csv(o, "conditions.csv", { "N", "factors", "draw", "cond", "cond_rescaled", "cond_float32_svd" }, crows)
bn.plot.lines{ series = series, logy = true, file = E.path(o, "condition_number.png"), data = true,
  title = ("Condition number of W_{M}\u{22ef}W_{1} (geometric mean of %d draws)"):format(o.cond_draws),
  xlabel = "number of factors M", ylabel = "\u{3c3}_{max} / \u{3c3}_{min}" }
summary.cond_grows, summary.rescale_max_rel_diff = grows, rescale_diff

-- 3. The ResNet's own layer maps at initialization (main path after the stem; BN does not change them).
local net = E.resnet(o, "none")
local mats = bn.linalg.layer_matrices(net, { form = o.form, layers = function(p) return p:match("^stage") and not p:match("shortcut") end })
local net_c, shapes, g1, g2 = S.product_conds(mats), {}, {}, {}
for k, m in ipairs(mats) do shapes[k] = m.shape end
for d = 1, o.cond_draws do
  bn.manual_seed(o.seed * 31 + d)
  for k, r in ipairs(S.product_conds(S.gaussian_chain(shapes))) do
    g1[k], g2[k] = (g1[k] or 0) + r.log10_cond / o.cond_draws, (g2[k] or 0) + r.log10_cond ^ 2 / o.cond_draws
  end
end
local nrows, ny, gsd = {}, {}, {}
for k, r in ipairs(net_c) do
  ny[k], gsd[k] = r.log10_cond, math.sqrt(math.max(g2[k] - g1[k] ^ 2, 0))
  nrows[k] = { k, mats[k].path, shapes[k][1], shapes[k][2], r.log10_cond, g1[k], gsd[k] }
end
E.csv(o, "network_layers.csv", { "layer", "path", "rows", "cols", "log10_cond", "gaussian_log10_cond_mean", "gaussian_log10_cond_std" }, nrows)
bn.plot.lines{ file = E.path(o, "network.png"), data = true, xlabel = "layers multiplied (main-path convs after the stem)",
  ylabel = "log_{10} (\u{3c3}_{max} / \u{3c3}_{min})",
  title = ("ResNet-%d at initialization: condition number of the product of conv %s"):format(o.depth,
    o.form == "sum" and "kernel sums" or "centre taps"),
  series = { { y = ny, label = "the network's weights" }, { y = g1, band = gsd, label = ("Gaussian of the same shapes (mean \u{b1} std of %d)"):format(o.cond_draws), style = "--" } } }
summary.network_log10_cond_first, summary.network_log10_cond_last = ny[1], ny[#ny]
summary.network_layers, summary.network_log10_cond_per_layer = #ny, (ny[#ny] - ny[1]) / math.max(#ny - 1, 1)

summary.claim = "products of random Gaussian matrices get wider spectra and larger condition numbers with more factors, and rescaling cannot fix it"
summary.holds = widens and grows and rescale_diff < 1e-3 and ny[#ny] > ny[1] + 1
E.finish(o, summary, ("E8: KS distance to Fuss-Catalan <= %.3f; cond(N=%d) %.3g at M=1 -> %.3g at M=%d; rescaling changes log cond by <= %.1e; ResNet-%d layer product: cond 10^%.1f after %d layers (10^%.2f per layer)"):format(
  summary.ks_max, nmax, series[#o.sizes].y[1], series[#o.sizes].y[o.factors], o.factors, rescale_diff, o.depth, ny[#ny], #ny,
  summary.network_log10_cond_per_layer))
