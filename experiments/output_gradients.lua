-- E5 — Output gradients at initialization (../shared/paper.md).
-- dL/dlogits for every example of a batch, BN vs no BN (heatmaps, rows =
-- examples, columns = classes, diverging map centred at 0), and the
-- histogram of one mid-network conv kernel's gradient (log counts).
-- Expected without BN: one class column positive for almost every example,
-- per-example gradients agreeing, and heavy-tailed kernel gradients ~100x larger.
local bn = require "bnlab"
local E = bn.experiment

local o = E.start{
  name = "output_gradients",
  description = "E5: per-example output gradients and a conv kernel's gradient histogram, BN vs no BN, at initialization.",
  options = { batch = { 64, "batch size (heatmap rows)" }, norm = { { "none", "bn" }, "normalizations compared: bn, none, last" } },
  scales = { quick = { depth = 56 }, paper = { depth = 110 }, tiny = { depth = 8, batch = 16 } },
}
local train = E.data(o)
local x, y = E.batch(train, o.batch, o.seed)

local heatmaps, hists, rows, summary = {}, {}, {}, { depth = o.depth, batch = o.batch, seed = o.seed }
for _, norm in ipairs(o.norm) do
  local net = E.resnet(o, norm)
  local label = norm == "bn" and "with BN" or E.label(norm)
  local g = bn.probe.output_grad(net, x, y)
  local layers = bn.probe.weight_layers(net)
  local mid = layers[#layers // 2] .. ".weight"
  local p = bn.probe.param_grads(net, x, y, { params = mid, hist = 0 })
  heatmaps[#heatmaps + 1] = { kind = "heatmap", m = g.grad, title = "dL/dlogits, " .. label, xlabel = "class",
                              ylabel = "example", cmap = "coolwarm", center = 0 }
  hists[#hists + 1] = { values = p.grads[mid], label = label }
  summary[norm] = { agreement = g.agreement, dominant_class = g.dominant_class, dominant_fraction = g.dominant_fraction,
                    loss = g.loss, kernel = mid, kernel_grad_absmax = p.stats[mid].absmax, kernel_grad_std = p.stats[mid].std }
  rows[#rows + 1] = { norm, g.loss, g.agreement, g.dominant_class, g.dominant_fraction, mid, p.stats[mid].std, p.stats[mid].absmax }
  bn.save(g.grad, E.path(o, "output_grad_" .. norm .. ".npy"))
end
E.csv(o, "gradient_stats.csv", { "norm", "loss", "agreement", "dominant_class", "dominant_fraction", "kernel",
  "kernel_grad_std", "kernel_grad_absmax" }, rows)
bn.plot.figure{ panels = heatmaps, cols = #heatmaps, title = ("Output gradients at initialization, ResNet-%d"):format(o.depth),
                file = E.path(o, "output_gradients.png"), data = true }
bn.plot.hist{ series = hists, bins = 60, log = true, file = E.path(o, "kernel_gradients.png"), data = true,
              title = "Gradient of " .. rows[1][6] .. " at initialization", xlabel = "gradient value", ylabel = "count" }
summary.claim = "without BN the per-example output gradients agree (one dominant class) and kernel gradients are far larger"
local msg
if summary.none and summary.bn then
  summary.kernel_grad_ratio = summary.none.kernel_grad_std / summary.bn.kernel_grad_std
  summary.holds = summary.none.agreement > summary.bn.agreement and summary.kernel_grad_ratio > 10
  msg = ("ResNet-%d at init: output-gradient agreement %.2f without BN vs %.2f with BN; class %d dominates %.0f%% of rows without BN; mid kernel gradient %.3gx larger without BN"):format(
    o.depth, summary.none.agreement, summary.bn.agreement, summary.none.dominant_class, 100 * summary.none.dominant_fraction,
    summary.kernel_grad_ratio)
end
E.finish(o, summary, msg)
