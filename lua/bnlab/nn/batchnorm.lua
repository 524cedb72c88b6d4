-- bn.nn.BatchNorm1d ([N x C]) and bn.nn.BatchNorm2d ([N x C x H x W]):
-- batch normalization as PyTorch's. In training mode the output uses the
-- batch's statistics and the running statistics move towards them
-- (running = (1 - momentum) running + momentum batch, the variance unbiased);
-- in evaluation mode the running statistics normalize. weight (gamma, ones)
-- and bias (beta, zeros) are parameters when affine; running_mean (zeros)
-- and running_var (ones) are buffers.
local bn = require "bnlab"
local M = require "bnlab.nn.module"
local util = require "bnlab.nn.util"

local KNOWN = util.set { "num_features", "eps", "momentum", "affine" }

local function init(self, where, a, opts)
  M.Module.__init(self)
  local cfg
  if type(a) == "table" then
    cfg = util.options(a, where, KNOWN, 1)
    if opts ~= nil then util.fail(where, "the table form takes no other argument") end
    a = cfg[1] or cfg.num_features
  else
    cfg = util.options(opts, where, KNOWN)
  end
  self.num_features = util.integer(a, where, "num_features", 1)
  self.eps = util.number(cfg.eps or 1e-5, where, "option 'eps'", 0)
  self.momentum = util.number(cfg.momentum or 0.1, where, "option 'momentum'", 0, 1)
  local affine = cfg.affine
  if affine == nil then affine = true end
  self.affine = util.boolean(affine, where, "option 'affine'")
  local c = self.num_features
  if affine then
    self:register_parameter("weight", bn.ones(c))
    self:register_parameter("bias", bn.zeros(c))
  end
  self:register_buffer("running_mean", bn.zeros(c))
  self:register_buffer("running_var", bn.ones(c))
  self._train_opts = { training = true, momentum = self.momentum, eps = self.eps }
  self._eval_opts = { training = false, momentum = self.momentum, eps = self.eps }
end

local function forward(self, x, ndim, layout)
  if not bn.is_tensor(x) or x:dim() ~= ndim then
    error(("bn.nn.%s: input expected %d-D %s, got %s"):format(self.__typename, ndim, layout,
      bn.is_tensor(x) and util.shape_str(x) or util.show(x)), 0)
  end
  return bn.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
    self.training and self._train_opts or self._eval_opts)
end

local function config(self)
  local s = tostring(self.num_features)
  if self.eps ~= 1e-5 then s = s .. ", eps " .. self.eps end
  if self.momentum ~= 0.1 then s = s .. ", momentum " .. self.momentum end
  if not self.affine then s = s .. ", no affine" end
  return s
end

--- BatchNorm1d(C [, {eps = 1e-5, momentum = 0.1, affine = true}]) or
-- BatchNorm1d{C, eps = ...}; input [N x C].
local BatchNorm1d = M.class("BatchNorm1d", M.Module)
function BatchNorm1d:__init(a, opts) init(self, "bn.nn.BatchNorm1d", a, opts) end
function BatchNorm1d:forward(x) return forward(self, x, 2, "[N x C]") end
BatchNorm1d.config = config

--- BatchNorm2d(C [, opts]); input [N x C x H x W], statistics per channel
-- over N, H and W.
local BatchNorm2d = M.class("BatchNorm2d", M.Module)
function BatchNorm2d:__init(a, opts) init(self, "bn.nn.BatchNorm2d", a, opts) end
function BatchNorm2d:forward(x) return forward(self, x, 4, "[N x C x H x W]") end
BatchNorm2d.config = config

return { BatchNorm1d = BatchNorm1d, BatchNorm2d = BatchNorm2d }
