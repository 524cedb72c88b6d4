-- The residual block of He et al. (2016) for CIFAR: bn.nn.BasicBlock, and
-- its parameter-free option-A shortcut bn.nn.ShortcutA.
--
--   x -> conv1 (3x3, stride s) -> bn1 -> relu1 -> conv2 (3x3) -> bn2 -+-> relu2
--   x ------------------------------ shortcut -------------------------+
--
-- The sum before relu2 is named "<block>.add" (a hook point, see
-- Module:tag). norm = "none" leaves out bn1, bn2 (and the option-B
-- shortcut's BN); the convolutions stay without bias.
local bn = require "bnlab"
local M = require "bnlab.nn.module"
local util = require "bnlab.nn.util"
local Conv2d = require "bnlab.nn.conv"
local Sequential = require "bnlab.nn.sequential"
local BatchNorm2d = require("bnlab.nn.batchnorm").BatchNorm2d
local ReLU = require("bnlab.nn.activation").ReLU
local Identity = require("bnlab.nn.shape").Identity

--- ShortcutA(in, out, stride): keeps every stride-th pixel (bn.subsample)
-- and pads the channels with zeros on both sides up to `out` (bn.pad).
local ShortcutA = M.class("ShortcutA", M.Module)
function ShortcutA:__init(in_channels, out_channels, stride)
  M.Module.__init(self)
  local where = "bn.nn.ShortcutA"
  self.in_channels = util.integer(in_channels, where, "in_channels", 1)
  self.out_channels = util.integer(out_channels, where, "out_channels", self.in_channels)
  self.stride = util.integer(stride or 1, where, "stride", 1)
  local extra = self.out_channels - self.in_channels
  self._pads = { 0, 0, 0, 0, extra // 2, extra - extra // 2 }
end
function ShortcutA:forward(x)
  if not bn.is_tensor(x) or x:dim() ~= 4 or x:size(2) ~= self.in_channels then
    error(("bn.nn.ShortcutA: input expected [N x %d x H x W], got %s"):format(self.in_channels,
      bn.is_tensor(x) and util.shape_str(x) or util.show(x)), 0)
  end
  if self.stride ~= 1 then x = x:subsample(3, 1, self.stride):subsample(4, 1, self.stride) end
  if self.out_channels ~= self.in_channels then x = bn.pad(x, self._pads) end
  return x
end
function ShortcutA:config()
  return ("%d -> %d, stride %d"):format(self.in_channels, self.out_channels, self.stride)
end

local BasicBlock = M.class("BasicBlock", M.Module)
local WHERE = "bn.nn.BasicBlock"
local KNOWN = util.set { "in_channels", "out_channels", "stride", "shortcut", "norm" }

--- BasicBlock(in, out [, stride = 1 [, {shortcut = "A" | "B", norm = "bn" |
-- "none"}]]) or BasicBlock{in, out, stride, shortcut = ..., norm = ...}.
-- The shortcut is the identity when stride is 1 and in == out; otherwise
-- "A" (subsample + zero channels, no parameters) or "B" (1x1 conv with the
-- stride, + BN).
function BasicBlock:__init(a, b, c, opts)
  M.Module.__init(self)
  local cfg
  if type(a) == "table" then
    cfg = util.options(a, WHERE, KNOWN, 3)
    if b ~= nil then util.fail(WHERE, "the table form takes no other argument") end
    cfg = { cfg[1] or cfg.in_channels, cfg[2] or cfg.out_channels, cfg[3] or cfg.stride,
      shortcut = cfg.shortcut, norm = cfg.norm }
  else
    local o = util.options(opts, WHERE, util.set { "shortcut", "norm" })
    cfg = { a, b, c, shortcut = o.shortcut, norm = o.norm }
  end
  local cin = util.integer(cfg[1], WHERE, "in_channels", 1)
  local cout = util.integer(cfg[2], WHERE, "out_channels", 1)
  local stride = util.integer(cfg[3] or 1, WHERE, "stride", 1)
  local shortcut = util.choice(cfg.shortcut or "A", WHERE, "option 'shortcut'", { "A", "B" })
  local norm = util.choice(cfg.norm or "bn", WHERE, "option 'norm'", { "bn", "none" })
  self.in_channels, self.out_channels, self.stride = cin, cout, stride
  self.shortcut_type, self.norm = shortcut, norm
  local use_bn = norm == "bn"

  self:register_module("conv1", Conv2d{ cin, cout, 3, stride = stride, padding = 1, bias = false })
  if use_bn then self:register_module("bn1", BatchNorm2d(cout)) end
  self:register_module("relu1", ReLU())
  self:register_module("conv2", Conv2d{ cout, cout, 3, stride = 1, padding = 1, bias = false })
  if use_bn then self:register_module("bn2", BatchNorm2d(cout)) end
  local sc
  if stride == 1 and cin == cout then
    sc = Identity()
  elseif shortcut == "A" then
    if cout < cin then
      util.fail(WHERE, ("shortcut 'A' cannot reduce channels (%d -> %d); use 'B'"):format(cin, cout))
    end
    sc = ShortcutA(cin, cout, stride)
  else
    sc = Sequential():add(Conv2d{ cin, cout, 1, stride = stride, bias = false }, "conv")
    if use_bn then sc:add(BatchNorm2d(cout), "bn") end
  end
  self:register_module("shortcut", sc)
  self:register_module("relu2", ReLU())
end

function BasicBlock:forward(x)
  local out = self.conv1(x)
  if self.bn1 then out = self.bn1(out) end
  out = self.relu1(out)
  out = self.conv2(out)
  if self.bn2 then out = self.bn2(out) end
  local sum = self:tag(out + self.shortcut(x), "add")
  return self.relu2(sum)
end

function BasicBlock:config()
  local s = ("%d -> %d"):format(self.in_channels, self.out_channels)
  if self.stride ~= 1 then s = s .. ", stride " .. self.stride end
  if not (self.stride == 1 and self.in_channels == self.out_channels) then
    s = s .. ", shortcut " .. self.shortcut_type
  end
  if self.norm ~= "bn" then s = s .. ", norm " .. self.norm end
  return s
end

return { BasicBlock = BasicBlock, ShortcutA = ShortcutA }
