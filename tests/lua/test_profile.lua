-- Where the time goes: `bnlab --profile SCRIPT` and bn.profile_start / stop /
-- report / rows (src/profile.c, docs/performance.md).
local check = require "check"
local bn = require "bnlab"

-- Runs `bnlab ARGS SCRIPT` (ARGS a list) with the script's text; returns { out, err, code, how }.
local function run(args, script_text)
  local all = { table.unpack(args) }
  all[#all + 1] = check.temp_file(script_text)
  return check.run_bnlab(all)
end

-- Three conv2d forwards, two of them recorded and backpropagated (the third
-- runs under no_grad), on a tiny network.
local SCRIPT = [[
bn.manual_seed(1)
local x = bn.randn(2, 3, 6, 6)
local w1 = bn.randn(4, 3, 3, 3):requires_grad(true)
local w2 = bn.randn(4, 4, 3, 3):requires_grad(true)
local h = bn.relu(bn.conv2d(x, w1, nil, { padding = 1 }))
local y = bn.conv2d(h, w2, nil, { padding = 1 })
y:sum():backward()
bn.no_grad(function() bn.conv2d(x, w1, nil, { padding = 1 }) end)
print("script done")
]]

-- The row of the Markdown table whose op cell is exactly `op`: its cells.
local function table_row(text, op)
  for line in text:gmatch("[^\n]+") do
    local cells = {}
    for cell in line:gmatch("|([^|]*)") do cells[#cells + 1] = cell:match("^%s*(.-)%s*$") end
    if cells[1] == op then return cells end
  end
  return nil
end

local T = {}

function T.profile_option_prints_a_table_with_the_calls_made()
  local r = run({ "--profile" }, SCRIPT)
  check.exit_status(r, 0)
  check.eq(r.out, "script done\n", "stdout holds only the script's output")
  local err = r.err
  check.contains(err, "| op | calls | total ms | % of wall | ms per call | GFLOP/s |")
  local fwd, bwd = table_row(err, "conv2d"), table_row(err, "conv2d backward")
  check.truthy(fwd, "a conv2d row in\n" .. err)
  check.truthy(bwd, "a conv2d backward row in\n" .. err)
  check.eq(fwd[2], "3", "conv2d calls")
  check.eq(bwd[2], "2", "conv2d backward calls")
  check.eq(table_row(err, "relu")[2], "1", "relu calls")
  check.truthy(tonumber(fwd[6]), "conv2d counts its GEMM flops: a GFLOP/s in " .. table.concat(fwd, " | "))
  check.truthy(table_row(err, "relu")[6] == "", "relu has no flops")
  check.contains(err, "(outside ops: Lua, allocation, garbage collection)")
end

function T.profile_option_works_after_run_and_when_the_script_fails()
  local r = run({ "run", "--profile" }, SCRIPT .. "\nerror('boom')\n")
  check.exit_status(r, 1)
  check.contains(r.err, "boom")
  check.eq(table_row(r.err, "conv2d")[2], "3", "conv2d calls")
  r = run({ "--profile" }, SCRIPT .. "\nos.exit(3)\n")
  check.exit_status(r, 3)
  check.eq(table_row(r.err, "conv2d backward")[2], "2", "the table is printed on os.exit too")
end

function T.off_by_default_prints_nothing()
  local r = run({}, SCRIPT)
  check.exit_status(r, 0)
  check.eq(r.out, "script done\n")
  check.eq(r.err, "", "stderr without --profile")
end

local function rows_by_name(rows)
  local by = {}
  for _, r in ipairs(rows) do by[r.op .. (r.backward and " backward" or "")] = r end
  return by
end

function T.bindings_count_outermost_calls_and_gemm_flops()
  bn.manual_seed(2)
  local a = bn.randn(64, 32):requires_grad(true)
  local b = bn.randn(32, 16):requires_grad(true)
  local x, w = bn.randn(8, 32), bn.randn(10, 32):requires_grad(true)
  bn.profile_start()
  local c = bn.matmul(a, b)
  c:sum():backward()
  bn.linear(x, w, nil)
  bn.profile_stop()
  bn.linear(x, w, nil) -- not counted: profiling stopped
  local rows = bn.profile_rows()
  check.eq(rows.running, false)
  check.truthy(rows.wall > 0, "wall time")
  local by = rows_by_name(rows)
  check.eq(by.matmul.calls, 1)
  check.eq(by.matmul.flops, 2.0 * 64 * 16 * 32, "matmul flops: 2 m n k")
  check.eq(by["matmul backward"].calls, 1)
  check.eq(by["matmul backward"].flops, 2 * 2.0 * 64 * 16 * 32, "both input gradients")
  check.eq(by.linear.calls, 1, "stopped profiling counts nothing")
  check.eq(by.linear.flops, 2.0 * 8 * 10 * 32)
  check.eq(by.sum.flops, 0.0)
  for _, r in ipairs(rows) do
    check.truthy(r.seconds >= 0 and r.calls > 0, "row " .. r.op)
  end
  local report = bn.profile_report()
  check.contains(report, "| matmul backward | 1 |")
  -- A restart clears the table.
  bn.profile_start()
  bn.profile_stop()
  check.eq(#bn.profile_rows(), 0)
end

function T.ops_inside_other_ops_are_not_rows_of_their_own()
  -- batch_norm's backward and cross_entropy use other ops internally; each
  -- shows as one row with the calls the program made.
  bn.manual_seed(3)
  local x = bn.randn(16, 4, 5, 5):requires_grad(true)
  local wt, bias = bn.ones(4):requires_grad(true), bn.zeros(4):requires_grad(true)
  bn.profile_start()
  local y = bn.batch_norm(x, nil, nil, wt, bias, { training = true })
  local loss = bn.cross_entropy(bn.mean(bn.mean(y, 4), 3), { 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4 })
  loss:backward()
  bn.profile_stop()
  local by = rows_by_name(bn.profile_rows())
  check.eq(by.batch_norm.calls, 1)
  check.eq(by["batch_norm backward"].calls, 1)
  check.eq(by.cross_entropy.calls, 1)
  check.eq(by.mean.calls, 2)
  local total = 0
  for _, r in ipairs(bn.profile_rows()) do total = total + r.calls end
  check.eq(total, 1 + 1 + 1 + 1 + 2 + 2 + by["autograd accumulate"].calls, "no other rows")
end

-- Each test's script goes when it ends, whatever the outcome.
return check.cleanup_after(T)
