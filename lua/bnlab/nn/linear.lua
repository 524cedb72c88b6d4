-- bn.nn.Linear: y = x W^T + b, x [N x in], W [out x in], b [out].
-- Initialized as PyTorch's nn.Linear: W and b uniform in +-1/sqrt(in).
local bn = require "bnlab"
local M = require "bnlab.nn.module"
local util = require "bnlab.nn.util"

local Linear = M.class("Linear", M.Module)
local WHERE = "bn.nn.Linear"
local KNOWN = util.set { "in_features", "out_features", "bias" }

--- Linear(in, out [, {bias = true}]) or Linear{in, out, bias = false}.
function Linear:__init(a, b, opts)
  M.Module.__init(self)
  local cfg
  if type(a) == "table" then
    cfg = util.options(a, WHERE, KNOWN, 2)
    if b ~= nil then util.fail(WHERE, "the table form takes no other argument") end
  else
    cfg = util.options(opts, WHERE, util.set { "bias" })
    cfg = { a, b, bias = cfg.bias }
  end
  self.in_features = util.integer(cfg[1] or cfg.in_features, WHERE, "in_features", 1)
  self.out_features = util.integer(cfg[2] or cfg.out_features, WHERE, "out_features", 1)
  local has_bias = cfg.bias
  if has_bias == nil then has_bias = true end
  util.boolean(has_bias, WHERE, "option 'bias'")
  local bound = 1 / math.sqrt(self.in_features)
  bn.no_grad(function()
    self:register_parameter("weight", bn.rand(self.out_features, self.in_features) * (2 * bound) - bound)
    if has_bias then self:register_parameter("bias", bn.rand(self.out_features) * (2 * bound) - bound) end
  end)
end

function Linear:forward(x)
  return bn.linear(x, self.weight, self.bias)
end

function Linear:config()
  return ("%d -> %d%s"):format(self.in_features, self.out_features, self.bias and "" or ", no bias")
end

return Linear
