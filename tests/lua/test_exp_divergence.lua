-- experiments/divergence.lua (E2) at tiny size, and the library behind it
-- (bnlab.experiment.divergence: scan, plot, csv), which E3, E7 and E10 share.
local check = require "check"
local X = require "experiment_check"
local bn = require "bnlab"
local D = require "bnlab.experiment.divergence"
local T = {}

local function tiny_setup()
  local train = bn.data.blobs{ n = 96, classes = 10, shape = { 1, 28, 28 }, seed = 3, separation = 0.5 }
  local o = { batch = 16, seed = 2, lr = 0.05, depth = 8, out = X.temp_dir() }
  local function net() return bn.models.resnet{ depth = 8, norm = "none", in_channels = 1, classes = 10, seed = 4 } end
  return o, train, net
end

function T.alpha_grid()
  local a = D.alphas(2)
  check.eq(#a, 13, "half decades 1e-5 ... 1e1")
  check.near(a[1], 1e-5, 1e-12)
  check.near(a[13], 10, 1e-9)
  check.eq(#D.alphas(4), 25, "quarter decades")
end

function T.scan_trains_exactly_like_plain_sgd()
  -- The probes restore the parameters exactly: the scanned trajectory equals plain SGD on the same batches.
  local o, train, make = tiny_setup()
  local net = make()
  local r = D.scan(o, net, train, { steps = 3, alphas = { 1e-3, 1e-1, 10 }, progress = false })
  check.eq(#r.rel, 3, "one row per update")
  check.eq(#r.rel[1], 3, "one relative loss per alpha")
  check.eq(#r.train_loss, 3)
  local ref = make()
  local opt = bn.optim.SGD(ref, { lr = o.lr, momentum = 0.9, weight_decay = 1e-4 })
  ref:train()
  local t = 0
  for x, y in train:batches{ size = 16, shuffle = true, seed = o.seed, epoch = 1, drop_last = true } do
    t = t + 1
    if t > 3 then break end
    opt:zero_grad()
    local loss = bn.cross_entropy(ref(x), y)
    check.eq(loss:item(), r.train_loss[t], "training loss of update " .. t)
    loss:backward()
    opt:step()
  end
  local a, b = net:named_parameters(), ref:named_parameters()
  for i, e in ipairs(a) do check.truthy(bn.equal(e[2], b[i][2]), "parameter " .. e[1] .. " bit for bit") end
  X.cleanup()
end

function T.scan_verdicts_follow_the_threshold()
  local o, train, make = tiny_setup()
  local alphas = { 1e-4, 1e-2, 1 }
  local all = D.scan(o, make(), train, { steps = 2, alphas = alphas, threshold = 0.5, progress = false })
  check.eq(all.max_stable_alpha, nil, "every ratio exceeds 0.5: nothing stable")
  check.eq(all.first_diverging_alpha, 1e-4)
  check.eq(all.diverged_fraction[2], 1.0)
  local none = D.scan(o, make(), train, { steps = 2, alphas = alphas, threshold = 1e30, progress = false })
  check.eq(none.max_stable_alpha, 1, "nothing above 1e30: the largest alpha is stable")
  check.eq(none.first_diverging_alpha, nil)
  check.eq(none.training_diverged, false)
  check.raises(function() D.scan(o, make(), train, { stpes = 2 }) end, "unknown option 'stpes'")
  X.cleanup()
end

function T.scan_stops_when_training_diverges()
  local o, train, make = tiny_setup()
  local r = D.scan(o, make(), train, { steps = 6, alphas = { 1e-3 }, lr = 1e6, progress = false })
  check.truthy(r.training_diverged, "lr 1e6 sends the training loss to NaN/Inf")
  check.truthy(r.diverged_at <= 6 and #r.rel == r.diverged_at - 1, "probed every update before it")
  local ok = D.plot(o, { a = r }, "t")
  check.truthy(ok, "a stopped scan still plots")
  X.cleanup()
end

function T.tiny_run_writes_figures_csv_and_summary()
  local dir, text = X.run_tiny("divergence.lua")
  check.contains(text, "figures and numbers in", "closing line")
  check.contains(text, "divergence_heatmap.png", "prints where its figures are")
  X.png(dir .. "/divergence_heatmap.png")
  X.png(dir .. "/divergence_lines.png")
  local rows = X.csv(dir .. "/relative_loss.csv", { "norm", "step", "alpha", "relative_loss", "diverged" })
  check.eq(#rows, 2 * 3 * 7, "2 normalizations x 3 updates x 7 step sizes")
  for _, r in ipairs(rows) do
    check.truthy(r.diverged == 0 or r.diverged == 1, "diverged is 0/1")
    check.truthy(r.alpha >= 1e-5 and r.alpha <= 10, "alpha on the grid")
    check.truthy(r.diverged == 1 or (r.relative_loss > 0 and r.relative_loss <= 1e3), "not diverged: ratio in (0, 1e3]")
  end
  local s = X.summary(dir, { "bn.max_stable_alpha", "none.diverged_fraction", "bn.median_relative_loss", "depth", "steps" })
  check.eq(s.depth, 8)
  check.eq(#s.bn.diverged_fraction, 7)
  X.cleanup()
end

function T.grid_range_options()
  local dir = X.run_tiny("divergence.lua", { "--alpha-min", "1e-9", "--alpha-max", "1e-3" })
  local s = X.summary(dir)
  check.eq(#s.alphas, 7, "one step size per decade 1e-9 ... 1e-3 at tiny scale")
  check.near(s.alphas[1], 1e-9, 1e-18)
  check.near(s.alphas[7], 1e-3, 1e-12)
  local code, text = X.run("divergence.lua", { "--scale", "tiny", "--alpha-min", "0", "--out", X.temp_dir() })
  check.eq(code, 2, "a grid that does not start above 0 is a usage error")
  check.contains(text, "--alpha-min")
  X.cleanup()
end

function T.help_and_bad_option()
  X.help_and_usage("divergence.lua")
end

return T
