-- bn.probe.relative_loss: how much does one gradient step of size alpha
-- change the loss on the batch it was computed on (paper E2)?
local bn = require "bnlab"
local U = require "bnlab.probe.util"

local M = {}

local KNOWN = U.set { "mode", "loss", "threshold", "direction" }

--- The default step sizes: 10^-5 ... 10^1 in half decades (13 values).
function M.default_alphas()
  local a = {}
  for k = 0, 12 do a[#a + 1] = 10 ^ (-5 + k / 2) end
  return a
end

--- A list of numbers from a table, a 1-D tensor or one number.
function M.numbers(v, where, what)
  if type(v) == "number" then return { v } end
  if bn.is_tensor(v) then v = v:reshape(-1):totable() end
  if type(v) ~= "table" or #v == 0 then
    U.fail(where, ("%s expected a number, a list of numbers or a 1-D tensor, got %s"):format(what, U.show(v)), 3)
  end
  for i, a in ipairs(v) do
    if type(a) ~= "number" or a ~= a then
      U.fail(where, ("%s[%d] expected a number, got %s"):format(what, i, U.show(a)), 3)
    end
  end
  return v
end

--- Converts a table name -> tensor into a list aligned with params.
function M.aligned(params, t, where, what)
  if type(t) ~= "table" then U.fail(where, ("%s expected a table parameter name -> tensor, got %s"):format(what, U.show(t)), 3) end
  local out, known = {}, {}
  for i, e in ipairs(params) do
    known[e[1]] = true
    local v = t[e[1]]
    if v ~= nil then
      if not bn.is_tensor(v) or v:numel() ~= e[2]:numel() then
        U.fail(where, ("%s['%s'] expected a tensor of shape %s, got %s"):format(what, e[1], U.shape_str(e[2]), U.show(v)), 3)
      end
      out[i] = v:reshape(e[2]:shape())
    end
  end
  for k in pairs(t) do
    if not known[k] then U.fail(where, ("%s has '%s', which is not a parameter of the net"):format(what, tostring(k)), 3) end
  end
  return out
end

--- bn.probe.relative_loss(net, x, y [, alphas [, opts]]) -> res; see
-- docs/probe.md. res.ratio[k] = loss(θ - alphas[k]·g) / loss(θ) on (x, y),
-- g = the gradient of the loss at θ on (x, y) (or opts.direction).
function M.relative_loss(net, x, y, alphas, opts)
  local where = "bn.probe.relative_loss"
  U.check_net(net, where)
  if not bn.is_tensor(x) then U.fail(where, ("argument #2 (x) expected a tensor, got %s"):format(U.show(x)), 2) end
  if y == nil then U.fail(where, "argument #3 (y) expected labels (a table or tensor), got nil", 2) end
  alphas = alphas == nil and M.default_alphas() or M.numbers(alphas, where, "argument #4 (alphas)")
  opts = U.options(opts, where, KNOWN)
  local mode = U.mode(opts.mode, where)
  local lossfn = U.loss_fn(opts, where)
  local threshold = opts.threshold or 1e3
  if type(threshold) ~= "number" then U.fail(where, "option 'threshold' expected a number", 2) end

  local loss0, losses, gnorm = U.guard(net, mode, true, function(ctx)
    local l0, g
    if opts.direction ~= nil then
      -- A given direction (e.g. the gradient the training step already
      -- computed): one forward for the loss at θ, no backward.
      local d = M.aligned(ctx.params, opts.direction, where, "option 'direction'")
      g = {}
      for i = 1, #ctx.params do g[i] = d[i] or bn.zeros_like(ctx.params[i][2]) end
      ctx.same_noise()
      l0 = bn.no_grad(function() return lossfn(net(x), y):item() end)
    else
      ctx.same_noise()
      l0, g = U.gradient(net, ctx.params, x, y, lossfn)
    end
    local ls = {}
    for k, a in ipairs(alphas) do
      U.set_params(ctx.params, ctx.base, g, -a)
      ctx.same_noise()
      ls[k] = bn.no_grad(function() return lossfn(net(x), y):item() end)
    end
    return l0, ls, U.norm(g)
  end)

  local ratios, diverged = {}, {}
  for k, l in ipairs(losses) do
    ratios[k] = l / loss0
    diverged[k] = not (ratios[k] <= threshold) -- NaN counts as diverged
  end
  return {
    alphas = alphas, loss0 = loss0, losses = losses, ratios = ratios, diverged = diverged,
    ratio = bn.tensor(ratios), grad_norm = gnorm, threshold = threshold,
  }
end

return M
