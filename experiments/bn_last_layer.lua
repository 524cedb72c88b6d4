-- E7 — BN only after the last residual block (../shared/paper.md).
-- The unnormalized ResNet plus one BatchNorm after its last block ("last"),
-- against no BN and full BN: E1's learning-rate sweep (accuracy per epoch and
-- against lr, over seeds) and E2's divergence scan (relative loss after one
-- gradient step of size alpha, over the first updates of training).
-- Expected: "last" tolerates clearly larger learning rates than no BN and
-- recovers a good part (the paper: about two thirds) of BN's accuracy benefit.
local bn = require "bnlab"
local E = bn.experiment
local T = require "bnlab.experiment.training"
local D = require "bnlab.experiment.divergence"

local o = E.start{
  name = "bn_last_layer",
  description = "E7: no BN vs one BN after the last residual block vs full BN: lr sweep (E1) and divergence scan (E2).\n"
    .. "quick (~6 min on 2 idle cores) = lr_sweep's quick net and budget: ResNet-20 at width 8 on 3000 Fashion-MNIST\n"
    .. "training images, 5 epochs, lr/10 after epochs 3 and 4, 1000 test images, 2 seeds, the large lrs only;\n"
    .. "scan: 20 updates at batch 32.\n"
    .. "paper = ResNet-110 (16/32/64), the whole data set, 160 epochs, lr/10 on plateau, 3 seeds; scan: 100 updates.",
  options = T.options{
    norm = { { "none", "last", "bn" }, "normalizations compared: none, last, bn" },
    lr = { 0.1, "training lr of the divergence scan's trajectory with BN" },
    lr_none = { 1e-5, "training lr of the divergence scan's trajectory without BN and with BN after the last block" },
    steps = { 20, "divergence scan: updates probed (K)" },
    per_decade = { 2, "divergence scan: step sizes per decade on 1e-5 ... 1e1" },
    scan_batch = { 32, "divergence scan: batch size" },
    threshold = { 1e3, "divergence scan: relative loss counted as divergence" },
    recover = { 0.5, "'a good part' of BN's benefit: (best last - best none) / (best BN - best none) >= this" },
  },
  scales = {
    quick = { depth = 20, width = 8, lrs = { 0.1, 0.03, 0.01 }, seeds = 2, epochs = 5, train_size = 3000,
              test_size = 1000, schedule = "step", steps = 20, per_decade = 2, scan_batch = 32 },
    paper = { depth = 110, width = 16, lrs = { 0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 1e-5 }, seeds = 3, epochs = 160,
              schedule = "plateau", steps = 100, per_decade = 4, scan_batch = 128 },
    tiny = { depth = 8, width = 4, lrs = { 0.1, 1e-3 }, seeds = 2, epochs = 2, batch = 32, train_size = 128, test_size = 64,
             steps = 2, per_decade = 1, scan_batch = 16 },
  },
}
local train, test = T.data(o)
print(("ResNet-%d (width %d) on %d training / %d test images, %d epochs, lrs %s, %d seeds each"):format(
  o.depth, o.width, train.n, test.n, o.epochs, table.concat(o.lrs, ", "), o.seeds))
local groups = T.sweep(o, train, test)
T.write(o, groups)
print(T.text_table(groups))

-- E2 part: the divergence scan of each network.
local alphas, scans, order = D.alphas(o.per_decade), {}, {}
local summary = { depth = o.depth, width = o.width, epochs = o.epochs, seeds = o.seeds, train_size = train.n, groups = {}, scan = {} }
for _, norm in ipairs(o.norm) do
  local net = bn.models.resnet{ depth = o.depth, width = o.width, norm = norm, seed = o.seed, in_channels = train.shape[1], classes = train.classes }
  local label = E.label(norm)
  scans[label], order[#order + 1] = D.scan(o, net, train, { steps = o.steps, alphas = alphas, threshold = o.threshold,
    lr = norm == "bn" and o.lr or o.lr_none, batch = o.scan_batch, seed = o.seed, label = label }), label
  summary.scan[norm] = D.summary(scans[label])
end
D.plot(o, scans, "divergence", { order = order, title = ("ResNet-%d width %d, batch %d"):format(o.depth, o.width, o.scan_batch) })
D.csv(o, scans, "relative_loss.csv", { order = order })

for i, g in ipairs(groups) do summary.groups[i] = T.group_summary(g) end
summary.claim = "one BN after the last residual block lets the unnormalized network train at clearly larger learning rates and recovers a good part of BN's accuracy benefit"
local best, maxlr, stable = {}, {}, {}
for _, norm in ipairs(o.norm) do
  local b = T.best(groups, norm)
  best[norm] = b and b.final_test_mean or 0 / 0
  maxlr[norm] = T.largest_trained_lr(groups, norm) or 0
  stable[norm] = summary.scan[norm].max_stable_alpha or 0
  summary[norm] = { best_test_acc = best[norm], best_lr = b and b.lr, largest_trained_lr = maxlr[norm], max_stable_alpha = stable[norm] }
end
if best.none and best.last and best.bn then
  local benefit = best.bn - best.none
  summary.bn_benefit = benefit
  summary.recovered_fraction = benefit > 0.01 and (best.last - best.none) / benefit or nil
  summary.tolerates_larger_lr = maxlr.last > maxlr.none or stable.last > stable.none
  summary.recovers = summary.recovered_fraction ~= nil and summary.recovered_fraction >= o.recover
  summary.holds = summary.tolerates_larger_lr and summary.recovers
  local function lr_text(v) return v > 0 and ("%g"):format(v) or "none" end
  E.finish(o, summary, ("largest lr that trains (all seeds): no BN: %s, last: %s, BN: %s; scan stable up to alpha: no BN %.3g, last %.3g, BN %.3g; "
    .. "best test accuracy: no BN %.1f%%, last %.1f%%, BN %.1f%% (last recovers %s of BN's benefit)"):format(lr_text(maxlr.none), lr_text(maxlr.last), lr_text(maxlr.bn),
    stable.none, stable.last, stable.bn, 100 * best.none, 100 * best.last, 100 * best.bn,
    summary.recovered_fraction and ("%.0f%%"):format(100 * summary.recovered_fraction) or "n/a (BN has no benefit here)"))
else
  E.finish(o, summary, "(the claim needs --norm none,last,bn)")
end
