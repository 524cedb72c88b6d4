-- bn.probe: measurements of a network in the state it is in, for the
-- paper's experiments (docs/probe.md). One file per idea:
--
--   activations.lua     activations(net, x, opts)             E4: channel stats per layer
--   watch.lua           watch(net, opts)                       the same during bn.train.fit
--   output_grad.lua     output_grad(net, x, y, opts)           E5: dL/dlogits per example
--   param_grads.lua     param_grads(net, x, y, opts)           E5: gradients + histograms
--   coherence.lua       grad_coherence(net, x, y, layer, opts) E6: |Σd| / Σ|d|, M[i, o]
--   relative_loss.lua   relative_loss(net, x, y, alphas, opts) E2: loss(θ - αg) / loss(θ)
--   update_path.lua     update_path(net, x, y, delta, ...)     E3: moments along θ + fΔ
--   gradient_noise.lua  gradient_noise(net, data, sizes, opts) E9: C and C/|B|
--   hessian.lua         hessian_top_eig(net, x, y, iters)      sharpness
--
-- Every probe leaves the model exactly as it found it (parameters, BN
-- running statistics, .grad, train/eval flags, the random generator), and
-- none patches a model: layers are observed through pattern hooks on the
-- names modules give their outputs.
local bn = require "bnlab"
local U = require "bnlab.probe.util"

local probe = {}

for _, file in ipairs({ "activations", "watch", "output_grad", "param_grads", "coherence", "relative_loss",
                        "update_path", "gradient_noise", "hessian" }) do
  for name, fn in pairs(require("bnlab.probe." .. file)) do
    if type(fn) == "function" and not probe[name] then probe[name] = fn end
  end
end
-- Helpers that are not probes themselves.
probe.check_range, probe.numbers, probe.aligned, probe.record = nil, nil, nil, nil

--- The paths of the weight layers (Conv2d, Linear) in forward order for the
-- bn.models networks: "layer 8" of the paper is weight_layers(net)[8].
function probe.weight_layers(net)
  U.check_net(net, "bn.probe.weight_layers")
  return U.paths_of(net, U.WEIGHT_TYPES)
end

--- Per-channel mean, var (population), std and max |x| of x [N x C x ...]:
-- a table of [C] tensors. One pass in C, sums in double.
function probe.channel_stats(x)
  if not bn.is_tensor(x) then U.fail("bn.probe.channel_stats", "argument #1 (x) expected a tensor, got " .. U.show(x), 2) end
  return U.channel_stats(x)
end

--- Histogram of every value of x: {counts = [bins], edges = [bins + 1], lo, hi}
-- over range {lo, hi} or x's finite min and max; values outside and NaN are
-- not counted.
function probe.histogram(x, bins, range)
  if not bn.is_tensor(x) then U.fail("bn.probe.histogram", "argument #1 (x) expected a tensor, got " .. U.show(x), 2) end
  return U.histogram(x, bins or 50, range)
end

--- The glob matching used by every `layers` option, as a Lua pattern.
probe.glob_pattern = U.glob_pattern

return probe
