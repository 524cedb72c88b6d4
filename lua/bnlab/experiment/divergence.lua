-- bnlab.experiment.divergence: the divergence scan of the paper's E2, shared
-- by experiments/divergence.lua (E2), diverging_update.lua (E3), depth.lua
-- (E10) and the BN-after-the-last-block experiment (E7). Reference:
-- docs/experiments/divergence.md#the-library.
--
--   local D = require "bnlab.experiment.divergence"
--   local r = D.scan(o, net, train, { steps = 20, alphas = D.alphas(2), lr = 0.1, label = "BN" })
--   print(r.max_stable_alpha, r.first_diverging_alpha)
--   D.plot(o, { ["BN"] = r1, ["no BN"] = r2 }, "divergence")   -- OUT/divergence_heatmap.png, _lines.png
--   D.csv(o, { ["BN"] = r1, ["no BN"] = r2 }, "relative_loss.csv")
--
-- scan runs K updates of ordinary SGD (momentum 0.9, weight decay 1e-4, as
-- the paper) at lr; before each update it probes bn.probe.relative_loss at
-- every alpha on that update's batch, along the plain gradient g of that
-- batch (the one the update itself uses): ratio = loss(θ - αg) / loss(θ).
-- The parameters are restored bit for bit after the probe, then the update
-- is applied. NaN/Inf are data: a training loss that becomes NaN/Inf stops
-- the scan (training_diverged = true), a probe that blows up is a diverged cell.
local bn = require "bnlab"
local E = require "bnlab.experiment"

local D = {}

local KNOWN = { steps = true, alphas = true, lr = true, threshold = true, batch = true, seed = true, label = true,
                momentum = true, weight_decay = true, progress = true, mode = true }

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

