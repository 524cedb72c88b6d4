-- experiments/depth.lua (E10) at tiny size: outputs exist and hold sane numbers.
local check = require "check"
local X = require "experiment_check"
local T = {}

function T.tiny_run_writes_figure_csv_and_summary()
  local dir, text = X.run_tiny("depth.lua")
  check.contains(text, "figures and numbers in", "closing line")
  X.png(dir .. "/depth.png")
  local rows = X.csv(dir .. "/thresholds.csv", { "norm", "depth", "seed", "max_stable_alpha", "first_diverging_alpha" })
  check.eq(#rows, 2 * 2, "2 normalizations x 2 depths x 1 seed")
  for _, r in ipairs(rows) do
    check.truthy(r.depth == 8 or r.depth == 14, "tiny depths")
    local t = r.max_stable_alpha
    check.truthy(t ~= t or (t >= 1e-5 and t <= 10), "threshold on the grid (or NaN: nothing stable)")
    local f = r.first_diverging_alpha
    check.truthy(f ~= f or t ~= t or f ~= t, "stable and diverging alphas differ")
  end
  local s = X.summary(dir, { "none.threshold", "bn.threshold", "depths" })
  check.eq(#s.none.threshold, 2, "one threshold per depth")
  X.cleanup()
end

function T.rejects_a_depth_that_is_not_6n_plus_2()
  local code, text = X.run("depth.lua", { "--scale", "tiny", "--depths", "8,10", "--out", X.temp_dir() })
  check.eq(code, 2)
  check.contains(text, "6n+2")
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("depth.lua")
end

return T
