-- Builds a ResNet, prints its tree, runs one forward pass on random input
-- and prints the standard deviation of each stage's output: without BN the
-- activations grow with depth (the paper's activations-vs-depth finding).
--   ./bnlab examples/resnet_summary.lua
--   ./bnlab examples/resnet_summary.lua --depth 110 --norm bn
--   ./bnlab examples/resnet_summary.lua --depth 56 --batch 128 --time 3   (the timings in docs/nn.md)
local bn = require "bnlab"

local opts = bn.args({
  depth = { 56, "ResNet depth (6n + 2)" },
  norm = { "none", "bn, none or last" },
  batch = { 16, "examples in the random batch" },
  seed = { 0, "seed for the weights and the input" },
  time = { 0, "if > 0, also time this many forward + backward passes (after a warm-up)" },
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

if opts.time > 0 then
  local function wall()
    local p = io.popen("date +%s.%N")
    local t = tonumber(p:read("l"))
    p:close()
    return t
  end
  local labels = {}
  for i = 1, opts.batch do labels[i] = (i - 1) % 10 + 1 end
  bn.cross_entropy(net(x), labels):backward() -- warm-up
  net:zero_grad()
  bn.mem_reset_peak()
  local fwd, bwd, best = 0, 0, math.huge
  for _ = 1, opts.time do
    local t0 = wall()
    local loss = bn.cross_entropy(net(x), labels)
    local t1 = wall()
    loss:backward()
    local t2 = wall()
    fwd, bwd, best = fwd + (t1 - t0), bwd + (t2 - t1), math.min(best, t2 - t0)
    net:zero_grad()
  end
  print(("\nresnet%d %s, batch [%d x 3 x 32 x 32], %d threads, %d runs: forward %.3f s, backward %.3f s, "
    .. "total %.3f s (best %.3f s); peak %.0f MB"):format(opts.depth, opts.norm, opts.batch, bn.num_threads(),
    opts.time, fwd / opts.time, bwd / opts.time, (fwd + bwd) / opts.time, best, bn.mem_peak() / 2^20))
end
