-- One case of the bnlab / PyTorch comparison (bench/compare.lua), bnlab side.
-- bench/step_bench.py is the PyTorch side with the same options and output.
--
--   bnlab bench/step_bench.lua --model resnet --depth 56 --norm bn --threads 2 \
--         --mode train --steps 10 --warmup 2
--
-- A training step is zero_grad + forward + cross-entropy + backward + SGD
-- (lr 0.1, momentum 0.9, weight decay 1e-4), on one fixed random batch (no
-- data loading); an inference step is a forward in eval mode without
-- recording a graph. Prints one line of JSON on stdout: the time of every
-- timed step (ms), the model's FLOPs per step, the peak and the starting
-- resident set size. --profile also prints the per-op table of the timed
-- steps on stderr (bn.profile_report, docs/performance.md).
local bn = require "bnlab"
local json = require "bnlab.json"

local opts = bn.args({
  model   = { "resnet", "resnet (CIFAR, 3x32x32) or cnn (bn.models.cnn, 1x28x28)" },
  depth   = { 20, "ResNet depth (6n + 2)" },
  norm    = { "bn", "bn or none" },
  threads = { 1, "threads (bn.num_threads: OpenMP and OpenBLAS)" },
  mode    = { "train", "train or infer" },
  steps   = { 10, "timed steps" },
  warmup  = { 2, "untimed steps first" },
  batch   = { 128, "batch size" },
  seed    = { 0, "seed of the weights and the batch" },
  profile = { false, "print the per-op profile of the timed steps on stderr" },
}, "bnlab side of bench/compare.lua: times training or inference steps of one model.")

local function fail(msg)
  io.stderr:write("step_bench.lua: ", msg, "\n")
  os.exit(2)
end
if opts.model ~= "resnet" and opts.model ~= "cnn" then fail("--model expects resnet or cnn") end
if opts.norm ~= "bn" and opts.norm ~= "none" then fail("--norm expects bn or none") end
if opts.mode ~= "train" and opts.mode ~= "infer" then fail("--mode expects train or infer") end
if opts.steps < 1 or opts.warmup < 0 or opts.batch < 1 or opts.threads < 1 then
  fail("--steps, --batch and --threads must be >= 1, --warmup >= 0")
end

-- Resident set size now and at its peak, in MiB (the kernel's VmRSS and VmHWM,
-- what getrusage's ru_maxrss reports as the peak).
local function rss_mb()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil, nil end
  local text = f:read("a")
  f:close()
  local now, peak = text:match("VmRSS:%s*(%d+)"), text:match("VmHWM:%s*(%d+)")
  return now and tonumber(now) / 1024, peak and tonumber(peak) / 1024
end

bn.num_threads(opts.threads)
local base_rss = rss_mb()
bn.manual_seed(opts.seed)
local net, x
if opts.model == "resnet" then
  net = bn.models.resnet { depth = opts.depth, norm = opts.norm }
  x = bn.randn(opts.batch, 3, 32, 32)
else
  net = bn.models.cnn { norm = opts.norm }
  x = bn.randn(opts.batch, 1, 28, 28)
end
local labels = {}
for i = 1, opts.batch do labels[i] = (i * 7) % 10 + 1 end

-- FLOPs of the conv and linear layers (2 per multiply-add; bias, BN, ReLU,
-- pooling and the loss are not counted), from one recorded forward: each
-- layer's forward is 2 * N * O * C/groups * kh * kw * OH * OW (linear:
-- 2 * N * in * out). A training step adds the weight gradient (the same
-- again) and the input gradient (the same again) except where the input
-- needs no gradient (the first conv, whose input is the data). The same
-- rule is in step_bench.py; compare.lua checks that both agree.
local function count_flops(model, input)
  local fwd, bwd = 0, 0
  local patched = {}
  for _, e in ipairs(model:named_modules()) do
    local m = e[2]
    local kind = m:typename()
    if kind == "Conv2d" or kind == "Linear" then
      patched[#patched + 1] = m
      m.forward = function(self, inp)
        local out = getmetatable(self).forward(self, inp)
        local f
        if kind == "Conv2d" then
          local w = self.weight
          f = 2 * out:size(1) * w:size(1) * w:size(2) * w:size(3) * w:size(4) * out:size(3) * out:size(4)
        else
          f = 2 * inp:size(1) * self.in_features * self.out_features
        end
        fwd = fwd + f
        bwd = bwd + f + (inp:requires_grad() and f or 0)
        return out
      end
    end
  end
  -- Recorded (the input-gradient rule needs requires_grad), never backpropagated.
  model(input)
  for _, m in ipairs(patched) do m.forward = nil end
  return fwd, fwd + bwd
end
local fwd_flops, train_flops = count_flops(net, x)

local step
if opts.mode == "train" then
  net:train()
  local opt = bn.optim.SGD(net:parameters(), { lr = 0.1, momentum = 0.9, weight_decay = 1e-4 })
  step = function()
    opt:zero_grad()
    local loss = bn.cross_entropy(net(x), labels)
    loss:backward()
    opt:step()
  end
else
  net:eval()
  step = function()
    bn.no_grad(function() return net(x) end)
  end
end

for _ = 1, opts.warmup do step() end
if opts.profile then bn.profile_start() end
local times = {}
for i = 1, opts.steps do
  local t0 = bn.clock()
  step()
  times[i] = (bn.clock() - t0) * 1e3
end
if opts.profile then
  bn.profile_stop()
  io.stderr:write(bn.profile_report())
end
local _, peak_rss = rss_mb()

io.write(json.encode {
  impl = "bnlab",
  version = bn.build and bn.build.version or "?",
  blas = bn.blas_version(),
  model = opts.model,
  depth = opts.model == "resnet" and opts.depth or 0,
  norm = opts.norm,
  threads = bn.num_threads(),
  mode = opts.mode,
  batch = opts.batch,
  steps = opts.steps,
  warmup = opts.warmup,
  times_ms = times,
  flops_per_step = opts.mode == "train" and train_flops or fwd_flops,
  forward_flops = fwd_flops,
  base_rss_mb = base_rss,
  peak_rss_mb = peak_rss,
}, "\n")
