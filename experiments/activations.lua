-- E4 — Activations vs depth at initialization (../shared/paper.md).
-- For the BN and no-BN ResNets at initialization, on one batch, every
-- residual block's per-channel mean and std; plots the mean over channels of
-- |mean| and of std against depth (log y, spread across channels as a band).
-- Expected: no BN grows near-exponentially with depth; BN stays flat.
local bn = require "bnlab"
local E = bn.experiment

local o = E.start{
  name = "activations",
  description = "E4: channel means and stds against depth, BN vs no BN, at initialization.",
  scales = { quick = { depth = 56 }, paper = { depth = 110 }, tiny = { depth = 8, batch = 16 } },
}
local train = E.data(o)
local x = E.batch(train, o.batch, o.seed)

local series, rows, summary = {}, {}, { depth = o.depth, batch = o.batch, seed = o.seed }
for _, norm in ipairs(o.norm) do
  local net = E.resnet(o, norm)
  -- Residual block outputs: the signal that travels up the network.
  local a = bn.probe.activations(net, x, { types = "BasicBlock", mode = "train" })
  local s, label = a.summary, E.label(norm)
  series[#series + 1] = { x = a.depths, y = s.std_mean, band = s.std_spread, label = label .. ": channel std" }
  series[#series + 1] = { x = a.depths, y = s.abs_mean, band = s.abs_mean_spread, label = label .. ": |channel mean|", style = "--" }
  for i, name in ipairs(a.names) do
    rows[#rows + 1] = { norm, name, a.depths[i], s.abs_mean[i], s.abs_mean_spread[i], s.std_mean[i], s.std_spread[i] }
  end
  local first, last = s.std_mean[1], s.std_mean[#a.names]
  summary[norm] = { first_layer_std = first, last_layer_std = last, growth = last / first,
                    layers = #a.names, last_layer = a.names[#a.names] }
end
E.csv(o, "layers.csv", { "norm", "layer", "depth", "abs_mean", "abs_mean_spread", "std_mean", "std_spread" }, rows)
bn.plot.lines{ series = series, logy = true, file = E.path(o, "activations.png"), data = true,
  title = ("Activations at initialization, ResNet-%d"):format(o.depth),
  xlabel = "depth (weight layer at the block output)", ylabel = "mean over channels (±std across channels)" }
summary.claim = "without BN channel statistics grow with depth; with BN they stay flat"
if summary.none and summary.bn then
  summary.holds = summary.none.growth > 10 * summary.bn.growth
  E.finish(o, summary, ("ResNet-%d at init: channel std grows %.3gx from first to last block without BN, %.3gx with BN"):format(
    o.depth, summary.none.growth, summary.bn.growth))
else
  E.finish(o, summary)
end
