-- E4 — Activations vs depth at initialization (../shared/paper.md).
-- For the BN and no-BN ResNets at initialization, on one batch, every
-- layer's per-channel mean and std; plots the mean over channels of |mean|
-- and of std against depth (log y, spread across channels as a band).
-- Expected: no BN grows near-exponentially with depth; BN stays flat.
local bn = require "bnlab"
local json = require "bnlab.json"

local o = bn.args({
  scale = { "quick", "quick (ResNet-56) | paper (ResNet-110)" },
  depth = { 0, "ResNet depth 6n+2 (0: from --scale)" },
  batch = { 128, "batch size" },
  data = { "", "data directory (default: Debian's Fashion-MNIST / BNLAB_DATA)" },
  dataset = { "fashion_mnist", "fashion_mnist | mnist | cifar10" },
  seed = { 1, "random seed (weights and the batch)" },
  out = { "results/activations", "output directory" },
}, "E4: channel means and stds against depth, BN vs no BN, at initialization.")

local depth = o.depth > 0 and o.depth or (o.scale == "paper" and 110 or 56)
os.execute("mkdir -p '" .. o.out .. "'")
bn.plot.provenance{ seed = o.seed }
local train = bn.data[o.dataset]{ split = "train", dir = o.data ~= "" and o.data or nil, normalize = true }
local x
for bx in train:batches{ size = o.batch, shuffle = true, seed = o.seed } do x = bx break end

local series, summary, csv = {}, { depth = depth, batch = o.batch, seed = o.seed }, { "norm,layer,depth,abs_mean,abs_mean_spread,std_mean,std_spread" }
for _, norm in ipairs{ "bn", "none" } do
  bn.manual_seed(o.seed)
  local net = bn.models.resnet{ depth = depth, norm = norm, in_channels = x:size(2), classes = train.classes, seed = o.seed }
  -- Residual block outputs: the signal that travels up the network.
  local a = bn.probe.activations(net, x, { types = "BasicBlock", mode = "train" })
  local s = a.summary
  local label = norm == "bn" and "BN" or "no BN"
  series[#series + 1] = { x = a.depths, y = s.std_mean, band = s.std_spread, label = label .. ": channel std" }
  series[#series + 1] = { x = a.depths, y = s.abs_mean, band = s.abs_mean_spread, label = label .. ": |channel mean|", style = "--" }
  for i, name in ipairs(a.names) do
    csv[#csv + 1] = ("%s,%s,%d,%.9g,%.9g,%.9g,%.9g"):format(norm, name, a.depths[i], s.abs_mean[i],
      s.abs_mean_spread[i], s.std_mean[i], s.std_spread[i])
  end
  local first, last = s.std_mean[1], s.std_mean[#a.names]
  summary[norm] = { first_layer_std = first, last_layer_std = last, growth = last / first,
                    layers = #a.names, last_layer = a.names[#a.names] }
end
bn.write_file(o.out .. "/activations.csv", table.concat(csv, "\n") .. "\n")
bn.plot.lines{ series = series, logy = true, file = o.out .. "/activations.png", data = true,
  title = ("Activations at initialization, ResNet-%d"):format(depth),
  xlabel = "depth (weight layer at the block output)", ylabel = "mean over channels (±std across channels)" }
summary.claim = "without BN channel statistics grow with depth; with BN they stay flat"
summary.holds = summary.none.growth > 10 * summary.bn.growth
json.write(o.out .. "/summary.json", summary)
print(("ResNet-%d at init: channel std grows %.3gx from first to last layer without BN, %.3gx with BN — %s"):format(
  depth, summary.none.growth, summary.bn.growth, summary.holds and "as the paper says" or "NOT as the paper says"))
print("figures and numbers in " .. o.out .. "/")
