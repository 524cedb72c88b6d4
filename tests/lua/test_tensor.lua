-- The Tensor userdata from Lua: creation, facts, indexing (1-based), views,
-- reductions, arithmetic with broadcasting, autograd and hooks.
local bn = require "bnlab"
local check = require "check"

local T = {}

-- t's contents (a nested table) equal `want` within tol.
local function close(t, want, tol, what)
  tol = tol or 1e-6
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

-- ---- creation ---------------------------------------------------------------

function T.tensor_from_nested_tables()
  local t = bn.tensor{{1, 2, 3}, {4, 5, 6}}
  check.eq(t:shape(), {2, 3})
  check.eq(t:dim(), 2)
  check.eq(t:numel(), 6)
  close(t, {{1, 2, 3}, {4, 5, 6}})
  check.eq(bn.tensor{}:shape(), {0})
  check.eq(bn.tensor{{}, {}}:shape(), {2, 0})
  local s = bn.tensor(3.5)
  check.eq(s:dim(), 0)
  check.eq(s:shape(), {})
  check.eq(s:item(), 3.5)
  check.eq(s:totable(), 3.5)
  local c = bn.tensor(t) -- a copy
  c[1][1] = 100
  check.eq(t[1][1], 1.0)
end

function T.tensor_keeps_nan_and_inf()
  local t = bn.tensor{0 / 0, math.huge, -math.huge}
  local v = t:totable()
  check.truthy(v[1] ~= v[1], "NaN kept")
  check.eq(v[2], math.huge)
  check.eq(v[3], -math.huge)
end

function T.sizes_as_varargs_or_table()
  check.eq(bn.zeros(2, 3):shape(), {2, 3})
  check.eq(bn.zeros{2, 3}:shape(), {2, 3})
  check.eq(bn.ones(4):sum():item(), 4.0)
  check.eq(bn.empty(3, 0):shape(), {3, 0})
  check.eq(bn.zeros():dim(), 0)
  check.eq(bn.zeros(6 / 2):shape(), {3}) -- an integral float is a size
  close(bn.full({2, 2}, 7), {{7, 7}, {7, 7}})
  close(bn.full(2, 2, -1), {{-1, -1}, {-1, -1}})
  check.eq(bn.zeros_like(bn.ones(2, 5)):shape(), {2, 5})
  close(bn.ones_like(bn.zeros(2)), {1, 1})
  close(bn.full_like(bn.zeros(2), 3), {3, 3})
  check.eq(bn.rand_like(bn.zeros(3, 2)):shape(), {3, 2})
end

function T.ranges_and_eye()
  close(bn.arange(4), {0, 1, 2, 3})
  close(bn.arange(1, 3), {1, 2})
  close(bn.arange(0, 1, 0.25), {0, 0.25, 0.5, 0.75})
  close(bn.arange(3, 0, -1), {3, 2, 1})
  close(bn.linspace(0, 1, 5), {0, 0.25, 0.5, 0.75, 1})
  close(bn.logspace(0, 2, 3), {1, 10, 100}, 1e-5)
  close(bn.logspace(0, 3, 4, 2), {1, 2, 4, 8}, 1e-6)
  close(bn.eye(2), {{1, 0}, {0, 1}})
  close(bn.eye(2, 3), {{1, 0, 0}, {0, 1, 0}})
end

function T.random_is_seeded()
  bn.manual_seed(42)
  local a = bn.rand(100)
  local b = bn.randn(100)
  bn.manual_seed(42)
  check.eq(bn.rand(100):totable(), a:totable())
  check.eq(bn.randn(100):totable(), b:totable())
  check.truthy(a:min():item() >= 0 and a:max():item() < 1, "rand in [0, 1)")
  local n = bn.randn(20000)
  check.near(n:mean():item(), 0, 0.05)
  check.near(n:std():item(), 1, 0.05)
end

-- ---- facts and access ---------------------------------------------------------

