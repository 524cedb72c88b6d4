-- Fits y = 3x + 1 by SGD with momentum: the smallest complete use of
-- bn.optim. Run:  ./bnlab examples/fit_line.lua
local bn = require "bnlab"

bn.manual_seed(0)
local x = bn.linspace(-1, 1, 64):view(64, 1)          -- inputs  [64 x 1]
local y = 3 * x + 1 + 0.05 * bn.randn(64, 1)           -- targets, a little noise

local w = bn.zeros(1, 1):requires_grad(true)           -- the model: y = x w^T + b
local b = bn.zeros(1):requires_grad(true)
local opt = bn.optim.SGD({ w, b }, { lr = 0.1, momentum = 0.9 })

for step = 1, 100 do
  opt:zero_grad()
  local loss = bn.mse_loss(bn.linear(x, w, b), y)
  loss:backward()
  opt:step()
  if step % 10 == 0 then print(("step %3d  loss %.6f"):format(step, loss:item())) end
end
print(("fitted y = %.4f x + %.4f"):format(w:item(), b:item()))
