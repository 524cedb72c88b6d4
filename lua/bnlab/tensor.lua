-- Lua-side tensor helpers, written over the C bindings (src/bindings/):
-- small conveniences that need no kernel of their own. init.lua calls the
-- returned function with `bn`; methods go into bn.Tensor, so every tensor
-- has them.
return function(bn)
  local Tensor = bn.Tensor

  --- t:tolist(): the same as t:totable() (PyTorch's name).
  Tensor.tolist = Tensor.totable

  --- t:type(): "bn.Tensor" (there is one dtype: float32).
  function Tensor.type() return "bn.Tensor" end

  --- t:square(): t * t, differentiable.
  function Tensor.square(t) return t * t end

  --- t:norm([p]): the p-norm of all elements as a 0-d tensor (p = 2 by
  -- default), differentiable: (sum |t|^p)^(1/p).
  function Tensor.norm(t, p)
    p = p or 2
    if type(p) ~= "number" or not (p > 0) or p == math.huge then
      error(("bn.norm: argument #2 (p) expected a finite number > 0, got %s"):format(tostring(p)), 2)
    end
    if p == 2 then return (t * t):sum():sqrt() end
    if p == 1 then return t:abs():sum() end
    return (t:abs() ^ p):sum() ^ (1 / p)
  end

  --- bn.allclose(a, b[, rtol[, atol]]): |a - b| <= atol + rtol |b| everywhere
  -- (broadcasting as in arithmetic); NaN is never close. Not differentiable.
  function bn.allclose(a, b, rtol, atol)
    rtol, atol = rtol or 1e-5, atol or 1e-8
    return bn.no_grad(function()
      local diff = (a - b):abs() - (bn.is_tensor(b) and b:abs() or math.abs(b)) * rtol - atol
      if diff:numel() == 0 then return true end
      local worst = diff:max():item()
      return worst <= 0 -- false for NaN
    end)
  end
  Tensor.allclose = bn.allclose

  --- bn.equal(a, b): same shape and exactly the same values (NaN is never
  -- equal, as in PyTorch).
  function bn.equal(a, b)
    if not (bn.is_tensor(a) and bn.is_tensor(b)) then
      error("bn.equal: expected two tensors, got " .. type(a) .. " and " .. type(b), 2)
    end
    if a:dim() ~= b:dim() then return false end
    for d = 1, a:dim() do
      if a:size(d) ~= b:size(d) then return false end
    end
    local n = a:numel()
    if n == 0 then return true end
    local x, y = a:reshape(n):totable(), b:reshape(n):totable()
    for i = 1, n do
      if x[i] ~= y[i] then return false end
    end
    return true
  end
  Tensor.equal = bn.equal
end
