-- E3 — Anatomy of a diverging update (../shared/paper.md).
-- For the unnormalized network at initialization, the first step size α whose
-- gradient step θ − α·g diverges (relative loss > 1e3, E2's probe on one
-- batch) is applied progressively, θ + f·Δ with Δ = −α·g, f from 0 to 1; at
-- an early, a middle and a late weight layer (the paper: 8, 44, 80 of
-- ResNet-110) every channel's mean and variance are recorded. Figures show
-- the first seed; the verdict takes the median over --seeds networks.
-- Expected: the deepest layer's moments grow by orders of magnitude.
local bn = require "bnlab"
local E = bn.experiment
local D = require "bnlab.experiment.divergence"

local o = E.start{
  name = "diverging_update",
  description = "E3: channel moments at three depths while a diverging gradient step is applied a fraction at a time (no BN).",
  options = {
    fractions = { 21, "fractions of the update, evenly from 0 to 1" },
    layers = { "", "weight-layer indices, e.g. 8,44,80 (empty: the paper's 8, 44, 80 of 110 scaled to --depth)" },
    alpha = { 0.0, "step size of the update (0: the smallest that diverges on the batch)" },
    seeds = { 3, "networks (seeds --seed, --seed+1, ...): the figures show the first, the verdict the median" },
    threshold = { 1e3, "relative loss counted as divergence" },
  },
  scales = { quick = { depth = 56, batch = 64, fractions = 21, seeds = 3, norm = { "none" } },
             paper = { depth = 110, batch = 128, fractions = 41, seeds = 5, norm = { "none" } },
             tiny = { depth = 8, batch = 16, fractions = 5, seeds = 1, norm = { "none" } } },
}
local norm = o.norm[1]
local train = E.data(o)
local alphas = D.alphas(4)
local fr = {}
for k = 1, o.fractions do fr[k] = (k - 1) / math.max(o.fractions - 1, 1) end
local function grow(a, b) local g = b / a; return g == g and g or math.huge end -- NaN: overflowed
local function median(v) table.sort(v); return #v % 2 == 1 and v[(#v + 1) // 2] or (v[#v // 2] + v[#v // 2 + 1]) / 2 end

