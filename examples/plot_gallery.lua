-- Every kind of bn.plot figure, on made-up numbers shaped like the paper's
-- experiments (the real ones come from experiments/*.lua). Writes PNGs and
-- their CSVs into a directory (default docs/figures/examples):
--
--   ./bnlab examples/plot_gallery.lua [outdir]
--
-- The figures of docs/plot.md are made by this script.
local bn = require "bnlab"

local out = arg and arg[1] or "docs/figures/examples"
bn.mkdir(out)
local function path(name) return out .. "/" .. name end

bn.manual_seed(0)
math.randomseed(0)
bn.plot.provenance { seed = 0 }

local function randn()
  local u, v = 1 - math.random(), math.random()
  return math.sqrt(-2 * math.log(u)) * math.cos(2 * math.pi * v)
end

-- E2: relative loss after a step of size alpha, for each of the first updates.
-- Without BN it explodes past alpha ~ 1e-3; huge values overflow to Inf/NaN.
local alphas, alpha_labels = {}, {}
for k = 0, 12 do
  alphas[#alphas + 1] = 10.0 ^ (-5 + 0.5 * k)
  alpha_labels[#alpha_labels + 1] = alphas[#alphas]
end
local updates = 50
local rel, diverged = {}, {}
for t = 1, updates do
  rel[t], diverged[t] = {}, {}
  local crit = 1e-3 * 10.0 ^ (0.7 * math.sin(t / 7))
  for j, a in ipairs(alphas) do
    local v
    if a < crit then
      v = 1 - 0.4 * a / crit + 0.02 * randn()
    else
      local e = 5 * math.log(a / crit, 10) + 0.3 * randn()
      v = 10.0 ^ e
      if e > 19 then v = math.huge end -- float overflow in the real thing
      if e > 21.5 then v = 0 / 0 end
    end
    rel[t][j] = v
    diverged[t][j] = (v ~= v or v > 1e3) and 1 or 0
  end
end
bn.plot.heatmap(bn.tensor(rel), {
  file = path("heatmap_relative_loss.png"), data = true,
  title = "Relative loss after one step (no BN)",
  xlabel = "step size \u{3b1}", ylabel = "update", clabel = "new loss / old loss",
  xticks = alpha_labels, log = true, cmap = "magma",
  mark = bn.tensor(diverged), mark_label = "diverged (relative loss > 10^{3})",
})

-- E5: dL/dlogits at initialization, 64 examples x 10 classes, BN vs no BN.
local function output_grads(bn_like)
  local g = {}
  for i = 1, 64 do
    local label = (i * 7) % 10 + 1
    local logits, z = {}, 0
    for j = 1, 10 do
      logits[j] = bn_like and 0.8 * randn() or (j == 4 and 9 or 0) + 0.5 * randn()
      z = z + math.exp(logits[j])
    end
    g[i] = {}
    for j = 1, 10 do g[i][j] = math.exp(logits[j]) / z - (j == label and 1 or 0) end
  end
  return bn.tensor(g)
end
local classes = { "T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot" }
bn.plot.heatmap(output_grads(false), {
  file = path("heatmap_output_gradients.png"), data = true,
  title = "Output gradients at initialization (no BN)",
  xlabel = "class", ylabel = "example", clabel = "\u{2202}L/\u{2202}logit", xticks = classes, center = 0,
})

-- E1: test accuracy per epoch, mean and std over 3 seeds; one run diverges.
local epochs = {}
for e = 1, 30 do epochs[e] = e end
local function curve(top, rate, noise, diverge_at)
  local mean, std = {}, {}
  for e = 1, 30 do
    mean[e] = top - (top - 0.1) * math.exp(-e / rate)
    std[e] = noise * (1 + 2 * math.exp(-e / 5))
    if diverge_at and e >= diverge_at then mean[e], std[e] = 0 / 0, 0 / 0 end
  end
  return mean, std
end
local bn_fast, bn_fast_sd = curve(0.93, 4, 0.004)
local nobn_slow, nobn_slow_sd = curve(0.86, 9, 0.01)
local nobn_fast, nobn_fast_sd = curve(0.7, 3, 0.03, 7)
bn.plot.lines {
  file = path("lines_accuracy.png"), data = true,
  title = "Test accuracy (mean \u{b1} std over 3 seeds)", xlabel = "epoch", ylabel = "test accuracy",
  series = {
    { x = epochs, y = bn_fast, band = bn_fast_sd, label = "BN, lr 0.1" },
    { x = epochs, y = nobn_slow, band = nobn_slow_sd, label = "no BN, lr 0.0001" },
    { x = epochs, y = nobn_fast, band = nobn_fast_sd, label = "no BN, lr 0.1", style = "--" },
  },
}

-- E2 as a line chart: relative loss against step size, log-log.
local bn_rel, nobn_rel, nobn_sd = {}, {}, {}
for j, a in ipairs(alphas) do
  bn_rel[j] = 1 - 0.3 * math.min(a / 0.3, 1) + (a > 1 and (a - 1) * 2 or 0)
  local col = {}
  for t = 1, updates do col[#col + 1] = rel[t][j] end
  local s, n = 0, 0
  for _, v in ipairs(col) do if v == v and v < math.huge then s, n = s + math.log(v, 10), n + 1 end end
  nobn_rel[j] = n == #col and 10.0 ^ (s / n) or (n > 0 and math.huge or 0 / 0)
end
bn.plot.lines {
  file = path("lines_relative_loss.png"), data = true,
  title = "Relative loss vs step size (first 50 updates)", xlabel = "step size \u{3b1}", ylabel = "new loss / old loss",
  logx = true, logy = true,
  series = {
    { x = alphas, y = bn_rel, label = "BN", style = "o-" },
    { x = alphas, y = nobn_rel, label = "no BN (geometric mean)", style = "s-" },
  },
}

-- E5: gradient values of a middle conv kernel: heavy tails without BN.
local n = 4608
local g_bn, g_nobn = bn.randn(n) * 0.01, {}
for i = 1, n do g_nobn[i] = randn() * math.exp(1.3 * randn()) * 0.6 end
bn.plot.hist {
  file = path("hist_gradients.png"), data = true,
  title = "Gradients of stage2.block4.conv1 at initialization", xlabel = "gradient value", log = true, bins = 60,
  series = { { values = g_nobn, label = "no BN" }, { values = g_bn, label = "BN" } },
}

-- E8: squared singular values of a random N x N Gaussian matrix (variance 1/N)
-- against the Marchenko-Pastur density (samples drawn from that law here).
local function mp(x) return (x > 0 and x < 4) and math.sqrt((4 - x) * x) / (2 * math.pi * x) or 0 end
local samples = {}
while #samples < 20000 do -- propose x = 4u^2 (density ~ 1/sqrt(x)), accept with sqrt(4 - x) / 2
  local x = 4 * math.random() ^ 2
  if math.random() < math.sqrt(4 - x) / 2 then samples[#samples + 1] = x end
end
bn.plot.hist {
  file = path("hist_spectrum.png"), data = true,
  title = "Squared singular values, M = 1", xlabel = "\u{3c3}^{2}", bins = 80, range = { 0, 4 },
  values = samples, label = "samples",
  overlay = { fn = mp, label = "Marchenko\u{2013}Pastur density" },
}

-- E3: per-channel variance at three depths while an update is applied
-- progressively; each panel has its own scale.
local function moments(channels, growth)
  local m = {}
  for r = 1, 21 do
    local f = (r - 1) / 20
    m[r] = {}
    for ch = 1, channels do
      local base = math.exp(0.4 * randn())
      m[r][ch] = base * 10.0 ^ (growth * f ^ 3 * (0.5 + (ch % 7) / 7))
    end
  end
  return bn.tensor(m)
end
local fractions = {}
for r = 1, 21 do fractions[r] = (r - 1) / 20 end
local panels = {}
for _, layer in ipairs { { 8, 16, 0.3 }, { 44, 32, 2 }, { 80, 64, 6 } } do
  panels[#panels + 1] = {
    kind = "heatmap", moments(layer[2], layer[3]), log = true, cmap = "viridis",
    title = ("layer %d"):format(layer[1]), xlabel = "channel", ylabel = "fraction of the update",
    yticks = fractions, clabel = "channel variance",
  }
end
bn.plot.figure {
  file = path("figure_three_layers.png"), data = true, cols = 3,
  title = "Channel variance while a diverging update is applied (no BN)", panels = panels,
}

-- E4 + E5 side by side: BN (left) and no BN (right).
local depth, mean_nobn, std_nobn, spread_nobn, mean_bn, std_bn, spread_bn = {}, {}, {}, {}, {}, {}, {}
for l = 1, 56 do
  depth[l] = l
  std_nobn[l] = 1.18 ^ l * math.exp(0.05 * randn())
  mean_nobn[l] = 0.3 * std_nobn[l]
  spread_nobn[l] = 0.12 * std_nobn[l]
  std_bn[l] = 1 + 0.05 * randn()
  mean_bn[l] = 0.05 * (1 + 0.1 * randn())
  spread_bn[l] = 0.02
end
bn.plot.figure {
  file = path("figure_bn_pairs.png"), data = true, cols = 2,
  title = "At initialization: BN (left) vs no BN (right)",
  panels = {
    { kind = "lines", title = "BN: activations vs depth", xlabel = "layer", ylabel = "value", logy = true,
      series = { { x = depth, y = std_bn, band = spread_bn, label = "channel std" },
                 { x = depth, y = mean_bn, band = spread_bn, label = "|channel mean|" } } },
    { kind = "lines", title = "no BN: activations vs depth", xlabel = "layer", ylabel = "value", logy = true,
      series = { { x = depth, y = std_nobn, band = spread_nobn, label = "channel std" },
                 { x = depth, y = mean_nobn, band = spread_nobn, label = "|channel mean|" } } },
    { kind = "heatmap", output_grads(true), title = "BN: output gradients", xlabel = "class", ylabel = "example",
      center = 0 },
    { kind = "heatmap", output_grads(false), title = "no BN: output gradients", xlabel = "class", ylabel = "example",
      center = 0 },
  },
}

print("wrote figures to " .. out)
