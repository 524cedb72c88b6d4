-- experiments/lr_sweep.lua (E1) at tiny size: runs, curves, tables and summary exist and hold sane numbers.
local check = require "check"
local X = require "experiment_check"
local T = {}

local function in01(v) return type(v) == "number" and v >= 0 and v <= 1 end

function T.tiny_run_writes_figures_tables_and_summary()
  local dir, text = X.run_tiny("lr_sweep.lua")
  check.contains(text, "figures and numbers in", "closing line")
  check.contains(text, "[8/8]", "one line per run (2 norms x 2 lrs x 2 seeds)")
  X.png(dir .. "/accuracy.png")
  X.png(dir .. "/accuracy_vs_lr.png")
  X.csv(dir .. "/accuracy.panel1.csv", { "series", "x", "y", "band" })
  X.csv(dir .. "/accuracy.panel2.csv", { "series", "x", "y", "band" })
  X.csv(dir .. "/accuracy_vs_lr.csv", { "series", "x", "y", "band" })
  local rows = X.csv(dir .. "/table.csv", { "norm", "lr", "seeds", "diverged", "collapsed", "failed", "final_test_mean",
    "final_test_std", "best_test_mean", "final_train_mean" })
  check.eq(#rows, 4, "one row per (norm, lr)")
  for _, r in ipairs(rows) do
    check.eq(r.seeds, 2)
    check.truthy(r.failed == r.diverged + r.collapsed and r.failed <= r.seeds, "failed = diverged + collapsed <= seeds")
    check.truthy(r.diverged == r.seeds or in01(r.final_test_mean), "final test accuracy in [0, 1] unless every seed diverged")
  end
  local runs = X.csv(dir .. "/runs.csv", { "norm", "lr", "seed", "diverged", "collapsed", "final_test_acc", "best_test_acc", "seconds" })
  check.eq(#runs, 8, "one row per run")
  for _, r in ipairs(runs) do
    local log = X.csv(("%s/runs/%s_lr%g_seed%d.csv"):format(dir, r.norm, r.lr, r.seed), { "epoch", "train_acc", "test_acc" })
    check.truthy(#log >= 1 and #log <= 2, "per-run log with one row per epoch run")
    check.truthy(r.diverged == 1 or in01(r.final_test_acc), "run accuracy in [0, 1]")
  end
  -- (booleans are checked apart: X.summary's key lookup reads a false value as missing)
  local s = X.summary(dir, { "small_lr.gap", "small_lr.lr", "small_lr.smallest_in_grid", "bn_best.lr", "none_at_largest_lr.seeds", "groups", "depth" })
  check.eq(type(s.bn_best_at_large_lr), "boolean")
  check.eq(type(s.none_at_largest_lr.all_failed), "boolean")
  check.eq(s.depth, 8)
  check.eq(s.small_lr.smallest_in_grid, 1e-3)
  check.truthy(s.small_lr.lr == 1e-3 or s.small_lr.lr == 0.1, "the small-lr comparison is made at a grid lr")
  check.eq(#s.groups, 4)
  check.truthy(s.small_lr.gap >= 0 and s.small_lr.gap <= 1, "gap in [0, 1]")
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("lr_sweep.lua")
  local code, text = X.run("lr_sweep.lua", { "--help" })
  check.eq(code, 0)
  for _, opt in ipairs{ "--lrs", "--seeds", "--epochs", "--train-size", "--width", "--schedule", "--scale quick" } do
    check.contains(text, opt, "--help lists " .. opt)
  end
end

return T
