-- No input from a script may crash the process, and every error names the
-- function. A table of every entry point with valid arguments; each argument
-- in turn (and one past the end) is replaced by each of a list of bad values
-- (wrong types, nil, NaN, infinities, negative and huge numbers, closed,
-- empty and 0-d tensors, mismatched shapes) and the call is made in pcall:
-- it must either succeed or raise a message containing "bn.<name>".
-- Then the messages users will see most are checked word for word.
local bn = require "bnlab"
local check = require "check"

local T = {}

local function closed()
  local t = bn.zeros(2)
  do local c <close> = t end
  return t
end

-- A real .npy file for bn.load (bn.save's fuzz never writes elsewhere: it
-- skips string values, which would be file names).
local NPY = os.tmpname()
bn.save(bn.ones(2), NPY)

-- Fresh arguments for each call (many calls mutate or consume them).
local function t23() return bn.arange(6):view(2, 3) end
local function img() return bn.ones(2, 3, 4, 4) end
local function leafy() return bn.tensor{1, 2}:requires_grad(true) end
local function fn_noop() end

local ENTRIES = {
  -- creation
  {"tensor", bn.tensor, function() return {{{1, 2}, {3, 4}}} end},
  {"zeros", bn.zeros, function() return {2, 3} end},
  {"ones", bn.ones, function() return {{2, 3}} end},
  {"empty", bn.empty, function() return {2} end},
  {"full", bn.full, function() return {{2, 2}, 7} end},
  {"rand", bn.rand, function() return {3} end},
  {"randn", bn.randn, function() return {3, 1} end},
  {"zeros_like", bn.zeros_like, function() return {t23()} end},
  {"ones_like", bn.ones_like, function() return {t23()} end},
  {"empty_like", bn.empty_like, function() return {t23()} end},
  {"full_like", bn.full_like, function() return {t23(), 2} end},
  {"rand_like", bn.rand_like, function() return {t23()} end},
  {"randn_like", bn.randn_like, function() return {t23()} end},
  {"arange", bn.arange, function() return {0, 3, 1} end},
  {"linspace", bn.linspace, function() return {0, 1, 3} end},
  {"logspace", bn.logspace, function() return {0, 1, 3, 10} end},
  {"eye", bn.eye, function() return {2, 3} end},
  {"manual_seed", bn.manual_seed, function() return {1} end},
  {"is_tensor", bn.is_tensor, function() return {t23()} end},
  -- facts and access
  {"shape", bn.Tensor.shape, function() return {t23()} end},
  {"size", bn.Tensor.size, function() return {t23(), 1} end},
  {"dim", bn.Tensor.dim, function() return {t23()} end},
  {"numel", bn.Tensor.numel, function() return {t23()} end},
  {"item", bn.Tensor.item, function() return {bn.tensor(1)} end},
  {"totable", bn.Tensor.totable, function() return {t23()} end},
  {"fill", bn.Tensor.fill, function() return {t23(), 1} end},
  {"zero_", bn.Tensor.zero_, function() return {t23()} end},
  {"copy", bn.Tensor.copy, function() return {t23(), bn.ones(3)} end},
  {"name", bn.Tensor.name, function() return {t23(), "a.b"} end},
  {"is_contiguous", bn.Tensor.is_contiguous, function() return {t23()} end},
  {"index", function(t, i) return t[i] end, function() return {t23(), 1} end, operator = true},
  {"newindex", function(t, i, v) t[i] = v end, function() return {t23(), 1, 5} end, operator = true},
  {"len", function(t) return #t end, function() return {t23()} end, operator = true},
  -- views
  {"view", bn.view, function() return {t23(), 3, 2} end},
  {"reshape", bn.reshape, function() return {t23(), {-1}} end},
  {"view_as", bn.view_as, function() return {t23(), bn.zeros(3, 2)} end},
  {"permute", bn.permute, function() return {t23(), 2, 1} end},
  {"transpose", bn.transpose, function() return {t23(), 1, 2} end},
  {"t", bn.t, function() return {t23()} end},
  {"narrow", bn.narrow, function() return {t23(), 2, 2, 1} end},
  {"select", bn.select, function() return {t23(), 1, 2} end},
  {"expand", bn.expand, function() return {bn.zeros(2, 1), 2, 3} end},
  {"expand_as", bn.expand_as, function() return {bn.zeros(2, 1), t23()} end},
  {"flatten", bn.flatten, function() return {t23(), 1, 2} end},
  {"squeeze", bn.squeeze, function() return {bn.zeros(1, 3), 1} end},
  {"unsqueeze", bn.unsqueeze, function() return {t23(), 1} end},
  {"subsample", bn.subsample, function() return {t23(), 2, 1, 2} end},
  {"contiguous", bn.contiguous, function() return {t23()} end},
  {"clone", bn.clone, function() return {t23()} end},
  {"detach", bn.detach, function() return {t23()} end},
  -- reductions
  {"sum", bn.sum, function() return {t23(), 1, true} end},
  {"mean", bn.mean, function() return {t23(), -1} end},
  {"var", bn.var, function() return {t23(), 2, false, 1} end},
  {"std", bn.std, function() return {t23(), 2, true, 0} end},
  {"max", bn.max, function() return {t23(), 2} end},
  {"min", bn.min, function() return {t23(), 1, true} end},
  {"argmax", bn.argmax, function() return {t23(), 2} end},
  -- arithmetic
  {"add", bn.add, function() return {t23(), bn.ones(3)} end},
  -- operators: with no tensor left among the operands, Lua's own error is right
  {"add", function(a, b) return a + b end, function() return {t23(), 1} end, operator = true},
  {"sub", function(a, b) return a - b end, function() return {2, t23()} end, operator = true},
  {"mul", function(a, b) return a * b end, function() return {t23(), t23()} end, operator = true},
  {"div", function(a, b) return a / b end, function() return {t23(), 2} end, operator = true},
  {"pow", function(a, b) return a ^ b end, function() return {t23(), 2} end, operator = true},
  {"pow", function(a, b) return a ^ b end, function() return {2, t23()} end, operator = true},
  {"neg", function(a) return -a end, function() return {t23()} end, operator = true},
  {"exp", bn.exp, function() return {t23()} end},
  {"log", bn.log, function() return {t23()} end},
  {"sqrt", bn.sqrt, function() return {t23()} end},
  {"abs", bn.abs, function() return {t23()} end},
  {"relu", bn.relu, function() return {t23()} end},
  {"tanh", bn.tanh, function() return {t23()} end},
  {"sigmoid", bn.sigmoid, function() return {t23()} end},
  {"clamp", bn.clamp, function() return {t23(), 0, 1} end},
  -- functional ops
  {"matmul", bn.matmul, function() return {t23(), bn.ones(3, 2)} end},
  {"linear", bn.linear, function() return {t23(), bn.ones(4, 3), bn.ones(4)} end},
  {"conv2d", bn.conv2d, function() return {img(), bn.ones(2, 3, 3, 3), bn.ones(2), {stride = 1, padding = 1}} end},
  {"batch_norm", bn.batch_norm, function()
    return {img(), bn.zeros(3), bn.ones(3), bn.ones(3), bn.zeros(3), {training = true, momentum = 0.1, eps = 1e-5}}
  end},
  {"softmax", bn.softmax, function() return {t23(), 2} end},
  {"log_softmax", bn.log_softmax, function() return {t23(), -1} end},
  {"cross_entropy", bn.cross_entropy, function() return {t23(), {1, 3}} end},
  {"mse_loss", bn.mse_loss, function() return {t23(), t23()} end},
  {"max_pool2d", bn.max_pool2d, function() return {img(), 2, {stride = 2, padding = 1}} end},
  {"avg_pool2d", bn.avg_pool2d, function() return {img(), {2, 2}, {stride = 1, count_include_pad = false}} end},
  {"adaptive_avg_pool2d", bn.adaptive_avg_pool2d, function() return {img(), {2, 1}} end},
  {"dropout", bn.dropout, function() return {t23(), 0.5, true} end},
  {"cat", bn.cat, function() return {{t23(), t23()}, 2} end},
  {"stack", bn.stack, function() return {{t23(), t23()}, 1} end},
  {"pad", bn.pad, function() return {t23(), {1, 1, 0, 1}} end},
  -- autograd
  {"requires_grad", bn.Tensor.requires_grad, function() return {t23(), true} end},
  {"requires_grad_", bn.Tensor.requires_grad_, function() return {t23(), false} end},
  {"backward", bn.Tensor.backward, function()
    local x = leafy()
    return {x * 2, bn.ones(2), true}
  end},
  {"retain_grad", bn.Tensor.retain_grad, function() return {leafy() * 2} end},
  {"register_hook", bn.Tensor.register_hook, function() return {leafy(), fn_noop} end},
  {"zero_grad", bn.Tensor.zero_grad, function() return {leafy()} end},
  {"no_grad", bn.no_grad, function() return {fn_noop, 1} end},
  {"set_grad_enabled", bn.set_grad_enabled, function() return {true} end},
  {"hooks_add", bn.hooks_add, function() return {"fuzz.*", fn_noop, fn_noop} end},
  {"hooks_remove", bn.hooks_remove, function() return {bn.hooks_add("fuzz.remove", fn_noop)} end},
  -- runtime and io
  {"num_threads", bn.num_threads, function() return {bn.num_threads()} end},
  {"load", bn.load, function() return {NPY} end},
  {"save", bn.save, function() return {t23(), NPY} end, no_strings = true},
}

local function bad_values()
  return {
    {nil, "nil"}, {"x", "string"}, {true, "boolean"}, {{}, "empty table"}, {{1, "a"}, "mixed table"},
    {0 / 0, "NaN"}, {math.huge, "inf"}, {-math.huge, "-inf"}, {-1, "-1"}, {0, "0"}, {1.5, "1.5"},
    {2 ^ 62, "2^62 (float)"}, {math.maxinteger, "maxinteger"}, {math.mininteger, "mininteger"},
    {1e300, "1e300"}, {closed(), "closed tensor"}, {bn.zeros(0), "empty tensor"},
    {bn.tensor(1), "0-d tensor"}, {bn.zeros(5, 7), "tensor [5 x 7]"}, {bn.zeros(1, 1, 1, 1, 1, 1, 1, 1), "8-d tensor"},
    {fn_noop, "function"}, {coroutine.create(fn_noop), "thread"},
  }
end

-- Calls entry with argument k replaced by v; checks the outcome.
local function probe(entry, k, v, label, failures)
  local name, fn, make = entry[1], entry[2], entry[3]
  local args = make()
  local n = math.max(#args, k)
  if entry.no_strings and type(v) == "string" then return end
  args[k] = v
  local ok, err = pcall(fn, table.unpack(args, 1, n))
  bn.set_grad_enabled(true)
  if entry.operator and not (bn.is_tensor(args[1]) or bn.is_tensor(args[2])) then return end
  if not ok then
    err = tostring(err)
    if not err:find("bn." .. name, 1, true) then
      failures[#failures + 1] = ("%s with argument #%d = %s: message %q does not name bn.%s"):format(name, k, label, err,
        name)
    end
  end
end

function T.every_entry_point_survives_bad_arguments()
  -- Keep any accidental huge allocation far below the machine (and ASan's
  -- allocator, which aborts instead of failing on giant requests).
  local limit = 1 << 30
  bn.mem_set_limit(limit)
  local threads = bn.num_threads()
  local failures, calls = {}, 0
  local ok, err = pcall(function()
    for _, entry in ipairs(ENTRIES) do
      local n = #entry[3]()
      for k = 1, n + 1 do
        for _, bad in ipairs(bad_values()) do
          probe(entry, k, bad[1], bad[2], failures)
          calls = calls + 1
        end
      end
    end
  end)
  bn.mem_set_limit(0)
  bn.num_threads(threads)
  bn.set_grad_enabled(true)
  if not ok then error(err, 0) end
  check.truthy(calls > 2000, "probed " .. calls .. " calls")
  if os.getenv("BN_TEST_VERBOSE") then print("fuzz calls", calls) end
  if #failures > 0 then error(#failures .. " bad messages:\n" .. table.concat(failures, "\n"), 0) end
end

function T.valid_arguments_of_the_table_work()
  -- The fuzz above is only meaningful if the unmodified calls succeed.
  for _, entry in ipairs(ENTRIES) do
    local args = entry[3]()
    local ok, err = pcall(entry[2], table.unpack(args, 1, #args))
    bn.set_grad_enabled(true)
    check.truthy(ok, entry[1] .. " with its valid arguments: " .. tostring(err))
  end
end

-- ---- the messages themselves --------------------------------------------------------

function T.wrong_types_name_function_argument_expected_and_got()
  check.raises(function() return bn.zeros(2, "x") end, "bn.zeros: argument #2 expected a non-negative integer size, got string 'x'")
  check.raises(function() return bn.zeros(-3) end, "bn.zeros: argument #1 expected a non-negative integer size, got number -3")
  check.raises(function() return bn.ones(0 / 0) end, "bn.ones: argument #1 expected a non-negative integer size, got number")
  check.raises(function() return bn.zeros{2, "x"} end, "bn.zeros: argument #1 size 2 expected a non-negative integer size, got string 'x'")
  check.raises(function() return bn.zeros(2.5) end, "got number 2.5")
  check.raises(function() return bn.relu(nil) end, "bn.relu: argument #1 (input) expected a tensor, got nil")
  check.raises(function() return bn.relu({}) end, "bn.relu: argument #1 (input) expected a tensor, got table")
  check.raises(function() return bn.tensor{{1, 2}, {3}} end, "bn.tensor: argument #1 is ragged")
  check.raises(function() return bn.tensor{{1, 2}, {3, "a"}} end, "bn.tensor: argument #1 element [2][2] expected a number, got string 'a'")
  check.raises(function() return bn.tensor{bn.ones(2)} end, "bn.stack")
  check.raises(function() return bn.ones(2):sum(3) end, "bn.sum: argument #2 (dim) expected a dim in [1, 1] or [-1, -1] (1-based), got number 3")
  check.raises(function() return bn.ones(2, 2):sum(0) end, "bn.sum: argument #2 (dim) expected a dim in [1, 2] or [-2, -1]")
  check.raises(function() return bn.ones(2):sum(1, "yes") end, "bn.sum: argument #3 (keepdim) expected a boolean, got string 'yes'")
  check.raises(function() return bn.conv2d(bn.ones(1, 3, 8, 8), bn.ones(4, 3, 3, 3), nil, {stride = 0}) end,
    "bn.conv2d: option 'stride' expected an integer in [1, 16777216]")
  check.raises(function() return bn.manual_seed(-1) end, "bn.manual_seed: argument #1 (seed) expected an integer >= 0, got number -1")
  check.raises(function() return bn.num_threads(0) end, "bn.num_threads: argument #1 (n) expected an integer in [1, 4096]")
  check.raises(function() return bn.no_grad(42) end, "bn.no_grad: argument #1 (fn) expected a function, got number 42")
  check.raises(function() return bn.hooks_add("x") end, "bn.hooks_add: expected a forward hook")
  check.raises(function() return bn.dropout(bn.ones(2), 1.5) end, "bn.dropout: argument #2 (p) expected a probability in [0, 1]")
  check.raises(function() return bn.save(bn.ones(1), 5) end, "bn.save: argument #2 (path) expected a string, got number 5")
end

function T.core_messages_keep_their_evidence()
  check.raises(function() return bn.conv2d(bn.ones(1, 3, 8, 8), bn.ones(16, 3, 3)) end,
    "bn.conv2d: weight expected 4-D [out x in x kh x kw], got [16 x 3 x 3]")
  check.raises(function() return bn.conv2d(bn.ones(128, 1, 28, 28), bn.ones(16, 3, 3, 3)) end, "[128 x 1 x 28 x 28]")
  check.raises(function() return bn.matmul(bn.ones(2, 3), bn.ones(2, 3)) end, "bn.matmul: a [2 x 3] and b [2 x 3]")
  check.raises(function() return bn.ones(2, 3) + bn.ones(4) end, "bn.add: shapes [2 x 3] and [4] do not broadcast")
  check.raises(function() return bn.mse_loss(bn.ones(2), bn.ones(3)) end, "bn.mse_loss: input and target expected the same shape")
  check.raises(function() return bn.cat({bn.ones(2, 3), bn.ones(2, 4)}) end, "bn.cat")
  check.raises(function() return bn.linear(bn.ones(2, 3), bn.ones(4, 5)) end, "bn.linear")
  check.raises(function() return bn.ones(6):view(4, -1) end, "bn.view: shape [4 x -1] is invalid for input [6]")
  check.raises(function() return bn.ones(2):backward() end, "bn.backward")
  check.raises(function() return (bn.ones(2):requires_grad(true) * 2):backward() end, "non-scalar")
end

function T.closed_tensors_everywhere()
  local c = closed()
  for _, case in ipairs{
    {"sum", function() return c:sum() end},
    {"view", function() return c:view(2) end},
    {"add", function() return c + 1 end},
    {"add", function() return 1 + c end},
    {"mul", function() return bn.ones(2) * c end},
    {"conv2d", function() return bn.conv2d(c, c) end},
    {"cat", function() return bn.cat({bn.ones(2), c}) end},
    {"backward", function() return c:backward() end},
    {"save", function() return bn.save(c, "/tmp/never-written.npy") end},
    {"copy", function() return bn.ones(2):copy(c) end},
  } do
    check.raises(case[2], "bn." .. case[1] .. ":")
    check.raises(case[2], "closed tensor")
  end
  check.raises(function() return c:sum() end, "bn.sum: argument #1 is a closed tensor")
  -- closing twice is harmless
  do local again <close> = c end
end

function T.metamethods_called_by_hand_with_other_values()
  local mt = getmetatable(bn.ones(1))
  check.eq(mt.__name, "bn.Tensor")
  mt.__close(io.stdout) -- not a tensor: ignored, no crash
  mt.__gc(5)
  mt.__gc(nil)
  check.raises(function() return mt.__index(5, 1) end, "bn.index")
  check.raises(function() return mt.__index(5, "grad") end, "bn.grad")
  check.raises(function() return mt.__newindex(io.stdout, 1, 2) end, "bn.newindex")
  check.raises(function() return mt.__len({}) end, "bn.len")
  check.raises(function() return mt.__add({}, {}) end, "bn.add")
  check.raises(function() return mt.__unm(io.stdout) end, "bn.neg")
  check.eq(io.type(io.stdout), "file")
end

function T.huge_and_overflowing_sizes_are_refused()
  check.raises(function() return bn.zeros(2 ^ 62) end, "bn.zeros")
  check.raises(function() return bn.zeros(1 << 30, 1 << 30) end, "too many elements")
  check.raises(function() return bn.zeros(0, 1 << 40, 1 << 40) end, "too many elements")
  check.raises(function() return bn.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end, "at most 8 sizes")
  check.raises(function() return bn.ones(1):expand(1 << 40, 1 << 40) end, "bn.expand")
  check.raises(function() return bn.ones(6):view(1 << 40, 1 << 40, -1) end, "bn.view")
  check.raises(function() return bn.arange(0, 1e300) end, "bn.arange")
  bn.mem_set_limit(1 << 30)
  local ok, err = pcall(function()
    check.raises(function() return bn.zeros(1 << 36) end, "bn.zeros: tensor: out of memory")
    check.raises(function() return bn.eye(1 << 20) end, "bn.eye")
    check.raises(function() return bn.linspace(0, 1, 1 << 38) end, "bn.linspace")
    check.raises(function() return bn.pad(bn.ones(2, 2), {1 << 20, 0, 1 << 20, 0}) end, "bn.pad")
  end)
  bn.mem_set_limit(0)
  if not ok then error(err, 0) end
end

function T.mismatched_shapes_and_bad_geometry()
  check.raises(function() return bn.batch_norm(bn.ones(4, 3), bn.zeros(2), bn.ones(2)) end, "bn.batch_norm")
  check.raises(function() return bn.max_pool2d(bn.ones(1, 1, 4, 4), 2, {padding = 2}) end, "bn.max_pool2d")
  check.raises(function() return bn.max_pool2d(bn.ones(4, 4), 2) end, "bn.max_pool2d")
  check.raises(function() return bn.adaptive_avg_pool2d(bn.ones(1, 1, 4, 4), 0) end, "bn.adaptive_avg_pool2d")
  check.raises(function() return bn.stack({bn.ones(2), bn.ones(3)}) end, "bn.stack")
  check.raises(function() return bn.cross_entropy(bn.ones(2, 3), bn.ones(2, 1)) end, "bn.cross_entropy: labels expected a 1-D tensor")
  check.raises(function() return bn.ones(2, 3):transpose(1, 3) end, "bn.transpose")
  check.raises(function() return bn.ones(2, 3):narrow(2, 3, 2) end, "bn.narrow: start 3 with length 2 runs past the end of dim 2 (size 3)")
  check.raises(function() return bn.ones(2, 3):select(2, 4) end, "bn.select")
  check.raises(function() return bn.ones(2, 3):copy(bn.ones(4)) end, "bn.copy")
  check.eq(bn.ones(3).grad, nil) -- not an error: no gradient yet
end

return T
