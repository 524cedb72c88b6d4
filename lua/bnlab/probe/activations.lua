-- bn.probe.activations: per-channel statistics of every layer's output on
-- one batch (paper E4: activations against depth at initialization).
local bn = require "bnlab"
local U = require "bnlab.probe.util"
local nutil = require "bnlab.nn.util"

local M = {}

local KNOWN = U.set { "layers", "types", "mode", "hist", "hist_range" }

function M.check_range(v, where, what)
  if v == nil then return nil end
  if type(v) ~= "table" or type(v[1]) ~= "number" or type(v[2]) ~= "number" or not (v[1] < v[2])
    or v[1] ~= v[1] or v[2] ~= v[2] or math.abs(v[1]) == math.huge or math.abs(v[2]) == math.huge then
    U.fail(where, ("%s expected {lo, hi} with finite lo < hi, got %s"):format(what, U.show(v)), 3)
  end
  return v
end

--- Across-channel summary of one layer's statistics (numbers).
local function summarize(rec)
  local am = rec.mean:abs()
  rec.abs_mean = am:mean():item()
  rec.abs_mean_spread = am:var(1, false, 0):sqrt():item()
  rec.std_mean = rec.std:mean():item()
  rec.std_spread = rec.std:var(1, false, 0):sqrt():item()
  rec.absmax_max = rec.absmax:max():item()
end

--- Records of the layers whose names `select` accepts, during one call of
-- `run()`; shared with update_path. Returns the list (forward order).
function M.record(ctx, net, select, bins, range, run)
  local weights = U.set(U.paths_of(net, U.WEIGHT_TYPES))
  local layers, seen, nweight = {}, {}, 0
  local id = ctx:hook("*", function(name, t)
    if weights[name] then nweight = nweight + 1 end
    if not select(name) then return end
    seen[name] = (seen[name] or 0) + 1
    local label = seen[name] > 1 and (name .. "#" .. seen[name]) or name
    local rec = U.channel_stats(t)
    rec.name, rec.depth, rec.index, rec.shape, rec.channels = label, nweight, #layers + 1, t:shape(), rec.mean:numel()
    if bins then rec.hist = U.histogram(t, bins, range) end
    layers[#layers + 1] = rec
  end)
  local out = run()
  bn.hooks_remove(id) -- (on an error the guard removes it)
  return layers, out
end

--- bn.probe.activations(net, x [, opts]) -> stats; see docs/probe.md.
-- opts.layers: nil (outputs of every Conv2d, Linear, BatchNorm1d/2d and
-- BasicBlock), a glob ("stage*.block*.conv2"; '*' also crosses dots), a
-- list of globs, or a function(name) -> bool. opts.mode: "train" | "eval"
-- (default: the net's current mode). opts.hist: bins of a per-layer
-- histogram of all values, over the layer's [min, max] or opts.hist_range.
function M.activations(net, x, opts)
  local where = "bn.probe.activations"
  U.check_net(net, where)
  if not bn.is_tensor(x) then U.fail(where, ("argument #2 (x) expected a tensor, got %s"):format(U.show(x)), 2) end
  opts = U.options(opts, where, KNOWN)
  local mode = U.mode(opts.mode, where)
  local select = U.selector(net, opts.layers, where, nil, opts.types)
  local bins = opts.hist ~= nil and nutil.integer(opts.hist, where, "option 'hist'", 1) or nil
  local range = M.check_range(opts.hist_range, where, "option 'hist_range'")

  local layers, output = U.guard(net, mode, false, function(ctx)
    return M.record(ctx, net, select, bins, range, function()
      return bn.no_grad(function() return net(x) end)
    end)
  end)

  local res = { layers = layers, by_name = {}, names = {}, depths = {}, channels = {}, output = output,
    mode = mode or (net.training and "train" or "eval") }
  local width = 0
  for i, rec in ipairs(layers) do
    summarize(rec)
    res.by_name[rec.name] = rec
    res.names[i], res.depths[i], res.channels[i] = rec.name, rec.depth, rec.channels
    width = math.max(width, rec.channels)
  end
  for _, k in ipairs({ "mean", "std", "var", "absmax" }) do
    local rows = {}
    for i, rec in ipairs(layers) do rows[i] = rec[k] end
    res[k] = U.pad_rows(rows, width)
  end
  res.summary = {}
  for _, k in ipairs({ "abs_mean", "abs_mean_spread", "std_mean", "std_spread", "absmax_max" }) do
    local v = {}
    for i, rec in ipairs(layers) do v[i] = rec[k] end
    res.summary[k] = #v > 0 and bn.tensor(v) or bn.zeros(0)
  end
  return res
end

return M
