-- bn.probe.hessian_top_eig: the largest-magnitude eigenvalue of the loss
-- Hessian (sharpness) by power iteration on Hessian-vector products.
--
-- The core's autograd is first-order (backward records no graph), so a
-- Hessian-vector product is a central difference of two gradients:
--   Hv ≈ (g(θ + εv) - g(θ - εv)) / 2ε,   ||v|| = 1.
-- Its error is O(ε² ||∇³L||) from the curvature changing over the step
-- (zero for a quadratic loss) plus about δ·||g|| / ε from float32 rounding
-- of the gradients (δ ≈ 1e-7 … 1e-6 relative). ε defaults to 1e-3·||θ||
-- (1e-3 when θ = 0): a relative move of 1e-3, far above the rounding
-- floor yet small enough that ReLU kinks crossed by the step average out.
local bn = require "bnlab"
local U = require "bnlab.probe.util"
local nutil = require "bnlab.nn.util"

local M = {}

local KNOWN = U.set { "mode", "loss", "eps", "eps_rel", "seed", "tol", "keep_vector" }

--- bn.probe.hessian_top_eig(net, x, y [, iters = 20 [, opts]]) -> res; see
-- docs/probe.md.
function M.hessian_top_eig(net, x, y, iters, opts)
  local where = "bn.probe.hessian_top_eig"
  U.check_net(net, where)
  if not bn.is_tensor(x) then U.fail(where, ("argument #2 (x) expected a tensor, got %s"):format(U.show(x)), 2) end
  if y == nil then U.fail(where, "argument #3 (y) expected targets, got nil", 2) end
  iters = nutil.integer(iters or 20, where, "argument #4 (iters)", 1)
  opts = U.options(opts, where, KNOWN)
  local mode = U.mode(opts.mode, where)
  local lossfn = U.loss_fn(opts, where)
  local seed = nutil.integer(opts.seed or 0, where, "option 'seed'", 0)
  local tol = opts.tol or 1e-4
  if type(tol) ~= "number" or tol < 0 then U.fail(where, "option 'tol' expected a number >= 0", 2) end
  if opts.eps ~= nil then nutil.number(opts.eps, where, "option 'eps'", 0) end
  local eps_rel = nutil.number(opts.eps_rel or 1e-3, where, "option 'eps_rel'", 0)

  return U.guard(net, mode, true, function(ctx)
    local params, base = ctx.params, ctx.base
    local theta_norm = U.norm(base)
    local eps = opts.eps or (theta_norm > 0 and eps_rel * theta_norm or eps_rel)
    -- The start vector: Gaussian from the seed (the global stream is put
    -- back by the guard), normalized over all parameters.
    bn.manual_seed(seed)
    local v = {}
    for i, e in ipairs(params) do v[i] = bn.randn_like(e[2]) end
    local vn = U.norm(v)
    for i = 1, #v do v[i] = v[i] / vn end

    local function hvp(dir)
      U.set_params(params, base, dir, eps)
      ctx.same_noise()
      local _, gp = U.gradient(net, params, x, y, lossfn)
      U.set_params(params, base, dir, -eps)
      ctx.same_noise()
      local _, gm = U.gradient(net, params, x, y, lossfn)
      local hv = {}
      for i = 1, #gp do hv[i] = (gp[i] - gm[i]) / (2 * eps) end
      return hv
    end

    local history, lambda, converged, k = {}, 0 / 0, false, 0
    for it = 1, iters do
      k = it
      local hv = hvp(v)
      local new = U.dot(v, hv)         -- Rayleigh quotient (v has norm 1)
      history[it] = new
      local n = U.norm(hv)
      local done = lambda == lambda and math.abs(new - lambda) <= tol * math.abs(new)
      lambda = new
      if not (n > 0 and n < math.huge) then break end
      for i = 1, #v do v[i] = hv[i] / n end
      if done then converged = true break end
    end
    local res = { eigenvalue = lambda, history = history, iters = k, eps = eps, converged = converged,
      theta_norm = theta_norm }
    if opts.keep_vector then
      res.vector = {}
      for i, e in ipairs(params) do res.vector[e[1]] = v[i] end
    end
    return res
  end)
end

return M
