-- E10 — Depth (../shared/paper.md).
-- E2's divergence threshold — the largest step size α whose gradient step
-- never pushed the loss past 1e3 × its value in the first updates of
-- training — against network depth, without BN (and with BN for contrast),
-- over a few seeds.
-- Expected: shallower unnormalized networks tolerate larger steps.
local bn = require "bnlab"
local E = bn.experiment
local D = require "bnlab.experiment.divergence"

local o = E.start{
  name = "depth",
  description = "E10: divergence threshold (largest non-diverging step size of E2's probe) against ResNet depth.",
  options = {
    depths = { { 8, 20, 32, 56 }, "ResNet depths (6n+2) compared" },
    steps = { 4, "updates probed per network" },
    seeds = { 2, "seeds per (depth, normalization)" },
    per_decade = { 2, "step sizes per decade on the grid 1e-5 ... 1e1" },
    lr_none = { 1e-5, "training lr of the trajectory without BN (BN trains with --lr)" },
    threshold = { 1e3, "relative loss counted as divergence" },
  },
  scales = { quick = { depths = { 8, 20, 32, 56 }, batch = 32, steps = 4, seeds = 2, per_decade = 2 },
             paper = { depths = { 20, 32, 44, 56, 110 }, batch = 128, steps = 10, seeds = 3, per_decade = 4 },
             tiny = { depths = { 8, 14 }, batch = 16, steps = 2, seeds = 1, per_decade = 1 } },
}
for _, d in ipairs(o.depths) do
  if (d - 2) % 6 ~= 0 or d < 8 then io.stderr:write(("depth: --depths expected 6n+2 values, got %s\n"):format(d)); os.exit(2, true) end
end
local train = E.data(o)
local alphas = D.alphas(o.per_decade)
local function log10(v) return math.log(v, 10) end

local series, rows, summary = {}, {}, { depths = o.depths, steps = o.steps, seeds = o.seeds, batch = o.batch, alphas = alphas }
for i, norm in ipairs(o.norm) do
  local label, lr = E.label(norm), norm == "bn" and o.lr or o.lr_none
  local geo, px, py, censored = {}, {}, {}, false
  summary[norm] = { threshold = {}, per_seed = {} }
  for j, depth in ipairs(o.depths) do
    local logs, per_seed = {}, {}
    for s = 1, o.seeds do
      local seed = o.seed + s - 1
      local r = D.scan(o, E.resnet(o, norm, depth, seed), train, { steps = o.steps, alphas = alphas, lr = lr, seed = seed,
        threshold = o.threshold, label = ("%s, ResNet-%d, seed %d"):format(label, depth, seed) })
      local t = r.max_stable_alpha or 0 / 0 -- nil: even the smallest alpha diverged
      censored = censored or t == alphas[#alphas]
      rows[#rows + 1] = { norm, depth, seed, t, r.first_diverging_alpha or 0 / 0, r.training_diverged and 1 or 0 }
      logs[#logs + 1], per_seed[s] = log10(t), t
      px[#px + 1], py[#py + 1] = depth, t
    end
    local m = 0
    for _, l in ipairs(logs) do m = m + l / #logs end
    geo[j] = 10 ^ m -- geometric mean over seeds
    summary[norm].threshold[j], summary[norm].per_seed[j] = geo[j], per_seed
  end
  local color = ("C%d"):format(i - 1)
  series[#series + 1] = { x = o.depths, y = geo, style = "o-", color = color,
    label = label .. ": geometric mean over seeds" .. (censored and " (10^{1}: never diverged on the grid)" or "") }
  series[#series + 1] = { x = px, y = py, style = "s", color = color, alpha = 0.45, label = o.seeds > 1 and (label .. ": each seed") or nil }
end
E.csv(o, "thresholds.csv", { "norm", "depth", "seed", "max_stable_alpha", "first_diverging_alpha", "training_diverged" }, rows)
bn.plot.lines{ series = series, logy = true, data = true, file = E.path(o, "depth.png"),
  title = ("Divergence threshold vs depth (first %d updates, batch %d, relative loss > 10^{3})"):format(o.steps, o.batch),
  xlabel = "ResNet depth (layers)", ylabel = "largest non-diverging step size \u{3b1}", ylim = { alphas[1], alphas[#alphas] * 3 } }

summary.claim = "the divergence threshold of unnormalized networks decreases with depth: shallower networks tolerate larger steps"
local th = summary.none and summary.none.threshold
if th and #th >= 2 then
  -- Non-increasing with depth (up to one grid step of seed noise), and clearly lower at the deepest.
  local mono = true
  for j = 2, #th do mono = mono and not (th[j] > th[j - 1] * 10 ^ (1 / o.per_decade) * 1.001) end
  summary.holds = mono and th[#th] < th[1]
  summary.none_shallow_over_deep = th[1] / th[#th]
end
local parts = {}
for _, norm in ipairs(o.norm) do
  local t = {}
  for j, d in ipairs(o.depths) do t[j] = ("%d: %.2g"):format(d, summary[norm].threshold[j]) end
  parts[#parts + 1] = E.label(norm) .. " {" .. table.concat(t, ", ") .. "}"
end
E.finish(o, summary, "largest non-diverging \u{3b1} by depth: " .. table.concat(parts, "; "))
