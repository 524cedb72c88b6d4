-- bn.probe.grad_coherence: do the terms that make up a convolution's
-- weight gradient agree in sign (paper E6)?
--
-- The weight gradient of a conv layer is a sum over the batch b and the
-- output positions (x, y) of d = dL/dO[b,o,x,y] * I[b,i,x*s+u-p,y*s+v-p].
-- The layer's input I and output gradient dL/dO are captured with pattern
-- hooks: dL/dO by a backward hook on the layer's output name; I is the
-- named tensor (the previous layer's output) that the autograd graph shows
-- going into the layer, or the network input x for a first layer. The sums
-- themselves are one C kernel (bn._probe.conv_coherence, src/ops/coherence.c).
local bn = require "bnlab"
local U = require "bnlab.probe.util"
local nn = require "bnlab.nn"

local M = {}

local KNOWN = U.set { "mode", "loss", "keep" }

local function pair(v) if type(v) == "table" then return v[1], v[2] end return v, v end

--- bn.probe.grad_coherence(net, x, y, layer [, opts]) -> res; see
-- docs/probe.md. layer: the path of a Conv2d or Linear module
-- ("stage2.block3.conv1").
function M.grad_coherence(net, x, y, layer, opts)
  local where = "bn.probe.grad_coherence"
  U.check_net(net, where)
  if not bn.is_tensor(x) then U.fail(where, ("argument #2 (x) expected a tensor, got %s"):format(U.show(x)), 2) end
  if y == nil then U.fail(where, "argument #3 (y) expected labels (a table or tensor), got nil", 2) end
  if type(layer) ~= "string" or layer == "" then
    U.fail(where, ("argument #4 (layer) expected the path of a Conv2d or Linear module, got %s"):format(U.show(layer)), 2)
  end
  local mod = net:submodule(layer)
  if not mod or not (nn.is_instance(mod, "Conv2d") or nn.is_instance(mod, "Linear")) then
    local have = table.concat(U.paths_of(net, U.WEIGHT_TYPES), ", ", 1, math.min(6, #U.paths_of(net, U.WEIGHT_TYPES)))
    U.fail(where, ("argument #4 (layer) '%s' is not a Conv2d or Linear module of the net (some that are: %s)"):format(layer, have), 2)
  end
  opts = U.options(opts, where, KNOWN)
  local mode = U.mode(opts.mode, where)
  local lossfn = U.loss_fn(opts, where)
  local P = bn._probe

  local input, dout, loss, wgrad = U.guard(net, mode, false, function(ctx)
    local named, out_t, dO = {}, nil, nil
    ctx:hook("*", function(name, t)
      local id = named and P.node_id(t)
      if id and named[id] == nil then named[id] = t end
      if name == layer and out_t == nil then out_t = t end
    end)
    ctx:hook(layer, nil, function(name, g)
      if name == layer then dO = dO and (dO + g) or g end
    end)
    local was = bn.set_grad_enabled(true)
    local ok, err = pcall(function()
      local out = net(x)
      if out_t == nil then
        U.fail(where, ("the forward pass never named a tensor '%s' (was the module called?)"):format(layer), 3)
      end
      local ins = P.node_inputs(out_t)
      local in_id = ins and ins[1]
      local inp
      if not in_id or in_id == P.node_id(x) then
        inp = x
      else
        inp = named[in_id]
      end
      if inp == nil then
        U.fail(where, ("could not find the input of '%s' among the named outputs of the forward pass"):format(layer), 3)
      end
      named = nil
      local l = lossfn(out, y)
      l:backward()
      ctx.input, ctx.loss = inp, l:item()
    end)
    bn.set_grad_enabled(was)
    if not ok then error(err, 0) end
    if dO == nil then U.fail(where, ("no gradient reached '%s'"):format(layer), 2) end
    local wg = mod.weight.grad
    return ctx.input:detach(), dO, ctx.loss, wg
  end)

  local kh, kw, opt
  local I, G = input, dout
  if nn.is_instance(mod, "Conv2d") then
    kh, kw = pair(mod.kernel_size)
    local sh, sw = pair(mod.stride)
    local ph, pw = pair(mod.padding)
    opt = { stride = { sh, sw }, padding = { ph, pw } }
  else
    kh, kw, opt = 1, 1, nil
    I = I:reshape(I:size(1), -1, 1, 1)
    G = G:reshape(G:size(1), -1, 1, 1)
  end
  local sum, abssum, m = P.conv_coherence(G, I, kh, kw, opt)
  local abs_sum_total = abssum:sum():item()
  local res = {
    layer = layer, loss = loss,
    sum = sum, abssum = abssum, M = m,
    ratio = sum:abs():sum():item() / abs_sum_total,
    entry_ratio = sum:abs() / abssum,
    input_shape = input:shape(), output_shape = dout:shape(),
    weight_grad = wgrad,
  }
  -- Mean over entries whose terms are not all zero (0/0 entries are NaN).
  local total, n = 0, 0
  for _, v in ipairs(res.entry_ratio:reshape(-1):totable()) do
    if v == v then total, n = total + v, n + 1 end
  end
  res.mean_entry_ratio = n > 0 and total / n or 0 / 0
  if opts.keep then res.input, res.dout = input, dout end
  return res
end

return M
