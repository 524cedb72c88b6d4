-- bn.nn: layers against PyTorch's reference values (tests/fixtures, made by
-- make_fixtures.py for the ops; here driven through the modules), module
-- trees, paths, modes, state, printing and error locations.
local bn = require "bnlab"
local check = require "check"
local nn = bn.nn

local T = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = HERE .. "/../fixtures"

local function fixture(case, name) return bn.load(("%s/%s.%s.npy"):format(FIXTURES, case, name)) end

-- The op fixtures' tolerance (tests/fixtures/README.md): |got - ref| <= 1e-5 + 1e-4 |ref|.
local function near(got, ref, what)
  check.truthy(got ~= nil, what .. " exists")
  check.eq(got:shape(), ref:shape(), what .. " shape")
  check.truthy(bn.allclose(got, ref, 1e-4, 1e-5), what .. " matches PyTorch (max diff "
    .. bn.no_grad(function() return (got - ref):abs():max():item() end) .. ")")
end

-- Loads `state` into m, runs m(x) and backward(dy); returns y and x.grad.
local function run(m, case, state)
  if state then m:load_state(state) end
  local x = fixture(case, "x"):requires_grad(true)
  local y = m(x)
  y:backward(fixture(case, "dy"))
  return y, x.grad
end

-- ---- layers against PyTorch ------------------------------------------------------

function T.conv2d_module_matches_pytorch()
  local cases = {
    { "conv2d_basic", { 3, 4, 3 }, true },
    { "conv2d_s2p1", { 4, 6, 3, stride = 2, padding = 1 }, true },
    { "conv2d_nobias", { 4, 8, 3, padding = 1, bias = false }, false },
    { "conv2d_odd", { 5, 7, { 3, 2 }, stride = { 2, 1 }, padding = { 1, 0 } }, true },
    { "conv2d_1x1s2", { 6, 10, 1, stride = 2, bias = false }, false },
    { "conv2d_k5p2", { 2, 3, 5, padding = 2 }, true },
  }
  for _, c in ipairs(cases) do
    local case, has_bias = c[1], c[3]
    local m = nn.Conv2d(c[2])
    local state = { weight = fixture(case, "w") }
    if has_bias then state.bias = fixture(case, "b") end
    local y, dx = run(m, case, state)
    near(y, fixture(case, "y"), case .. " y")
    near(dx, fixture(case, "dx"), case .. " dx")
    near(m.weight.grad, fixture(case, "dw"), case .. " dw")
    if has_bias then near(m.bias.grad, fixture(case, "db"), case .. " db") end
  end
end