--- D.alphas(per_decade [, lo = -5 [, hi = 1]]) -> 10^lo ... 10^hi with per_decade points per decade
-- (2: half decades, 13 values; 4: quarter decades, 25 values).
function D.alphas(per_decade, lo, hi)
  lo, hi = lo or -5, hi or 1
  local a = {}
  for k = 0, math.floor((hi - lo) * per_decade + 0.5) do a[#a + 1] = 10 ^ (lo + k / per_decade) end
  return a
end

-- Batches of `size` from train, epoch after epoch, in a seeded order.
local function batch_stream(train, size, seed)
  size = math.min(size, train.n)
  local epoch, it = 0, nil
  return function()
    while true do
      if it then
        local x, y = it()
        if x then return x, y end
      end
      epoch = epoch + 1
      it = train:batches{ size = size, shuffle = true, seed = seed, epoch = epoch, drop_last = true }
    end
  end
end

--- D.scan(o, net, train, opts) -> r. opts: steps (K), alphas (list), lr (the trajectory's training
-- rate), threshold (1e3), batch, seed (defaults o.batch, o.seed), label (progress text), momentum
-- (0.9), weight_decay (1e-4), progress (true), mode ("train"). See the header and the docs for r.
function D.scan(o, net, train, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if not KNOWN[k] then error(("divergence.scan: unknown option '%s'"):format(tostring(k)), 2) end
  end
  local steps = opts.steps or 20
  local alphas = opts.alphas or D.alphas(2)
  local threshold = opts.threshold or 1e3
  local lr = opts.lr or o.lr
  local label = opts.label or "scan"
  local batch = opts.batch or o.batch
  local next_batch = batch_stream(train, batch, opts.seed or o.seed)
  local opt = bn.optim.SGD(net, { lr = lr, momentum = opts.momentum or 0.9, weight_decay = opts.weight_decay or 1e-4 })
  local params = net:named_parameters()
  if (opts.mode or "train") == "train" then net:train() else net:eval() end

  local r = { label = label, alphas = alphas, threshold = threshold, lr = lr, steps = steps, batch = math.min(batch, train.n),
              rel = {}, diverged = {}, train_loss = {}, grad_norm = {}, training_diverged = false }
  local p = opts.progress ~= false and E.progress(steps, ("  %s:"):format(label)) or nil
  for t = 1, steps do
    local x, y = next_batch()
    -- The training step's forward and backward; its gradient is the probe's direction.
    opt:zero_grad()
    local loss = bn.cross_entropy(net(x), y)
    local l = loss:item()
    r.train_loss[t] = l
    if not finite(l) then
      r.training_diverged, r.diverged_at = true, t
      if p then p:step(steps, ("training loss %s at update %d: stopped"):format(tostring(l), t)) end
      break
    end
    loss:backward()
    local dir = {}
    for _, e in ipairs(params) do dir[e[1]] = e[2].grad end
    local rl = bn.probe.relative_loss(net, x, y, alphas, { threshold = threshold, direction = dir })
    r.rel[t], r.diverged[t], r.grad_norm[t] = rl.ratios, rl.diverged, rl.grad_norm
    opt:step()
    if p then
      local first
      for k, dv in ipairs(rl.diverged) do if dv then first = alphas[k] break end end
      p:step(t, ("loss %.3g, diverges from alpha %s"):format(l, first and ("%.3g"):format(first) or "-"))
    end
  end

  -- Per alpha: diverged at any probed step? fraction of steps diverged.
  local n = #r.rel
  r.steps_probed = n
  r.diverged_fraction = {}
  local ever = {}
  for k = 1, #alphas do
    local c = 0
    for t = 1, n do if r.diverged[t][k] then c = c + 1 end end
    r.diverged_fraction[k] = n > 0 and c / n or 0 / 0
    ever[k] = c > 0
  end
  if n > 0 then
    for k = 1, #alphas do
      if ever[k] and (not r.first_diverging_alpha or alphas[k] < r.first_diverging_alpha) then r.first_diverging_alpha = alphas[k] end
      if not ever[k] and (not r.max_stable_alpha or alphas[k] > r.max_stable_alpha) then r.max_stable_alpha = alphas[k] end
    end
  end
  -- Median and quartiles over steps per alpha (NaN counts as +Inf: it diverged).
  r.median, r.q25, r.q75 = {}, {}, {}
  for k = 1, #alphas do
    local v = {}
    for t = 1, n do local x = r.rel[t][k]; v[t] = x == x and x or math.huge end
    table.sort(v)
    local function q(f)
      if #v == 0 then return 0 / 0 end
      local pos = 1 + f * (#v - 1)
      local lo, hi = math.floor(pos), math.ceil(pos)
      if v[lo] == v[hi] then return v[lo] end
      return v[lo] + (pos - lo) * (v[hi] - v[lo])
    end
    r.median[k], r.q25[k], r.q75[k] = q(0.5), q(0.25), q(0.75)
    if not r.median_diverging_alpha and not (r.median[k] <= threshold) and n > 0 then r.median_diverging_alpha = alphas[k] end
  end
  return r
end

-- Labels in a stable order: the order of `order` (a list) when given, else sorted.
local function labels_of(results, order)
  if order then return order end
  local ls = {}
  for k in pairs(results) do ls[#ls + 1] = k end
  table.sort(ls)
  return ls
end

local function alpha_text(a) return ("%.3g"):format(a) end

--- D.plot(o, results_by_label, file_prefix [, {order = {labels...}, title = "..."}]) -> heatmap path,
-- lines path. OUT/<prefix>_heatmap.png (one panel per label: update x step size, colour = relative
-- loss on one shared log scale, diverged cells crossed) and OUT/<prefix>_lines.png (log10 of the median
-- relative loss over updates against alpha, band = 25-75% of updates, the threshold dashed); data = true.
function D.plot(o, results, prefix, popts)
  popts = popts or {}
  local labels = labels_of(results, popts.order)
  local panels, series, threshold = {}, {}, 1e3
  -- One colour scale for every panel, so that BN and no BN compare by colour: from the smallest
  -- finite ratio to the largest, capped at threshold^2 (beyond: the end colour and a triangle).
  local vmin, vmax = math.huge, 0
  for _, label in ipairs(labels) do
    threshold = results[label].threshold
    for _, row in ipairs(results[label].rel) do
      for _, v in ipairs(row) do
        if finite(v) and v > 0 then vmin, vmax = math.min(vmin, v), math.max(vmax, v) end
      end
    end
  end
  if vmax == 0 then vmin, vmax = 0.1, 10 end
  vmin, vmax = math.min(vmin, 0.5), math.min(math.max(vmax, 10 * threshold), threshold * threshold)
  for i, label in ipairs(labels) do
    local r = results[label]
    threshold = r.threshold
    local rows, marks = r.rel, {}
    if #rows == 0 then rows = { {} } ; for k = 1, #r.alphas do rows[1][k] = 0 / 0 end end
    for t, d in ipairs(r.diverged) do
      marks[t] = {}
      for k, dv in ipairs(d) do marks[t][k] = dv and 1 or 0 end
    end
    if #marks == 0 then marks = nil end
    panels[#panels + 1] = {
      kind = "heatmap", m = bn.tensor(rows), log = true, cmap = "magma", vmin = vmin, vmax = vmax,
      mark = marks and bn.tensor(marks) or nil, mark_label = "diverged",
      title = ("%s (training lr %s)%s"):format(label, alpha_text(r.lr), r.training_diverged and ", training diverged" or ""),
      xlabel = "step size \u{3b1}", ylabel = "update", clabel = "relative loss (new / old)",
      xticks = r.alphas,
    }
    local color = ("C%d"):format((i - 1) % 10)
    -- Drawn in log10 space (a ±half-width band cannot span decades on a log axis without losing
    -- its lower edge to rounding): the median line, and the 25-75% band of the updates around
    -- the midpoint of the log quartiles; where a quartile is Inf/NaN the band stops.
    local lg, bx, mid, half = {}, {}, {}, {}
    for k = 1, #r.alphas do
      lg[k] = math.log(r.median[k], 10)
      local lo, hi = math.log(r.q25[k], 10), math.log(r.q75[k], 10)
      if finite(lo) and finite(hi) then bx[#bx + 1], mid[#bx + 1], half[#bx + 1] = r.alphas[k], (lo + hi) / 2, (hi - lo) / 2 end
    end
    series[#series + 1] = { x = r.alphas, y = lg, label = label .. ": median over updates (band: 25\u{2013}75%)", style = "o-", color = color }
    if #bx > 0 then series[#series + 1] = { x = bx, y = mid, band = half, alpha = 0, color = color, band_alpha = 0.25 } end
  end
  local a1 = labels[1] and results[labels[1]].alphas or { 1e-5, 10 }
  series[#series + 1] = { x = { a1[1], a1[#a1] }, y = { math.log(threshold, 10), math.log(threshold, 10) },
                          label = ("divergence threshold (relative loss %g)"):format(threshold), style = "--", color = "gray", width = 1 }
  local title = popts.title or ("ResNet-%d, batch %d"):format(o.depth, labels[1] and results[labels[1]].batch or o.batch)
  local heat = bn.plot.figure{ panels = panels, cols = math.min(#panels, 3), data = true,
    file = E.path(o, prefix .. "_heatmap.png"),
    title = ("Relative loss after one gradient step \u{2014} %s; \u{d7}: diverged (> %g or NaN)"):format(title, threshold) }
  local lines = bn.plot.lines{ series = series, logx = true, data = true,
    file = E.path(o, prefix .. "_lines.png"),
    title = "Relative loss vs step size \u{2014} " .. title,
    xlabel = "step size \u{3b1}", ylabel = "log_{10} relative loss   log_{10}[loss(\u{3b8} \u{2212} \u{3b1}g) / loss(\u{3b8})]" }
  return heat, lines
end

--- D.csv(o, results_by_label, file [, {order = {...}}]) -> path: long format, one row per
-- (label, update, alpha): norm,step,alpha,relative_loss,diverged,train_loss,train_lr.
function D.csv(o, results, file, copts)
  local rows = {}
  for _, label in ipairs(labels_of(results, (copts or {}).order)) do
    local r = results[label]
    for t, rel in ipairs(r.rel) do
      for k, a in ipairs(r.alphas) do
        rows[#rows + 1] = { label, t, a, rel[k], r.diverged[t][k] and 1 or 0, r.train_loss[t], r.lr }
      end
    end
  end
  return E.csv(o, file, { "norm", "step", "alpha", "relative_loss", "diverged", "train_loss", "train_lr" }, rows)
end

--- D.summary(r) -> a JSON-friendly table of one scan's verdict (no per-step matrices).
function D.summary(r)
  return { max_stable_alpha = r.max_stable_alpha, first_diverging_alpha = r.first_diverging_alpha,
           median_diverging_alpha = r.median_diverging_alpha,
           diverged_fraction = r.diverged_fraction, alphas = r.alphas, median_relative_loss = r.median,
           training_diverged = r.training_diverged, diverged_at = r.diverged_at, steps_probed = r.steps_probed,
           train_lr = r.lr, first_train_loss = r.train_loss[1], last_train_loss = r.train_loss[#r.train_loss] }
end

return D
