-- E9 — Learning rate as noise (../shared/paper.md, claim 5).
-- On a population of N training examples, at initialization: the per-example gradient noise
-- C = E‖∇l_i − ∇l‖² (bn.probe.gradient_noise), then the noise of mini-batch gradients
-- E‖∇_B − ∇l‖² for several |B|. The SGD noise of a step α is α² times it, so the α dependence
-- is exact; the |B| dependence is the test. Expected: E‖α∇l − α∇_SGD‖² ≤ α²C/|B|, slope −1.
-- With BN (train mode) an example's gradient depends on its batch: ∇l_i is taken within a batch
-- of --batch examples and each mini-batch uses its own statistics (docs/probe.md).
local bn = require "bnlab"
local E = bn.experiment

local o = E.start{
  name = "gradient_noise",
  description = "E9: SGD noise against alpha^2 C/|B| from per-example gradients, BN vs no BN, at initialization.",
  options = { n = { 256, "population size N (training examples)" }, sizes = { { 2, 4, 8, 16, 32, 64 }, "batch sizes |B|" },
    draws = { 16, "mini-batches drawn per batch size" }, examples = { 128, "per-example gradients estimating C (no BN)" },
    bn_examples = { 16, "per-example gradients estimating C with BN (one --batch backward each)" },
    lrs = { { 0.1, 0.01, 0.001 }, "learning rates alpha shown (the noise scales as alpha^2)" } },
  scales = { quick = { depth = 56 }, tiny = { depth = 8, n = 32, sizes = { 2, 4, 8 }, draws = 3, examples = 16, bn_examples = 4, batch = 16 },
    paper = { depth = 110, n = 512, sizes = { 2, 4, 8, 16, 32, 64, 128 }, draws = 32, examples = 256, bn_examples = 32 } },
}
local train = E.data(o)
local rows, panels, ratio_series, summary, holds = {}, {}, {}, { depth = o.depth, n = o.n, draws = o.draws }, true
for j, norm in ipairs(o.norm) do
  local net = E.resnet(o, norm)
  local t0 = bn.clock()
  local r = bn.probe.gradient_noise(net, train, o.sizes, { n = o.n, draws = o.draws, seed = o.seed, mode = "train",
    examples = norm == "none" and o.examples or o.bn_examples, batch = norm ~= "none" and o.batch or nil })
  local pe = r.per_example:totable()
  local sd = 0
  for _, v in ipairs(pe) do sd = sd + (v - r.C) ^ 2 / math.max(#pe - 1, 1) end
  local C_se = math.sqrt(sd / #pe)
  -- Within sampling error: the mean over sizes of measured / (C/|B|) is ≤ 1 + 2 standard errors
  -- (of the draws, and of C, which is common to every size), and no size is 3 of them above.
  local pooled, pvar, worst, lx, ly, ratios, rband, K = 0, 0, -math.huge, {}, {}, {}, {}, #r.sizes
  for k, s in ipairs(r.sizes) do
    local b, rel_C = s.batch_size, C_se / r.C
    pooled, pvar = pooled + s.noise / s.predicted / K, pvar + (s.noise_se / s.predicted) ^ 2 / K ^ 2
    worst = math.max(worst, (s.noise / s.predicted - 1) / math.sqrt((s.noise_se / s.predicted) ^ 2 + rel_C ^ 2))
    lx[k], ly[k], ratios[k], rband[k] = math.log(b), math.log(s.noise / ((r.N - b) / (r.N - 1))), s.ratio, s.ratio * s.noise_se / s.noise
  end
  local pooled_se = math.sqrt(pvar + (C_se / r.C) ^ 2)
  local within = pooled <= 1 + 2 * pooled_se and worst <= 3
  local mx, my, sxy, sxx = 0, 0, 0, 0 -- slope of log(noise / finite-population factor) against log |B|
  for k = 1, #lx do mx, my = mx + lx[k] / #lx, my + ly[k] / #lx end
  for k = 1, #lx do sxy, sxx = sxy + (lx[k] - mx) * (ly[k] - my), sxx + (lx[k] - mx) ^ 2 end
  local slope = sxx > 0 and sxy / sxx or 0 / 0
  local ok = within and math.abs(slope + 1) <= 0.25
  holds = holds and ok
  local series, ymin = {}, math.huge
  for i, a in ipairs(o.lrs) do
    local meas, bound, band = {}, {}, {}
    for k, s in ipairs(r.sizes) do
      meas[k], bound[k], band[k] = a * a * s.noise, a * a * s.predicted, a * a * s.noise_se
      ymin = math.min(ymin, meas[k], bound[k])
      rows[#rows + 1] = { norm, s.batch_size, a, meas[k], band[k], bound[k], a * a * s.predicted_fpc, s.ratio }
    end
    local c = ("C%d"):format(i - 1)
    series[#series + 1] = { x = o.sizes, y = meas, band = band, label = ("measured at \u{3b1} = %g"):format(a), style = "o-", color = c }
    series[#series + 1] = { x = o.sizes, y = bound, label = i == #o.lrs and "bound \u{3b1}^{2}C/|B| (dashed; colour = \u{3b1})" or nil, style = "--", color = c }
  end
  panels[j] = { kind = "lines", series = series, logx = true, logy = true, xlabel = "batch size |B|", legend = "lower left", ylim = { ymin / 300, nil },
    ylabel = "E\u{2016}\u{3b1}\u{2207}l \u{2212} \u{3b1}\u{2207}_{SGD}\u{2016}^{2}",
    title = ("%s: C = %.3g \u{b1} %.2g, slope %.2f"):format(E.label(norm), r.C, C_se, slope) }
  ratio_series[j] = { x = o.sizes, y = ratios, band = rband, label = E.label(norm) .. " (\u{b1} standard error of the draws)", style = "o-" }
  summary[norm] = { C = r.C, C_se = C_se, examples = r.examples, grad_norm = r.grad_norm, coupled = r.coupled, slope = slope,
    measured_over_bound = pooled, measured_over_bound_se = pooled_se, worst_z = worst, within_bound = within, holds = ok, ratio = ratios, seconds = bn.clock() - t0 }
  print(("%s: C = %.4g (se %.2g, %d examples), slope %.3f, measured / expected %s"):format(E.label(norm), r.C, C_se, r.examples,
    slope, table.concat((function() local t = {} for k, v in ipairs(ratios) do t[k] = ("%.2f"):format(v) end return t end)(), " ")))
end
ratio_series[#ratio_series + 1] = { x = o.sizes, y = (function() local t = {} for k in ipairs(o.sizes) do t[k] = 1 end return t end)(),
  label = "independent examples (exact in expectation)", style = ":", color = "gray" }
panels[#panels + 1] = { kind = "lines", series = ratio_series, logx = true, xlabel = "batch size |B|", ylabel = "measured / (C/|B|\u{b7}(N\u{2212}|B|)/(N\u{2212}1))",
  title = "Measured noise over its independent-example expectation" }
E.csv(o, "noise.csv", { "norm", "batch_size", "lr", "measured", "measured_se", "bound", "bound_fpc", "ratio_fpc" }, rows)
bn.plot.figure{ panels = panels, cols = #panels, data = true, file = E.path(o, "sgd_noise.png"),
  title = ("SGD noise at initialization, ResNet-%d, N = %d examples, %d draws per |B|"):format(o.depth, o.n, o.draws) }
summary.claim = "the SGD noise E‖α∇l − α∇_SGD‖² is at most α²C/|B|: it grows with the learning rate and falls as 1/|B|"
summary.holds = holds
local parts = {}
for _, norm in ipairs(o.norm) do
  parts[#parts + 1] = ("%s slope %.2f, %s"):format(E.label(norm), summary[norm].slope, summary[norm].within_bound and "within bound" or "ABOVE bound")
end
E.finish(o, summary, "E9: measured SGD noise vs alpha^2 C/|B|: " .. table.concat(parts, "; "))
