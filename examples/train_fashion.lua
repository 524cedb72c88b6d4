-- Train a network on Fashion-MNIST (or CIFAR-10) and write its log,
-- checkpoint and history. The commands behind docs/training.md.
--   bnlab examples/train_fashion.lua --model cnn --epochs 3
--   bnlab examples/train_fashion.lua --model resnet --depth 20 --norm bn --lr 0.1 --augment --epochs 30
local bn = require "bnlab"

local o = bn.args({
  model = { "cnn", "cnn | resnet | mlp" },
  depth = { 20, "ResNet depth (6n+2)" },
  norm = { "bn", "bn | none | last" },
  lr = { 0.05, "initial learning rate" },
  momentum = { 0.9, "SGD momentum" },
  weight_decay = { 1e-4, "SGD weight decay" },
  epochs = { 3, "training epochs" },
  batch_size = { 128, "mini-batch size" },
  schedule = { "cosine", "cosine | step | plateau | none" },
  augment = { false, "4-pixel pad + random crop + horizontal flip" },
  dataset = { "fashion_mnist", "fashion_mnist | mnist | cifar10" },
  data = { "", "data directory (default: the Debian package / BNLAB_DATA)" },
  seed = { 1, "random seed (init, data order, augmentation)" },
  out = { "results/train", "output directory" },
  resume = { false, "continue from OUT/run.ckpt if present" },
}, "Train one network and record its history.")

bn.manual_seed(o.seed)
bn.mkdir(o.out)
local train, test = bn.data[o.dataset]{ dir = o.data ~= "" and o.data or nil, normalize = true }
local c = train.shape[1]
local net
if o.model == "resnet" then
  net = bn.models.resnet{ depth = o.depth, norm = o.norm, in_channels = c, classes = train.classes, seed = o.seed }
elseif o.model == "mlp" then
  net = bn.models.mlp{ sizes = { train.shape[1] * train.shape[2] * train.shape[3], 256, 256, train.classes }, norm = o.norm }
else
  net = bn.models.cnn{ in_channels = c, classes = train.classes, norm = o.norm, input_size = train.shape[2] }
end
print(("%s, %d parameters, %d training images"):format(o.model, net:num_parameters(), train.n))

local opt = bn.optim.SGD(net, { lr = o.lr, momentum = o.momentum, weight_decay = o.weight_decay })
local schedule
if o.schedule == "cosine" then
  schedule = bn.optim.schedule.cosine(opt, { T_max = o.epochs })
elseif o.schedule == "step" then
  schedule = bn.optim.schedule.multistep(opt, { milestones = { o.epochs // 2, o.epochs * 3 // 4 }, gamma = 0.1 })
elseif o.schedule == "plateau" then
  schedule = bn.optim.schedule.plateau(opt, { factor = 0.1, patience = 3 })
end

local t0 = bn.clock()
local h = bn.train.fit{
  model = net, data = { train = train, test = test }, optimizer = opt, schedule = schedule,
  epochs = o.epochs, batch_size = o.batch_size, seed = o.seed,
  augment = o.augment and { crop = 4, flip = true } or nil,
  log = o.out .. "/run.csv", checkpoint = o.out .. "/run.ckpt", resume = o.resume,
}
local summary = {
  model = o.model, depth = o.depth, norm = o.norm, lr = o.lr, epochs = o.epochs, augment = o.augment,
  diverged = h.diverged, diverged_step = h.diverged_step, final_test_acc = h.final.test_acc,
  best_test_acc = h.best_test_acc, seconds = bn.clock() - t0,
}
bn.write_file(o.out .. "/summary.lua", "return " .. require("bnlab.serialize").encode(summary) .. "\n")
if h.diverged then
  print(("diverged at step %d (loss %s)"):format(h.diverged_step, tostring(h.diverged_loss)))
else
  print(("final test accuracy %.2f%% (best %.2f%%) in %.0f s"):format(100 * h.final.test_acc,
    100 * h.best_test_acc, bn.clock() - t0))
end
