-- Elementwise activations: bn.nn.ReLU, bn.nn.Tanh, bn.nn.Sigmoid.
local bn = require "bnlab"
local M = require "bnlab.nn.module"

local function activation(name, fn)
  local cls = M.class(name, M.Module)
  function cls:__init(...)
    if select("#", ...) > 0 then error(("bn.nn.%s: takes no arguments"):format(name), 3) end
    M.Module.__init(self)
  end
  function cls:forward(x) return fn(x) end
  return cls
end

return {
  ReLU = activation("ReLU", bn.relu),
  Tanh = activation("Tanh", bn.tanh),
  Sigmoid = activation("Sigmoid", bn.sigmoid),
}
