-- The functional ops from Lua: values against naive Lua references, the
-- 1-based conventions (dims, labels, starts), option tables, PyTorch's pad
-- order, and finite-difference gradients through the bindings.
local bn = require "bnlab"
local check = require "check"

local T = {}

local function close(t, want, tol, what)
  tol = tol or 1e-5
  local got = bn.is_tensor(t) and t:totable() or t
  local function walk(g, w, path)
    if type(w) == "table" then
      check.eq(type(g), "table", (what or "") .. path .. " type")
      check.eq(#g, #w, (what or "") .. path .. " length")
      for i = 1, #w do walk(g[i], w[i], path .. "[" .. i .. "]") end
    else
      check.near(g, w, tol, (what or "") .. path)
    end
  end
  walk(got, want, "")
end

-- Flat list of a tensor's values, row-major.
local function flat(t)
  local out = {}
  local function walk(v)
    if type(v) == "table" then for _, x in ipairs(v) do walk(x) end else out[#out + 1] = v end
  end
  walk(t:totable())
  return out
end

-- Checks d f(x) / d x from autograd against central differences, element by
-- element (float32 values; the differences are taken in double).
local function gradcheck(f, x, eps, tol)
  eps, tol = eps or 1e-2, tol or 2e-2
  x:requires_grad(true)
  x:zero_grad()
  f(x):backward()
  local analytic = flat(x.grad)
  local n = x:numel()
  local xv = x:view(n)
  for i = 1, n do
    local orig = xv[i]
    local fp, fm
    bn.no_grad(function()
      xv[i] = orig + eps
      fp = f(x):item()
      xv[i] = orig - eps
      fm = f(x):item()
      xv[i] = orig
    end)
    local numeric = (fp - fm) / (2 * eps)
    if math.abs(numeric - analytic[i]) > tol * math.max(1, math.abs(numeric)) then
      error(("gradient element %d: autograd %g, finite differences %g"):format(i, analytic[i], numeric), 2)
    end
  end
end

-- ---- linear algebra --------------------------------------------------------------

function T.matmul_and_linear()
  local a = bn.tensor{{1, 2}, {3, 4}}
  local b = bn.tensor{{5, 6}, {7, 8}}
  close(bn.matmul(a, b), {{19, 22}, {43, 50}})
  close(a:matmul(b), {{19, 22}, {43, 50}})
  close(bn.matmul(a, bn.tensor{1, 1}), {3, 7})
  local x = bn.tensor{{1, 2, 3}}
  local w = bn.tensor{{1, 0, 0}, {0, 1, 1}}
  close(bn.linear(x, w), {{1, 5}})
  close(bn.linear(x, w, bn.tensor{10, 20}), {{11, 25}})
  gradcheck(function(t) return bn.linear(t, w, bn.tensor{1, 2}):pow(2):sum() end, bn.tensor{{0.5, -1, 2}, {1, 0.3, -0.2}})
end

-- ---- convolution ---------------------------------------------------------------------

-- Naive conv2d on nested tables (N = 1).
local function naive_conv(x, w, b, stride, pad)
  local C, H, W = #x[1], #x[1][1], #x[1][1][1]
  local O, kh, kw = #w, #w[1][1], #w[1][1][1]
  local oh = (H + 2 * pad - kh) // stride + 1
  local ow = (W + 2 * pad - kw) // stride + 1
  local out = {{}}
  for o = 1, O do
    out[1][o] = {}
    for i = 1, oh do
      out[1][o][i] = {}
      for j = 1, ow do
        local s = b and b[o] or 0
        for c = 1, C do
          for u = 1, kh do
            for v = 1, kw do
              local yy, xx = (i - 1) * stride - pad + u, (j - 1) * stride - pad + v
              if yy >= 1 and yy <= H and xx >= 1 and xx <= W then s = s + x[1][c][yy][xx] * w[o][c][u][v] end
            end
          end
        end
        out[1][o][i][j] = s
      end
    end
  end
  return out
end

function T.conv2d_options_and_values()
  bn.manual_seed(1)
  local x = bn.randn(1, 2, 5, 5)
  local w = bn.randn(3, 2, 3, 3)
  local b = bn.tensor{0.1, -0.2, 0.3}
  close(bn.conv2d(x, w, b), naive_conv(x:totable(), w:totable(), b:totable(), 1, 0), 1e-4)
  close(bn.conv2d(x, w, b, {stride = 2, padding = 1}), naive_conv(x:totable(), w:totable(), b:totable(), 2, 1), 1e-4)
  check.eq(bn.conv2d(x, w, nil, {stride = {1, 2}, padding = {1, 0}}):shape(), {1, 3, 5, 2})
  check.eq(bn.conv2d(x, w):shape(), {1, 3, 3, 3})
  check.raises(function() return bn.conv2d(x, w, nil, {strid = 2}) end, "unknown option")
  gradcheck(function(t) return bn.conv2d(t, w, b, {padding = 1}):pow(2):sum() end, bn.randn(1, 2, 3, 3), 1e-2, 3e-2)
end

-- ---- batch norm ------------------------------------------------------------------------

function T.batch_norm_training_and_eval()
  local x = bn.tensor{{1, 10}, {3, 20}, {5, 30}}
  local rm, rv = bn.zeros(2), bn.ones(2)
  local y = bn.batch_norm(x, rm, rv, nil, nil, {training = true, momentum = 0.5, eps = 0})
  -- column 1: mean 3, biased var 8/3
  local s1 = math.sqrt(8 / 3)
  close(y:select(2, 1), {-2 / s1, 0, 2 / s1}, 1e-5)
  -- running stats: (1 - m) * old + m * batch (unbiased var 4 and 100)
  close(rm, {1.5, 10}, 1e-5)
  close(rv, {0.5 + 0.5 * 4, 0.5 + 0.5 * 100}, 1e-4)
  -- eval uses the running stats
  local e = bn.batch_norm(x, bn.tensor{1, 2}, bn.tensor{4, 16}, bn.tensor{2, 1}, bn.tensor{0, 1}, {eps = 0})
  close(e, {{0, 3}, {2, 5.5}, {4, 8}}, 1e-5)
  -- default options: eval mode, which needs running stats
  check.raises(function() return bn.batch_norm(x) end, "bn.batch_norm")
  check.raises(function() return bn.batch_norm(x, nil, nil, nil, nil, {training = true, momentum = 2}) end, "momentum")
  gradcheck(function(t) return (bn.batch_norm(t, nil, nil, nil, nil, {training = true}) * bn.tensor{1, 2}):pow(2):sum():mul(0.1) + t:sum() end,
    bn.tensor{{0.5, 1}, {-1, 2}, {0.3, -0.7}}, 1e-2, 5e-2)
end

-- ---- softmax and losses ------------------------------------------------------------------

function T.softmax_and_log_softmax()
  local x = bn.tensor{{1, 2, 3}, {1, 1, 1}}
  local e = {math.exp(1), math.exp(2), math.exp(3)}
  local z = e[1] + e[2] + e[3]
  close(bn.softmax(x, 2), {{e[1] / z, e[2] / z, e[3] / z}, {1 / 3, 1 / 3, 1 / 3}})
  close(bn.softmax(x, -1), {{e[1] / z, e[2] / z, e[3] / z}, {1 / 3, 1 / 3, 1 / 3}})
  close(bn.log_softmax(x, 2), {{1 - math.log(z), 2 - math.log(z), 3 - math.log(z)},
    {-math.log(3), -math.log(3), -math.log(3)}})
  close(x:softmax(1):sum(1), {1, 1, 1})
  check.raises(function() return bn.softmax(x) end, "bn.softmax")
end

function T.cross_entropy_with_one_based_labels()
  local logits = bn.tensor{{2, 0, 0}, {0, 0, 3}}
  local function ce(row, label)
    local z = 0
    for _, v in ipairs(row) do z = z + math.exp(v) end
    return math.log(z) - row[label]
  end
  local want = (ce({2, 0, 0}, 1) + ce({0, 0, 3}, 3)) / 2
  check.near(bn.cross_entropy(logits, {1, 3}):item(), want, 1e-6)
  check.near(bn.cross_entropy(logits, bn.tensor{1, 3}):item(), want, 1e-6)
  check.raises(function() return bn.cross_entropy(logits, {0, 1}) end, "[1, 3] (1-based)")
  check.raises(function() return bn.cross_entropy(logits, {1, 4}) end, "bn.cross_entropy")
  check.raises(function() return bn.cross_entropy(logits, {1}) end, "bn.cross_entropy")
  check.raises(function() return bn.cross_entropy(logits, {1.5, 1}) end, "bn.cross_entropy")
  gradcheck(function(t) return bn.cross_entropy(t, {2, 1}) end, bn.tensor{{0.2, -0.4, 1}, {0.5, 0.1, -0.3}})
end

function T.mse_loss()
  check.near(bn.mse_loss(bn.tensor{1, 2, 3}, bn.tensor{1, 0, 0}):item(), (4 + 9) / 3, 1e-6)
  gradcheck(function(t) return bn.mse_loss(t, bn.tensor{1, 0}) end, bn.tensor{0.3, -0.8})
end

-- ---- pooling --------------------------------------------------------------------------------

function T.pooling()
  local x = bn.arange(16):view(1, 1, 4, 4)
  close(bn.max_pool2d(x, 2), {{{{5, 7}, {13, 15}}}})
  close(bn.avg_pool2d(x, 2), {{{{2.5, 4.5}, {10.5, 12.5}}}})
  close(bn.max_pool2d(x, 2, {stride = 1}):select(4, 1), {{{5, 9, 13}}})
  check.eq(bn.max_pool2d(x, {2, 1}):shape(), {1, 1, 2, 4})
  check.eq(bn.max_pool2d(x, 3, {stride = 2, padding = 1}):shape(), {1, 1, 2, 2})
  -- count_include_pad: corner window of a 3x3 pool with padding 1 sees 4 values
  local ones = bn.ones(1, 1, 2, 2)
  close(bn.avg_pool2d(ones, 3, {stride = 1, padding = 1}), {{{{4 / 9, 4 / 9}, {4 / 9, 4 / 9}}}})
  close(bn.avg_pool2d(ones, 3, {stride = 1, padding = 1, count_include_pad = false}), {{{{1, 1}, {1, 1}}}})
  close(bn.adaptive_avg_pool2d(x, 1), {{{{7.5}}}})
  close(bn.adaptive_avg_pool2d(x, {2, 1}), {{{{3.5}, {11.5}}}})
  gradcheck(function(t) return bn.avg_pool2d(t, 2, {stride = 1}):pow(2):sum() end, bn.randn(1, 1, 3, 3))
end

-- ---- dropout ------------------------------------------------------------------------------------

function T.dropout()
  bn.manual_seed(7)
  local x = bn.ones(1000)
  local y = bn.dropout(x, 0.25, true)
  local kept = y:sum():item() / (1 / 0.75)
  check.truthy(kept > 650 and kept < 850, "about 75% kept, got " .. kept)
  for _, v in ipairs(y:totable()) do
    check.truthy(v == 0 or math.abs(v - 1 / 0.75) < 1e-6, "values are 0 or 1/(1-p), got " .. v)
  end
  close(bn.dropout(bn.tensor{1, 2}, 0.5, false), {1, 2})
  close(bn.dropout(bn.tensor{1, 2}, 0), {1, 2})
  close(bn.dropout(bn.tensor{1, 2}, 1), {0, 0})
end

-- ---- shape ops ------------------------------------------------------------------------------------

function T.cat_and_stack()
  local a, b = bn.tensor{{1, 2}}, bn.tensor{{3, 4}, {5, 6}}
  close(bn.cat({a, b}), {{1, 2}, {3, 4}, {5, 6}})
  close(bn.cat({a, a}, 2), {{1, 2, 1, 2}})
  close(bn.cat({a, a}, -1), {{1, 2, 1, 2}})
  close(bn.stack({bn.tensor{1, 2}, bn.tensor{3, 4}}), {{1, 2}, {3, 4}})
  close(bn.stack({bn.tensor{1, 2}, bn.tensor{3, 4}}, 2), {{1, 3}, {2, 4}})
  close(bn.stack({bn.tensor(1), bn.tensor(2)}), {1, 2})
  -- many inputs (the core groups them into several nodes)
  local parts = {}
  for i = 1, 9 do parts[i] = bn.tensor{i} end
  close(bn.cat(parts), {1, 2, 3, 4, 5, 6, 7, 8, 9})
  gradcheck(function(t) return (bn.cat({t, t * 2, bn.ones(1, 2)}) * bn.arange(6):view(3, 2)):sum() end, bn.tensor{{0.5, 1}})
end

function T.pad_uses_pytorch_order()
  local x = bn.tensor{{1, 2}, {3, 4}}
  -- last dim first: {left, right, top, bottom}
  close(bn.pad(x, {1, 0}), {{0, 1, 2}, {0, 3, 4}})
  close(bn.pad(x, {0, 0, 0, 1}), {{1, 2}, {3, 4}, {0, 0}})
  close(bn.pad(x, {1, 1, 1, 0}), {{0, 0, 0, 0}, {0, 1, 2, 0}, {0, 3, 4, 0}})
  close(bn.pad(x, {-1, 0}), {{2}, {4}}) -- negative crops
  check.eq(bn.pad(bn.zeros(1, 3, 4, 4), {2, 2, 2, 2}):shape(), {1, 3, 8, 8})
  check.raises(function() return bn.pad(x, {1}) end, "bn.pad")
  check.raises(function() return bn.pad(x, {1, 1, 1, 1, 1, 1}) end, "bn.pad")
  check.raises(function() return bn.pad(x, {1, 1}, 5) end, "zero padding")
  gradcheck(function(t) return (bn.pad(t, {1, 0, 0, 1}) * bn.arange(9):view(3, 3)):sum() end, bn.tensor{{0.5, 1}, {2, 3}})
end

function T.subsample_start_is_one_based()
  local x = bn.arange(10):view(2, 5)
  close(bn.subsample(x, 2, 1, 2), {{0, 2, 4}, {5, 7, 9}})
  close(bn.subsample(x, 2, 2, 2), {{1, 3}, {6, 8}})
  close(bn.subsample(x, -1, -1, 1), {{4}, {9}})
end

-- ---- misc ------------------------------------------------------------------------------------------

function T.num_threads_and_memory_queries()
  local n = bn.num_threads()
  check.eq(math.type(n), "integer")
  check.eq(bn.num_threads(1), 1)
  check.eq(bn.num_threads(n), n)
  check.eq(math.type(bn.mem_in_use()), "integer")
  check.truthy(bn.mem_peak() >= bn.mem_in_use(), "peak >= in use")
  check.eq(type(bn.blas_version()), "string")
end

function T.save_and_load_npy()
  local path = os.tmpname()
  local t = bn.tensor{{1, 2, 3}, {4, 5, 6.5}}
  bn.save(t:t(), path) -- a strided view is written in logical order
  local u = bn.load(path)
  os.remove(path)
  check.eq(u:shape(), {3, 2})
  close(u, {{1, 4}, {2, 5}, {3, 6.5}})
  check.raises(function() return bn.load(path) end, "bn.load")
  check.raises(function() return bn.save(t, "/nonexistent-dir/x.npy") end, "bn.save")
end

return T
