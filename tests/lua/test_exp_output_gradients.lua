-- experiments/output_gradients.lua (E5) at tiny size: outputs exist and hold sane numbers.
local check = require "check"
local bn = require "bnlab"
local X = require "experiment_check"
local T = {}

function T.tiny_run_writes_figure_csv_and_summary()
  local dir, text = X.run_tiny("output_gradients.lua")
  check.contains(text, "figures and numbers in", "closing line")
  X.png(dir .. "/output_gradients.png")
  X.png(dir .. "/kernel_gradients.png")
  X.csv(dir .. "/kernel_gradients.csv")
  local rows = X.csv(dir .. "/gradient_stats.csv", { "norm", "loss", "agreement", "dominant_class", "kernel_grad_std" })
  check.eq(#rows, 2, "one row per normalization")
  for _, r in ipairs(rows) do
    check.truthy(r.agreement >= 0 and r.agreement <= 1, "agreement is a fraction")
    check.truthy(r.dominant_class >= 1 and r.dominant_class <= 10, "dominant class is a class")
    check.truthy(r.kernel_grad_std > 0, "kernel gradient std is positive")
  end
  local g = bn.load(dir .. "/output_grad_none.npy")
  check.eq(g:shape(), { 16, 10 }, "per-example output gradients: batch x classes")
  -- rows of softmax - onehot (divided by B) sum to zero
  check.truthy(g:sum(2):abs():max():item() < 1e-6, "each row of dL/dlogits sums to 0")
  local s = X.summary(dir, { "bn.agreement", "none.agreement", "kernel_grad_ratio", "depth" })
  check.eq(s.depth, 8)
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("output_gradients.lua")
end

return T
