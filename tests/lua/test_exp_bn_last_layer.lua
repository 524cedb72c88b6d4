-- experiments/bn_last_layer.lua (E7) at tiny size: the lr sweep over none/last/bn and the divergence scans.
local check = require "check"
local X = require "experiment_check"
local T = {}

function T.tiny_run_writes_sweep_scan_and_summary()
  local dir, text = X.run_tiny("bn_last_layer.lua")
  check.contains(text, "figures and numbers in", "closing line")
  check.contains(text, "[12/12]", "one line per run (3 norms x 2 lrs x 2 seeds)")
  for _, f in ipairs{ "accuracy.png", "accuracy_vs_lr.png", "divergence_heatmap.png", "divergence_lines.png" } do
    X.png(dir .. "/" .. f)
  end
  local rows = X.csv(dir .. "/table.csv", { "norm", "lr", "seeds", "diverged", "collapsed", "failed", "final_test_mean" })
  check.eq(#rows, 6, "one row per (norm, lr)")
  local norms = {}
  for _, r in ipairs(rows) do norms[r.norm] = true end
  check.truthy(norms.none and norms.last and norms.bn, "none, last and bn in the table")
  check.eq(#X.csv(dir .. "/runs.csv", { "norm", "lr", "seed", "final_test_acc" }), 12, "one row per run")
  local rel = X.csv(dir .. "/relative_loss.csv", { "norm", "step", "alpha", "relative_loss", "diverged" })
  check.eq(#rel, 3 * 2 * 7, "3 scans x 2 updates x 7 step sizes (1e-5 ... 1e1, one per decade)")
  for _, r in ipairs(rel) do
    check.truthy(r.relative_loss ~= r.relative_loss or r.relative_loss >= 0, "relative loss >= 0 or NaN (diverged)")
  end
  local s = X.summary(dir, { "none.largest_trained_lr", "last.largest_trained_lr", "bn.best_test_acc", "scan.none.alphas",
    "scan.last.steps_probed", "bn_benefit", "groups" })
  check.eq(type(s.tolerates_larger_lr), "boolean") -- booleans apart: X.summary reads false as missing
  check.eq(type(s.recovers), "boolean")
  check.eq(#s.groups, 6)
  check.eq(s.scan.last.steps_probed, 2)
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("bn_last_layer.lua")
  local code, text = X.run("bn_last_layer.lua", { "--help" })
  check.eq(code, 0)
  for _, opt in ipairs{ "--lrs", "--seeds", "--steps", "--lr-none", "--scan-batch", "--recover" } do
    check.contains(text, opt, "--help lists " .. opt)
  end
end

return T
