-- E1 — Learning rate is the key (../shared/paper.md).
-- Trains the ResNet with and without BN at several initial learning rates,
-- several seeds each; plots train and test accuracy per epoch (mean +- std
-- over seeds) and final test accuracy against lr; tables the final/best test
-- accuracy per (norm, lr) with the runs that diverged (NaN/Inf or loss >
-- 1e3 x the first) or collapsed (final test accuracy at chance).
-- Expected: at a small lr both reach similar accuracy; BN's best accuracy is
-- at a large lr; without BN the large lrs diverge.
local bn = require "bnlab"
local E = bn.experiment
local T = require "bnlab.experiment.training"

local o = E.start{
  name = "lr_sweep",
  description = "E1: accuracy per epoch with and without BN over a grid of initial learning rates x seeds.\n"
    .. "quick (~7 min on 2 idle cores) = ResNet-20 at width 8 (8/16/32 channels) on 3000 Fashion-MNIST training\n"
    .. "images, 5 epochs (120 updates), lr/10 after epochs 3 and 4, 1000 test images, 2 seeds: the deepest net that\n"
    .. "fits (ResNet-56 at width 4 did not learn without BN at any lr in that budget). paper = ResNet-110\n"
    .. "(16/32/64), all the data, 160 epochs, lr/10 on plateau, 3 seeds. The small-lr comparison is made at the\n"
    .. "smallest lr where BN or no BN gets above chance (below it neither has learned anything yet).",
  options = T.options{
    lr = { 0.1, "unused here: the swept rates are --lrs" },
    tolerance = { 0.05, "'similar accuracy' at a small lr: |BN - no BN| <= this (or <= 2 standard errors over seeds)" },
  },
  scales = {
    quick = { depth = 20, width = 8, lrs = { 0.1, 0.03, 0.01, 0.001, 1e-5 }, seeds = 2, epochs = 5, train_size = 3000,
              test_size = 1000, schedule = "step" },
    paper = { depth = 110, width = 16, lrs = { 0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 1e-5 }, seeds = 3, epochs = 160,
              schedule = "plateau" },
    tiny = { depth = 8, width = 4, lrs = { 0.1, 1e-3 }, seeds = 2, epochs = 2, batch = 32, train_size = 128, test_size = 64 },
  },
}
local train, test = T.data(o)
print(("ResNet-%d (width %d) on %d training / %d test images, %d epochs, lrs %s, %d seeds each"):format(
  o.depth, o.width, train.n, test.n, o.epochs, table.concat(o.lrs, ", "), o.seeds))
local groups = T.sweep(o, train, test)
T.write(o, groups)
print(T.text_table(groups))

local summary = { depth = o.depth, width = o.width, epochs = o.epochs, seeds = o.seeds, train_size = train.n,
                  test_size = test.n, groups = {} }
for i, g in ipairs(groups) do summary.groups[i] = T.group_summary(g) end
summary.claim = "at a small lr BN and no BN reach similar accuracy; BN's best accuracy is at a large lr, where no BN diverges"
local small, large = math.huge, -math.huge
for _, lr in ipairs(o.lrs) do small, large = math.min(small, lr), math.max(large, lr) end
-- The small-lr comparison: at the smallest lr where either network learned (above chance).
local cmp
for _, lr in ipairs(o.lrs) do
  local above = T.above_chance(T.find(groups, "bn", lr), train.classes, o.collapse)
    or T.above_chance(T.find(groups, "none", lr), train.classes, o.collapse)
  if above and (not cmp or lr < cmp) then cmp = lr end
end
cmp = cmp or small
local bs, ns, nl = T.find(groups, "bn", cmp), T.find(groups, "none", cmp), T.find(groups, "none", large)
if bs and ns and nl then
  local best_bn, best_none = T.best(groups, "bn"), T.best(groups, "none")
  local gap = math.abs(bs.final_test_mean - ns.final_test_mean)
  -- Seed noise: 2 standard errors of the difference of the two means.
  local noise = 2 * math.sqrt(bs.final_test_std ^ 2 / math.max(bs.final_test_n, 1) + ns.final_test_std ^ 2 / math.max(ns.final_test_n, 1))
  local none_max = T.largest_trained_lr(groups, "none")
  summary.small_lr = { lr = cmp, smallest_in_grid = small, bn = bs.final_test_mean, none = ns.final_test_mean, gap = gap,
                       seed_noise = noise, similar = gap <= math.max(o.tolerance, noise) }
  summary.bn_best = best_bn and { lr = best_bn.lr, acc = best_bn.final_test_mean, std = best_bn.final_test_std }
  summary.none_best = best_none and { lr = best_none.lr, acc = best_none.final_test_mean, std = best_none.final_test_std }
  summary.bn_best_at_large_lr = best_bn ~= nil and best_bn.lr >= large / 10
  summary.none_largest_trained_lr = none_max
  summary.bn_best_lr_fails_without_bn = best_bn ~= nil and (none_max == nil or best_bn.lr > none_max)
  summary.none_at_largest_lr = { lr = large, seeds = nl.seeds, diverged = nl.diverged, collapsed = nl.collapsed,
                                 all_failed = nl.failed == nl.seeds }
  summary.bn_benefit = best_bn and best_none and best_bn.final_test_mean - best_none.final_test_mean
  summary.holds = summary.small_lr.similar and summary.bn_best_at_large_lr and summary.none_at_largest_lr.all_failed
  -- a mean over no surviving seed is NaN: say so in words
  local function pct(v, unit) return v == v and ("%.1f" .. unit):format(100 * v) or "none trained" end
  E.finish(o, summary, ("lr %g (smallest where a net learned): BN %s vs no BN %s (gap %s, seed noise %s); best BN %s at lr %g, best no BN %s; "
    .. "no BN at lr %g: %d/%d diverged, %d/%d at chance"):format(cmp, pct(bs.final_test_mean, "%%"), pct(ns.final_test_mean, "%%"),
    pct(gap, " points"), pct(noise, ""), pct(best_bn and best_bn.final_test_mean or 0 / 0, "%%"), best_bn and best_bn.lr or 0 / 0,
    best_none and ("%.1f%% at lr %g"):format(100 * best_none.final_test_mean, best_none.lr) or "none (all diverged)",
    large, nl.diverged, nl.seeds, nl.collapsed, nl.seeds))
else
  E.finish(o, summary, "(the claim needs --norm bn,none)")
end
