-- bn.models: the networks of the experiments (docs/nn.md#models).
--
--   bn.models.resnet{ depth = 56, norm = "none" }   He et al. (2016) CIFAR ResNets
--   bn.models.mlp{ sizes = {784, 256, 10} }          fully connected
--   bn.models.cnn{ in_channels = 1 }                 two conv layers, for fast runs
--
-- Each returns a bn.nn.Module (a Sequential with named children) whose
-- options are kept as fields (net.depth, net.norm, ...). A misspelt option
-- is an error.
local bn = require "bnlab"
local nn = require "bnlab.nn"
local util = require "bnlab.nn.util"
local init = require "bnlab.initializers"

local models = {}

local function seed(opts, where)
  if opts.seed ~= nil then bn.manual_seed(util.integer(opts.seed, where, "option 'seed'", 0)) end
end

-- ---- ResNet ----------------------------------------------------------------------

local ResNet = nn.class("ResNet", nn.Sequential)
models.ResNet = ResNet

function ResNet:config()
  return ("depth %d, norm %s, width %d, shortcut %s, %d -> %d classes"):format(self.depth, self.norm,
    self.width, self.shortcut, self.in_channels, self.classes)
end

local RESNET_OPTIONS = util.set {
  "depth", "norm", "width", "classes", "in_channels", "shortcut", "init", "seed", "zero_init_residual",
}

--- resnet{ depth = 20, norm = "bn" | "none" | "last", width = 16, classes = 10,
-- in_channels = 3, shortcut = "A" | "B", init = "kaiming_normal", seed = nil,
-- zero_init_residual = false }
--
-- depth = 6n + 2: a 3x3 stem conv (+ bn1 + relu), three stages of n
-- BasicBlocks with width, 2 width, 4 width channels (stage2 and stage3 start
-- with stride 2), global average pooling and a linear classifier fc.
-- Children: conv1, bn1, relu, stage1..stage3 (blocks block1..blockn),
-- [last_bn], pool, flatten, fc. norm = "none" removes every BN layer (convs
-- stay without bias); norm = "last" is "none" plus one BatchNorm2d, last_bn,
-- after the last block. init applies to every conv weight (bn.init.apply;
-- a bare name uses mode = "fan_out", nonlinearity = "relu"); BN layers start
-- at weight 1, bias 0 and fc keeps PyTorch's Linear default.
-- zero_init_residual = true zeroes each block's last BN weight (conv2's
-- weight without BN), so every block starts as its shortcut.
function models.resnet(opts)
  local where = "bn.models.resnet"
  opts = util.options(opts, where, RESNET_OPTIONS)
  local depth = util.integer(opts.depth or 20, where, "option 'depth'", 8)
  if (depth - 2) % 6 ~= 0 then
    util.fail(where, ("option 'depth' expected 6n + 2 (20, 32, 44, 56, 110, ...), got %d"):format(depth))
  end
  local norm = util.choice(opts.norm or "bn", where, "option 'norm'", { "bn", "none", "last" })
  local width = util.integer(opts.width or 16, where, "option 'width'", 1)
  local classes = util.integer(opts.classes or 10, where, "option 'classes'", 1)
  local cin = util.integer(opts.in_channels or 3, where, "option 'in_channels'", 1)
  local shortcut = util.choice(opts.shortcut or "A", where, "option 'shortcut'", { "A", "B" })
  local zero_res = opts.zero_init_residual or false
  util.boolean(zero_res, where, "option 'zero_init_residual'")
  seed(opts, where)

  local n = (depth - 2) // 6
  local block_norm = norm == "bn" and "bn" or "none"
  local net = ResNet()
  net.depth, net.norm, net.width, net.classes, net.in_channels, net.shortcut = depth, norm, width, classes, cin, shortcut
  net:add(nn.Conv2d{ cin, width, 3, stride = 1, padding = 1, bias = false }, "conv1")
  if norm == "bn" then net:add(nn.BatchNorm2d(width), "bn1") end
  net:add(nn.ReLU(), "relu")
  local channels = width
  for s = 1, 3 do
    local out = width << (s - 1)
    local stage = nn.Sequential()
    for b = 1, n do
      local stride = (s > 1 and b == 1) and 2 or 1
      stage:add(nn.BasicBlock(channels, out, stride, { shortcut = shortcut, norm = block_norm }), "block" .. b)
      channels = out
    end
    net:add(stage, "stage" .. s)
  end
  if norm == "last" then net:add(nn.BatchNorm2d(channels), "last_bn") end
  net:add(nn.AdaptiveAvgPool2d(1), "pool")
  net:add(nn.Flatten(), "flatten")
  net:add(nn.Linear(channels, classes), "fc")

  init.apply(net, opts.init or "kaiming_normal", {
    types = { "Conv2d" }, defaults = { mode = "fan_out", nonlinearity = "relu" },
  })
  if zero_res then
    for _, e in ipairs(net:named_modules("BasicBlock")) do
      local blk = e[2]
      init.zeros(blk.bn2 and blk.bn2.weight or blk.conv2.weight)
    end
  end
  return net
end

-- ---- MLP ---------------------------------------------------------------------------

local MLP_OPTIONS = util.set { "sizes", "norm", "activation", "init", "seed" }

