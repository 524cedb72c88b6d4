-- experiments/grad_coherence.lua (E6) at tiny size: outputs exist and hold sane numbers.
local check = require "check"
local X = require "experiment_check"
local T = {}

function T.tiny_run_writes_figures_csv_and_summary()
  local dir, text = X.run_tiny("grad_coherence.lua")
  check.contains(text, "figures and numbers in", "closing line")
  check.contains(text, "|\u{3a3}d|/\u{3a3}|d|", "human summary line")
  X.png(dir .. "/coherence.png")
  X.png(dir .. "/m_matrices.png")
  X.csv(dir .. "/coherence.csv", { "series", "x", "y" })
  for i = 1, 6 do X.csv(dir .. "/m_matrices.panel" .. i .. ".csv") end
  local rows = X.csv(dir .. "/ratios.csv", { "norm", "seed", "layer", "depth", "ratio", "mean_entry_ratio", "sv_top_share",
    "top10_in_share", "in", "out", "loss" })
  check.eq(#rows, 2 * 2 * 3, "three probed conv layers x two seeds (--scale tiny) per normalization")
  local by = { bn = {}, none = {} }
  for _, r in ipairs(rows) do
    check.truthy(by[r.norm] ~= nil, "norm is bn or none, got " .. tostring(r.norm))
    by[r.norm][#by[r.norm] + 1] = r
    check.truthy(r.ratio > 0 and r.ratio <= 1 + 1e-6, "|sum d| / sum |d| lies in (0, 1]")
    check.truthy(r.mean_entry_ratio > 0 and r.mean_entry_ratio <= 1 + 1e-6, "mean entry ratio in (0, 1]")
    check.truthy(r.sv_top_share > 0 and r.sv_top_share <= 1 + 1e-6, "top singular value share in (0, 1]")
    check.truthy(r.top10_in_share >= 0.05 and r.top10_in_share <= 1 + 1e-6, "top-10% channel share in [0.05, 1]")
    check.truthy(r.depth >= 2 and r.depth <= 7, "a conv of ResNet-8 after the stem (weight layers 2..7)")
    check.truthy(r.layer:match("^stage%d%.block%d+%.conv%d$") ~= nil, "a main-path conv: " .. r.layer)
    check.truthy((r["in"] == 16 or r["in"] == 32 or r["in"] == 64) and (r.out == 16 or r.out == 32 or r.out == 64),
      "M is [in x out] of a 16/32/64-channel conv")
    check.truthy(r.loss > 0 and r.loss < math.huge, "finite positive loss")
    check.truthy(r.seed == 1 or r.seed == 2, "seeds --seed and --seed + 1")
  end
  for i = 1, 6 do check.eq(by.bn[i].layer, by.none[i].layer, "the same layers probed in both networks") end
  check.truthy(by.none[1].ratio ~= by.none[4].ratio, "the two seeds are different networks")
  local s = X.summary(dir, { "bn.ratio", "none.ratio", "none.sv_top_share", "bn.top10_in_share", "ratio_factor_geomean",
    "pairs_more_concentrated_without_bn", "pairs", "depth", "batch", "seeds" })
  check.eq(s.depth, 8)
  check.eq(#s.none.ratio, 2, "ratios per seed")
  check.eq(#s.none.ratio[1], 3, "and per layer")
  check.eq(s.pairs, 6)
  check.truthy(s.ratio_factor_geomean > 0, "ratio factor is positive")
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("grad_coherence.lua")
end

return T
