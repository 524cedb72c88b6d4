-- bn.probe.param_grads: every parameter's gradient on one batch, with
-- summary statistics and histograms (paper E5: the heavy tails of a middle
-- conv kernel's gradient without BN).
local bn = require "bnlab"
local U = require "bnlab.probe.util"
local nutil = require "bnlab.nn.util"
local A = require "bnlab.probe.activations"

local M = {}

local KNOWN = U.set { "mode", "loss", "params", "hist", "hist_range" }

--- bn.probe.param_grads(net, x, y [, opts]) -> res; see docs/probe.md.
-- opts.params: which parameters (a glob over names such as
-- "stage2.*.conv1.weight", a list of globs, or a function(name); default
-- all). opts.hist: histogram bins (default 50; 0 for none), over
-- [-max|g|, max|g|] of each gradient or opts.hist_range.
function M.param_grads(net, x, y, opts)
  local where = "bn.probe.param_grads"
  U.check_net(net, where)
  if not bn.is_tensor(x) then U.fail(where, ("argument #2 (x) expected a tensor, got %s"):format(U.show(x)), 2) end
  if y == nil then U.fail(where, "argument #3 (y) expected labels (a table or tensor), got nil", 2) end
  opts = U.options(opts, where, KNOWN)
  local mode = U.mode(opts.mode, where)
  local lossfn = U.loss_fn(opts, where)
  local select = opts.params ~= nil and U.selector(net, opts.params, where, "option 'params'") or function() return true end
  local bins = nutil.integer(opts.hist or 50, where, "option 'hist'", 0)
  local range = A.check_range(opts.hist_range, where, "option 'hist_range'")

  local loss, params, grads = U.guard(net, mode, false, function(ctx)
    local l, g = U.gradient(net, ctx.params, x, y, lossfn)
    return l, ctx.params, g
  end)

  local res = { loss = loss, names = {}, grads = {}, stats = {} }
  local total = 0
  for i, e in ipairs(params) do
    local name, g = e[1], grads[i]
    local sq = (g * g):sum():item()
    total = total + sq
    if select(name) then
      res.names[#res.names + 1] = name
      res.grads[name] = g
      local absmax = g:abs():max():item()
      local st = {
        norm = math.sqrt(sq), absmax = absmax, mean = g:mean():item(),
        std = g:std(nil, false, 0):item(), numel = g:numel(),
      }
      if bins > 0 then
        local r = range
        if not r and absmax > 0 and absmax < math.huge then r = { -absmax, absmax } end
        st.hist = U.histogram(g, bins, r)
      end
      res.stats[name] = st
    end
  end
  res.total_norm = math.sqrt(total)
  return res
end

return M
