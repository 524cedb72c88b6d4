-- A tour of bn.probe: a ResNet with and without batch normalization, at
-- initialization, on one Fashion-MNIST batch (docs/probe.md).
--   ./bnlab examples/probe_tour.lua                       ResNet-20, batch 128
--   ./bnlab examples/probe_tour.lua --depth 56
--   ./bnlab examples/probe_tour.lua --depth 56 --time     also time every probe (docs/probe.md#costs)
-- Prints, for both networks: the channel std of every weight layer's output
-- against depth (E4), how much the examples' output gradients agree (E5),
-- the coherence of a middle conv's weight gradient (E6) and the relative
-- loss of a gradient step at a few step sizes (E2).
local bn = require "bnlab"

local opts = bn.args({
  depth = { 20, "ResNet depth (6n + 2)" },
  batch = { 128, "examples in the batch" },
  seed = { 1, "seed of the weights" },
  data = { "", "directory of the Fashion-MNIST files ('': the Debian package or $BNLAB_DATA)" },
  time = { false, "also time each probe (and one plain forward + backward) on this network" },
}, "Probe a ResNet with and without BN at initialization.")

-- Fashion-MNIST's training mean and std (docs/data.md), so only the test
-- file has to be read.
local test = bn.data.fashion_mnist { split = "test", dir = opts.data ~= "" and opts.data or nil,
  normalize = { mean = { 0.2860 }, std = { 0.3530 } } }
local x, y
for bx, by in test:batches { size = opts.batch, shuffle = false } do x, y = bx, by break end

local alphas = { 1e-4, 1e-3, 1e-2, 1e-1, 1 }
local nets, acts, grads, rel, coh = {}, {}, {}, {}, {}
for _, norm in ipairs({ "bn", "none" }) do
  local net = bn.models.resnet { depth = opts.depth, norm = norm, in_channels = 1, seed = opts.seed }
  nets[norm] = net
  acts[norm] = bn.probe.activations(net, x, { types = { "Conv2d", "Linear" } })
  grads[norm] = bn.probe.output_grad(net, x, y)
  local layers = bn.probe.weight_layers(net)
  coh[norm] = bn.probe.grad_coherence(net, x, y, layers[#layers // 2])
  rel[norm] = bn.probe.relative_loss(net, x, y, alphas)
end

print(("ResNet-%d at initialization, a batch of %d Fashion-MNIST test images (train mode)\n"):format(opts.depth, opts.batch))
print("E4  channel std of each weight layer's output (mean over channels)")
print(("  %5s  %-22s %12s %12s"):format("depth", "layer", "with BN", "without"))
local a, b = acts.bn, acts.none
local step = math.max(1, #a.names // 20)
for i = 1, #a.names do
  if i % step == 1 or step == 1 or i == #a.names then
    print(("  %5d  %-22s %12.4g %12.4g"):format(a.depths[i], a.names[i], a.summary.std_mean[i], b.summary.std_mean[i]))
  end
end
local first, last = b.summary.std_mean[1], b.summary.std_mean[#b.names - 1]
print(("  without BN the std grows %.3g-fold from the stem to the last conv\n"):format(last / first))

print("E5  output gradients dL/dlogits (per example: softmax - onehot)")
for _, norm in ipairs({ "bn", "none" }) do
  local g = grads[norm]
  print(("  %-8s loss %8.4g   agreement |Σ_b g_b| / Σ_b |g_b| = %.3f   class %d is the top entry of %3.0f%% of rows"):format(
    norm == "bn" and "with BN" or "without", g.loss, g.agreement, g.dominant_class, 100 * g.dominant_fraction))
end
print()

print(("E6  coherence of %s's weight gradient, |Σd| / Σ|d|"):format(coh.bn.layer))
for _, norm in ipairs({ "bn", "none" }) do
  print(("  %-8s aggregate %.4f   mean over entries %.4f"):format(norm == "bn" and "with BN" or "without",
    coh[norm].ratio, coh[norm].mean_entry_ratio))
end
print()

print("E2  relative loss loss(θ - αg) / loss(θ) on the same batch")
local head = { ("  %-8s"):format("α") }
for _, al in ipairs(alphas) do head[#head + 1] = ("%10.0e"):format(al) end
print(table.concat(head))
for _, norm in ipairs({ "bn", "none" }) do
  local row = { ("  %-8s"):format(norm == "bn" and "with BN" or "without") }
  for k = 1, #alphas do
    local v = rel[norm].ratios[k]
    row[#row + 1] = v ~= v and ("%10s"):format("nan") or ("%10.3g"):format(v)
  end
  print(table.concat(row))
end

if opts.time then
  local net = nets.none
  local function timed(label, fn)
    fn() -- warm-up
    local t0 = bn.clock()
    fn()
    print(("  %-52s %7.2f s"):format(label, bn.clock() - t0))
  end
  for _, norm in ipairs({ "bn", "none" }) do
    net = nets[norm]
    local mid = bn.probe.weight_layers(net)[#bn.probe.weight_layers(net) // 2]
    print(("\ncosts on ResNet-%d (%s), batch %d, %d threads"):format(opts.depth, norm, opts.batch, bn.num_threads()))
    timed("forward + backward (reference)", function()
      bn.cross_entropy(net(x), y):backward()
      net:zero_grad()
    end)
    timed("activations (default layers)", function() bn.probe.activations(net, x) end)
    timed("activations (default layers, hist = 50)", function() bn.probe.activations(net, x, { hist = 50 }) end)
    timed("output_grad", function() bn.probe.output_grad(net, x, y) end)
    timed("param_grads (hist = 50)", function() bn.probe.param_grads(net, x, y) end)
    timed("grad_coherence (" .. mid .. ")", function() bn.probe.grad_coherence(net, x, y, mid) end)
    timed("relative_loss (13 step sizes)", function() bn.probe.relative_loss(net, x, y) end)
    timed("update_path (11 fractions, 3 layers)", function()
      local wl = bn.probe.weight_layers(net)
      bn.probe.update_path(net, x, y, 1e-2, nil, { wl[4], wl[#wl // 2], wl[#wl - 1] })
    end)
    timed("hessian_top_eig (5 iterations)", function() bn.probe.hessian_top_eig(net, x, y, 5) end)
    timed("gradient_noise (16 examples, sizes {4, 16}, 4 draws)", function()
      bn.probe.gradient_noise(net, { x, y }, { 4, 16 }, { examples = 16, draws = 4 })
    end)
  end
end
