-- A small, complete training run for tests/lua/test_faults.lua: synthetic
-- 8x8 images (bn.data.blobs), a conv + BN + dropout model, several short
-- epochs with a CSV log and a checkpoint in --dir. It prints "step N" to
-- stderr after every step (the tests signal it at a chosen step) and, once
-- fit returns, writes the final weights (final.safetensors) and the loss of
-- every step (losses.txt, %a: exact) for comparison between runs. --step-ms
-- slows it down (the results do not change) so that a signal sent a few
-- milliseconds after "step N" still finds it training.
local bn = require "bnlab"
local opts = bn.args({
  dir = { "", "directory of run.ckpt, run.csv and the results" },
  epochs = { 4, "epochs" },
  resume = { false, "continue from run.ckpt" },
  checkpoint = { true, "write run.ckpt (--no-checkpoint: none)" },
  every = { 0, "checkpoint_every (0: once per epoch)" },
  n = { 480, "examples (80 of them are the test set)" },
  width = { 8, "conv channels" },
  seed = { 7, "bn.manual_seed (initial weights, dropout)" },
  step_ms = { 0, "sleep this long after every step (the tests' signals then land mid-run)" },
}, "A tiny training run with a checkpoint, for the fault tests.")
assert(opts.dir ~= "", "--dir is required")

bn.manual_seed(opts.seed)
local all = bn.data.blobs{ n = opts.n, classes = 4, shape = { 1, 8, 8 }, separation = 0.6, seed = 3 }
local train, test = all:split{ validation = 80, seed = 1 }
local nn = bn.nn
local net = nn.Sequential()
net:add(nn.Conv2d{ 1, opts.width, 3, padding = 1, bias = false }, "conv")
net:add(nn.BatchNorm2d(opts.width), "bn")
net:add(nn.ReLU(), "relu")
net:add(nn.MaxPool2d(2), "pool")
net:add(nn.Flatten(), "flatten")
net:add(nn.Dropout(0.2), "drop")
net:add(nn.Linear(opts.width * 16, 4), "fc")
local opt = bn.optim.SGD(net:parameters(), { lr = 0.05, momentum = 0.9, weight_decay = 1e-4 })

-- A sleep that does not burn a core when the library has one (bnlab.process,
-- for sweeps); a busy wait otherwise.
local has_process, process = pcall(require, "bnlab.process")
local sleep = has_process and type(process) == "table" and process.sleep or nil

local history = bn.train.fit{
  model = net, data = { train = train, test = test }, optimizer = opt, epochs = opts.epochs,
  batch_size = 16, seed = 5, quiet = true,
  log = opts.dir .. "/run.csv", checkpoint = opts.checkpoint and opts.dir .. "/run.ckpt" or nil, resume = opts.resume,
  checkpoint_every = opts.every > 0 and opts.every or nil,
  on_step = function(s)
    io.stderr:write("step ", s.global_step, "\n")
    if opts.step_ms > 0 then
      if sleep then
        sleep(opts.step_ms / 1000)
      else
        local t = bn.clock() + opts.step_ms / 1000
        while bn.clock() < t do end
      end
    end
  end,
}

local weights = {}
for name, t in pairs(net:state()) do weights[name] = t end
bn.save_safetensors(opts.dir .. "/final.safetensors", weights)
local lines = {}
for i, l in ipairs(history.step_loss) do lines[i] = ("%a"):format(l) end
bn.write_file(opts.dir .. "/losses.txt", table.concat(lines, "\n") .. "\n")
print(("done: %d steps, test acc %.4f"):format(#history.step_loss, history.final.test_acc))
