-- bn.models: ResNet-20 against PyTorch (tests/fixtures/make_resnet_fixtures.py),
-- parameter counts, the mlp and cnn builders.
local bn = require "bnlab"
local check = require "check"

local T = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIXTURES = HERE .. "/../fixtures"

local function read_lines(path)
  local f = assert(io.open(path, "r"))
  local lines = {}
  for line in f:lines() do
    if line ~= "" then lines[#lines + 1] = line end
  end
  f:close()
  return lines
end

-- The fixtures' tolerance, per tensor: |got - ref| <= RTOL (|ref| + FLOOR max|ref|).
-- 1e-4 relative for every element of normal size; the FLOOR term is for
-- elements near zero, which are differences of much larger terms (BN
-- backward subtracts means, a conv weight gradient sums N*H*W products of
-- both signs), so their error follows the tensor's scale, not their own.
-- float32 PyTorch itself uses up to 0.14 of this allowance (the script prints it).
local RTOL, FLOOR = 1e-4, 1e-1

-- The worst |got - ref| / allowance over the tensor (<= 1 passes).
local function worst(got, ref)
  return bn.no_grad(function()
    check.eq(got:shape(), ref:shape(), "shape")
    local scale = ref:abs():max():item()
    local allowed = (ref:abs() + FLOOR * scale) * RTOL + 1e-30
    return ((got - ref):abs() / allowed):max():item()
  end)
end

local function compare(variant)
  local dir = FIXTURES .. "/resnet20_" .. variant
  local shared = FIXTURES .. "/resnet20_bn"
  local net = bn.models.resnet{ depth = 20, norm = variant, classes = 10, in_channels = 3 }

  -- bnlab's parameter and buffer names and order are PyTorch's.
  local names = read_lines(dir .. "/params.txt")
  local got_names = {}
  for i, e in ipairs(net:named_parameters()) do got_names[i] = e[1] end
  check.eq(got_names, names, "named_parameters")
  local buffer_names = variant == "bn" and read_lines(shared .. "/buffers.txt") or {}
  local got_buffers = {}
  for i, e in ipairs(net:named_buffers()) do got_buffers[i] = e[1] end
  check.eq(got_buffers, buffer_names, "named_buffers")

  local state = {}
  for _, name in ipairs(names) do state[name] = bn.load(shared .. "/params/" .. name .. ".npy") end
  for _, name in ipairs(buffer_names) do state[name] = bn.load(shared .. "/buffers/" .. name .. ".npy") end
  net:load_state(state)
  net:train()

  local x = bn.load(shared .. "/input.npy"):requires_grad(true)
  local labels = {}
  for i, v in ipairs(bn.load(shared .. "/labels.npy"):totable()) do labels[i] = math.tointeger(v) + 1 end
  local logits = net(x)
  local loss = bn.cross_entropy(logits, labels)
  loss:backward()

  local results = {}
  local function add(what, got, ref_file)
    results[#results + 1] = { what, worst(got, bn.load(ref_file)) }
  end
  add("logits", logits, dir .. "/logits.npy")
  add("loss", loss, dir .. "/loss.npy")
  add("input_grad", x.grad, dir .. "/input_grad.npy")
  for _, e in ipairs(net:named_parameters()) do
    check.truthy(e[2].grad, e[1] .. " has a gradient")
    add(e[1] .. ".grad", e[2].grad, dir .. "/grads/" .. e[1] .. ".npy")
  end
  for _, e in ipairs(net:named_buffers()) do
    add(e[1] .. " (after)", e[2], dir .. "/buffers_after/" .. e[1] .. ".npy")
  end
  check.eq(#results, 3 + #names + #buffer_names, "number of compared tensors")
  local bad = {}
  local max_ratio, max_what = 0, ""
  for _, r in ipairs(results) do
    if not (r[2] <= 1) then bad[#bad + 1] = ("%s %.3g"):format(r[1], r[2]) end
    if r[2] > max_ratio then max_ratio, max_what = r[2], r[1] end
  end
  if #bad > 0 then
    error(("resnet20_%s: %d tensors outside the tolerance (error / allowance): %s"):format(variant, #bad,
      table.concat(bad, ", ")))
  end
  return max_ratio, max_what
end

function T.resnet20_bn_matches_pytorch() return compare("bn") end
function T.resnet20_none_matches_pytorch() return compare("none") end

function T.resnet_parameter_counts_match_pytorch()
  local lines = read_lines(FIXTURES .. "/resnet_param_counts.txt")
  check.eq(#lines, 18, "lines in resnet_param_counts.txt")
  for _, line in ipairs(lines) do
    local depth, norm, shortcut, count = line:match("^(%d+) (%a+) (%a) (%d+)$")
    local net = bn.models.resnet{ depth = tonumber(depth), norm = norm, shortcut = shortcut }
    check.eq(net:num_parameters(), math.tointeger(tonumber(count)), line)
  end
  -- The published sizes: 0.27M (ResNet-20), 1.7M (ResNet-110).
  check.eq(bn.models.resnet{ depth = 20 }:num_parameters(), 269722)
  check.eq(math.floor(bn.models.resnet{ depth = 110 }:num_parameters() / 1e5 + 0.5), 17)
end

function T.resnet_structure_and_names()
  local net = bn.models.resnet{ depth = 32, norm = "last", width = 8, classes = 7, in_channels = 1 }
  local top = {}
  for i, e in ipairs(net:children()) do top[i] = e[1] end
  check.eq(top, { "conv1", "relu", "stage1", "stage2", "stage3", "last_bn", "pool", "flatten", "fc" })
  check.eq(#net:named_modules("BatchNorm2d"), 1, "norm = last keeps one BN")
  check.eq(#net.stage2:children(), 5, "blocks per stage")
  check.truthy(net:submodule("stage3.block5.conv2"), "stage3.block5.conv2 exists")
  check.eq(net.stage3.block1.conv1.weight:shape(), { 32, 16, 3, 3 })
  check.eq(net.fc.weight:shape(), { 7, 32 })
  local y = net(bn.randn(2, 1, 12, 12))
  check.eq(y:shape(), { 2, 7 })
  check.eq(#bn.models.resnet{ depth = 20, norm = "none" }:named_modules("BatchNorm2d"), 0)
  check.eq(#bn.models.resnet{ depth = 20 }:named_modules("BatchNorm2d"), 19)
  -- option B: 1x1 conv + BN on the two downsampling blocks
  local b = bn.models.resnet{ depth = 20, shortcut = "B" }
  check.eq(b.stage2.block1.shortcut.conv.weight:shape(), { 32, 16, 1, 1 })
  check.eq(b(bn.randn(2, 3, 8, 8)):shape(), { 2, 10 })
  check.eq(net.depth, 32)
  check.eq(net.norm, "last")
end

function T.resnet_conv_layers_in_depth_order()
  -- ResNet-110: 109 convolutions + fc = 110 weight layers, in forward order.
  local net = bn.models.resnet{ depth = 110, norm = "none" }
  local layers = net:named_modules{ "Conv2d", "Linear" }
  check.eq(#layers, 110)
  check.eq(layers[1][1], "conv1")
  check.eq(layers[2][1], "stage1.block1.conv1")
  check.eq(layers[110][1], "fc")
end

function T.resnet_options_are_checked()
  check.raises(function() bn.models.resnet{ depth = 21 } end, "6n + 2")
  check.raises(function() bn.models.resnet{ norm = "batch" } end, "option 'norm' expected one of 'bn', 'none', 'last'")
  check.raises(function() bn.models.resnet{ dpeth = 20 } end, "unknown option 'dpeth'")
  check.raises(function() bn.models.resnet{ shortcut = "C" } end, "option 'shortcut'")
  check.raises(function() bn.models.resnet{ init = "lecun" } end, "scheme expected")
end

function T.resnet_default_init_is_kaiming_fan_out()
  local net = bn.models.resnet{ depth = 20, seed = 3 }
  -- fan_out of a 64 -> 64 3x3 conv: 64 * 9; std sqrt(2 / 576)
  local w = net.stage3.block2.conv1.weight
  check.near(w:std():item(), math.sqrt(2 / 576), 0.01 * math.sqrt(2 / 576) * 10, "conv std")
  check.near(net.bn1.weight:mean():item(), 1, 0)
  check.near(net.bn1.bias:abs():max():item(), 0, 0)
  -- fc keeps PyTorch's Linear default: uniform in +-1/sqrt(64)
  check.truthy(net.fc.weight:abs():max():item() <= 1 / 8, "fc bound")
  -- zero_init_residual: every block starts as its shortcut
  local z = bn.models.resnet{ depth = 20, zero_init_residual = true }
  check.near(z.stage2.block3.bn2.weight:abs():max():item(), 0, 0)
  local zn = bn.models.resnet{ depth = 20, norm = "none", zero_init_residual = true }
  check.near(zn.stage1.block1.conv2.weight:abs():max():item(), 0, 0)
end

function T.resnet_seed_is_deterministic()
  local a = bn.models.resnet{ depth = 20, seed = 11 }
  local b = bn.models.resnet{ depth = 20, seed = 11 }
  local c = bn.models.resnet{ depth = 20, seed = 12 }
  local sa, sb, sc = a:state(), b:state(), c:state()
  for name, t in pairs(sa) do check.truthy(bn.equal(t, sb[name]), name .. " equal for one seed") end
  check.truthy(not bn.equal(sa["stage1.block1.conv1.weight"], sc["stage1.block1.conv1.weight"]), "seeds differ")
end

function T.resnet_init_schemes()
  local o = bn.models.resnet{ depth = 20, init = "orthogonal", seed = 1 }
  local w = o.stage3.block2.conv2.weight:view(64, -1)
  check.truthy(bn.allclose(bn.matmul(w, w:t()), bn.eye(64), 0, 1e-4), "orthogonal rows")
  local x = bn.models.resnet{ depth = 20, init = { "kaiming_normal", mode = "fan_in" }, seed = 1 }
  check.near(x.stage3.block2.conv1.weight:std():item(), math.sqrt(2 / 576), 0.1)
  local seen = 0
  bn.models.resnet{ depth = 20, init = function(m, path)
    check.eq(m:typename(), "Conv2d", path)
    seen = seen + 1
  end }
  check.eq(seen, 19, "init function called per conv")
end

function T.mlp_builds_and_runs()
  local net = bn.models.mlp{ sizes = { 784, 256, 128, 10 }, norm = "bn", seed = 1 }
  local names = {}
  for i, e in ipairs(net:children()) do names[i] = e[1] end
  check.eq(names, { "flatten", "fc1", "bn1", "act1", "fc2", "bn2", "act2", "fc3" })
  check.eq(net.fc1.bias, nil, "no bias before BN")
  check.eq(net(bn.randn(5, 1, 28, 28)):shape(), { 5, 10 })
  check.eq(net:num_parameters(), 784 * 256 + 2 * 256 + 256 * 128 + 2 * 128 + 128 * 10 + 10)
  local plain = bn.models.mlp{ sizes = { 20, 30, 3 }, norm = "none", activation = "tanh" }
  check.eq(plain:num_parameters(), 20 * 30 + 30 + 30 * 3 + 3)
  check.eq(plain.act1:typename(), "Tanh")
  check.raises(function() bn.models.mlp{ sizes = { 10 } } end, "at least 2")
  check.raises(function() bn.models.mlp{ activation = "gelu" } end, "option 'activation'")
end

function T.cnn_builds_and_runs()
  local net = bn.models.cnn{ seed = 1 }
  local names = {}
  for i, e in ipairs(net:children()) do names[i] = e[1] end
  check.eq(names, { "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2", "flatten",
    "hidden", "bn3", "relu3", "fc" })
  check.eq(net(bn.randn(3, 1, 28, 28)):shape(), { 3, 10 })
  check.eq(net.hidden.weight:shape(), { 128, 64 * 7 * 7 })
  check.eq(net.conv1.bias, nil)
  check.eq(net.hidden.bias, nil)
  check.eq(net:num_parameters(), 288 + 64 + 18432 + 128 + 3136 * 128 + 256 + 1290)
  local c = bn.models.cnn{ in_channels = 3, input_size = 32, width = 8, norm = "none", classes = 4, hidden = 0 }
  check.eq(c(bn.randn(2, 3, 32, 32)):shape(), { 2, 4 })
  check.eq(#c:named_modules{ "BatchNorm2d", "BatchNorm1d" }, 0)
  check.eq(c.hidden, nil)
  check.eq(c.fc.weight:shape(), { 4, 16 * 8 * 8 })
  check.truthy(c.conv1.bias, "bias without BN")
end

return T