local runs, idx, names = {}, {}, {}
for s = 1, o.seeds do
  local seed = o.seed + s - 1
  local x, y = E.batch(train, o.batch, seed)
  local net = E.resnet(o, norm, nil, seed)
  local wl = bn.probe.weight_layers(net)
  if s == 1 then
    for v in o.layers:gmatch("%d+") do idx[#idx + 1] = math.min(tonumber(v), #wl) end
    if #idx == 0 then for _, k in ipairs{ 8, 44, 80 } do idx[#idx + 1] = math.max(1, math.floor(k * #wl / 110 + 0.5)) end end
    for i, k in ipairs(idx) do names[i] = wl[k] end
  end
  -- The update: E2's probe at θ_0 on this batch, the first α past the threshold.
  local alpha, diverges = o.alpha, true
  if alpha <= 0 then
    local rl = bn.probe.relative_loss(net, x, y, alphas, { threshold = o.threshold })
    for k, dv in ipairs(rl.diverged) do if dv then alpha = alphas[k] break end end
    if alpha <= 0 then alpha, diverges = alphas[#alphas], false end
  end
  local u = bn.probe.update_path(net, x, y, alpha, fr, names, { mode = "train" })
  local run = { seed = seed, alpha = alpha, update_diverges = diverges, losses = u.losses, u = u,
                relative_loss = grow(u.losses[1], u.losses[#fr]), layers = {} }
  for i, name in ipairs(names) do
    local L = u.by_layer[name]
    local vbar, mbar = L.var:mean(2):totable(), L.mean:abs():mean(2):totable()
    run.layers[i] = { name = name, index = idx[i], channels = L.channels, var = vbar, var_growth = grow(vbar[1], vbar[#fr]),
                      abs_mean_growth = grow(mbar[1], mbar[#fr]) }
  end
  print(("seed %d: update -%.3g*g (loss x%.3g), channel variance grows x%.3g, x%.3g, x%.3g at layers %s"):format(seed, alpha,
    run.relative_loss, run.layers[1].var_growth, (run.layers[2] or run.layers[1]).var_growth, run.layers[#names].var_growth, table.concat(idx, ", ")))
  runs[s], run.u = run, s == 1 and u or nil
end

-- Figures and CSV: the first seed.
local first = runs[1]
local var_panels, mean_panels, series, rows = {}, {}, {}, {}
for i, name in ipairs(names) do
  local L, head = first.u.by_layer[name], ("layer %d (%s)"):format(idx[i], name)
  local common = { kind = "heatmap", log = true, xlabel = "channel", ylabel = "fraction f of the update", yticks = fr, cmap = "magma" }
  local pv, pm = { m = L.var, title = head .. ": variance", clabel = "channel variance" }, { m = L.mean:abs(), title = head .. ": |mean|", clabel = "|channel mean|" }
  for k, v in pairs(common) do pv[k], pm[k] = v, v end
  var_panels[i], mean_panels[i] = pv, pm
  series[i] = { x = fr, y = first.layers[i].var, label = head, style = "o-" }
  local mt, vt = L.mean:totable(), L.var:totable()
  for k = 1, #fr do
    for c = 1, L.channels do rows[#rows + 1] = { name, idx[i], fr[k], c, mt[k][c], vt[k][c] } end
  end
end
local title = ("%s ResNet-%d, seed %d: update \u{2212}%.3g\u{b7}g applied a fraction f at a time"):format(E.label(norm), o.depth, first.seed, first.alpha)
bn.plot.figure{ panels = var_panels, cols = 3, data = true, file = E.path(o, "variance.png"), title = "Channel variance \u{2014} " .. title }
bn.plot.figure{ panels = mean_panels, cols = 3, data = true, file = E.path(o, "mean.png"), title = "Channel |mean| \u{2014} " .. title }
bn.plot.figure{ cols = 2, data = true, file = E.path(o, "growth.png"), title = title, panels = {
  { kind = "lines", series = series, logy = true, title = "Mean channel variance", xlabel = "fraction f of the update", ylabel = "variance (mean over channels)" },
  { kind = "lines", series = { { x = fr, y = first.losses, style = "o-", label = "loss on the batch" } }, logy = true,
    title = "Loss along the update", xlabel = "fraction f of the update", ylabel = "cross-entropy" } } }
E.csv(o, "moments.csv", { "layer", "index", "fraction", "channel", "mean", "var" }, rows)

-- Verdict over seeds: median variance growth (f = 1 over f = 0) per layer.
local summary = { depth = o.depth, batch = o.batch, norm = norm, fractions = fr, alpha = first.alpha, seeds = {}, layers = {},
                  update_diverges = first.update_diverges, relative_loss = first.relative_loss }
for s, r in ipairs(runs) do
  for _, l in ipairs(r.layers) do l.var = nil end
  summary.seeds[s], r.u = r, nil
end
for i, name in ipairs(names) do
  local v = {}
  for s, r in ipairs(runs) do v[s] = r.layers[i].var_growth end
  summary.layers[i] = { name = name, index = idx[i], median_var_growth = median(v) }
end
local early, mid, late = summary.layers[1].median_var_growth, summary.layers[2] and summary.layers[2].median_var_growth or 1, summary.layers[#names].median_var_growth
summary.late_over_earlier = late / math.max(early, mid)
summary.claim = "applying a diverging update, the deepest layer's channel variance grows by orders of magnitude, far more than earlier layers'"
summary.holds = first.update_diverges and late >= 100 and summary.late_over_earlier >= 10
local g = {}
for _, l in ipairs(summary.layers) do g[#g + 1] = ("x%.3g at layer %d"):format(l.median_var_growth, l.index) end
E.finish(o, summary, ("ResNet-%d %s, %s update (median over %d seeds): channel variance grows %s."):format(o.depth, E.label(norm),
  first.update_diverges and "a diverging" or "a NON-diverging (none diverged on the grid)", o.seeds, table.concat(g, ", ")))
