-- E6 — Coherence of convolution gradients at initialization (../shared/paper.md, claim 3).
-- A conv layer's weight gradient is a sum over batch and positions of terms
-- d = dL/dO[b,o,x,y] * I[b,i,x+x',y+y']. For conv layers spread over the depth of the BN and
-- no-BN ResNets: the ratio |Σd| / Σ|d| (1: every term agrees in sign) and the matrix
-- M[i,o] = Σ_{x,y} |Σ_b d| (in-channel x out-channel heatmaps; how much of M its top singular
-- value and its top 10% of input channels carry).
-- Expected: ratio ~1/2 or more without BN, ~1e-2 with BN; without BN a few channels dominate M.
local bn = require "bnlab"
local E = bn.experiment

local o = E.start{
  name = "grad_coherence",
  description = "E6: |sum d| / sum |d| of conv weight-gradient terms and the in x out matrix M, BN vs no BN, at initialization.",
  options = { layers = { 9, "conv layers probed, evenly spaced in depth (heatmaps: first, middle, last)" },
    seeds = { 3, "networks per normalization (seeds --seed, --seed+1, ...)" } },
  scales = { quick = { depth = 56 }, paper = { depth = 110, layers = 15, seeds = 5 }, tiny = { depth = 8, batch = 16, layers = 3, seeds = 2 } },
}
local train = E.data(o)
local x, y = E.batch(train, o.batch, o.seed)

