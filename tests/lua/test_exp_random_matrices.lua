-- experiments/random_matrices.lua (E8) at tiny size, and the library piece behind its
-- condition numbers (bnlab.experiment.spectra).
local check = require "check"
local X = require "experiment_check"
local bn = require "bnlab"
local S = require "bnlab.experiment.spectra"
local T = {}

function T.product_conds_matches_svd_where_float32_can_see()
  bn.manual_seed(5)
  local mats = S.gaussian_chain({ { 12, 12 }, { 12, 12 }, { 20, 12 }, { 20, 20 } })
  local r = S.product_conds(mats)
  local sp = bn.linalg.product_spectra(mats)
  for k = 1, #mats do
    check.truthy(sp[k].cond < 1e5, "small enough for float32")
    check.near(r[k].cond, sp[k].cond, 1e-4 * sp[k].cond, "cond of the first " .. k .. " factors")
    check.near(10 ^ r[k].log10_smax, sp[k].singular_values[1], 1e-5 * sp[k].singular_values[1], "sigma max")
    check.eq(r[k].rank, 12)
  end
end

function T.product_conds_goes_past_the_float32_floor()
  -- diag(1, 1e-3) ten times: cond 1e30 exactly; float32's SVD of the product cannot see it.
  local d = bn.tensor({ { 1, 0 }, { 0, 1e-3 } })
  local mats = {}
  for k = 1, 10 do mats[k] = d end
  local r = S.product_conds(mats)
  for k = 1, 10 do check.near(r[k].log10_cond, 3 * k, 1e-4, "log10 cond after " .. k .. " factors") end
  -- rescaling every factor and rotating at both ends leave it
  local c, s = math.cos(0.7), math.sin(0.7)
  local rot = bn.tensor({ { c, -s }, { s, c } })
  local mixed = { rot }
  for k = 1, 10 do mixed[k + 1] = d * (k * 3.5) end
  mixed[12] = rot:t():contiguous()
  check.near(S.product_conds(mixed)[12].log10_cond, 30, 1e-3, "rotations and scalings leave the condition number")
end

function T.product_conds_edge_cases()
  local r = S.product_conds({ bn.tensor({ { 1, 0 }, { 0, 0 } }), bn.eye(2) })
  check.eq(r[1].cond, math.huge, "a singular factor: cond inf")
  check.eq(r[2].cond, math.huge, "and it stays singular")
  local n = S.product_conds({ bn.tensor({ { 1, 0 / 0 }, { 0, 1 } }) })
  check.truthy(n[1].cond ~= n[1].cond, "NaN entries give NaN")
  check.raises(function() S.product_conds({ bn.eye(3), bn.eye(2) }) end, "columns")
  check.raises(function() S.product_conds({ bn.eye(3), bn.randn(2, 3) }) end, "fewer than the product's rank")
  check.raises(function() S.product_conds({}) end, "non-empty")
end

function T.log10_density_integrates_to_one()
  for _, k in ipairs{ 1, 3 } do
    local _, xmax = bn.linalg.fuss_catalan_support(k)
    local hi, lo, n, sum = math.log(xmax, 10), -14, 4000, 0
    for i = 1, n do sum = sum + S.log10_fc_density(lo + (i - 0.5) * (hi - lo) / n, k) * (hi - lo) / n end
    check.near(sum, 1, 0.01, "density of log10 x integrates to 1 (k = " .. k .. ")")
  end
end

function T.tiny_run_writes_figures_csv_and_summary()
  local dir, text = X.run_tiny("random_matrices.lua")
  check.contains(text, "figures and numbers in", "closing line")
  check.contains(text, "KS distance", "human summary line")
  for _, f in ipairs{ "spectra.png", "condition_number.png", "network.png" } do X.png(dir .. "/" .. f) end
  X.csv(dir .. "/condition_number.csv", { "series", "x", "y" })
  X.csv(dir .. "/network.csv", { "series", "x", "y" })
  X.csv(dir .. "/network_layers.csv", { "layer", "path", "rows", "cols", "log10_cond", "gaussian_log10_cond_mean", "gaussian_log10_cond_std" })
  for i = 1, 3 do X.csv(dir .. "/spectra.panel" .. i .. ".csv") end
  local m = X.csv(dir .. "/moments.csv", { "factors", "N", "samples", "mean_sv2", "theory_mean", "mean_sv4", "theory_sv4", "ks_distance" })
  check.eq(#m, 3, "M = 1..3 at --scale tiny")
  for k, r in ipairs(m) do
    check.eq(r.factors, k)
    check.eq(r.samples, 2 * 20, "2 draws of 20 singular values")
    check.truthy(r.mean_sv2 > 0.3 and r.mean_sv2 < 3, "mean squared singular value near 1")
    check.eq(r.theory_sv4, k + 1, "Fuss-Catalan second moment")
    check.truthy(r.ks_distance > 0 and r.ks_distance < 0.5, "KS distance in (0, 0.5)")
  end
  local c = X.csv(dir .. "/conditions.csv", { "N", "factors", "draw", "cond", "cond_rescaled", "cond_float32_svd" })
  check.eq(#c, 2 * 2 * 3, "sizes {5, 10} x 2 draws x 3 factors")
  for _, r in ipairs(c) do
    check.truthy(r.cond >= 1 and r.cond < math.huge, "cond >= 1 and finite")
    check.near(r.cond_rescaled, r.cond, 1e-3 * r.cond, "rescaling the factors leaves cond")
    check.near(r.cond_float32_svd, r.cond, 1e-2 * r.cond, "float32 SVD agrees while cond is small")
  end
  local n = X.csv(dir .. "/network_layers.csv")
  check.eq(#n, 6, "ResNet-8: six main-path convs after the stem")
  check.truthy(n[#n].log10_cond > n[1].log10_cond, "the product's condition number grows")
  local s = X.summary(dir, { "ks_max", "rescale_max_rel_diff", "cond_N5", "cond_N10", "network_log10_cond_last", "spectrum_widens" })
  check.truthy(s.rescale_max_rel_diff < 1e-3, "rescaling changes nothing")
  check.eq(#s.cond_N10, 3)
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("random_matrices.lua")
end

return T
