-- Lua-side tensor helpers, written over the C bindings (src/bindings/):
-- small conveniences that need no kernel of their own. init.lua calls the
-- returned function with `bn`; methods go into bn.Tensor, so every tensor
-- has them.
return function(bn)
  local Tensor = bn.Tensor

  -- Errors read like the C bindings' ("bn.<fn>: argument #k (name) expected
  -- ..., got ..."), raised at the caller of the helper.
  local function describe(v)
    if bn.is_tensor(v) then return v:is_closed() and "a closed tensor" or "tensor " .. tostring(v):match("^%S*") end
    if type(v) == "number" then return ("number %s"):format(v) end
    if type(v) == "string" then return ("string '%s'"):format(#v > 40 and v:sub(1, 37) .. "..." or v) end
    return v == nil and "nil" or type(v)
  end
  local function check_tensor(fn, v, k, name)
    if bn.is_tensor(v) and v:is_closed() then error(("bn.%s: argument #%d is a closed tensor"):format(fn, k), 3) end
    if not bn.is_tensor(v) then
      error(("bn.%s: argument #%d (%s) expected a tensor, got %s"):format(fn, k, name, describe(v)), 3)
    end
  end
  -- A core error raised inside a helper, renamed to the helper ("bn.sub:
  -- shapes ..." from inside allclose reads "bn.allclose: shapes ...").
  local function rethrow(fn, err)
    if type(err) ~= "string" then error(err, 0) end
    err = err:gsub("^[^\n]-:%d+: ", ""):gsub("^bn%.[%w_.]+: ", "")
    error(("bn.%s: %s"):format(fn, err), 4)
  end
  local function run(fn, f, ...)
    local r = table.pack(pcall(f, ...))
    if not r[1] then rethrow(fn, r[2]) end
    return table.unpack(r, 2, r.n)
  end

  --- t:tolist(): the same as t:totable() (PyTorch's name).
  Tensor.tolist = Tensor.totable

  --- t:type(): "bn.Tensor" (there is one dtype: float32).
  function Tensor.type() return "bn.Tensor" end

  --- t:square(): t * t, differentiable.
  function Tensor.square(t)
    check_tensor("square", t, 1, "self")
    return run("square", function() return t * t end)
  end

  --- t:norm([p]): the p-norm of all elements as a 0-d tensor (p = 2 by
  -- default), differentiable: (sum |t|^p)^(1/p).
  function Tensor.norm(t, p)
    check_tensor("norm", t, 1, "self")
    p = p or 2
    if type(p) ~= "number" or not (p > 0) or p == math.huge then
      error(("bn.norm: argument #2 (p) expected a finite number > 0, got %s"):format(describe(p)), 2)
    end
    return run("norm", function()
      if p == 2 then return (t * t):sum():sqrt() end
      if p == 1 then return t:abs():sum() end
      return (t:abs() ^ p):sum() ^ (1 / p)
    end)
  end

  --- bn.allclose(a, b[, rtol[, atol]]): |a - b| <= atol + rtol |b| everywhere
  -- (broadcasting as in arithmetic); NaN is never close. Not differentiable.
  function bn.allclose(a, b, rtol, atol)
    local ab = { a, b }
    for k = 1, 2 do
      if type(ab[k]) ~= "number" then check_tensor("allclose", ab[k], k, k == 1 and "a" or "b") end
    end
    if not (bn.is_tensor(a) or bn.is_tensor(b)) then
      error("bn.allclose: expected at least one tensor, got two numbers", 2)
    end
    for k, v in pairs { [3] = rtol, [4] = atol } do
      if v ~= nil and type(v) ~= "number" then
        error(("bn.allclose: argument #%d (%s) expected a number, got %s"):format(k, k == 3 and "rtol" or "atol",
          describe(v)), 2)
      end
    end
    rtol, atol = rtol or 1e-5, atol or 1e-8
    return run("allclose", bn.no_grad, function()
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
    check_tensor("equal", a, 1, "a")
    check_tensor("equal", b, 2, "b")
    if a:dim() ~= b:dim() then return false end
    for d = 1, a:dim() do
      if a:size(d) ~= b:size(d) then return false end
    end
    local n = a:numel()
    if n == 0 then return true end
    local x, y = run("equal", function() return a:reshape(n):totable(), b:reshape(n):totable() end)
    for i = 1, n do
      if x[i] ~= y[i] then return false end
    end
    return true
  end
  Tensor.equal = bn.equal
end