-- σ1/Σσ of M (its nuclear norm's share in the top singular value); share of its mass in the top 10% of rows.
local function shares(M)
  local s1, sv = 0, bn.linalg.svdvals(M):totable()
  for _, v in ipairs(sv) do s1 = s1 + v end
  local rows = M:sum(2):reshape(-1):totable()
  table.sort(rows, function(a, b) return a > b end)
  local k, tot, head = math.max(1, math.floor(#rows / 10 + 0.5)), 0, 0
  for i, v in ipairs(rows) do tot = tot + v; if i <= k then head = head + v end end
  return sv[1] / s1, head / tot
end

local rows, series, panels, summary = {}, {}, {}, { depth = o.depth, batch = o.batch, seed = o.seed, seeds = o.seeds }
local p, step = E.progress(#o.norm * o.seeds * o.layers, "coherence"), 0
for _, norm in ipairs(o.norm) do
  local res = { layers = {}, depths = {}, ratio = {}, sv_top_share = {}, top10_in_share = {} } -- [seed][layer]
  local xs, refs, mean, sd = {}, {}, {}, {}
  for si = 1, o.seeds do
    local seed = o.seed + si - 1
    local net = E.resnet(o, norm, nil, seed)
    local wl = bn.probe.weight_layers(net)
    local convs = {} -- main-path convs after the stem (weight-layer index = depth)
    for d = 2, #wl - 1 do if not wl[d]:match("shortcut") then convs[#convs + 1] = d end end
    local n = math.min(o.layers, #convs)
    res.ratio[si], res.sv_top_share[si], res.top10_in_share[si] = {}, {}, {}
    for i = 1, n do
      local d = convs[n == 1 and 1 or math.floor(1 + (i - 1) * (#convs - 1) / (n - 1) + 0.5)]
      local c = bn.probe.grad_coherence(net, x, y, wl[d], { mode = "train" })
      local sv_top, in_top = shares(c.M)
      rows[#rows + 1] = { norm, seed, wl[d], d, c.ratio, c.mean_entry_ratio, sv_top, in_top, c.M:size(1), c.M:size(2), c.loss }
      local shp = c.output_shape -- [B x C x H x W]: a weight entry sums B·H·W terms
      xs[i], refs[i], res.layers[i], res.depths[i] = d, 1 / math.sqrt(shp[1] * shp[3] * shp[4]), wl[d], d
      res.ratio[si][i], res.sv_top_share[si][i], res.top10_in_share[si][i] = c.ratio, sv_top, in_top
      mean[i], sd[i] = (mean[i] or 0) + c.ratio / o.seeds, (sd[i] or 0) + c.ratio ^ 2 / o.seeds
      if si == 1 and (i == 1 or i == (n + 1) // 2 or i == n) then
        panels[#panels + 1] = { kind = "heatmap", m = c.M, cmap = "viridis", vmin = 0, xlabel = "output channel o", ylabel = "input channel i",
          title = ("%s, %s (depth %d): ratio %.3g"):format(E.label(norm), wl[d], d, c.ratio), clabel = "M[i, o]" }
      end
      step = step + 1
      p:step(step, ("%s seed %d %s ratio %.3g"):format(norm, seed, wl[d], c.ratio))
    end
  end
  for i = 1, #mean do sd[i] = math.sqrt(math.max(sd[i] - mean[i] ^ 2, 0)) end
  series[#series + 1] = { x = xs, y = mean, band = sd, label = E.label(norm) .. (o.seeds > 1 and (" (mean \u{b1} std of %d seeds)"):format(o.seeds) or ""), style = "o-" }
  series.ref = series.ref or { x = xs, y = refs, label = "unrelated terms: order 1/\u{221a}(B\u{b7}H\u{b7}W)", style = ":", color = "gray" }
  summary[norm] = res
end
series[#series + 1], series.ref = series.ref, nil
E.csv(o, "ratios.csv", { "norm", "seed", "layer", "depth", "ratio", "mean_entry_ratio", "sv_top_share", "top10_in_share", "in", "out", "loss" }, rows)
bn.plot.lines{ series = series, logy = true, file = E.path(o, "coherence.png"), data = true, xlabel = "depth (weight layer)",
  title = ("Coherence of conv weight-gradient terms at initialization, ResNet-%d, batch %d"):format(o.depth, o.batch),
  ylabel = "|\u{3a3} d| / \u{3a3} |d|" }
bn.plot.figure{ panels = panels, cols = math.max(1, #panels // #o.norm), data = true, file = E.path(o, "m_matrices.png"),
  title = ("M[i, o] = \u{3a3}_{x,y} |\u{3a3}_{b} d| at initialization, seed %d (early, middle, late layer; each its own colour scale from 0)"):format(o.seed) }

summary.claim = "without BN the terms of a conv weight gradient agree in sign (|Σd|/Σ|d| ~ 1/2 or more vs ~1e-2 with BN) and a few channels dominate M"
local a, b = summary.none, summary.bn
if a and b then
  local logr, dom, cnt, lo, hi = 0, 0, 0, { none = math.huge, bn = math.huge }, { none = 0, bn = 0 }
  for si = 1, o.seeds do
    for i = 1, #a.ratio[si] do
      cnt, logr = cnt + 1, logr + math.log(a.ratio[si][i] / b.ratio[si][i])
      if a.top10_in_share[si][i] > b.top10_in_share[si][i] then dom = dom + 1 end
      for _, nm in ipairs{ "none", "bn" } do
        lo[nm], hi[nm] = math.min(lo[nm], summary[nm].ratio[si][i]), math.max(hi[nm], summary[nm].ratio[si][i])
      end
    end
  end
  summary.ratio_factor_geomean, summary.pairs_more_concentrated_without_bn, summary.pairs = math.exp(logr / cnt), dom, cnt
  summary.holds = summary.ratio_factor_geomean >= 10 and dom > cnt / 2
  E.finish(o, summary, ("ResNet-%d at init, %d seeds: |Σd|/Σ|d| %.3g..%.3g without BN vs %.3g..%.3g with BN (geometric-mean factor %.3g); top 10%% of input channels carry more of M without BN in %d of %d layer/seed pairs"):format(
    o.depth, o.seeds, lo.none, hi.none, lo.bn, hi.bn, summary.ratio_factor_geomean, dom, cnt))
else
  E.finish(o, summary)
end
