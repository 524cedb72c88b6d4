-- bn.probe: every probe on cases with known answers, and the promise that
-- probing never changes the model (parameters, running statistics, .grad,
-- modes, the random stream: bit for bit).
local bn = require "bnlab"
local check = require "check"
local nn = bn.nn

local T = {}

-- ---- helpers ----------------------------------------------------------------------

local function tiny_resnet(norm, seed)
  return bn.models.resnet { depth = 8, norm = norm or "bn", in_channels = 1, width = 4, seed = seed or 1 }
end

local function batch(n, seed)
  bn.manual_seed(seed or 5)
  local x = bn.randn(n, 1, 8, 8)
  local y = {}
  for i = 1, n do y[i] = (i * 7) % 10 + 1 end
  return x, y
end

-- Bit-exact copies of every parameter, buffer and .grad (nil kept as false).
local function snapshot(net)
  local s = {}
  for _, list in ipairs({ net:named_parameters(), net:named_buffers() }) do
    for _, e in ipairs(list) do
      s[#s + 1] = { e[1], e[2], e[2]:detach():clone():reshape(-1):totable(),
        e[2].grad and e[2].grad:clone():reshape(-1):totable() or false }
    end
  end
  local flags = {}
  for i, m in ipairs(net:modules()) do flags[i] = m.training end
  return { tensors = s, flags = flags }
end

