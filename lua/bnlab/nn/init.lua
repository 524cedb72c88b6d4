-- bn.nn: modules for building networks, written in Lua over the C ops
-- (docs/nn.md). Every layer is a bn.nn.Module; containers (Sequential,
-- BasicBlock, the models of bn.models) hold children under names, which
-- make the dotted paths of parameters ("stage2.block3.conv1.weight"),
-- outputs (the names probes hook) and error messages ("(in stage1.block2.conv1)").
local M = require "bnlab.nn.module"

local nn = {
  Module = M.Module,
  class = M.class,
  is_module = M.is_module,
  is_instance = M.is_instance,
  Sequential = require "bnlab.nn.sequential",
  Linear = require "bnlab.nn.linear",
  Conv2d = require "bnlab.nn.conv",
}

for _, file in ipairs({ "batchnorm", "activation", "pooling", "shape", "residual" }) do
  for name, cls in pairs(require("bnlab.nn." .. file)) do nn[name] = cls end
end

return nn
