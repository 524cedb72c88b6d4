-- Pooling layers over NCHW input: bn.nn.MaxPool2d, bn.nn.AvgPool2d,
-- bn.nn.AdaptiveAvgPool2d.
local bn = require "bnlab"
local M = require "bnlab.nn.module"
local util = require "bnlab.nn.util"

local function show(v)
  if type(v) == "table" then return v[1] == v[2] and tostring(v[1]) or (v[1] .. "x" .. v[2]) end
  return tostring(v)
end

local function pool_class(name, op, extra)
  local where = "bn.nn." .. name
  local known = util.set { "stride", "padding", extra }
  local cls = M.class(name, M.Module)
  --- Pool(kernel [, {stride = kernel, padding = 0, ...}])
  function cls:__init(kernel, opts)
    M.Module.__init(self)
    opts = util.options(opts, where, known)
    self.kernel_size = util.int_or_pair(kernel, where, "kernel_size", 1)
    self.stride = util.int_or_pair(opts.stride or self.kernel_size, where, "option 'stride'", 1)
    self.padding = util.int_or_pair(opts.padding or 0, where, "option 'padding'", 0)
    self._opts = { stride = self.stride, padding = self.padding }
    if extra and opts[extra] ~= nil then
      self[extra] = util.boolean(opts[extra], where, "option '" .. extra .. "'")
      self._opts[extra] = self[extra]
    end
  end
  function cls:forward(x) return op(x, self.kernel_size, self._opts) end
  function cls:config()
    local s = "kernel " .. show(self.kernel_size)
    if show(self.stride) ~= show(self.kernel_size) then s = s .. ", stride " .. show(self.stride) end
    if show(self.padding) ~= "0" then s = s .. ", padding " .. show(self.padding) end
    if extra and self[extra] ~= nil then s = s .. ", " .. extra .. " " .. tostring(self[extra]) end
    return s
  end
  return cls
end

local AdaptiveAvgPool2d = M.class("AdaptiveAvgPool2d", M.Module)
--- AdaptiveAvgPool2d(size): output [N x C x size x size] (size a number or {h, w}).
function AdaptiveAvgPool2d:__init(size)
  M.Module.__init(self)
  self.output_size = util.int_or_pair(size or 1, "bn.nn.AdaptiveAvgPool2d", "output_size", 1)
end
function AdaptiveAvgPool2d:forward(x) return bn.adaptive_avg_pool2d(x, self.output_size) end
function AdaptiveAvgPool2d:config() return show(self.output_size) end

return {
  MaxPool2d = pool_class("MaxPool2d", bn.max_pool2d),
  AvgPool2d = pool_class("AvgPool2d", bn.avg_pool2d, "count_include_pad"),
  AdaptiveAvgPool2d = AdaptiveAvgPool2d,
}
