-- experiments/diverging_update.lua (E3) at tiny size: outputs exist and hold sane numbers.
local check = require "check"
local X = require "experiment_check"
local T = {}

function T.tiny_run_writes_figures_csv_and_summary()
  local dir, text = X.run_tiny("diverging_update.lua")
  check.contains(text, "figures and numbers in", "closing line")
  for _, f in ipairs{ "variance.png", "mean.png", "growth.png" } do X.png(dir .. "/" .. f) end
  local rows = X.csv(dir .. "/moments.csv", { "layer", "index", "fraction", "channel", "mean", "var" })
  -- ResNet-8 tiny: layers 1, 3, 6 of 8 (conv1: 16 channels, stage1 conv: 16, stage3 conv: 64), 5 fractions.
  check.eq(#rows, 5 * (16 + 16 + 64), "one row per fraction and channel of each layer")
  for _, r in ipairs(rows) do
    check.truthy(r.fraction >= 0 and r.fraction <= 1, "fraction in [0, 1]")
    check.truthy(r.var >= 0, "variance is non-negative")
  end
  local s = X.summary(dir, { "alpha", "layers", "relative_loss", "norm" })
  check.eq(type(s.update_diverges), "boolean")
  check.eq(#s.layers, 3, "three depths")
  check.truthy(s.layers[1].index < s.layers[2].index and s.layers[2].index < s.layers[3].index, "early, middle, late")
  check.truthy(s.alpha > 0 and s.alpha <= 10, "the step size is on the grid")
  for _, l in ipairs(s.layers) do check.truthy(l.median_var_growth > 0, "growth is positive") end
  check.eq(#s.seeds, 1, "tiny: one seed")
  X.cleanup()
end

function T.explicit_layers_and_alpha()
  local dir = X.run_tiny("diverging_update.lua", { "--layers", "2,7", "--alpha", "0.5", "--fractions", "3" })
  local s = X.summary(dir, { "alpha" })
  check.eq(s.alpha, 0.5)
  check.eq(#s.layers, 2)
  check.eq(s.layers[2].index, 7)
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("diverging_update.lua")
end

return T
