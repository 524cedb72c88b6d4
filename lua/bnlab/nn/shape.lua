-- Layers that only move or keep values: bn.nn.Flatten, bn.nn.Identity,
-- bn.nn.Dropout.
local bn = require "bnlab"
local M = require "bnlab.nn.module"
local util = require "bnlab.nn.util"

--- Flatten([start_dim = 2 [, end_dim = -1]]): merges dims start..end
-- (1-based; the default keeps the batch dim, as PyTorch's nn.Flatten).
local Flatten = M.class("Flatten", M.Module)
function Flatten:__init(start_dim, end_dim)
  M.Module.__init(self)
  self.start_dim = util.integer(start_dim or 2, "bn.nn.Flatten", "start_dim")
  self.end_dim = util.integer(end_dim or -1, "bn.nn.Flatten", "end_dim")
end
function Flatten:forward(x) return x:flatten(self.start_dim, self.end_dim) end
function Flatten:config()
  if self.start_dim == 2 and self.end_dim == -1 then return nil end
  return ("%d, %d"):format(self.start_dim, self.end_dim)
end

--- Identity(): returns its input (the tensor itself).
local Identity = M.class("Identity", M.Module)
function Identity:__init() M.Module.__init(self) end
function Identity:forward(x) return x end

--- Dropout([p = 0.5]): inverted dropout in training mode, the identity in
-- evaluation mode (draws from the global generator: bn.manual_seed).
local Dropout = M.class("Dropout", M.Module)
function Dropout:__init(p)
  M.Module.__init(self)
  self.p = util.number(p or 0.5, "bn.nn.Dropout", "p", 0, 1)
end
function Dropout:forward(x)
  if not self.training or self.p == 0 then return x end
  return bn.dropout(x, self.p, true)
end
function Dropout:config() return "p " .. self.p end

return { Flatten = Flatten, Identity = Identity, Dropout = Dropout }
