-- bnlab.experiment.training: learning-rate sweeps of full training runs, for the
-- experiments that train (E1 lr_sweep, E7 bn_last_layer). One call runs the grid
-- norm x lr x seed through bn.train.fit (a per-run line and an overall progress
-- line), aggregates each (norm, lr) over its seeds, and writes the mean +- std
-- accuracy curves, accuracy against lr, and the tables. Reference:
-- docs/experiments/lr_sweep.md.
--
--   local T = require "bnlab.experiment.training"
--   local o = bn.experiment.start{ name = "lr_sweep", options = T.options(), scales = {...} }
--   local train, test = T.data(o)
--   local groups = T.sweep(o, train, test)          -- every run, aggregated per (norm, lr)
--   T.write(o, groups)                              -- accuracy.png, accuracy_vs_lr.png, table.csv, runs.csv

local bn = require "bnlab"
local E = require "bnlab.experiment"

local T = {}

local NAN = 0 / 0
local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

--- T.options([extra]) -> a bn.args spec of the sweep's options (merged with `extra`), for
-- bn.experiment.start{ options = ... }.
function T.options(extra)
  local spec = {
    lrs = { { 0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 1e-5 }, "initial learning rates swept" },
    seeds = { 3, "seeds per (norm, lr): --seed, --seed+1, ..." },
    epochs = { 160, "epochs per run" },
    train_size = { 0, "training images: a seeded random subset of this many (0: all)" },
    test_size = { 0, "test images evaluated after every epoch: a seeded random subset (0: all)" },
    width = { 16, "ResNet width: channels of the first stage (the paper: 16)" },
    schedule = { "plateau", "plateau (lr/10 when the test loss stalls for --patience epochs) | step (lr/10 after 50% and 75% of the epochs) | none" },
    patience = { 10, "plateau schedule: epochs without improvement before lr/10" },
    augment = { true, "augmentation: 4-pixel zero padding + random crop + horizontal flip" },
    momentum = { 0.9, "SGD momentum" },
    weight_decay = { 1e-4, "SGD weight decay" },
    collapse = { 1.5, "a run whose final test accuracy is <= this / classes counts as collapsed (failed to train)" },
  }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return spec
end

local function random_subset(ds, n, seed, name)
  if n <= 0 or n >= ds.n then return ds end
  local perm = bn.data.randperm(ds.n, seed):totable()
  local idx = {}
  for i = 1, n do idx[i] = perm[i] end
  table.sort(idx)
  return ds:subset(idx, name)
end

--- T.data(o) -> train, test: bn.experiment.data, cut to --train-size / --test-size (seeded subsets).
function T.data(o)
  if o.schedule ~= "plateau" and o.schedule ~= "step" and o.schedule ~= "none" then
    io.stderr:write(("%s: --schedule expected plateau, step or none, got '%s'\n"):format(o.name, tostring(o.schedule)))
    os.exit(2, true)
  end
  local train, test = E.data(o)
  train = random_subset(train, o.train_size, o.seed, train.name .. "[subset]")
  test = random_subset(test, o.test_size, o.seed + 1, test.name .. "[subset]")
  o.train_set = train
  return train, test
end

--- T.schedule(o, opt) -> the learning-rate schedule of --schedule (nil for none).
function T.schedule(o, opt)
  if o.schedule == "plateau" then
    return bn.optim.schedule.plateau(opt, { factor = 0.1, patience = o.patience })
  elseif o.schedule == "step" then
    local a, b = math.max(1, math.floor(0.5 * o.epochs + 0.5)), math.max(1, math.floor(0.75 * o.epochs + 0.5))
    return bn.optim.schedule.multistep(opt, { milestones = a == b and { a } or { a, b } })
  elseif o.schedule ~= "none" then
    error(("--schedule expected plateau, step or none, got '%s'"):format(tostring(o.schedule)), 2)
  end
end

local function mean_std(values)
  local n, s = 0, 0
  for _, v in ipairs(values) do if finite(v) then n, s = n + 1, s + v end end
  if n == 0 then return NAN, NAN, 0 end
  local m, q = s / n, 0
  for _, v in ipairs(values) do if finite(v) then q = q + (v - m) ^ 2 end end
  return m, n > 1 and math.sqrt(q / (n - 1)) or 0, n
end
T.mean_std = mean_std

local function say(line)
  if bn.isatty(io.stdout) then io.stdout:write("\r\27[K") end
  print(line)
end

local function pad(s, w) return (" "):rep(math.max(0, w - utf8.len(s))) .. s end

local function pct(x) return finite(x) and ("%.1f%%"):format(100 * x) or "-" end

