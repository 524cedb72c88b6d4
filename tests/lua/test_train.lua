-- bn.train: fit on tiny synthetic data — determinism, resume equivalence,
-- divergence as a result, checkpoints, the CSV log, evaluate.
local bn = require "bnlab"
local check = require "check"

local T = {}

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d))
  return d
end

local function setup(seed)
  bn.manual_seed(seed or 7)
  local all = bn.data.blobs{ n = 240, classes = 3, dim = 6, separation = 2, seed = 3 }
  local tr, te = all:split{ validation = 60, seed = 1 }
  local net = bn.models.mlp{ sizes = { 6, 16, 3 }, norm = "bn" }
  local opt = bn.optim.SGD(net:parameters(), { lr = 0.1, momentum = 0.9, weight_decay = 1e-4 })
  return net, opt, tr, te
end

local function fit(net, opt, tr, te, extra)
  local o = { model = net, data = { train = tr, test = te }, optimizer = opt, epochs = 3, batch_size = 32,
              quiet = true, seed = 5 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return bn.train.fit(o)
end

function T.fit_learns_and_reports_history()
  local net, opt, tr, te = setup()
  local h = fit(net, opt, tr, te, { epochs = 4 })
  check.eq(#h.epochs, 4)
  check.eq(h.diverged, false)
  local e = h.final
  for _, key in ipairs{ "train_loss", "train_acc", "test_loss", "test_acc", "lr", "time", "images_per_s" } do
    check.truthy(e[key] ~= nil, "epoch record has " .. key)
  end
  check.truthy(h.epochs[4].train_loss < h.epochs[1].train_loss, "train loss decreases")
  check.truthy(e.test_acc > 0.8, "separable blobs are learnt (test acc " .. e.test_acc .. ")")
  check.eq(#h.step_loss, 4 * math.ceil(tr.n / 32))
  local loss, acc = bn.train.evaluate(net, te)
  check.near(loss, e.test_loss, 1e-6)
  check.near(acc, e.test_acc, 1e-12)
end

function T.same_seed_gives_identical_loss_sequence()
  local a = fit(setup(11))
  local b = fit(setup(11))
  check.eq(#a.step_loss, #b.step_loss)
  for i = 1, #a.step_loss do check.eq(a.step_loss[i], b.step_loss[i]) end
end

function T.resume_reproduces_an_uninterrupted_run()
  local dir = tmpdir()
  local net1, opt1, tr, te = setup(21)
  local full = fit(net1, opt1, tr, te, { epochs = 3 })
  -- The same run killed after epoch 2 (simulated: it stops there), then resumed.
  local ckpt = dir .. "/run.ckpt"
  local net2, opt2 = setup(21)
  fit(net2, opt2, tr, te, { epochs = 2, checkpoint = ckpt })
  local net3, opt3 = setup(99) -- a fresh process: different initial weights
  local resumed = fit(net3, opt3, tr, te, { epochs = 3, checkpoint = ckpt, resume = true })
  check.eq(#resumed.step_loss, #full.step_loss)
  for i = 1, #full.step_loss do check.eq(resumed.step_loss[i], full.step_loss[i]) end
  local p1, p3 = net1:parameters(), net3:parameters()
  for i = 1, #p1 do check.truthy(bn.equal(p1[i], p3[i]), "parameter " .. i .. " identical after resume") end
  check.eq(resumed.final.test_acc, full.final.test_acc)
  os.execute("rm -rf " .. dir)
end

function T.divergence_is_a_result()
  local net, _, tr, te = setup(3)
  local opt = bn.optim.SGD(net:parameters(), { lr = 1e6 })
  local h = fit(net, opt, tr, te, { epochs = 3 })
  check.eq(h.diverged, true)
  check.truthy(h.diverged_step >= 2, "diverges after at least one update")
  check.eq(h.diverged_epoch, 1)
  check.eq(#h.epochs, 1)
  check.truthy(h.final.diverged)
end

function T.collapse_to_chance_is_reported_not_stopped()
  local net, opt, tr, te = setup()
  local h = fit(net, opt, tr, te, { epochs = 2 })
  check.eq(h.collapsed, false, "a network that learns is not at chance")
  check.eq(h.final.at_chance, false)
  -- A network whose output ignores its input (all weights zero: constant logits, one class
  -- for every example) is at chance; lr 0 keeps it there, and fit runs every epoch.
  local dead = bn.models.mlp{ sizes = { 6, 16, 3 }, norm = "none" }
  bn.no_grad(function() for _, p in ipairs(dead:parameters()) do p:fill(0) end end)
  local still = bn.optim.SGD(dead:parameters(), { lr = 0 })
  h = fit(dead, still, tr, te, { epochs = 2 })
  check.eq(#h.epochs, 2, "collapse does not stop the run")
  check.eq(h.diverged, false)
  check.truthy(h.final.test_acc <= 1.5 / 3, "constant answer: accuracy of one class (" .. h.final.test_acc .. ")")
  check.eq(h.collapsed, true)
  check.eq(h.epochs[1].at_chance, true)
end

function T.log_and_checkpoint_files()
  local dir = tmpdir()
  local net, opt, tr, te = setup(4)
  fit(net, opt, tr, te, { epochs = 2, log = dir .. "/run.csv", checkpoint = dir .. "/run.ckpt" })
  local lines = {}
  for line in io.lines(dir .. "/run.csv") do lines[#lines + 1] = line end
  check.eq(lines[1], "epoch,train_loss,train_acc,test_loss,test_acc,lr,time,images_per_s")
  check.eq(#lines, 3)
  check.truthy(lines[3]:match("^2,"), "second epoch row")
  local state = bn.train.load_checkpoint(dir .. "/run.ckpt")
  check.eq(state.epoch, 2)
  check.eq(#state.history.epochs, 2)
  check.truthy(bn.is_tensor(state.model["layers.1.weight"] or select(2, next(state.model))), "model tensors")
  -- no temporary files are left behind
  local p = io.popen("ls " .. dir)
  local listing = p:read("a")
  p:close()
  check.eq(listing, "run.ckpt\nrun.csv\n")
  os.execute("rm -rf " .. dir)
end

function T.checkpoint_round_trip_keeps_values_exactly()
  local dir = tmpdir()
  local state = { w = bn.randn(3, 4), nested = { b = bn.ones(2), n = 3, x = 0.1, s = "a", f = false },
                  list = { 1, 2.5, 0 / 0 } }
  bn.train.save_checkpoint(dir .. "/c", state)
  local back = bn.train.load_checkpoint(dir .. "/c")
  check.truthy(bn.equal(back.w, state.w))
  check.truthy(bn.equal(back.nested.b, state.nested.b))
  check.eq(back.nested.n, 3)
  check.eq(math.type(back.nested.n), "integer")
  check.eq(back.nested.x, 0.1)
  check.eq(back.nested.f, false)
  check.truthy(back.list[3] ~= back.list[3], "NaN survives")
  bn.save(bn.ones(2), dir .. "/not_ckpt.npy")
  check.raises(function() bn.train.load_checkpoint(dir .. "/not_ckpt.npy") end, "bn.load_safetensors")
  os.execute("rm -rf " .. dir)
end

function T.fit_rejects_bad_options()
  local net, opt, tr = setup(1)
  check.raises(function() bn.train.fit{ model = net, data = tr, optimizer = opt, epochs = 0 } end,
    "option 'epochs' expected a positive integer")
  check.raises(function() bn.train.fit{ model = net, data = tr, optimizer = opt, epochs = 1, epoch = 2 } end,
    "unknown option 'epoch'")
  check.raises(function() bn.train.fit{ model = net, data = 3, optimizer = opt, epochs = 1 } end,
    "option 'data' expected")
end

return T