local function same_bits(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    local x, y = a[i], b[i]
    if x ~= y and not (x ~= x and y ~= y) then return false end
    if x == 0 and y == 0 and 1 / x ~= 1 / y then return false end -- +0 vs -0
  end
  return true
end

local function check_unchanged(net, snap, what)
  for _, e in ipairs(snap.tensors) do
    local now = e[2]:detach():reshape(-1):totable()
    check.truthy(same_bits(now, e[3]), (what or "") .. ": " .. e[1] .. " changed")
    local g = e[2].grad
    if e[4] then
      check.truthy(g ~= nil and same_bits(g:reshape(-1):totable(), e[4]), (what or "") .. ": " .. e[1] .. ".grad changed")
    else
      check.truthy(g == nil, (what or "") .. ": " .. e[1] .. ".grad appeared")
    end
  end
  for i, m in ipairs(net:modules()) do check.eq(m.training, snap.flags[i], "module " .. i .. " mode") end
end

-- Hooks left behind would fire here.
local function check_no_hooks()
  local fired = false
  local id = bn.hooks_add("zz_probe_canary", function() fired = true end)
  bn.hooks_remove(id)
  local x = bn.zeros(1):name("anything")
  check.eq(x:name(), "anything")
  return not fired
end

local function softmax_rows(logits)
  return bn.softmax(logits, 2)
end

-- One-hot rows of 1-based labels.
local function onehot(y, k)
  local t = bn.zeros(#y, k)
  for i, c in ipairs(y) do t[i][c] = 1 end
  return t
end

-- ---- activations --------------------------------------------------------------------

function T.activations_bn_outputs_are_normalized_in_train_mode()
  local net = tiny_resnet("bn")
  local x = batch(16)
  local snap = snapshot(net)
  local s = bn.probe.activations(net, x)
  check_unchanged(net, snap, "activations (train mode updates running stats)")
  local nbn = 0
  for i, name in ipairs(s.names) do
    local rec = s.layers[i]
    if name:match("bn%d$") then
      nbn = nbn + 1
      for c, m in ipairs(rec.mean:totable()) do
        check.near(m, 0, 1e-4, name .. " channel " .. c .. " mean")
      end
      for c, sd in ipairs(rec.std:totable()) do
        check.near(sd, 1, 1e-3, name .. " channel " .. c .. " std")
      end
    end
  end
  check.eq(nbn, 7, "BN layers seen (bn1 + 2 per block)")
  -- Default selection, forward order, depths = index of the weight layer.
  check.eq(s.names[1], "conv1")
  check.eq(s.names[2], "bn1")
  check.eq(s.names[#s.names], "fc")
  check.eq(s.depths[1], 1)
  check.eq(s.depths[2], 1)
  check.eq(s.depths[#s.depths], #bn.probe.weight_layers(net))
  check.eq(s.by_name["stage1.block1"].depth, 3)
  -- [layers x max channels], NaN-padded.
  check.eq(s.mean:shape(), { #s.names, 16 })
  check.eq(s.channels[1], 4)
  local row = s.std[1]:totable()
  check.truthy(row[4] == row[4] and row[5] ~= row[5], "padding is NaN")
  check.eq(s.summary.std_mean:numel(), #s.names)
  check.eq(s.mode, "train")
  check.truthy(check_no_hooks(), "no hook left")
end

function T.activations_stats_match_direct_computation()
  local net = tiny_resnet("none")
  local x = batch(6)
  net:eval()
  local s = bn.probe.activations(net, x, { layers = "stage2.block1.conv1", hist = 8 })
  check.eq(s.names, { "stage2.block1.conv1" })
  -- The same tensor by hand, through a hook.
  local got
  local id = bn.hooks_add("stage2.block1.conv1", function(_, t) got = t end)
  bn.no_grad(function() net(x) end)
  bn.hooks_remove(id)
  local c = got:size(2)
  local flat = got:transpose(1, 2):reshape(c, -1)
  check.truthy(bn.allclose(s.layers[1].mean, flat:mean(2), 1e-5, 1e-6), "mean")
  check.truthy(bn.allclose(s.layers[1].var, flat:var(2, false, 0), 1e-4, 1e-6), "var")
  check.truthy(bn.allclose(s.layers[1].absmax, flat:abs():max(2), 0, 0), "absmax")
  local h = s.layers[1].hist
  check.near(h.counts:sum():item(), got:numel(), 0, "histogram counts every value")
  check.eq(h.edges:numel(), 9)
  check.near(h.lo, got:min():item(), 1e-7)
  check.near(h.hi, got:max():item(), 1e-7)
end

function T.activations_layer_selection_forms()
  local net = tiny_resnet("bn")
  local x = batch(4)
  local a = bn.probe.activations(net, x, { layers = "stage*.block*.conv2" })
  check.eq(a.names, { "stage1.block1.conv2", "stage2.block1.conv2", "stage3.block1.conv2" })
  check.eq(a.depths, { 3, 5, 7 })
  local b = bn.probe.activations(net, x, { layers = { "conv1", "fc" } })
  check.eq(b.names, { "conv1", "fc" })
  local c = bn.probe.activations(net, x, { layers = function(n) return n:match("relu1$") ~= nil end })
  check.eq(#c.names, 3)
  local all = bn.probe.activations(net, x, { layers = "*" })
  check.truthy(#all.names > #a.names + #b.names, "'*' sees every named output")
  check.raises(function() bn.probe.activations(net, x, { layers = 3 }) end, "option 'layers'")
  check.raises(function() bn.probe.activations(net, x, { mdoe = "train" }) end, "unknown option 'mdoe'")
  check.raises(function() bn.probe.activations(net, x, { mode = "test" }) end, "option 'mode'")
end

function T.activations_modes_and_restoration()
  local net = tiny_resnet("bn")
  local x = batch(8)
  net.stage2:eval() -- a mixed state must come back as it was
  local snap = snapshot(net)
  local e = bn.probe.activations(net, x, { mode = "eval", layers = "bn1" })
  check_unchanged(net, snap, "eval mode")
  -- At initialization the running stats are (0, 1): eval-mode BN ≈ identity.
  local conv = bn.probe.activations(net, x, { mode = "eval", layers = "conv1" })
  check.truthy(bn.allclose(e.layers[1].mean, conv.layers[1].mean, 1e-4, 1e-5), "eval BN at init is the identity")
  local t = bn.probe.activations(net, x, { mode = "train", layers = "bn1" })
  check_unchanged(net, snap, "train mode")
  check.near(t.layers[1].std:mean():item(), 1, 1e-3)
  -- A forward that fails leaves everything as it was and no hook behind.
  check.raises(function() bn.probe.activations(net, bn.randn(2, 3, 8, 8), { mode = "train" }) end, "conv2d")
  check_unchanged(net, snap, "after an error")
  check.truthy(check_no_hooks(), "no hook left after an error")
end

function T.activations_grow_with_depth_without_bn()
  local net = bn.models.resnet { depth = 20, norm = "none", in_channels = 1, width = 8, seed = 3 }
  local x = batch(8)
  local s = bn.probe.activations(net, x, { types = "BasicBlock" })
  check.eq(#s.names, 9)
  local std = s.summary.std_mean:totable()
  check.truthy(std[#std] > 2 * std[1], ("std grows with depth (%g -> %g)"):format(std[1], std[#std]))
  local b = bn.probe.activations(tiny_resnet("bn"), x, { types = "BasicBlock", layers = "stage*" })
  for _, v in ipairs(b.summary.std_mean:totable()) do check.truthy(v < 2, "BN blocks stay O(1)") end
end

-- ---- watch ---------------------------------------------------------------------------

function T.watch_records_training_forwards_every_n_steps()
  bn.manual_seed(3)
  local n = 40
  local ds = bn.data.dataset(bn.randn(n, 1, 8, 8), (function()
    local y = {}
    for i = 1, n do y[i] = i % 10 + 1 end
    return y
  end)(), { classes = 10 })
  local net = tiny_resnet("bn", 2)
  -- The stats of the very first training forward, predicted by activations
  -- (one batch = the whole set, unshuffled, at initialization, train mode).
  local first_batch
  for x in ds:batches { size = n, shuffle = false } do first_batch = x end
  local want = bn.probe.activations(net, first_batch, { types = "BasicBlock", mode = "train" })
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local w = bn.probe.watch(net, { every = 2, types = "BasicBlock", stats = { "mean", "std", "absmax" },
    log = dir .. "/acts.csv", chunk_rows = 60 })
  local opt = bn.optim.SGD(net, { lr = 0.01 })
  -- A probe run from on_step (after watch armed its hook for the next
  -- step) must not be taken for the next training forward.
  local probe_x = bn.randn(8, 1, 8, 8) * 100
  bn.train.fit { model = net, data = { train = ds, test = ds }, optimizer = opt, epochs = 5, batch_size = n,
    shuffle = false, quiet = true, on_step = function(info)
      w.on_step(info)
      bn.probe.param_grads(net, probe_x, { 1, 2, 3, 4, 5, 6, 7, 8 }, { hist = 0 })
    end }
  local files = w:close()
  local steps = {}
  for i, r in ipairs(w.records) do steps[i] = r.step end
  check.eq(steps, { 1, 3, 5 })
  local r1 = w.records[1].layers
  check.eq(#r1, 3)
  for i, rec in ipairs(r1) do
    check.eq(rec.name, want.names[i])
    check.truthy(bn.allclose(rec.mean, want.layers[i].mean, 1e-6, 1e-7), "step 1 mean = activations at init")
    check.truthy(bn.allclose(rec.std, want.layers[i].std, 1e-6, 1e-7), "step 1 std")
  end
  for _, r in ipairs(w.records) do
    for _, rec in ipairs(r.layers) do
      check.eq(rec.shape[1], n, "step " .. r.step .. ": the training batch, not the probe's")
    end
  end
  -- 3 records x (4 + 8 + 16) channels = 84 rows, in chunks of <= 60 rows
  -- (a record is never split): acts.csv holds steps 1, 3 (56), acts.2.csv step 5.
  check.eq(w.rows_written, 84)
  check.eq(#files, 2)
  local f = io.open(files[1]); local text = f:read("a"); f:close()
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  check.eq(lines[1], "step,layer,depth,channel,mean,std,absmax")
  check.eq(#lines, 1 + 56)
  check.contains(lines[2], "1,stage1.block1,3,1,")
  f = io.open(dir .. "/acts.2.csv"); text = f:read("a"); f:close()
  check.contains(text, "\n5,stage3.block1,7,16,")
  os.execute("rm -rf " .. dir)
  check.truthy(check_no_hooks(), "no hook left")
end

-- ---- output gradients --------------------------------------------------------------

function T.output_grad_is_softmax_minus_onehot()
  local net = tiny_resnet("bn")
  local x, y = batch(12)
  local snap = snapshot(net)
  local r = bn.probe.output_grad(net, x, y)
  check_unchanged(net, snap, "output_grad")
  local want = softmax_rows(r.logits) - onehot(y, 10)
  check.truthy(bn.allclose(r.grad, want, 1e-5, 1e-6), "softmax - onehot")
  local raw = bn.probe.output_grad(net, x, y, { per_example = false })
  check.truthy(bn.allclose(raw.grad, want / 12, 1e-5, 1e-7), "(softmax - onehot) / B")
  check.truthy(bn.allclose(r.logits, raw.logits, 0, 0), "same logits both times (running stats restored)")
  check.near(r.loss, bn.cross_entropy(r.logits, y):item(), 1e-6)
  check.eq(r.grad:shape(), { 12, 10 })
  check.near(r.predicted:sum():item(), 12, 0)
  check.near(r.top_fraction:sum():item(), 1, 1e-9)
  check.truthy(r.agreement > 0 and r.agreement <= 1, "agreement in (0, 1]")
end

function T.output_grad_agreement_of_identical_examples_is_one()
  -- Every example the same image: every row of the gradient is the same
  -- (same label), so they agree perfectly.
  local net = tiny_resnet("none")
  net:eval()
  local one = bn.randn(1, 1, 8, 8)
  local x = bn.cat({ one, one, one, one }, 1)
  local r = bn.probe.output_grad(net, x, { 3, 3, 3, 3 })
  check.near(r.agreement, 1, 1e-6)
  check.near(r.dominant_fraction, 1, 0)
end

-- ---- parameter gradients -------------------------------------------------------------

function T.param_grads_match_backward_and_keep_existing_grads()
  local net = tiny_resnet("bn")
  local x, y = batch(8)
  -- What a manual backward gives (then the state is put back by hand).
  local state = net:state()
  bn.cross_entropy(net(x), y):backward()
  local manual = {}
  for _, e in ipairs(net:named_parameters()) do manual[e[1]] = e[2].grad:clone() end
  net:load_state(state)
  -- Leave a stale .grad on one parameter: the probe must not touch it.
  net:zero_grad()
  net.fc.weight.grad = bn.full_like(net.fc.weight, 0.25)
  local snap = snapshot(net)
  local r = bn.probe.param_grads(net, x, y, { hist = 16 })
  check_unchanged(net, snap, "param_grads")
  check.eq(#r.names, #net:named_parameters())
  for _, name in ipairs(r.names) do
    check.truthy(bn.allclose(r.grads[name], manual[name], 1e-5, 1e-7), name)
    local st = r.stats[name]
    check.near(st.norm, r.grads[name]:norm():item(), 1e-5)
    check.near(st.absmax, r.grads[name]:abs():max():item(), 0)
    check.near(st.hist.counts:sum():item(), r.grads[name]:numel(), 0, name .. " histogram")
  end
  local sel = bn.probe.param_grads(net, x, y, { params = "stage2.*.weight", hist = 0 })
  check.eq(sel.names, { "stage2.block1.conv1.weight", "stage2.block1.bn1.weight", "stage2.block1.conv2.weight",
    "stage2.block1.bn2.weight" })
  check.eq(sel.stats[sel.names[1]].hist, nil)
  check.near(sel.total_norm, r.total_norm, 1e-6)
end

-- ---- coherence -----------------------------------------------------------------------

function T.grad_coherence_sum_is_the_weight_gradient()
  local net = tiny_resnet("none")
  local x, y = batch(6)
  local snap = snapshot(net)
  for _, layer in ipairs({ "conv1", "stage1.block1.conv2", "stage2.block1.conv1", "fc" }) do
    local r = bn.probe.grad_coherence(net, x, y, layer)
    check_unchanged(net, snap, layer)
    local wg = r.weight_grad
    check.truthy(bn.allclose(r.sum:reshape(wg:shape()), wg, 1e-4, 1e-7), layer .. ": Σd = dL/dW")
    check.truthy(r.ratio > 0 and r.ratio <= 1, layer .. " ratio in (0, 1]")
    local m = net:submodule(layer)
    local cin = m.in_channels or m.in_features
    local cout = m.out_channels or m.out_features
    check.eq(r.M:shape(), { cin, cout }, layer .. " M is [in x out]")
  end
end

-- M and the sums against a loop over every term, in Lua, on a small layer.
function T.grad_coherence_matches_a_naive_loop()
  bn.manual_seed(9)
  local net = nn.Sequential { { "conv1", nn.Conv2d { 2, 3, 3, stride = 2, padding = 1, bias = false } },
    { "relu", nn.ReLU() }, { "conv2", nn.Conv2d { 3, 2, 3, padding = 1, bias = false } },
    { "flatten", nn.Flatten() }, { "fc", nn.Linear(2 * 3 * 3, 4) } }
  local x = bn.randn(3, 2, 5, 5)
  local y = { 1, 4, 2 }
  local r = bn.probe.grad_coherence(net, x, y, "conv2", { keep = true })
  -- The input found is relu's output.
  local relu_out
  local id = bn.hooks_add("relu", function(_, t) relu_out = t end)
  bn.no_grad(function() net(x) end)
  bn.hooks_remove(id)
  check.truthy(bn.allclose(r.input, relu_out, 0, 0), "input = the previous layer's output")
  local I, G = r.input:totable(), r.dout:totable()
  local B, C, H, W = 3, 3, 3, 3
  local O = 2
  local Mw = {}
  for i = 1, C do Mw[i] = {} for o = 1, O do Mw[i][o] = 0 end end
  local maxerr, maxref = 0, 0
  for o = 1, O do
    for i = 1, C do
      for u = 1, 3 do
        for v = 1, 3 do
          local s, a = 0, 0
          for py = 1, H do
            for px = 1, W do
              local sb = 0
              for b = 1, B do
                local iy, ix = py + u - 2, px + v - 2
                local inp = (iy >= 1 and iy <= H and ix >= 1 and ix <= W) and I[b][i][iy][ix] or 0
                local d = G[b][o][py][px] * inp
                sb, a = sb + d, a + math.abs(d)
              end
              s = s + sb
              Mw[i][o] = Mw[i][o] + math.abs(sb)
            end
          end
          local got_s = r.sum[o][i][u][v]
          local got_a = r.abssum[o][i][u][v]
          maxerr = math.max(maxerr, math.abs(got_s - s), math.abs(got_a - a))
          maxref = math.max(maxref, a)
        end
      end
    end
  end
  check.truthy(maxerr <= 1e-5 * maxref, "sum and abssum match the loop")
  for i = 1, C do
    for o = 1, O do check.near(r.M[i][o], Mw[i][o], 1e-5, ("M[%d][%d]"):format(i, o)) end
  end
end

function T.grad_coherence_of_agreeing_and_cancelling_terms()
  local conv = nn.Conv2d { 1, 2, 3, padding = 1, bias = false }
  local net = nn.Sequential { { "conv", conv } }
  bn.manual_seed(4)
  local x = bn.rand(3, 1, 6, 6) + 0.1 -- positive inputs
  -- loss = Σ out: dL/dO = 1 everywhere, every term d = I > 0: ratio 1.
  local agree = bn.probe.grad_coherence(net, x, {}, "conv", { loss = function(out) return out:sum() end })
  check.near(agree.ratio, 1, 1e-6)
  for _, v in ipairs(agree.entry_ratio:reshape(-1):totable()) do check.near(v, 1, 1e-6) end
  -- Two copies of one image with opposite output gradients: the terms cancel.
  local one = x:narrow(1, 1, 1)
  local x2 = bn.cat({ one, one }, 1)
  local sign = bn.tensor({ 1, -1 }):view(2, 1, 1, 1)
  local cancel = bn.probe.grad_coherence(net, x2, {}, "conv", { loss = function(out) return (out * sign):sum() end })
  check.truthy(cancel.ratio < 1e-6, "cancelling terms: ratio ≈ 0, got " .. cancel.ratio)
  check.truthy(cancel.M:abs():max():item() < 1e-5, "M ≈ 0")
end

function T.grad_coherence_errors()
  local net = tiny_resnet("bn")
  local x, y = batch(2)
  check.raises(function() bn.probe.grad_coherence(net, x, y, "stage1.block1.bn1") end, "not a Conv2d or Linear module")
  check.raises(function() bn.probe.grad_coherence(net, x, y, "nope") end, "not a Conv2d or Linear module")
  check.raises(function() bn.probe.grad_coherence(net, x, y) end, "argument #4 (layer)")
end

-- ---- relative loss -------------------------------------------------------------------

function T.relative_loss_is_one_at_zero_and_restores_everything()
  for _, norm in ipairs({ "bn", "none" }) do
    local net = tiny_resnet(norm)
    local x, y = batch(8)
    net.conv1.weight.grad = bn.ones_like(net.conv1.weight) -- an optimizer's leftover
    local rng_before = bn.rng_state()
    local snap = snapshot(net)
    local r = bn.probe.relative_loss(net, x, y, { 0, 1e-4, 1e-2, 1, 1e3 })
    check_unchanged(net, snap, "relative_loss " .. norm)
    check.eq(bn.rng_state(), rng_before, "random stream untouched")
    check.eq(r.ratios[1], 1.0, norm .. ": ratio at α = 0 is exactly 1")
    check.truthy(r.ratios[2] < 1, norm .. ": a tiny step descends")
    check.eq(r.ratio:numel(), 5)
    check.eq(r.diverged[1], false)
    -- The gradient norm, and the loss at one α, by hand.
    local state = net:state()
    net:zero_grad()
    local l0 = bn.cross_entropy(net(x), y)
    l0:backward()
    local sq = 0
    for _, p in ipairs(net:parameters()) do sq = sq + (p.grad * p.grad):sum():item() end
    check.near(r.grad_norm, math.sqrt(sq), 1e-5)
    check.near(r.loss0, l0:item(), 1e-6)
    bn.no_grad(function()
      for _, p in ipairs(net:parameters()) do p:copy(p - 1e-2 * p.grad) end
    end)
    local l = bn.no_grad(function() return bn.cross_entropy(net(x), y):item() end)
    check.near(r.losses[3], l, 1e-5)
    net:load_state(state)
  end
end

function T.relative_loss_default_grid_and_divergence_flags()
  local net = bn.models.resnet { depth = 14, norm = "none", in_channels = 1, width = 4, seed = 2 }
  local x, y = batch(8)
  local r = bn.probe.relative_loss(net, x, y)
  check.eq(#r.alphas, 13)
  check.near(r.alphas[1], 1e-5, 1e-12)
  check.near(r.alphas[13], 10, 1e-9)
  local r2 = bn.probe.relative_loss(net, x, y, { 1e6 }, { threshold = 1e3 })
  check.eq(r2.diverged[1], true, "a huge step diverges (ratio " .. tostring(r2.ratios[1]) .. ")")
  -- A custom direction: the zero direction leaves the loss unchanged.
  local zero = {}
  for _, e in ipairs(net:named_parameters()) do zero[e[1]] = bn.zeros_like(e[2]) end
  local r3 = bn.probe.relative_loss(net, x, y, { 1, 10 }, { direction = zero })
  check.eq(r3.ratios, { 1.0, 1.0 })
  check.raises(function() bn.probe.relative_loss(net, x, y, { 1 }, { direction = { nope = bn.zeros(1) } }) end,
    "not a parameter")
  -- The gradient itself as the direction gives the default's losses.
  local state = net:state()
  bn.cross_entropy(net(x), y):backward()
  local g = {}
  for _, e in ipairs(net:named_parameters()) do g[e[1]] = e[2].grad:clone() end
  net:zero_grad()
  net:load_state(state)
  local r4 = bn.probe.relative_loss(net, x, y, { 0, 1e-3, 1e-1 }, { direction = g })
  local r5 = bn.probe.relative_loss(net, x, y, { 0, 1e-3, 1e-1 })
  check.eq(r4.ratios[1], 1.0)
  for k = 2, 3 do check.near(r4.ratios[k], r5.ratios[k], 1e-5) end
  check.near(r4.grad_norm, r5.grad_norm, 1e-6)
end

function T.relative_loss_with_dropout_uses_the_same_masks()
  bn.manual_seed(6)
  local net = nn.Sequential { { "fc1", nn.Linear(6, 16) }, { "drop", nn.Dropout(0.5) }, { "fc2", nn.Linear(16, 3) } }
  local x, y = bn.randn(10, 6), { 1, 2, 3, 1, 2, 3, 1, 2, 3, 1 }
  local rng_before = bn.rng_state()
  local r = bn.probe.relative_loss(net, x, y, { 0, 1e-3 })
  check.eq(r.ratios[1], 1.0, "the same dropout mask in every forward")
  check.eq(bn.rng_state(), rng_before, "random stream untouched")
end

-- ---- update path ----------------------------------------------------------------------

function T.update_path_endpoints_and_restoration()
  local net = tiny_resnet("bn")
  local x, y = batch(8)
  local layers = { "stage1.block1.conv1", "stage3.block1.conv2" }
  local snap = snapshot(net)
  local r = bn.probe.update_path(net, x, y, 0.5, { 0, 0.5, 1 }, layers, { mode = "train" })
  check_unchanged(net, snap, "update_path")
  check.eq(r.layers, layers)
  local a = r.by_layer["stage3.block1.conv2"]
  check.eq(a.mean:shape(), { 3, 16 })
  check.eq(a.var:shape(), { 3, 16 })
  -- Fraction 0 is the network as it is.
  local at0 = bn.probe.activations(net, x, { layers = layers, mode = "train" })
  check.truthy(bn.allclose(a.mean[1], at0.by_name["stage3.block1.conv2"].mean, 0, 0), "f = 0: exactly θ")
  check.truthy(bn.allclose(a.var[1], at0.by_name["stage3.block1.conv2"].var, 0, 0), "f = 0 var")
  -- Fraction 1 is θ - 0.5 g: do it by hand.
  local state = net:state()
  local l = bn.cross_entropy(net(x), y)
  l:backward()
  bn.no_grad(function()
    for _, p in ipairs(net:parameters()) do p:copy(p - 0.5 * p.grad) end
  end)
  net:zero_grad()
  local at1 = bn.probe.activations(net, x, { layers = layers, mode = "train" })
  net:load_state(state)
  check.truthy(bn.allclose(a.mean[3], at1.by_name["stage3.block1.conv2"].mean, 1e-4, 1e-5), "f = 1: θ - αg")
  check.truthy(bn.allclose(a.var[3], at1.by_name["stage3.block1.conv2"].var, 1e-4, 1e-6), "f = 1 var")
  check.eq(#r.losses, 3)
  -- A table delta: moving only fc's bias by +1 shifts fc's channel means by 1.
  local r2 = bn.probe.update_path(net, x, nil, { ["fc.bias"] = bn.ones(10) }, { 0, 1 }, "fc")
  local d = (r2.by_layer.fc.mean[2] - r2.by_layer.fc.mean[1]):totable()
  for c = 1, 10 do check.near(d[c], 1, 1e-5) end
  check.eq(r2.losses, nil)
  check_unchanged(net, snap, "update_path with a table delta")
end

-- ---- Hessian ---------------------------------------------------------------------------

function T.hessian_top_eig_of_a_quadratic()
  -- Linear layer without bias and mean squared error: L = ||X W^T - Y||^2 / (N k),
  -- H = (2 / (N k)) X^T X ⊗ I_k, top eigenvalue 2 σmax(X)^2 / (N k).
  bn.manual_seed(1)
  local N, d, k = 20, 5, 3
  local X = bn.randn(N, d) * bn.tensor({ 3, 1, 0.5, 0.2, 0.1 }) -- a clear top direction
  local Y = bn.randn(N, k)
  local net = nn.Sequential { { "fc", nn.Linear(d, k, { bias = false }) } }
  local snap = snapshot(net)
  local rng_before = bn.rng_state()
  local r = bn.probe.hessian_top_eig(net, X, Y, 100, { loss = bn.mse_loss, tol = 1e-7 })
  check_unchanged(net, snap, "hessian_top_eig")
  check.eq(bn.rng_state(), rng_before, "random stream untouched")
  local smax = bn.linalg.svdvals(X):totable()[1]
  local want = 2 * smax * smax / (N * k)
  check.near(r.eigenvalue, want, 1e-3, "top eigenvalue")
  check.truthy(r.converged, "converged")
  check.truthy(r.eps > 0, "eps")
end

function T.hessian_restores_bn_networks()
  local net = tiny_resnet("bn")
  local x, y = batch(8)
  local snap = snapshot(net)
  local r = bn.probe.hessian_top_eig(net, x, y, 3)
  check_unchanged(net, snap, "hessian on a BN net")
  check.eq(#r.history, 3)
  check.truthy(r.eigenvalue == r.eigenvalue, "a number")
end

-- ---- gradient noise -------------------------------------------------------------------

-- Linear model w·x without bias, per-example loss (w·x_i - t_i)^2:
-- ∇l_i = 2 (w·x_i - t_i) x_i, known in closed form.
local function linear_case(N, d)
  bn.manual_seed(12)
  local net = nn.Sequential { { "fc", nn.Linear(d, 1, { bias = false }) } }
  local X, Yt = bn.randn(N, d), bn.randn(N, 1)
  local w = net.fc.weight:reshape(d):totable()
  local xs, ts = X:totable(), Yt:reshape(N):totable()
  local g, mean = {}, {}
  for j = 1, d do mean[j] = 0 end
  for i = 1, N do
    local r = -ts[i]
    for j = 1, d do r = r + w[j] * xs[i][j] end
    g[i] = {}
    for j = 1, d do g[i][j] = 2 * r * xs[i][j]; mean[j] = mean[j] + g[i][j] / N end
  end
  local C = 0
  for i = 1, N do for j = 1, d do C = C + (g[i][j] - mean[j]) ^ 2 / N end end
  local per_ex = function(out, t) return ((out - t) ^ 2):sum(2) end
  return net, X, Yt, C, per_ex
end

function T.gradient_noise_matches_known_per_example_gradients()
  local N = 32
  local net, X, Yt, C, per_ex = linear_case(N, 5)
  local snap = snapshot(net)
  local r = bn.probe.gradient_noise(net, { X, Yt }, { 1, 4, 16, N },
    { per_example_loss = per_ex, draws = 300, seed = 3 })
  check_unchanged(net, snap, "gradient_noise")
  check.near(r.C, C, 1e-4, "C")
  check.eq(r.N, N)
  check.eq(r.examples, N)
  check.eq(r.coupled, false)
  for _, s in ipairs(r.sizes) do
    if s.batch_size == N then
      check.truthy(s.noise <= 1e-8 * C, "the whole population has no noise")
    else
      check.truthy(math.abs(s.ratio - 1) < 0.25,
        ("|B| = %d: measured %g vs C/|B|·(N-|B|)/(N-1) = %g"):format(s.batch_size, s.noise, s.predicted_fpc))
    end
  end
  -- A subsample of examples estimates the same C.
  local sub = bn.probe.gradient_noise(net, { X, Yt }, { 4 }, { per_example_loss = per_ex, examples = 16, draws = 2 })
  check.eq(sub.examples, 16)
  check.truthy(math.abs(sub.C / C - 1) < 0.6, "subsampled C is in the right range")
end

function T.gradient_noise_with_batch_norm_in_train_mode()
  bn.manual_seed(2)
  local net = bn.models.mlp { sizes = { 6, 8, 3 }, norm = "bn" }
  local X = bn.randn(16, 6)
  local y = {}
  for i = 1, 16 do y[i] = i % 3 + 1 end
  local snap = snapshot(net)
  local r = bn.probe.gradient_noise(net, { X, y }, { 16, 4 }, { draws = 3 })
  check_unchanged(net, snap, "gradient_noise with BN")
  check.eq(r.coupled, true)
  check.eq(r.batch, 16)
  check.truthy(r.C > 0, "C > 0")
  -- The whole population as one batch: the same statistics, no noise.
  check.truthy(r.sizes[1].noise <= 1e-6 * r.C, "|B| = N has no noise, got " .. r.sizes[1].noise)
  local e = bn.probe.gradient_noise(net, { X, y }, { 4 }, { draws = 2, mode = "eval" })
  check.eq(e.coupled, false)
  check.eq(e.batch, 1)
end

-- ---- misc ---------------------------------------------------------------------------------

function T.weight_layers_and_helpers()
  local net = tiny_resnet("bn")
  local wl = bn.probe.weight_layers(net)
  check.eq(#wl, 8)
  check.eq(wl[1], "conv1")
  check.eq(wl[8], "fc")
  local st = bn.probe.channel_stats(bn.tensor { { 1, 2 }, { 3, 6 } })
  check.eq(st.mean:totable(), { 2.0, 4.0 })
  check.eq(st.var:totable(), { 1.0, 4.0 })
  check.eq(st.absmax:totable(), { 3.0, 6.0 })
  local h = bn.probe.histogram(bn.tensor { 0, 1, 2, 3 }, 3, { 0, 3 })
  check.eq(h.counts:totable(), { 1.0, 1.0, 2.0 })
  check.eq(bn.probe.glob_pattern("stage*.b?"), "^stage.*%.b.$")
end

return T