function T.batchnorm_modules_match_pytorch_in_train_and_eval()
  for _, c in ipairs({ { "bn1d_train", nn.BatchNorm1d, 5, true }, { "bn4d_train", nn.BatchNorm2d, 3, true },
    { "bn1d_eval", nn.BatchNorm1d, 5, false }, { "bn4d_eval", nn.BatchNorm2d, 3, false } }) do
    local case, cls, ch, training = c[1], c[2], c[3], c[4]
    local m = cls(ch)
    if not training then m:eval() end
    local y, dx = run(m, case, {
      weight = fixture(case, "weight"), bias = fixture(case, "bias"),
      running_mean = fixture(case, "running_mean"), running_var = fixture(case, "running_var"),
    })
    near(y, fixture(case, "y"), case .. " y")
    near(dx, fixture(case, "dx"), case .. " dx")
    near(m.weight.grad, fixture(case, "dweight"), case .. " dweight")
    near(m.bias.grad, fixture(case, "dbias"), case .. " dbias")
    if training then
      near(m.running_mean, fixture(case, "running_mean_out"), case .. " running_mean after")
      near(m.running_var, fixture(case, "running_var_out"), case .. " running_var after")
    else
      near(m.running_mean, fixture(case, "running_mean"), case .. " running_mean unchanged")
    end
  end
  local m = nn.BatchNorm2d(3, { affine = false })
  check.eq(#m:parameters(), 0)
  local case = "bn4d_train_noaffine"
  local y, dx = run(m, case, { running_mean = fixture(case, "running_mean"), running_var = fixture(case, "running_var") })
  near(y, fixture(case, "y"), case .. " y")
  near(dx, fixture(case, "dx"), case .. " dx")
  near(m.running_var, fixture(case, "running_var_out"), case .. " running_var after")
end

function T.pooling_modules_match_pytorch()
  local cases = {
    { "maxpool_k2s2", nn.MaxPool2d(2) },
    { "maxpool_k3s2p1", nn.MaxPool2d(3, { stride = 2, padding = 1 }) },
    { "maxpool_k3s1", nn.MaxPool2d(3, { stride = 1 }) },
    { "avgpool_k2s2", nn.AvgPool2d(2) },
    { "avgpool_k3s2p1", nn.AvgPool2d(3, { stride = 2, padding = 1 }) },
    { "avgpool_k3s2p1_nopad", nn.AvgPool2d(3, { stride = 2, padding = 1, count_include_pad = false }) },
    { "adapt_7to3", nn.AdaptiveAvgPool2d(3) },
    { "adapt_global", nn.AdaptiveAvgPool2d(1) },
    { "adapt_6x10to4x3", nn.AdaptiveAvgPool2d{ 4, 3 } },
  }
  for _, c in ipairs(cases) do
    local y, dx = run(c[2], c[1])
    near(y, fixture(c[1], "y"), c[1] .. " y")
    near(dx, fixture(c[1], "dx"), c[1] .. " dx")
  end
end

function T.basic_block_matches_pytorch()
  for _, c in ipairs({ { "block_bn", 16, 1, "bn" }, { "block_nobn", 16, 1, "none" },
    { "block_down_bn", 32, 2, "bn" }, { "block_down_nobn", 32, 2, "none" } }) do
    local case, cout, stride, norm = c[1], c[2], c[3], c[4]
    local blk = nn.BasicBlock(16, cout, stride, { norm = norm, shortcut = "A" })
    local state = { ["conv1.weight"] = fixture(case, "conv1_w"), ["conv2.weight"] = fixture(case, "conv2_w") }
    if norm == "bn" then
      for _, k in ipairs({ "bn1", "bn2" }) do
        state[k .. ".weight"], state[k .. ".bias"] = fixture(case, k .. "_w"), fixture(case, k .. "_b")
        state[k .. ".running_mean"], state[k .. ".running_var"] = bn.zeros(cout), bn.ones(cout)
      end
    end
    local y, dx = run(blk, case, state)
    near(y, fixture(case, "y"), case .. " y")
    near(dx, fixture(case, "dx"), case .. " dx")
    near(blk.conv1.weight.grad, fixture(case, "dconv1_w"), case .. " dconv1_w")
    near(blk.conv2.weight.grad, fixture(case, "dconv2_w"), case .. " dconv2_w")
    if norm == "bn" then
      for _, k in ipairs({ "bn1", "bn2" }) do
        near(blk[k].weight.grad, fixture(case, "d" .. k .. "_w"), case .. " d" .. k .. "_w")
        near(blk[k].bias.grad, fixture(case, "d" .. k .. "_b"), case .. " d" .. k .. "_b")
        near(blk[k].running_mean, fixture(case, k .. "_rm"), case .. " " .. k .. " running_mean")
        near(blk[k].running_var, fixture(case, k .. "_rv"), case .. " " .. k .. " running_var")
      end
    end
  end
end

function T.linear_matches_definition()
  local m = nn.Linear(4, 3)
  local x = bn.randn(5, 4)
  local y = m(x)
  local want = bn.matmul(x, m.weight:t()) + m.bias
  check.truthy(bn.allclose(y, want, 1e-6, 1e-6), "x W^T + b")
  local bound = 1 / math.sqrt(4)
  check.truthy(m.weight:abs():max():item() <= bound and m.bias:abs():max():item() <= bound, "PyTorch init bound")
  check.eq(nn.Linear{ 4, 3, bias = false }.bias, nil)
  y:sum():backward()
  check.truthy(bn.allclose(m.bias.grad, bn.full({ 3 }, 5)), "bias grad = batch size")
end

function T.simple_layers()
  local x = bn.randn(2, 3, 4, 4)
  check.truthy(bn.equal(nn.ReLU()(x), x:relu()), "ReLU")
  check.truthy(bn.equal(nn.Tanh()(x), x:tanh()), "Tanh")
  check.eq(nn.Flatten()(x):shape(), { 2, 48 })
  check.eq(nn.Flatten(3)(x):shape(), { 2, 3, 16 })
  check.truthy(rawequal(nn.Identity()(x), x), "Identity returns its input")
  local d = nn.Dropout(0.5)
  bn.manual_seed(1)
  local y = d(bn.ones(1000))
  local kept = (y:sum():item()) / 2
  check.truthy(kept > 400 and kept < 600, "about half kept, scaled by 2")
  d:eval()
  check.truthy(rawequal(d(x), x), "Dropout is the identity in eval mode")
  check.raises(function() nn.ReLU(3) end, "takes no arguments")
  check.raises(function() nn.Dropout(1.5) end, "p expected a number in [0, 1]")
end

function T.shortcut_a_subsamples_and_pads()
  local x = bn.randn(2, 4, 6, 6)
  local s = nn.ShortcutA(4, 8, 2)
  local y = s(x)
  check.eq(y:shape(), { 2, 8, 3, 3 })
  check.near(y:narrow(2, 1, 2):abs():max():item(), 0, 0)
  check.near(y:narrow(2, 7, 2):abs():max():item(), 0, 0)
  check.truthy(bn.equal(y:narrow(2, 3, 4), x:subsample(3, 1, 2):subsample(4, 1, 2)), "middle channels")
  check.eq(#s:parameters(), 0)
end

-- ---- trees, names and paths ---------------------------------------------------

function T.named_modules_paths()
  local net = bn.models.resnet{ depth = 20 }
  local paths = {}
  for i, e in ipairs(net:named_modules()) do paths[i] = e[1] end
  check.eq(paths[1], "", "the root first")
  check.eq(paths[2], "conv1")
  check.eq(paths[3], "bn1")
  check.eq(paths[4], "relu")
  check.eq(paths[5], "stage1")
  check.eq(paths[6], "stage1.block1")
  check.eq(paths[7], "stage1.block1.conv1")
  local set = {}
  for _, p in ipairs(paths) do set[p] = true end
  for _, p in ipairs({ "stage2.block3.conv1", "stage2.block1.shortcut", "stage3.block3.relu2", "pool", "flatten", "fc" }) do
    check.truthy(set[p], p .. " listed")
  end
  check.eq(#paths, 1 + 3 + 3 * (1 + 3 * 8) + 3)
  local convs = net:named_modules(nn.Conv2d)
  check.eq(#convs, 19)
  check.eq(convs[19][1], "stage3.block3.conv2")
  check.eq(net:named_modules("BasicBlock")[4][1], "stage2.block1")
  check.truthy(rawequal(net:submodule("stage2.block3.conv1"), net.stage2.block3.conv1), "submodule")
  check.eq(net:submodule("stage2.block9"), nil)
  check.eq(net:submodule("stage2.block3.conv1.weight"), nil, "a parameter is not a module")
end

function T.named_parameters_and_buffers()
  local net = bn.models.resnet{ depth = 20 }
  local params = net:named_parameters()
  check.eq(params[1][1], "conv1.weight")
  check.eq(params[2][1], "bn1.weight")
  check.eq(params[4][1], "stage1.block1.conv1.weight")
  check.eq(params[#params][1], "fc.bias")
  check.eq(#params, #net:parameters())
  for i, p in ipairs(net:parameters()) do
    check.truthy(rawequal(p, params[i][2]), "parameters() in named order")
    check.truthy(p:requires_grad(), params[i][1] .. " requires grad")
  end
  local buffers = net:named_buffers()
  check.eq(#buffers, 2 * 19)
  check.eq(buffers[1][1], "bn1.running_mean")
  check.eq(buffers[2][1], "bn1.running_var")
  check.eq(#net:buffers(), 38)
  check.eq(#bn.models.resnet{ depth = 20, norm = "none" }:buffers(), 0)
end

function T.shared_parameters_count_once()
  local lin = nn.Linear(3, 3)
  local net = nn.Sequential(lin, nn.ReLU(), lin)
  check.eq(#net:parameters(), 2)
  check.eq(net:num_parameters(), 12)
  check.eq(#net:named_modules(), 3, "the shared module is listed once")
  check.eq(net(bn.randn(2, 3)):shape(), { 2, 3 })
end

function T.sequential_indexing_and_names()
  local s = nn.Sequential{ { "conv", nn.Conv2d(1, 2, 3) }, { "act", nn.ReLU() } }
  s:add(nn.Flatten())
  check.eq(s:size(), 3)
  check.eq(#s, 3)
  check.truthy(rawequal(s[1], s.conv) and rawequal(s:get(2), s.act) and rawequal(s[-1], s["3"]), "indexing")
  check.eq(s.conv:typename(), "Conv2d")
  check.raises(function() s:add(nn.ReLU(), "conv") end, "'conv' is already registered")
  check.raises(function() s:add(nn.ReLU(), "a.b") end, "no dots")
  check.raises(function() s:add(nn.ReLU(), "forward") end, "is the name of a method")
  check.raises(function() s:add(42) end, "expected a module")
  s.note = "a plain field"
  check.raises(function() s:add(nn.ReLU(), "note") end, "'note' is already a field")
  check.truthy(nn.is_module(s) and not nn.is_module({}) and nn.is_instance(s.conv, nn.Module), "is_module")
end

function T.outputs_are_named_with_their_path()
  local net = bn.models.resnet{ depth = 20 }
  local seen = {}
  local id = bn.hooks_add("stage1.block2*", function(name, t) seen[#seen + 1] = name end)
  local ok, err = pcall(function() return net(bn.randn(2, 3, 8, 8)) end)
  bn.hooks_remove(id)
  check.truthy(ok, tostring(err))
  check.eq(seen, { "stage1.block2.conv1", "stage1.block2.bn1", "stage1.block2.relu1", "stage1.block2.conv2",
    "stage1.block2.bn2", "stage1.block2.add", "stage1.block2.relu2", "stage1.block2" })
  local y = net(bn.randn(2, 3, 8, 8))
  check.eq(y:name(), "fc", "the root adds no name to its output")
  -- gradients reach backward hooks by name
  local grads = {}
  local hid = bn.hooks_add("stage3.block3", nil, function(name, g) grads[name] = g:norm():item() end)
  local out = net(bn.randn(2, 3, 8, 8))
  bn.cross_entropy(out, { 1, 2 }):backward()
  bn.hooks_remove(hid)
  check.truthy(grads["stage3.block3"] and grads["stage3.block3"] > 0, "backward hook by path")
end

function T.identity_keeps_its_input_name()
  local net = nn.Sequential{ { "a", nn.ReLU() }, { "b", nn.Identity() } }
  local y = net(bn.randn(3))
  check.eq(y:name(), "a")
end

-- ---- modes ------------------------------------------------------------------------

function T.train_and_eval_switch_batchnorm()
  local net = bn.models.resnet{ depth = 8, width = 4 }
  check.truthy(net.training and net.stage1.block1.bn1.training, "modules start in training mode")
  check.truthy(rawequal(net:eval(), net), "eval returns the module")
  for _, e in ipairs(net:named_modules()) do check.eq(e[2].training, false, e[1] .. " in eval") end
  net:train()
  for _, e in ipairs(net:named_modules()) do check.eq(e[2].training, true, e[1] .. " in training") end

  local m = nn.BatchNorm2d(3)
  local x = bn.randn(8, 3, 4, 4) * 3 + 5
  local y = m(x)
  -- training: batch statistics (per-channel mean 0, std 1) and running stats move
  local ch = y:select(2, 2)
  check.near(ch:mean():item(), 0, 1e-4)
  check.near(ch:std(nil, false, 0):item(), 1, 1e-3)
  local rm = m.running_mean:clone()
  check.truthy(rm:abs():max():item() > 0.1, "running mean moved")
  check.near(rm[2], 0.1 * x:select(2, 2):mean():item(), 1e-4)
  -- eval: running statistics, which stay put
  m:eval()
  local ye = m(x)
  check.truthy(bn.equal(m.running_mean, rm), "eval leaves the running mean")
  local want = (x:select(2, 2) - rm[2]) / math.sqrt(m.running_var[2] + 1e-5)
  check.truthy(bn.allclose(ye:select(2, 2), want, 1e-4, 1e-4), "eval uses running stats")
  check.raises(function() m:train("yes") end, "expected a boolean")
end

function T.zero_grad_drops_gradients()
  local net = bn.models.mlp{ sizes = { 6, 5, 2 } }
  bn.cross_entropy(net(bn.randn(4, 6)), { 1, 2, 1, 2 }):backward()
  check.truthy(net.fc1.weight.grad, "gradient after backward")
  check.truthy(rawequal(net:zero_grad(), net), "returns the module")
  for _, p in ipairs(net:parameters()) do check.eq(p.grad, nil) end
end

-- ---- state ------------------------------------------------------------------------

function T.state_round_trip()
  local net = bn.models.resnet{ depth = 8, width = 4, seed = 1 }
  net(bn.randn(4, 3, 8, 8)) -- moves the running stats
  local s = net:state()
  local count = 0
  for _ in pairs(s) do count = count + 1 end
  check.eq(count, #net:parameters() + #net:buffers(), "parameters and buffers")
  check.truthy(s["stage2.block1.bn1.running_var"], "buffers included")
  -- state holds copies: training afterwards does not change it
  local w = net.conv1.weight
  local before = s["conv1.weight"]:clone()
  bn.no_grad(function() w:copy(w * 2) end)
  check.truthy(bn.equal(s["conv1.weight"], before), "state is a snapshot")
  check.truthy(not rawequal(s["conv1.weight"], w), "a copy, not the parameter")
  check.truthy(not s["conv1.weight"]:requires_grad(), "copies do not require grad")

  local other = bn.models.resnet{ depth = 8, width = 4, seed = 2 }
  local w2 = other.conv1.weight
  local missing, unexpected = other:load_state(s)
  check.eq(#missing + #unexpected, 0)
  check.truthy(rawequal(other.conv1.weight, w2), "loaded in place")
  for name, t in pairs(other:state()) do check.truthy(bn.equal(t, s[name]), name .. " round trip") end
  local x = bn.randn(2, 3, 8, 8)
  net:load_state(s)
  net:eval()
  other:eval()
  check.truthy(bn.equal(net(x), other(x)), "same outputs after loading")
  -- works with grad mode on and a gradient present
  bn.cross_entropy(other(x), { 1, 2 }):backward()
  other:load_state(s)
end

function T.load_state_errors_list_names()
  local net = bn.models.resnet{ depth = 8, width = 4 }
  local s = net:state()
  local good = s["fc.weight"]
  s["fc.weight"] = nil
  s["stage1.block1.conv1.weight"] = bn.zeros(4, 4, 5, 5)
  s["extra.weight"] = bn.zeros(1)
  s["bn1.bias"] = "zeros"
  local before = net.conv1.weight:clone()
  s["conv1.weight"] = bn.zeros(4, 3, 3, 3)
  local err = check.raises(function() net:load_state(s) end, "does not fit this ResNet")
  check.contains(err, "missing 1: fc.weight")
  check.contains(err, "unexpected 1: extra.weight")
  check.contains(err, "stage1.block1.conv1.weight (expected [4 x 4 x 3 x 3], got [4 x 4 x 5 x 5])")
  check.contains(err, "bn1.bias (expected a tensor [4], got 'zeros')")
  check.truthy(bn.equal(net.conv1.weight, before), "nothing written when the state does not fit")
  -- non-strict: names may be missing or extra, shapes must still fit
  s["stage1.block1.conv1.weight"], s["bn1.bias"] = nil, nil
  local missing, unexpected = net:load_state(s, { strict = false })
  check.eq(missing, { "bn1.bias", "stage1.block1.conv1.weight", "fc.weight" })
  check.eq(unexpected, { "extra.weight" })
  check.near(net.conv1.weight:abs():max():item(), 0, 0)
  s["fc.weight"] = bn.zeros(3)
  check.raises(function() net:load_state(s, { strict = false }) end, "mismatched 1: fc.weight")
  s["fc.weight"] = good
  check.raises(function() net:load_state(s, { stritc = false }) end, "unknown option 'stritc'")
  check.raises(function() net:load_state("file.npy") end, "expected a table name -> tensor")
end

-- ---- printing -----------------------------------------------------------------------

function T.tostring_shows_the_tree()
  local net = bn.models.resnet{ depth = 20 }
  local before = tostring(net)
  check.contains(before, "ResNet(depth 20, norm bn, width 16, shortcut A, 3 -> 10 classes)")
  check.contains(before, "  stage2: Sequential")
  check.contains(before, "    block1: BasicBlock(16 -> 32, stride 2, shortcut A)")
  check.contains(before, "      conv1: Conv2d(16 -> 32, kernel 3, stride 2, padding 1, no bias)")
  check.contains(before, "total: 269,722 parameters in 59 tensors, 1,376 buffer values")
  check.not_contains(before, "[2 x", "no shapes before a forward")
  check.truthy(before:match("^module%s+parameters\n"), "header without the output column")
  net(bn.randn(2, 3, 32, 32))
  local after = tostring(net)
  check.truthy(after:match("^module%s+output%s+parameters\n"), "header")
  check.contains(after, "[2 x 10]")
  check.contains(after, "[2 x 32 x 16 x 16]")
  -- per-module counts: a stage-3 block of 64 channels, fc
  local line = after:match("\n(    block2: BasicBlock%(64 %-> 64%)[^\n]*)")
  check.truthy(line and line:match("73,984$"), "block count at the end of its line: " .. tostring(line))
  check.truthy(after:match("\n  fc: Linear%(64 %-> 10%)[^\n]* 650\n"), "fc count")
  check.contains(tostring(nn.Linear(3, 2, { bias = false })), "Linear(3 -> 2, no bias)")
  check.contains(tostring(nn.MaxPool2d(3, { stride = 2, padding = 1 })), "MaxPool2d(kernel 3, stride 2, padding 1)")
  check.contains(tostring(nn.BatchNorm1d(7, { eps = 1e-3 })), "BatchNorm1d(7, eps 0.001)")
  check.eq(tostring(nn.Conv2d), "bn.nn.Conv2d")
end

-- ---- errors ---------------------------------------------------------------------------

function T.errors_name_the_failing_layer_once()
  local net = bn.models.resnet{ depth = 20 }
  net.stage1.block2.conv1.weight = bn.randn(16, 8, 3, 3):requires_grad(true) -- a wrong layer
  local err = check.raises(function() net(bn.randn(2, 3, 8, 8)) end,
    "bn.conv2d: input expected [N x 8 x H x W]")
  check.contains(err, "got [2 x 16 x 8 x 8] (in stage1.block2.conv1)")
  check.eq(select(2, err:gsub("%(in ", "")), 1, "the path is appended once: " .. err)
  check.not_contains(err, ".lua:", "no position inside the library")
  check.truthy(nn.Module.last_traceback:find("conv", 1, true), "the original traceback is kept")

  local fresh = bn.models.resnet{ depth = 20 }
  err = check.raises(function() fresh(bn.randn(2, 1, 8, 8)) end, "(in conv1)")
  check.eq(select(2, err:gsub("%(in ", "")), 1)
  err = check.raises(function() fresh(bn.randn(2, 3, 8)) end, "input expected 4-D")
  -- an error in the container's own code names the container
  local bad = nn.BasicBlock(4, 4)
  bad.shortcut = nn.Sequential(nn.AvgPool2d(2))
  local outer = nn.Sequential{ { "body", nn.Sequential{ { "blk", bad } } } }
  err = check.raises(function() outer(bn.randn(1, 4, 4, 4)) end, "(in body.blk")
  check.eq(select(2, err:gsub("%(in ", "")), 1)
  -- BatchNorm's own check
  err = check.raises(function() nn.Sequential{ { "norm", nn.BatchNorm2d(3) } }(bn.randn(4, 3)) end,
    "bn.nn.BatchNorm2d: input expected 4-D [N x C x H x W], got [4 x 3] (in norm)")
  -- the same failure twice is tagged both times
  local s = nn.Sequential{ { "lin", nn.Linear(3, 2) } }
  for _ = 1, 2 do check.raises(function() s(bn.randn(2, 4)) end, "(in lin)") end
  -- a module called from outside: no path, the message is the op's
  err = check.raises(function() nn.Linear(3, 2)(bn.randn(2, 4)) end, "bn.linear")
  check.not_contains(err, "(in ")
end

function T.constructor_arguments_are_checked()
  check.raises(function() nn.Conv2d(3, 0, 3) end, "bn.nn.Conv2d: out_channels expected an integer >= 1, got number 0")
  check.raises(function() nn.Conv2d{ 3, 8, 3, stirde = 2 } end, "unknown option 'stirde'")
  check.raises(function() nn.Conv2d(3, 8, 3, { padding = -1 }) end, "padding expected an integer >= 0")
  check.raises(function() nn.Linear(3) end, "out_features expected an integer >= 1, got nil")
  check.raises(function() nn.BatchNorm2d(0) end, "num_features")
  check.raises(function() nn.BatchNorm2d(4, { momentum = 2 }) end, "option 'momentum' expected a number in [0, 1]")
  check.raises(function() nn.BasicBlock(16, 32, 2, { shortcut = "C" }) end, "option 'shortcut' expected one of 'A', 'B'")
  check.raises(function() nn.BasicBlock(32, 16, 2) end, "shortcut 'A' cannot reduce channels")
  check.raises(function() nn.MaxPool2d(2, { strde = 1 }) end, "unknown option 'strde'")
  check.raises(function() nn.Sequential(5) end, "expected a module or a pair")
end

function T.custom_modules()
  -- a user-defined module: registered children get paths, parameters, state
  local Scale = nn.class("Scale", nn.Module)
  function Scale:__init(n)
    nn.Module.__init(self)
    self:register_parameter("gain", bn.ones(n))
    self:register_module("inner", nn.Linear(n, n))
  end
  function Scale:forward(x) return self:tag(self.inner(x), "pre") * self.gain end
  local net = nn.Sequential{ { "scale", Scale(3) } }
  local names = {}
  local id = bn.hooks_add("scale*", function(n) names[#names + 1] = n end)
  net(bn.randn(2, 3))
  bn.hooks_remove(id)
  check.eq(names, { "scale.inner", "scale.pre", "scale" })
  local pnames = {}
  for i, e in ipairs(net:named_parameters()) do pnames[i] = e[1] end
  check.eq(pnames, { "scale.gain", "scale.inner.weight", "scale.inner.bias" })
  check.eq(net.scale:typename(), "Scale")
  check.contains(tostring(net), "scale: Scale")
  local Empty = nn.class("Empty", nn.Module)
  check.raises(function() Empty()(bn.randn(1)) end, "forward is not implemented")
end

return T
