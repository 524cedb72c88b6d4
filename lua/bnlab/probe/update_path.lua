-- bn.probe.update_path: channel moments at chosen layers while an update
-- is applied a fraction at a time, θ + f·Δ (paper E3: the anatomy of a
-- diverging step).
local bn = require "bnlab"
local U = require "bnlab.probe.util"
local A = require "bnlab.probe.activations"
local R = require "bnlab.probe.relative_loss"

local M = {}

local KNOWN = U.set { "mode", "loss", "types" }

local function default_fractions()
  local f = {}
  for k = 0, 10 do f[#f + 1] = k / 10 end
  return f
end

--- bn.probe.update_path(net, x, y, delta [, fractions [, layers [, opts]]])
-- -> res; see docs/probe.md. delta: a table parameter name -> tensor (Δ;
-- missing names do not move), or a number alpha meaning Δ = -alpha·g with
-- g the gradient of the loss on (x, y). y may be nil when delta is a table
-- (then no loss is reported). layers: as activations' opts.layers.
function M.update_path(net, x, y, delta, fractions, layers, opts)
  local where = "bn.probe.update_path"
  U.check_net(net, where)
  if not bn.is_tensor(x) then U.fail(where, ("argument #2 (x) expected a tensor, got %s"):format(U.show(x)), 2) end
  if type(delta) == "number" and y == nil then
    U.fail(where, "argument #3 (y) expected labels: delta = alpha needs the gradient on (x, y)", 2)
  end
  if type(delta) ~= "number" and type(delta) ~= "table" then
    U.fail(where, ("argument #4 (delta) expected a table parameter name -> tensor or a step size alpha, got %s"):format(U.show(delta)), 2)
  end
  fractions = fractions == nil and default_fractions() or R.numbers(fractions, where, "argument #5 (fractions)")
  opts = U.options(opts, where, KNOWN)
  local select = U.selector(net, layers, where, "argument #6 (layers)", opts.types)
  local mode = U.mode(opts.mode, where)
  local lossfn = U.loss_fn(opts, where)

  local per_fraction, losses, dnorm = U.guard(net, mode, true, function(ctx)
    local d
    if type(delta) == "number" then
      ctx.same_noise()
      local _, g = U.gradient(net, ctx.params, x, y, lossfn)
      d = {}
      for i, gi in ipairs(g) do d[i] = gi * (-delta) end
    else
      d = R.aligned(ctx.params, delta, where, "argument #4 (delta)")
    end
    local present = {}
    for i = 1, #ctx.params do if d[i] then present[#present + 1] = d[i] end end
    local recs, ls = {}, {}
    for k, f in ipairs(fractions) do
      U.set_params(ctx.params, ctx.base, d, f)
      ctx.same_noise()
      local layers_k, out = A.record(ctx, net, select, nil, nil, function()
        return bn.no_grad(function() return net(x) end)
      end)
      recs[k] = layers_k
      if y ~= nil then ls[k] = bn.no_grad(function() return lossfn(out, y):item() end) end
    end
    return recs, ls, U.norm(present)
  end)

  local res = { fractions = fractions, layers = {}, by_layer = {}, delta_norm = dnorm }
  if y ~= nil then res.losses = losses end
  for _, rec in ipairs(per_fraction[1]) do
    local name = rec.name
    res.layers[#res.layers + 1] = name
    local rows = { mean = {}, var = {}, absmax = {} }
    for k = 1, #fractions do
      local r
      for _, q in ipairs(per_fraction[k]) do if q.name == name then r = q break end end
      for s, list in pairs(rows) do list[k] = r and r[s] or bn.zeros(0) end
    end
    res.by_layer[name] = {
      name = name, depth = rec.depth, channels = rec.channels,
      mean = U.pad_rows(rows.mean, rec.channels), var = U.pad_rows(rows.var, rec.channels),
      absmax = U.pad_rows(rows.absmax, rec.channels),
    }
  end
  return res
end

return M
