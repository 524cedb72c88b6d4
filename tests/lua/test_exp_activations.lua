-- experiments/activations.lua (E4) at tiny size: outputs exist and hold sane numbers.
local check = require "check"
local X = require "experiment_check"
local T = {}

function T.tiny_run_writes_figure_csv_and_summary()
  local dir, text = X.run_tiny("activations.lua")
  check.contains(text, "figures and numbers in", "closing line")
  X.png(dir .. "/activations.png")
  local rows = X.csv(dir .. "/layers.csv", { "norm", "layer", "depth", "abs_mean", "std_mean", "std_spread" })
  check.eq(#rows, 2 * 3, "one row per residual block (ResNet-8: 3) per normalization")
  for _, r in ipairs(rows) do check.truthy(r.std_mean > 0 and r.std_mean < math.huge, "std is positive and finite") end
  local s = X.summary(dir, { "bn.growth", "none.growth", "depth" })
  check.eq(s.depth, 8)
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("activations.lua")
end

return T