--- mlp{ sizes = {784, 256, 10}, norm = "bn" | "none", activation = "relu" |
-- "tanh", init = "kaiming_normal", seed = nil }
--
-- Children: flatten (so [N x 1 x 28 x 28] images work), then per hidden
-- layer k: fck, [bnk (BatchNorm1d)], relu k / tanh k (named "act" .. k), and the
-- last fcK. Linear layers followed by BN have no bias. init applies to every
-- Linear weight; a bare name uses mode = "fan_in" and the activation's gain.
function models.mlp(opts)
  local where = "bn.models.mlp"
  opts = util.options(opts, where, MLP_OPTIONS)
  local sizes = opts.sizes or { 784, 256, 10 }
  if type(sizes) ~= "table" or #sizes < 2 then
    util.fail(where, ("option 'sizes' expected a list of at least 2 layer sizes, got %s"):format(util.show(sizes)))
  end
  for i, v in ipairs(sizes) do util.integer(v, where, ("option 'sizes'[%d]"):format(i), 1) end
  local norm = util.choice(opts.norm or "bn", where, "option 'norm'", { "bn", "none" })
  local activation = util.choice(opts.activation or "relu", where, "option 'activation'", { "relu", "tanh" })
  seed(opts, where)

  local net = nn.Sequential()
  net.sizes, net.norm, net.activation = sizes, norm, activation
  net:add(nn.Flatten(), "flatten")
  for k = 1, #sizes - 1 do
    local last = k == #sizes - 1
    local use_bn = norm == "bn" and not last
    net:add(nn.Linear(sizes[k], sizes[k + 1], { bias = not use_bn }), "fc" .. k)
    if not last then
      if use_bn then net:add(nn.BatchNorm1d(sizes[k + 1]), "bn" .. k) end
      net:add(activation == "relu" and nn.ReLU() or nn.Tanh(), "act" .. k)
    end
  end
  init.apply(net, opts.init or "kaiming_normal", {
    types = { "Linear" }, defaults = { mode = "fan_in", nonlinearity = activation },
  })
  return net
end

-- ---- small CNN ---------------------------------------------------------------------

local CNN_OPTIONS = util.set { "in_channels", "classes", "norm", "width", "hidden", "input_size", "init", "seed" }

--- cnn{ in_channels = 1, classes = 10, norm = "bn" | "none", width = 32,
-- hidden = 128, input_size = 28, init = "kaiming_normal", seed = nil }
--
-- conv1 (3x3, width) - [bn1] - relu1 - pool1 (max 2) - conv2 (3x3, 2 width) -
-- [bn2] - relu2 - pool2 - flatten - hidden (Linear to `hidden` units) -
-- [bn3] - relu3 - fc; hidden = 0 leaves out hidden, bn3 and relu3. About 9
-- MFLOP per 28x28 image at the defaults. Layers followed by BN have no bias.
-- input_size (the image side) sizes the first Linear. init applies to the
-- convs, as in resnet; the Linear layers keep PyTorch's default.
-- The hidden layer makes it quick to train: with BN, SGD (momentum 0.9,
-- lr 0.05, cosine, batch 128) reached 92.0% on Fashion-MNIST after 3 epochs
-- (88.3% without the hidden layer); docs/nn.md has the details.
function models.cnn(opts)
  local where = "bn.models.cnn"
  opts = util.options(opts, where, CNN_OPTIONS)
  local cin = util.integer(opts.in_channels or 1, where, "option 'in_channels'", 1)
  local classes = util.integer(opts.classes or 10, where, "option 'classes'", 1)
  local norm = util.choice(opts.norm or "bn", where, "option 'norm'", { "bn", "none" })
  local width = util.integer(opts.width or 32, where, "option 'width'", 1)
  local hidden = util.integer(opts.hidden or 128, where, "option 'hidden'", 0)
  local size = util.integer(opts.input_size or 28, where, "option 'input_size'", 4)
  seed(opts, where)

  local use_bn = norm == "bn"
  local net = nn.Sequential()
  net.in_channels, net.classes, net.norm, net.width, net.hidden_units, net.input_size = cin, classes, norm, width, hidden, size
  local c = cin
  for k = 1, 2 do
    local out = width * k
    net:add(nn.Conv2d{ c, out, 3, padding = 1, bias = not use_bn }, "conv" .. k)
    if use_bn then net:add(nn.BatchNorm2d(out), "bn" .. k) end
    net:add(nn.ReLU(), "relu" .. k)
    net:add(nn.MaxPool2d(2), "pool" .. k)
    c = out
  end
  local side = size // 4
  net:add(nn.Flatten(), "flatten")
  local features = c * side * side
  if hidden > 0 then
    net:add(nn.Linear(features, hidden, { bias = not use_bn }), "hidden")
    if use_bn then net:add(nn.BatchNorm1d(hidden), "bn3") end
    net:add(nn.ReLU(), "relu3")
    features = hidden
  end
  net:add(nn.Linear(features, classes), "fc")
  init.apply(net, opts.init or "kaiming_normal", {
    types = { "Conv2d" }, defaults = { mode = "fan_out", nonlinearity = "relu" },
  })
  return net
end

return models