--- T.run(o, train, test, norm, lr, seed [, on_epoch]) -> run: one bn.train.fit of the ResNet of
-- --depth/--width, logged to OUT/runs/<norm>_lr<lr>_seed<seed>.csv. run = { norm, lr, seed,
-- diverged, diverged_step, collapsed, failed, train_acc = {per epoch}, test_acc = {per epoch}
-- (NaN after a divergence), final_test_acc, best_test_acc, final_train_acc, first_loss, seconds }.
function T.run(o, train, test, norm, lr, seed, on_epoch)
  local t0 = bn.clock()
  local net = bn.models.resnet{ depth = o.depth, width = o.width, norm = norm, seed = seed,
    in_channels = train.shape[1], classes = train.classes }
  local opt = bn.optim.SGD(net, { lr = lr, momentum = o.momentum, weight_decay = o.weight_decay })
  bn.mkdir(E.path(o, "runs"))
  local h = bn.train.fit{ model = net, data = train, test = test, optimizer = opt, epochs = o.epochs,
    schedule = T.schedule(o, opt), batch_size = o.batch, seed = seed, quiet = true,
    augment = o.augment and { crop = 4, flip = true } or nil, on_epoch = on_epoch,
    log = E.path(o, ("runs/%s_lr%g_seed%d.csv"):format(norm, lr, seed)) }
  local r = { norm = norm, lr = lr, seed = seed, diverged = h.diverged, diverged_step = h.diverged_step,
    first_loss = h.first_loss, train_acc = {}, test_acc = {}, seconds = bn.clock() - t0, epochs_run = #h.epochs }
  for e = 1, o.epochs do
    local rec = h.epochs[e]
    r.train_acc[e] = rec and rec.train_acc or NAN
    r.test_acc[e] = rec and rec.test_acc or NAN
  end
  r.final_train_acc = h.diverged and NAN or h.final.train_acc
  r.final_test_acc = h.diverged and NAN or h.final.test_acc or NAN
  r.best_test_acc = h.best_test_acc or NAN
  r.collapsed = not h.diverged and not (r.final_test_acc > o.collapse / train.classes)
  r.failed = r.diverged or r.collapsed
  return r
end

local function describe(r)
  if r.diverged then return ("diverged at step %d"):format(r.diverged_step) end
  return ("test %s (best %s), train %s%s"):format(pct(r.final_test_acc), pct(r.best_test_acc),
    pct(r.final_train_acc), r.collapsed and " - at chance level: failed to train" or "")
end

--- T.aggregate(runs, norms, lrs) -> groups: one per (norm, lr) in grid order: { norm, lr, runs, seeds,
-- diverged, collapsed, failed (counts), final_test_mean/std, best_test_mean/std, final_train_mean/std
-- (over the final_test_n runs that did not diverge), curve = { train_mean, train_std, test_mean, test_std } per epoch }.
function T.aggregate(runs, norms, lrs)
  local groups = {}
  for _, norm in ipairs(norms) do
    for _, lr in ipairs(lrs) do
      local g = { norm = norm, lr = lr, runs = {}, diverged = 0, collapsed = 0, failed = 0 }
      for _, r in ipairs(runs) do
        if r.norm == norm and r.lr == lr then
          g.runs[#g.runs + 1] = r
          if r.diverged then g.diverged = g.diverged + 1 end
          if r.collapsed then g.collapsed = g.collapsed + 1 end
          if r.failed then g.failed = g.failed + 1 end
        end
      end
      g.seeds = #g.runs
      local function field(name)
        local v = {}
        for i, r in ipairs(g.runs) do v[i] = r[name] end
        return v
      end
      g.final_test_mean, g.final_test_std, g.final_test_n = mean_std(field("final_test_acc"))
      g.best_test_mean, g.best_test_std = mean_std(field("best_test_acc"))
      g.final_train_mean, g.final_train_std = mean_std(field("final_train_acc"))
      local c = { train_mean = {}, train_std = {}, test_mean = {}, test_std = {} }
      local epochs = g.runs[1] and #g.runs[1].train_acc or 0
      for e = 1, epochs do
        local tr, te = {}, {}
        for i, r in ipairs(g.runs) do tr[i], te[i] = r.train_acc[e], r.test_acc[e] end
        c.train_mean[e], c.train_std[e] = mean_std(tr)
        c.test_mean[e], c.test_std[e] = mean_std(te)
      end
      g.curve = c
      groups[#groups + 1] = g
    end
  end
  return groups
end

--- T.sweep(o, train, test [, {norms =, lrs =, seeds =}]) -> groups (T.aggregate), groups.runs = every run.
-- Defaults: --norm, --lrs, --seeds (seeds --seed .. --seed + n - 1). Prints one line per run.
function T.sweep(o, train, test, grid)
  grid = grid or {}
  local norms, lrs, nseeds = grid.norms or o.norm, grid.lrs or o.lrs, grid.seeds or o.seeds
  local total, done = #norms * #lrs * nseeds, 0
  local p = E.progress(total * o.epochs, "training runs (epochs)")
  local runs = {}
  for _, norm in ipairs(norms) do
    for _, lr in ipairs(lrs) do
      for s = 1, nseeds do
        local seed = o.seed + s - 1
        local tag = ("%s, lr %g, seed %d"):format(E.label(norm), lr, seed)
        local base = #runs * o.epochs
        local r = T.run(o, train, test, norm, lr, seed, function(rec)
          p:step(base + rec.epoch, ("%s: epoch %d test %s"):format(tag, rec.epoch, pct(rec.test_acc)))
        end)
        runs[#runs + 1] = r
        done = done + 1
        say(("[%d/%d] %s: %s (%.0f s)"):format(done, total, tag, describe(r), r.seconds))
        p:step(#runs * o.epochs)
      end
    end
  end
  local groups = T.aggregate(runs, norms, lrs)
  groups.runs = runs
  return groups
end

--- T.find(groups, norm, lr) -> the group, or nil.
function T.find(groups, norm, lr)
  for _, g in ipairs(groups) do if g.norm == norm and g.lr == lr then return g end end
end

--- T.best(groups, norm) -> the group of `norm` with the highest mean final test accuracy (nil if
-- every run of that norm diverged).
function T.best(groups, norm)
  local best
  for _, g in ipairs(groups) do
    if g.norm == norm and finite(g.final_test_mean) and (not best or g.final_test_mean > best.final_test_mean) then best = g end
  end
  return best
end

--- T.largest_trained_lr(groups, norm) -> the largest lr at which every seed of `norm` trained
-- (neither diverged nor collapsed), or nil.
function T.largest_trained_lr(groups, norm)
  local lr
  for _, g in ipairs(groups) do
    if g.norm == norm and g.failed == 0 and g.seeds > 0 and (not lr or g.lr > lr) then lr = g.lr end
  end
  return lr
end

--- T.above_chance(g, classes, collapse) -> does the group's mean final test accuracy exceed collapse / classes?
function T.above_chance(g, classes, collapse)
  return g ~= nil and finite(g.final_test_mean) and g.final_test_mean > collapse / classes
end

local STYLE = { bn = "-", none = "--", last = "-." }

local function label(g)
  local l = ("%s at lr %g"):format(E.label(g.norm), g.lr)
  if g.failed > 0 then l = l .. (" (%d/%d failed)"):format(g.failed, g.seeds) end
  return l
end

--- T.plot_curves(o, groups, file [, title]): train and test accuracy against epoch, mean +- std over
-- seeds, one series per (norm, lr): colour = lr, line style = norm. Writes the panels' CSVs too.
function T.plot_curves(o, groups, file, title)
  local lr_index, n = {}, 0
  for _, g in ipairs(groups) do if not lr_index[g.lr] then n = n + 1; lr_index[g.lr] = n end end
  local panels = {}
  for k, which in ipairs{ "train", "test" } do
    local series = {}
    for _, g in ipairs(groups) do
      local x = {}
      for e = 1, #g.curve[which .. "_mean"] do x[e] = e end
      series[#series + 1] = { x = x, y = g.curve[which .. "_mean"], band = g.curve[which .. "_std"], label = label(g),
        style = (STYLE[g.norm] or "-") .. (#x <= 12 and "o" or ""), color = "C" .. ((lr_index[g.lr] - 1) % 10) }
    end
    panels[k] = { kind = "lines", series = series, ylim = { 0, 1 }, legend = k == 1 and "upper left" or false,
      title = which == "train" and "Training accuracy (running, during the epoch)" or "Test accuracy (after the epoch)",
      xlabel = "epoch", ylabel = which .. " accuracy (mean \u{b1} std over seeds)" }
  end
  return bn.plot.figure{ panels = panels, cols = 2, panel_width = 640, panel_height = 700, data = true,
    file = E.path(o, file), title = title or ("ResNet-%d: accuracy per epoch, %d seeds each"):format(o.depth, o.seeds) }
end

--- T.plot_vs_lr(o, groups, file [, title]): final test accuracy (mean +- std over the seeds that did
-- not diverge) against the initial lr, one line per norm; crosses mark lrs where some seed failed.
function T.plot_vs_lr(o, groups, file, title)
  local series, norms = {}, {}
  for _, g in ipairs(groups) do
    if not norms[g.norm] then norms[g.norm] = {}; norms[#norms + 1] = g.norm end
    table.insert(norms[g.norm], g)
  end
  local chance = 1 / (o.train_set and o.train_set.classes or 10)
  for i, norm in ipairs(norms) do
    local gs = norms[norm]
    table.sort(gs, function(a, b) return a.lr < b.lr end)
    local x, y, band, fx, fy = {}, {}, {}, {}, {}
    for j, g in ipairs(gs) do
      x[j], y[j], band[j] = g.lr, g.final_test_mean, g.final_test_std
      if g.failed > 0 then fx[#fx + 1], fy[#fy + 1] = g.lr, chance end
    end
    series[#series + 1] = { x = x, y = y, band = band, label = E.label(norm), style = (STYLE[norm] or "-") .. "o", color = "C" .. (i - 1) }
    if #fx > 0 then
      series[#series + 1] = { x = fx, y = fy, label = E.label(norm) .. ": some seed diverged/collapsed", style = "x", color = "C" .. (i - 1) }
    end
  end
  return bn.plot.lines{ series = series, logx = true, ylim = { 0, 1 }, file = E.path(o, file), data = true,
    title = title or ("ResNet-%d: final test accuracy vs initial learning rate"):format(o.depth),
    xlabel = "initial learning rate", ylabel = "final test accuracy (mean \u{b1} std over seeds)" }
end

--- T.write_tables(o, groups [, table_file [, runs_file]]): OUT/table.csv (one row per (norm, lr)) and
-- OUT/runs.csv (one row per run).
function T.write_tables(o, groups, table_file, runs_file)
  local rows = {}
  for _, g in ipairs(groups) do
    rows[#rows + 1] = { g.norm, g.lr, g.seeds, g.diverged, g.collapsed, g.failed, g.final_test_mean, g.final_test_std,
      g.best_test_mean, g.best_test_std, g.final_train_mean, g.final_train_std }
  end
  E.csv(o, table_file or "table.csv", { "norm", "lr", "seeds", "diverged", "collapsed", "failed", "final_test_mean",
    "final_test_std", "best_test_mean", "best_test_std", "final_train_mean", "final_train_std" }, rows)
  rows = {}
  for _, r in ipairs(groups.runs or {}) do
    rows[#rows + 1] = { r.norm, r.lr, r.seed, r.diverged and 1 or 0, r.diverged_step or "", r.collapsed and 1 or 0,
      r.epochs_run, r.final_train_acc, r.final_test_acc, r.best_test_acc, r.first_loss, r.seconds }
  end
  E.csv(o, runs_file or "runs.csv", { "norm", "lr", "seed", "diverged", "diverged_step", "collapsed", "epochs_run",
    "final_train_acc", "final_test_acc", "best_test_acc", "first_loss", "seconds" }, rows)
end

--- T.write(o, groups): T.plot_curves (accuracy.png), T.plot_vs_lr (accuracy_vs_lr.png), T.write_tables.
function T.write(o, groups)
  T.plot_curves(o, groups, "accuracy.png")
  T.plot_vs_lr(o, groups, "accuracy_vs_lr.png")
  T.write_tables(o, groups)
end

--- T.text_table(groups) -> a printable table: one line per norm, one column per lr,
-- "mean±std" final test accuracy or "div k/n" / "col k/n".
function T.text_table(groups)
  local lrs, seen, norms, nseen = {}, {}, {}, {}
  for _, g in ipairs(groups) do
    if not seen[g.lr] then seen[g.lr] = true; lrs[#lrs + 1] = g.lr end
    if not nseen[g.norm] then nseen[g.norm] = true; norms[#norms + 1] = g.norm end
  end
  local lines = { ("%-24s"):format("final test acc") }
  for _, lr in ipairs(lrs) do lines[1] = lines[1] .. pad("lr " .. ("%g"):format(lr), 15) end
  for _, norm in ipairs(norms) do
    local line = ("%-24s"):format(E.label(norm))
    for _, lr in ipairs(lrs) do
      local g = T.find(groups, norm, lr)
      local c = finite(g.final_test_mean) and ("%.1f\u{b1}%.1f"):format(100 * g.final_test_mean, 100 * g.final_test_std) or "-"
      if g.failed > 0 then c = c .. ("!%d/%d"):format(g.failed, g.seeds) end
      line = line .. pad(c, 15)
    end
    lines[#lines + 1] = line
  end
  lines[#lines + 1] = "(!k/n: k of n seeds diverged or collapsed to chance; means over the seeds that did not diverge)"
  return table.concat(lines, "\n")
end

--- T.group_summary(g) -> the group's numbers as a plain table (for summary.json).
function T.group_summary(g)
  return { norm = g.norm, lr = g.lr, seeds = g.seeds, diverged = g.diverged, collapsed = g.collapsed, failed = g.failed,
    final_test_mean = g.final_test_mean, final_test_std = g.final_test_std, best_test_mean = g.best_test_mean,
    final_train_mean = g.final_train_mean }
end

return T
