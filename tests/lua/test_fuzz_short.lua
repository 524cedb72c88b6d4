-- A short run of the API fuzzer (tests/fuzz/api_fuzz.lua): 5,000 random
-- calls of every bn function, Tensor method and operator, in this process,
-- for a fixed seed. Any violation (an error that does not name its function
-- or the argument at fault, bn.no_grad not restoring the grad mode, tensor
-- memory past the limit, a leak) fails the test with the offending calls.
-- Crashes and sanitizer reports end the run (make test-asan runs this under
-- ASan+UBSan). The long run is `make fuzz-api`.
local bn = require "bnlab"
local check = require "check"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/lua"
local fuzz_path = here .. "/../fuzz/api_fuzz.lua"

local T = {}

local SEED = 20240601

local function load_fuzzer()
  local chunk = assert(loadfile(fuzz_path))
  return chunk() -- loaded, not run as a script: returns the module
end

function T.short_run_has_no_violations()
  local fuzz = load_fuzzer()
  local s = fuzz.run(bn, { calls = 5000, seed = SEED, quiet = true })
  if s.violations > 0 then
    local lines = {}
    for i, v in ipairs(s.violation_list) do
      if i > 20 then break end
      lines[#lines + 1] = ("  %s: %s (x%d)\n    call: %s\n    message: %s"):format(v.key, v.reason, v.count, v.call,
        v.msg)
    end
    error(("%d violations (%s):\n%s"):format(s.violations, fuzz.summary_line(s), table.concat(lines, "\n")), 0)
  end
  check.truthy(s.calls >= 5000, "at least 5000 calls")
  -- Both outcomes occur: the fuzzer is neither all garbage nor all valid.
  check.truthy(s.errors > 500 and s.successes > 500, fuzz.summary_line(s))
  -- It left the process as it found it.
  check.eq(bn.is_grad_enabled(), true)
end

-- Regression (found by the API fuzzer, seed 4): a crop pad wider than the
-- image made bn_gather_batch write past the end of each output row
-- (heap-buffer-overflow under ASan; silent corruption otherwise). Every
-- output value must be the fill or a pixel of the input.
function T.regression_gather_crop_wider_than_image()
  local x = bn.randn(1, 3, 4, 1)
  local allowed = { [0.5] = true }
  for _, v in ipairs(x:reshape(-1):totable()) do allowed[v] = true end
  for _, crop in ipairs { 1, 2, 3, 8 } do
    for seed = 0, 7 do
      local y = bn._data.gather(x, { 1, 1, 1, 1 },
        { crop = crop, seed = seed, offset = 53, flip = seed % 2 == 1, fill = { 0.5, 0.5, 0.5 } })
      check.eq(y:shape(), { 4, 3, 4, 1 })
      for _, v in ipairs(y:reshape(-1):totable()) do
        check.truthy(allowed[v], ("crop %d seed %d: value %s is neither fill nor input"):format(crop, seed, v))
      end
    end
  end
end

-- Regression (found while fuzzing empty tensors with huge dims): softmax
-- looped over outer x inner rows even when the softmax dim was empty:
-- [2^31 x 0] took seconds, [2^20 x 0 x 2^20] hours. Nothing to do is free.
function T.regression_softmax_over_an_empty_dim_is_instant()
  local t0 = bn.clock()
  local x = bn.zeros(2 ^ 31, 0):requires_grad(true)
  local y = x:softmax(2)
  bn.zeros(0, 2 ^ 31, 2):log_softmax(1)
  y:sum():backward()
  check.eq(y:shape(), { 2 ^ 31 // 1, 0 })
  local dt = bn.clock() - t0
  check.truthy(dt < 1, ("softmax of empty tensors took %.1f s"):format(dt))
end

-- Regression: bn._data.channel_stats / normalize allocated 2 C doubles of
-- Lua memory before noticing an empty batch, so [0 x 2^40] (no data at all)
-- raised Lua's bare "not enough memory", naming no function.
function T.regression_channel_stats_of_an_empty_batch()
  local x = bn.zeros(0, 2 ^ 40)
  local err = check.raises(function() return bn._data.channel_stats(x) end, "bn.data.channel_stats")
  check.not_contains(err, "not enough memory")
  check.eq(bn._data.normalize(x, 0, 1), x)
end

function T.same_seed_same_calls()
  -- Determinism is per process (hook ids and names persist inside one):
  -- run the fuzzer twice as a script and compare the summary lines.
  local bnlab = check.bnlab()
  if not bnlab then check.skip("no bnlab binary to run") end
  local function summary()
    local p = assert(io.popen(("%q %q --calls 1000 --seed %d --quiet 2>&1"):format(bnlab, fuzz_path, SEED)))
    local out = p:read("a")
    p:close()
    local line = out:match("(api_fuzz: seed [^\n]*)")
    check.truthy(line, "a summary line in:\n" .. out)
    return (line:gsub(", [%d.]+ s$", "")) -- the time differs
  end
  check.eq(summary(), summary())
end

return T
