-- bn.probe.output_grad: the gradient of the loss with respect to the
-- logits, one row per example (paper E5).
local bn = require "bnlab"
local U = require "bnlab.probe.util"

local M = {}

local KNOWN = U.set { "mode", "loss", "per_example" }

--- bn.probe.output_grad(net, x, y [, opts]) -> res; see docs/probe.md.
-- res.grad [B x K] = dL/dlogits times B (opts.per_example = true, default):
-- for mean cross-entropy that is softmax - onehot per row; per_example =
-- false gives dL/dlogits itself ((softmax - onehot) / B).
function M.output_grad(net, x, y, opts)
  local where = "bn.probe.output_grad"
  U.check_net(net, where)
  if not bn.is_tensor(x) then U.fail(where, ("argument #2 (x) expected a tensor, got %s"):format(U.show(x)), 2) end
  if y == nil then U.fail(where, "argument #3 (y) expected labels (a table or tensor), got nil", 2) end
  opts = U.options(opts, where, KNOWN)
  local mode = U.mode(opts.mode, where)
  local lossfn = U.loss_fn(opts, where)
  local per_example = opts.per_example
  if per_example == nil then per_example = true end

  local logits, grad, loss = U.guard(net, mode, false, function()
    local out = bn.no_grad(function() return net(x) end)
    if not bn.is_tensor(out) or out:dim() ~= 2 then
      U.fail(where, ("the net's output expected [B x K] logits, got %s"):format(U.show(out)), 3)
    end
    -- The loss of a leaf copy of the logits: backward stops there, so the
    -- network itself is not backpropagated.
    local z = out:detach():clone():requires_grad(true)
    local was = bn.set_grad_enabled(true)
    local ok, l = pcall(function()
      local l = lossfn(z, y)
      l:backward()
      return l:item()
    end)
    bn.set_grad_enabled(was)
    if not ok then error(l, 0) end
    local g = z.grad
    z.grad = nil
    return out, g, l
  end)

  local b, k = grad:size(1), grad:size(2)
  if per_example then grad = grad * b end
  local res = { grad = grad, logits = logits, loss = loss, per_example = per_example }
  res.probs = bn.softmax(logits, 2)
  -- How much the rows agree: |Σ_b g_b| / Σ_b |g_b| (1: every example pushes
  -- the logits the same way; about 1/sqrt(B) for unrelated rows).
  local row_norms = (grad * grad):sum(2):sqrt()
  res.agreement = grad:sum(1):norm():item() / row_norms:sum():item()
  -- Per class: the mean of its column, the fraction of examples whose
  -- largest gradient entry is that class (the logit the loss pushes down
  -- hardest: without BN at initialization one class takes almost every row),
  -- and how many examples the network assigns to it (arg-max of the logits).
  res.column_mean = grad:mean(1)
  local top, pred = {}, {}
  for c = 1, k do top[c], pred[c] = 0, 0 end
  for _, c in ipairs(grad:argmax(2):totable()) do
    c = math.tointeger(c)
    top[c] = top[c] + 1
  end
  for _, c in ipairs(logits:argmax(2):totable()) do
    c = math.tointeger(c)
    pred[c] = pred[c] + 1
  end
  local best, best_frac = 1, -1
  for c = 1, k do
    top[c] = top[c] / b
    if top[c] > best_frac then best, best_frac = c, top[c] end
  end
  res.top_fraction = bn.tensor(top)
  res.predicted = bn.tensor(pred)
  res.dominant_class, res.dominant_fraction = best, best_frac
  return res
end

return M