function T.size_dim_len_item()
  local t = bn.zeros(2, 3, 4)
  check.eq(t:size(1), 2)
  check.eq(t:size(-1), 4)
  check.eq(t:size(), {2, 3, 4})
  check.eq(#t, 2)
  check.eq(bn.tensor{5}:item(), 5.0)
  check.raises(function() return t:item() end, "bn.item")
  check.raises(function() return #bn.tensor(1) end, "bn.len")
end

function T.indexing_is_one_based()
  local t = bn.tensor{{1, 2, 3}, {4, 5, 6}}
  check.eq(t[1][1], 1.0)
  check.eq(t[2][3], 6.0)
  check.eq(t[-1][-1], 6.0)
  local row = t[2]
  check.eq(row:shape(), {3})
  close(row, {4, 5, 6})
  check.raises(function() return t[0] end, "bn.index")
  check.raises(function() return t[3] end, "bn.index")
  check.raises(function() return t[1.5] end, "bn.index")
  check.eq(t.no_such_field, nil)
end

function T.index_assignment_writes_through()
  local t = bn.zeros(2, 3)
  t[1][2] = 5
  t[2] = 7
  close(t, {{0, 5, 0}, {7, 7, 7}})
  t[1] = bn.tensor{1, 2, 3}
  close(t, {{1, 2, 3}, {7, 7, 7}})
  local v = bn.zeros(3)
  v[-1] = 9
  close(v, {0, 0, 9})
  check.raises(function() t[1] = "x" end, "bn.newindex")
  check.raises(function() t.foo = 1 end, "cannot set field 'foo'")
end

function T.fill_copy_zero()
  local t = bn.zeros(2, 2)
  check.eq(t:fill(3), t)
  close(t, {{3, 3}, {3, 3}})
  t:copy(bn.tensor{1, 2}) -- broadcast
  close(t, {{1, 2}, {1, 2}})
  t:zero_()
  close(t, {{0, 0}, {0, 0}})
end

function T.totable_of_strided_views()
  local t = bn.arange(6):view(2, 3)
  close(t:t(), {{0, 3}, {1, 4}, {2, 5}})
  close(t:transpose(1, 2):contiguous(), {{0, 3}, {1, 4}, {2, 5}})
end

-- ---- views ----------------------------------------------------------------------

function T.view_and_reshape()
  local t = bn.arange(12)
  check.eq(t:view(3, 4):shape(), {3, 4})
  check.eq(t:view{2, -1}:shape(), {2, 6})
  check.eq(t:reshape(-1, 3):shape(), {4, 3})
  local nc = t:view(3, 4):t()
  check.raises(function() return nc:view(12) end, "bn.view")
  check.eq(nc:reshape(12):shape(), {12})
  check.eq(t:view(3, 4):view_as(bn.zeros(4, 3)):shape(), {4, 3})
  -- a view shares storage
  local v = t:view(3, 4)
  v[1][1] = 42
  check.eq(t[1], 42.0)
end

function T.permute_transpose()
  local t = bn.zeros(2, 3, 4)
  check.eq(t:permute(3, 1, 2):shape(), {4, 2, 3})
  check.eq(t:permute{2, 3, 1}:shape(), {3, 4, 2})
  check.eq(t:permute(-1, 1, 2):shape(), {4, 2, 3})
  check.eq(t:transpose(1, 3):shape(), {4, 3, 2})
  check.eq(t:transpose(-1, -2):shape(), {2, 4, 3})
  check.raises(function() return t:permute(1, 1, 2) end, "bn.permute")
  check.raises(function() return t:permute(1, 2) end, "bn.permute")
end

function T.narrow_select_subsample()
  local t = bn.arange(10)
  close(t:narrow(1, 3, 4), {2, 3, 4, 5})
  close(t:narrow(1, -2, 2), {8, 9})
  check.eq(t:narrow(1, 11, 0):shape(), {0})
  local m = bn.arange(6):view(2, 3)
  close(m:select(1, 2), {3, 4, 5})
  close(m:select(2, 1), {0, 3})
  close(m:select(2, -1), {2, 5})
  close(bn.subsample(t, 1, 2, 3), {1, 4, 7})
  close(t:subsample(1, 1, 100), {0})
  check.raises(function() return t:narrow(1, 8, 4) end, "bn.narrow")
  check.raises(function() return t:narrow(1, 0, 1) end, "bn.narrow")
  check.raises(function() return m:select(1, 3) end, "bn.select")
end

function T.expand_flatten_squeeze_unsqueeze()
  local c = bn.tensor{{1}, {2}}
  close(c:expand(2, 3), {{1, 1, 1}, {2, 2, 2}})
  close(c:expand(-1, 2), {{1, 1}, {2, 2}})
  check.eq(c:expand(4, 2, 3):shape(), {4, 2, 3})
  check.eq(bn.zeros(2, 3):expand_as(bn.zeros(5, 2, 3)):shape(), {5, 2, 3})
  local t = bn.zeros(2, 3, 4)
  check.eq(t:flatten():shape(), {24})
  check.eq(t:flatten(2):shape(), {2, 12})
  check.eq(t:flatten(1, 2):shape(), {6, 4})
  local s = bn.zeros(1, 3, 1)
  check.eq(s:squeeze():shape(), {3})
  check.eq(s:squeeze(1):shape(), {3, 1})
  check.eq(s:squeeze(2):shape(), {1, 3, 1}) -- not size 1: unchanged
  check.eq(bn.zeros(3):unsqueeze(1):shape(), {1, 3})
  check.eq(bn.zeros(3):unsqueeze(2):shape(), {3, 1})
  check.eq(bn.zeros(3):unsqueeze(-1):shape(), {3, 1})
  check.eq(bn.tensor(1):unsqueeze(1):shape(), {1})
  check.raises(function() return bn.zeros(3):unsqueeze(3) end, "bn.unsqueeze")
end

function T.clone_and_detach()
  local a = bn.tensor{1, 2}:requires_grad(true)
  local c = a:clone()
  check.eq(c.grad_fn, "clone")
  local d = a:detach()
  check.eq(d:requires_grad(), false)
  check.eq(d.is_leaf, true)
  -- detach shares storage; clone does not
  bn.no_grad(function() d[1] = 10 end)
  check.eq(a[1], 10.0)
  check.eq(c[1], 1.0)
end

-- ---- reductions -------------------------------------------------------------------

function T.sum_mean_whole_and_by_dim()
  local t = bn.tensor{{1, 2, 3}, {4, 5, 6}}
  local s = t:sum()
  check.eq(s:dim(), 0)
  check.eq(s:item(), 21.0)
  check.eq(t:mean():item(), 3.5)
  close(t:sum(1), {5, 7, 9})
  close(t:sum(2), {6, 15})
  close(t:sum(-1), {6, 15})
  check.eq(t:sum(2, true):shape(), {2, 1})
  check.eq(t:sum(nil, true):shape(), {1, 1})
  close(t:mean(1), {2.5, 3.5, 4.5})
  close(bn.sum(t, 1), {5, 7, 9})
end

function T.var_std_corrections()
  local t = bn.tensor{1, 2, 3, 4}
  check.near(t:var():item(), 5 / 3, 1e-6)
  check.near(t:var(nil, false, 0):item(), 1.25, 1e-6)
  check.near(t:var(1, false, false):item(), 1.25, 1e-6)
  check.near(t:std():item(), math.sqrt(5 / 3), 1e-6)
  local m = bn.tensor{{1, 3}, {2, 6}}
  close(m:var(1), {0.5, 4.5})
  close(m:std(2, true, 0), {{1}, {2}})
end

function T.max_min_argmax_are_one_based()
  local t = bn.tensor{{1, 5, 2}, {7, 0, 3}}
  check.eq(t:max():item(), 7.0)
  check.eq(t:min():item(), 0.0)
  local v, i = t:max(2)
  close(v, {5, 7})
  close(i, {2, 1})
  v, i = t:min(1)
  close(v, {1, 0, 2})
  close(i, {1, 2, 1})
  v, i = t:max(1, true)
  check.eq(v:shape(), {1, 3})
  check.eq(i:shape(), {1, 3})
  check.eq(t:argmax():item(), 4.0) -- flat position of 7
  close(t:argmax(2), {2, 1})
  close(t:argmax(1), {2, 1, 2})
  check.eq(t:argmax(2, true):shape(), {2, 1})
end

-- ---- arithmetic --------------------------------------------------------------------

function T.operators_with_broadcasting_and_scalars()
  local a = bn.tensor{{1, 2}, {3, 4}}
  local r = bn.tensor{10, 20}
  close(a + r, {{11, 22}, {13, 24}})
  close(a - r, {{-9, -18}, {-7, -16}})
  close(a * r, {{10, 40}, {30, 80}})
  close(r / a, {{10, 10}, {10 / 3, 5}}, 1e-6)
  close(a + 1, {{2, 3}, {4, 5}})
  close(1 + a, {{2, 3}, {4, 5}})
  close(a - 1, {{0, 1}, {2, 3}})
  close(10 - a, {{9, 8}, {7, 6}})
  close(a * 2, {{2, 4}, {6, 8}})
  close(2 * a, {{2, 4}, {6, 8}})
  close(a / 2, {{0.5, 1}, {1.5, 2}})
  close(12 / a, {{12, 6}, {4, 3}})
  close(a ^ 2, {{1, 4}, {9, 16}})
  close(2 ^ a, {{2, 4}, {8, 16}}, 1e-6)
  close(-a, {{-1, -2}, {-3, -4}})
  close(a:add(1):mul(2), {{4, 6}, {8, 10}})
  close(bn.sub(a, r), {{-9, -18}, {-7, -16}})
  close(a:div(bn.tensor{1, 2}), {{1, 1}, {3, 2}})
  close(a:pow(0.5), {{1, math.sqrt(2)}, {math.sqrt(3), 2}}, 1e-6)
  check.raises(function() return a + bn.zeros(3) end, "bn.add")
  check.raises(function() return a ^ a end, "bn.pow")
  check.raises(function() return (-2) ^ a end, "bn.pow")
  check.raises(function() return a + "1" end, "bn.add")
end

function T.elementwise_functions()
  local t = bn.tensor{-1, 0, 2}
  close(bn.relu(t), {0, 0, 2})
  close(t:abs(), {1, 0, 2})
  close(bn.exp(t), {math.exp(-1), 1, math.exp(2)}, 1e-6)
  close(bn.log(bn.tensor{1, math.exp(1)}), {0, 1}, 1e-6)
  close(bn.sqrt(bn.tensor{4, 9}), {2, 3})
  close(bn.tanh(t), {math.tanh(-1), 0, math.tanh(2)}, 1e-6)
  close(bn.sigmoid(bn.tensor{0}), {0.5})
  close(bn.clamp(t, 0, 1), {0, 0, 1})
  close(t:clamp(nil, 0), {-1, 0, 0})
  close(t:clamp(-0.5), {-0.5, 0, 2})
  close(t:neg(), {1, 0, -2})
end

-- ---- autograd ------------------------------------------------------------------------

function T.requires_grad_set_and_query()
  local t = bn.zeros(2)
  check.eq(t:requires_grad(), false)
  check.eq(t:requires_grad(true), t) -- returns self
  check.eq(t:requires_grad(), true)
  t:requires_grad(false)
  check.eq(t:requires_grad(), false)
  check.eq(bn.zeros(1):requires_grad_():requires_grad(), true)
  check.eq(t.grad, nil)
end

function T.backward_fills_grad()
  local x = bn.tensor{1, 2, 3}:requires_grad(true)
  local y = (x * x):sum()
  check.eq(y.grad_fn, "sum")
  y:backward()
  close(x.grad, {2, 4, 6})
  check.eq(x.grad, x.grad) -- the same userdata each time
  -- accumulates
  ;(x * 3):sum():backward()
  close(x.grad, {5, 7, 9})
  x:zero_grad()
  check.eq(x.grad, nil)
  -- explicit gradient for a non-scalar root
  local z = x * 2
  z:backward(bn.tensor{1, 0, 1})
  close(x.grad, {2, 0, 2})
  x.grad = nil
  check.eq(x.grad, nil)
  x.grad = bn.tensor{1, 1, 1}
  close(x.grad, {1, 1, 1})
end

function T.backward_retain_graph()
  local x = bn.tensor{1, 2}:requires_grad(true)
  local y = (x * x):sum()
  y:backward(nil, true)
  y:backward()
  close(x.grad, {4, 8})
  check.raises(function() y:backward() end, "second time")
end

function T.retain_grad_on_non_leaf()
  local x = bn.tensor{1, 2}:requires_grad(true)
  local h = x * 3
  check.eq(h:retain_grad(), h)
  ;(h * h):sum():backward()
  close(h.grad, {6, 12})
  close(x.grad, {18, 36})
end

function T.no_grad_and_grad_mode()
  local x = bn.ones(2):requires_grad(true)
  local enabled, y = bn.no_grad(function(a) return bn.is_grad_enabled(), a * 2 end, x)
  check.eq(enabled, false)
  check.eq(bn.is_grad_enabled(), true)
  check.eq(y:requires_grad(), false)
  -- mode restored even when fn raises
  check.raises(function() bn.no_grad(function() error("inner failure") end) end, "inner failure")
  check.eq(bn.is_grad_enabled(), true)
  check.eq(bn.set_grad_enabled(false), true)
  check.eq((x * 2):requires_grad(), false)
  check.eq(bn.set_grad_enabled(true), false)
  -- in-place writes into a graph tensor are refused with grad on
  check.raises(function() x:fill(1) end, "bn.fill")
  bn.no_grad(function() x:fill(5) end)
  check.eq(x[1], 5.0)
end

function T.register_hook_sees_gradient()
  local x = bn.tensor{1, 2}:requires_grad(true)
  local seen
  check.eq(x:register_hook(function(g) seen = g:totable() end), x)
  local y = x * 3
  local seen_y
  y:register_hook(function(g) seen_y = g:totable() end)
  y:sum():backward()
  close(seen, {3, 3})
  close(seen_y, {1, 1})
end

function T.hook_errors_propagate_from_backward()
  local x = bn.tensor{1, 2}:requires_grad(true)
  local y = x * 2
  y:register_hook(function() error("boom in hook") end)
  local err = check.raises(function() y:sum():backward() end, "boom in hook")
  check.contains(err, "bn.backward")
  check.eq(x.grad, nil) -- backward stopped before reaching x
  -- non-string error values pass through untouched
  local z = x * 2
  local obj = {}
  z:register_hook(function() error(obj) end)
  local ok, e = pcall(function() z:sum():backward() end)
  check.eq(ok, false)
  check.eq(e, obj)
  check.eq(bn.is_grad_enabled(), true)
end

function T.hook_may_close_tensors_during_backward()
  local x = bn.tensor{1, 2}:requires_grad(true)
  local y = x * 2
  local loss = y:sum()
  y:register_hook(function(g)
    local gg <close> = g -- closing the argument is allowed
    local yy <close> = y -- and closing a tensor the graph still uses
  end)
  loss:backward()
  close(x.grad, {2, 2})
  check.raises(function() return y:sum() end, "closed tensor")
end

function T.named_tensors_and_pattern_hooks()
  local fwd, bwd = {}, {}
  local id = bn.hooks_add("block*.out", function(name, v) fwd[#fwd + 1] = name .. ":" .. v:numel() end,
    function(name, g) bwd[#bwd + 1] = name .. ":" .. g:sum():item() end)
  check.eq(math.type(id), "integer")
  local x = bn.ones(3):requires_grad(true)
  local a = (x * 2):name("block1.out")
  check.eq(a:name(), "block1.out")
  local b = (a * 5):name("block2.out")
  local c = (b * 1):name("head") -- no match
  c:sum():backward()
  check.eq(fwd, {"block1.out:3", "block2.out:3"})
  check.eq(#bwd, 2)
  check.contains(table.concat(bwd, ","), "block2.out:3")
  check.contains(table.concat(bwd, ","), "block1.out:15")
  bn.hooks_remove(id)
  check.raises(function() bn.hooks_remove(id) end, "bn.hooks_remove")
  fwd = {}
  ;(x * 1):name("block3.out")
  check.eq(fwd, {})
end

function T.pattern_hook_errors_propagate_from_name()
  local id = bn.hooks_add("bad", function() error("fwd failed") end)
  local err = check.raises(function() bn.ones(1):name("bad") end, "fwd failed")
  check.contains(err, "bn.name")
  bn.hooks_remove(id)
end

function T.hook_removing_hooks_while_running()
  local ids = {}
  local calls = 0
  local function remove_all() calls = calls + 1; for _, i in ipairs(ids) do pcall(bn.hooks_remove, i) end end
  ids[1] = bn.hooks_add("x", remove_all)
  ids[2] = bn.hooks_add("x", remove_all)
  ids[3] = bn.hooks_add("x", remove_all)
  bn.ones(1):name("x")
  check.eq(calls, 1) -- the first hook removed the others before they ran
  bn.ones(1):name("x")
  check.eq(calls, 1)
end

function T.hooks_run_in_the_calling_coroutine()
  local x = bn.tensor{1, 2}:requires_grad(true)
  local y = x * 2
  local where
  y:register_hook(function() where = coroutine.running() end)
  local co = coroutine.create(function() y:sum():backward() end)
  assert(coroutine.resume(co))
  check.eq(where, co)
  -- a hook cannot yield across the C backward: an error, not a crash
  local z = x * 2
  z:register_hook(function() coroutine.yield() end)
  local co2 = coroutine.create(function() z:sum():backward() end)
  local ok, err = coroutine.resume(co2)
  check.eq(ok, false)
  check.contains(err, "bn.backward")
  check.contains(err, "yield")
end

function T.finalizers_may_use_tensors()
  -- __gc of a user object runs inside whatever call triggered the
  -- collection, possibly a binding: it may make and close tensors.
  local made = 0
  for _ = 1, 200 do
    setmetatable({}, {__gc = function()
      local t <close> = bn.ones(100) + 1
      made = made + 1
    end})
    local _ = bn.zeros(64 * 1024)
  end
  collectgarbage()
  check.truthy(made > 0, "finalizers ran")
end

function T.tostring_is_the_summary()
  local s = tostring(bn.tensor{{1, 2}, {3, 4}})
  check.contains(s, "[2 x 2]")
  check.contains(s, "mean 2.5")
end

function T.close_frees_and_marks_dead()
  local t = bn.zeros(10)
  do
    local c <close> = t
  end
  check.eq(t:is_closed(), true)
  check.eq(tostring(t), "tensor (closed)")
  check.raises(function() return t:sum() end, "bn.sum: argument #1 is a closed tensor")
  check.raises(function() return t + 1 end, "bn.add: argument #1 is a closed tensor")
  check.raises(function() return bn.relu(t) end, "bn.relu: argument #1 is a closed tensor")
  check.raises(function() return t[1] end, "closed tensor")
  check.raises(function() return #t end, "closed tensor")
  check.raises(function() return t.grad end, "closed tensor")
end

function T.lua_side_helpers()
  local a = bn.tensor{3, 4}
  check.near(a:norm():item(), 5, 1e-6)
  check.near(a:norm(1):item(), 7, 1e-6)
  check.near(bn.tensor{1, -2}:norm(3):item(), 9 ^ (1 / 3), 1e-5)
  check.raises(function() return a:norm(-1) end, "bn.norm")
  close(a:square(), {9, 16})
  check.eq(a:tolist(), {3.0, 4.0})
  check.eq(a:type(), "bn.Tensor")
  check.eq(bn.allclose(a, bn.tensor{3, 4.00001}), true)
  check.eq(bn.allclose(a, bn.tensor{3, 4.1}), false)
  check.eq(a:allclose(bn.tensor{3, 4.1}, 0.1), true)
  check.eq(bn.allclose(bn.tensor{0 / 0}, bn.tensor{0 / 0}), false)
  check.eq(bn.equal(a, bn.tensor{3, 4}), true)
  check.eq(bn.equal(a, bn.tensor{{3, 4}}), false)
  check.eq(a:equal(bn.tensor{3, 5}), false)
  check.eq(bn.equal(bn.tensor{math.huge}, bn.tensor{math.huge}), true)
  -- the norm is differentiable
  local x = bn.tensor{3, 4}:requires_grad(true)
  x:norm():backward()
  close(x.grad, {0.6, 0.8})
end

function T.methods_table_is_extensible()
  check.eq(type(bn.Tensor), "table")
  bn.Tensor.twice_for_test = function(self) return self * 2 end
  close(bn.tensor{1, 2}:twice_for_test(), {2, 4})
  bn.Tensor.twice_for_test = nil
end

return T
