-- bn.nn.Conv2d: 2-D convolution over NCHW input (bn.conv2d).
-- Initialized as PyTorch's nn.Conv2d: weight and bias uniform in
-- +-1/sqrt(in * kh * kw); model builders re-initialize (bn.init).
local bn = require "bnlab"
local M = require "bnlab.nn.module"
local util = require "bnlab.nn.util"

local Conv2d = M.class("Conv2d", M.Module)
local WHERE = "bn.nn.Conv2d"
local NAMES = { "in_channels", "out_channels", "kernel_size", "stride", "padding", "bias" }
local KNOWN = util.set(NAMES)

local function pair(v) return type(v) == "table" and v or { v, v } end

local function show_pair(v)
  if type(v) == "table" then
    return v[1] == v[2] and tostring(v[1]) or (v[1] .. "x" .. v[2])
  end
  return tostring(v)
end

--- Conv2d{in, out, kernel, stride, padding, bias} (positional in the table
-- or named in_channels, out_channels, kernel_size, stride = 1, padding = 0,
-- bias = true), or Conv2d(in, out, kernel [, {stride=, padding=, bias=}]).
function Conv2d:__init(a, b, c, opts)
  M.Module.__init(self)
  local cfg
  if type(a) == "table" then
    cfg = util.options(a, WHERE, KNOWN, 6)
    if b ~= nil then util.fail(WHERE, "the table form takes no other argument") end
  else
    local o = util.options(opts, WHERE, util.set { "stride", "padding", "bias" })
    cfg = { a, b, c, o.stride, o.padding, o.bias }
  end
  local function get(i) local v = cfg[i]; if v == nil then v = cfg[NAMES[i]] end; return v end
  self.in_channels = util.integer(get(1), WHERE, "in_channels", 1)
  self.out_channels = util.integer(get(2), WHERE, "out_channels", 1)
  self.kernel_size = util.int_or_pair(get(3), WHERE, "kernel_size", 1)
  self.stride = util.int_or_pair(get(4) or 1, WHERE, "stride", 1)
  self.padding = util.int_or_pair(get(5) or 0, WHERE, "padding", 0)
  local has_bias = get(6)
  if has_bias == nil then has_bias = true end
  util.boolean(has_bias, WHERE, "bias")
  local k = pair(self.kernel_size)
  local fan_in = self.in_channels * k[1] * k[2]
  local bound = 1 / math.sqrt(fan_in)
  bn.no_grad(function()
    self:register_parameter("weight",
      bn.rand(self.out_channels, self.in_channels, k[1], k[2]) * (2 * bound) - bound)
    if has_bias then self:register_parameter("bias", bn.rand(self.out_channels) * (2 * bound) - bound) end
  end)
  self._opts = { stride = self.stride, padding = self.padding }
end

function Conv2d:forward(x)
  return bn.conv2d(x, self.weight, self.bias, self._opts)
end

function Conv2d:config()
  local s = ("%d -> %d, kernel %s"):format(self.in_channels, self.out_channels, show_pair(self.kernel_size))
  if show_pair(self.stride) ~= "1" then s = s .. ", stride " .. show_pair(self.stride) end
  if show_pair(self.padding) ~= "0" then s = s .. ", padding " .. show_pair(self.padding) end
  if not self.bias then s = s .. ", no bias" end
  return s
end

return Conv2d
