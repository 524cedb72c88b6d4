-- Builds a ResNet, prints its tree, runs one forward pass on random input
-- and prints the standard deviation of each stage's output: without BN the
-- activations grow with depth (the paper's Figure on activations vs depth).
--   ./bnlab examples/resnet_summary.lua
--   ./bnlab examples/resnet_summary.lua --depth 110 --norm bn
local bn = require "bnlab"

local opts = bn.args({
  depth = { 56, "ResNet depth (6n + 2)" },
  norm = { "none", "bn, none or last" },
  batch = { 16, "examples in the random batch" },
  seed = { 0, "seed for the weights and the input" },
}, "Print a ResNet and the spread of its activations at initialization.")

local net = bn.models.resnet{ depth = opts.depth, norm = opts.norm, seed = opts.seed }
local x = bn.randn(opts.batch, 3, 32, 32)

-- Every module's output is named with its path; a pattern hook sees them.
local stds, order = {}, {}
local id = bn.hooks_add("*", function(name, t)
  if name == "relu" or name:match("^stage%d$") or name == "last_bn" or name == "fc" then
    order[#order + 1] = name
    stds[name] = t:std():item()
  end
end)
bn.no_grad(function() return net(x) end)
bn.hooks_remove(id)

print(net)
print()
print(("per-stage output std (batch of %d random 32x32 images, train mode):"):format(opts.batch))
print(("  %-8s %12s"):format("input", ("%.4g"):format(x:std():item())))
for _, name in ipairs(order) do
  print(("  %-8s %12s"):format(name == "relu" and "stem" or name, ("%.4g"):format(stds[name])))
end
