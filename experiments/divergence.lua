-- E2 — Divergence: relative loss vs step size (../shared/paper.md).
-- During the first K updates of ordinary training (SGD, momentum 0.9, weight
-- decay 1e-4), at each update t: the mini-batch gradient g at θ_t and, for
-- every step size α on a log grid, the loss on the same batch at θ_t − α·g.
-- Relative loss = new / old; above 1e3 (or NaN) counts as diverged. The
-- parameters are restored exactly, then training takes its own step.
-- Expected: without BN the relative loss explodes once α exceeds about 1e-3;
-- with BN it stays bounded over a much wider range.
local bn = require "bnlab"
local E = bn.experiment
local D = require "bnlab.experiment.divergence"

local o = E.start{
  name = "divergence",
  description = "E2: relative loss loss(θ - αg)/loss(θ) over the first updates of training, BN vs no BN.\n"
    .. "The probe measures the step sizes α; the trajectory between probes trains with --lr (BN) and\n"
    .. "--lr-none (every other normalization: the 56-layer unnormalized net goes to NaN at lr 1e-4).",
  options = {
    steps = { 20, "updates probed (K)" },
    per_decade = { 2, "step sizes per decade on the grid" },
    alpha_min = { 1e-5, "smallest step size of the grid (a power of 10; deep nets without BN need 1e-9)" },
    alpha_max = { 10.0, "largest step size of the grid (a power of 10)" },
    lr_none = { 1e-5, "training lr of the trajectory without BN (and with --norm last)" },
    threshold = { 1e3, "relative loss counted as divergence" },
  },
  scales = { quick = { depth = 56, batch = 32, steps = 20, per_decade = 2 },
             paper = { depth = 110, batch = 128, steps = 100, per_decade = 4 },
             tiny = { depth = 8, batch = 16, steps = 3, per_decade = 1 } },
}
local train = E.data(o)
local lo, hi = math.log(o.alpha_min, 10), math.log(o.alpha_max, 10)
if not (o.alpha_min > 0 and o.alpha_max > o.alpha_min) then
  io.stderr:write(("divergence.lua: expected 0 < --alpha-min < --alpha-max, got %g and %g\n"):format(o.alpha_min, o.alpha_max))
  os.exit(2, true)
end
local alphas = D.alphas(o.per_decade, lo, hi)

print(("E2: ResNet-%d, batch %d, %d updates, %d step sizes %.0e ... %.0e"):format(o.depth, o.batch, o.steps, #alphas, alphas[1], alphas[#alphas]))
local results, order, summary = {}, {}, { depth = o.depth, batch = o.batch, steps = o.steps, threshold = o.threshold, alphas = alphas }
for _, norm in ipairs(o.norm) do
  local label = E.label(norm)
  local lr = norm == "bn" and o.lr or o.lr_none
  local r = D.scan(o, E.resnet(o, norm), train, { steps = o.steps, alphas = alphas, lr = lr, threshold = o.threshold, label = label })
  results[label], order[#order + 1] = r, label
  summary[norm] = D.summary(r)
end
local heat, lines = D.plot(o, results, "divergence", { order = order })
D.csv(o, results, "relative_loss.csv", { order = order })

local function a(v) return v and ("%.3g"):format(v) or "none" end
local function verdict(norm)
  local s = summary[norm]
  if s.first_diverging_alpha then
    return ("%s diverges from \u{3b1} = %s (stable up to %s)"):format(E.label(norm), a(s.first_diverging_alpha), a(s.max_stable_alpha))
  end
  return ("%s is stable up to \u{3b1} = %s (the largest probed)"):format(E.label(norm), a(s.max_stable_alpha))
end
local parts = {}
for _, norm in ipairs(o.norm) do parts[#parts + 1] = verdict(norm) end
summary.claim = "without BN the relative loss explodes once the step size exceeds about 1e-3; with BN it stays bounded over a much wider range"
if summary.bn and summary.none then
  -- Divergence onset with BN at least 10x later (a BN net that never diverges counts as the grid's end x sqrt(10)).
  local onset_bn = summary.bn.first_diverging_alpha or alphas[#alphas] * 10 ^ 0.5
  local onset_none = summary.none.first_diverging_alpha
  summary.onset_ratio = onset_none and onset_bn / onset_none or nil
  summary.holds = onset_none ~= nil and onset_bn >= 10 * onset_none
end
E.finish(o, summary, ("ResNet-%d, first %d updates: %s."):format(o.depth, o.steps, table.concat(parts, "; ")))
print(("figures: %s\n         %s"):format(heat, lines))
