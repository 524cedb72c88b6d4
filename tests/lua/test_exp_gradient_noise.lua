-- experiments/gradient_noise.lua (E9) at tiny size: outputs exist and hold sane numbers.
local check = require "check"
local X = require "experiment_check"
local T = {}

function T.tiny_run_writes_figure_csv_and_summary()
  local dir, text = X.run_tiny("gradient_noise.lua")
  check.contains(text, "figures and numbers in", "closing line")
  check.contains(text, "slope", "human summary line")
  X.png(dir .. "/sgd_noise.png")
  for i = 1, 3 do X.csv(dir .. "/sgd_noise.panel" .. i .. ".csv", { "series", "x", "y" }) end
  local rows = X.csv(dir .. "/noise.csv", { "norm", "batch_size", "lr", "measured", "measured_se", "bound", "bound_fpc", "ratio_fpc" })
  check.eq(#rows, 2 * 3 * 3, "norms x batch sizes {2, 4, 8} x learning rates {0.1, 0.01, 0.001}")
  local at = {}
  for _, r in ipairs(rows) do
    check.truthy(r.measured > 0 and r.measured < math.huge, "measured noise is positive and finite")
    check.truthy(r.measured_se >= 0, "standard error is non-negative")
    check.truthy(r.bound_fpc > 0 and r.bound_fpc <= r.bound, "finite-population expectation <= C/|B|")
    check.near(r.ratio_fpc, r.measured / r.bound_fpc, 1e-5 * r.ratio_fpc, "ratio = measured / expectation")
    at[r.norm .. r.batch_size .. "@" .. r.lr] = r
  end
  for _, norm in ipairs{ "bn", "none" } do
    for _, b in ipairs{ 2, 4, 8 } do
      local hi, lo = at[norm .. b .. "@0.1"], at[norm .. b .. "@0.01"]
      check.near(hi.measured / lo.measured, 100, 1e-4, "SGD noise scales exactly as alpha^2")
      check.near(hi.bound / at[norm .. 2 .. "@0.1"].bound, 2 / b, 1e-5, "the bound falls as 1/|B|")
    end
  end
  local s = X.summary(dir, { "bn.C", "none.C", "bn.slope", "none.slope", "none.measured_over_bound", "n" })
  check.eq(type(s.none.within_bound), "boolean", "within_bound is recorded")
  check.eq(s.n, 32)
  check.eq(s.none.coupled, false, "no BN: examples are independent")
  check.eq(s.bn.coupled, true, "BN in train mode: examples are coupled through the batch statistics")
  check.truthy(s.none.C > 0 and s.bn.C > 0, "C is positive")
  check.truthy(s.none.slope < 0 and s.bn.slope < 0, "noise falls with the batch size")
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("gradient_noise.lua")
end

return T
