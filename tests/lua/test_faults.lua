-- Runs survive faults (docs/reliability.md, docs/train.md): SIGINT/SIGTERM
-- in the middle of bn.train.fit, kill -9 at random moments, a full disk, a
-- failing allocation under `ulimit -v`, and determinism (same seed and
-- thread count: the same bits; 1 vs 2 threads). The training run is
-- tests/lua/data/fault_train.lua in a child process; its uninterrupted
-- result is the reference every interrupted-and-resumed run must equal.
--
-- The signal and kill moments are random: BNLAB_FAULT_SEED=N repeats a run
-- (every failure message names the seed).
local bn = require "bnlab"
local check = require "check"

local BNLAB = check.bnlab()
local HERE = (arg[0]:match("^(.*)/[^/]*$") or ".")
local SCRIPT = HERE .. "/data/fault_train.lua"
local THREADS = 2
local STEPS = 100 -- fault_train.lua: 4 epochs of 25 steps
local STEPS_PER_EPOCH = 25
local SEED = tonumber(os.getenv("BNLAB_FAULT_SEED")) or os.time()
math.randomseed(SEED)
local LOG_COLUMNS = "epoch,train_loss,train_acc,test_loss,test_acc,lr,time,images_per_s"
local RESULTS = { ["run.ckpt"] = true, ["run.csv"] = true, ["final.safetensors"] = true, ["losses.txt"] = true }

local quote, slurp, temp_dir = check.quote, check.read_file, check.temp_dir

local function exists(path) return slurp(path) ~= nil end

-- Shell: waits for child $pid to end (killing it after 60 s: a hang fails the
-- test instead of blocking the suite) and exits with its status. No helper
-- process outlives it (a background `sleep` guard would keep the suite's
-- output pipe open).
local REAP = 'alive() { [ -e /proc/$1 ] && ! grep -q "^State:[[:space:]]*Z" /proc/$1/status 2>/dev/null; }; '
  .. 'n=0; while alive $pid; do n=$((n+1)); if [ $n -gt 3000 ]; then kill -KILL $pid; break; fi; sleep 0.02; done; '
  .. 'wait $pid; exit $?'

local function fail(fmt, ...) error(("[BNLAB_FAULT_SEED=%d] " .. fmt):format(SEED, ...), 2) end

--- Runs the training script (extra words already quoted) to the end:
-- { code =, out =, err = }.
local function train(dir, words, threads)
  return check.run_bnlab(("-t %d %s --dir %s %s"):format(threads or THREADS, quote(SCRIPT), quote(dir), words or ""))
end

--- Starts the training script, waits until it has printed "step <at_step>"
-- (or, without at_step, not at all), sleeps delay seconds and sends it
-- `signal`. Returns { code =, out =, err = } (code: the shell's status, 128 +
-- n for death by signal n).
local function train_and_signal(dir, words, signal, at_step, delay)
  local out, err = dir .. "/.stdout", dir .. "/.stderr"
  local wait = ""
  if at_step then
    -- Polls stderr; gives up when the child is gone (or a zombie) or after 60 s.
    wait = ('n=0; until grep -qx "step %d" %s 2>/dev/null; do '
      .. '[ -e /proc/$pid ] && ! grep -q "^State:[[:space:]]*Z" /proc/$pid/status 2>/dev/null || break; '
      .. 'n=$((n+1)); [ $n -gt 12000 ] && break; sleep 0.005; done; '):format(at_step, quote(err))
  end
  -- ( ... ) 2>/dev/null: the shell's own "Killed" notices stay out of the test output.
  local cmd = ("( %s -t %d %s --dir %s %s >%s 2>%s & pid=$!; %s sleep %.4f; kill -%s $pid 2>/dev/null; "
    .. "%s ) 2>/dev/null"):format(quote(BNLAB), THREADS, quote(SCRIPT), quote(dir), words or "", quote(out), quote(err),
    wait, delay, signal, REAP)
  local _, _, code = os.execute(cmd)
  local r = { code = code, out = slurp(out) or "", err = slurp(err) or "" }
  os.remove(out)
  os.remove(err)
  return r
end

local function parse_csv(text, what)
  local rows = {}
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  if text:sub(-1) ~= "\n" then fail("%s does not end with a newline: %q", what, text) end
  if lines[1] ~= LOG_COLUMNS then fail("%s: header %q", what, tostring(lines[1])) end
  for i = 2, #lines do
    local fields = {}
    for f in (lines[i] .. ","):gmatch("([^,]*),") do fields[#fields + 1] = f end
    if #fields ~= 8 then fail("%s line %d has %d fields: %q", what, i, #fields, lines[i]) end
    for k, f in ipairs(fields) do
      if tonumber(f) == nil then fail("%s line %d field %d is not a number: %q", what, i, k, lines[i]) end
    end
    if tonumber(fields[1]) ~= i - 1 then fail("%s line %d is epoch %s", what, i, fields[1]) end
    -- time and images/s are wall-clock measurements: the rest must repeat exactly
    rows[#rows + 1] = table.concat(fields, ",", 1, 6)
  end
  return rows
end

local function read_losses(path)
  local losses = {}
  for line in io.lines(path) do losses[#losses + 1] = tonumber(line) end
  return losses
end

-- The uninterrupted run, made once: losses, weights (file bytes), CSV rows.
local reference
local function get_reference()
  if reference then return reference end
  local dir = temp_dir()
  local r = train(dir)
  if r.code ~= 0 then fail("the reference run failed (%s):\n%s", tostring(r.code), r.err) end
  reference = {
    losses = read_losses(dir .. "/losses.txt"),
    weights = slurp(dir .. "/final.safetensors"),
    tensors = bn.load_safetensors(dir .. "/final.safetensors"),
    rows = parse_csv(slurp(dir .. "/run.csv"), "reference run.csv"),
  }
  check.eq(#reference.losses, STEPS)
  check.eq(#reference.rows, STEPS // STEPS_PER_EPOCH)
  return reference
end

--- Checks a run directory after a fault: only result files (and, after a
-- kill -9 mid-write, unrenamed temporaries next to them); the checkpoint
-- loads, its losses are the reference's first ones, it is consistent with
-- its partial-epoch record and not older than `previous_steps`; the CSV
-- parses and its rows are the reference's first rows. Returns the number of
-- steps the checkpoint holds (0 without one) and the temporaries seen.
local function check_run_dir(dir, ref, previous_steps, what)
  local temps = {}
  for _, name in ipairs(bn.listdir(dir)) do
    local base = name:match("^(.-)%.tmp%.%d+%.%d+$")
    if base and RESULTS[base] then
      temps[#temps + 1] = name
    elseif not RESULTS[name] then
      fail("%s: unexpected file %s in the run directory", what, name)
    end
  end
  local steps, epochs = 0, 0
  if exists(dir .. "/run.ckpt") then
    local ok, state = pcall(bn.train.load_checkpoint, dir .. "/run.ckpt")
    if not ok then fail("%s: the checkpoint does not load: %s", what, tostring(state)) end
    local losses = state.history.step_loss
    steps, epochs = #losses, state.epoch
    for i = 1, steps do
      if losses[i] ~= ref.losses[i] then
        fail("%s: checkpoint loss %d is %a, the uninterrupted run's is %a", what, i, losses[i], ref.losses[i])
      end
    end
    local expected = state.epoch * STEPS_PER_EPOCH + (state.partial and state.partial.steps or 0)
    if steps ~= expected then
      fail("%s: checkpoint holds %d losses, its epoch %d and partial record say %d", what, steps, state.epoch, expected)
    end
    if state.partial and state.partial.epoch ~= state.epoch + 1 then
      fail("%s: checkpoint partial epoch %d after %d complete ones", what, state.partial.epoch, state.epoch)
    end
    check.eq(#state.history.epochs, state.epoch, what .. ": epoch records in the checkpoint")
  end
  if steps < previous_steps then
    fail("%s: the checkpoint went back from %d to %d steps", what, previous_steps, steps)
  end
  local csv = slurp(dir .. "/run.csv")
  if csv then
    local rows = parse_csv(csv, what .. ": run.csv")
    -- The log is written just before the epoch's checkpoint: one row ahead at most.
    if #rows < epochs or #rows > epochs + 1 then
      fail("%s: run.csv has %d epochs, the checkpoint %d", what, #rows, epochs)
    end
    for i, row in ipairs(rows) do
      if row ~= ref.rows[i] then fail("%s: run.csv row %d is %q, the uninterrupted run's %q", what, i, row, ref.rows[i]) end
    end
  end
  return steps, temps
end

--- The finished run in dir equals the reference, bit for bit.
local function check_same_result(dir, ref, what)
  local losses = read_losses(dir .. "/losses.txt")
  check.eq(#losses, #ref.losses, what .. ": number of steps")
  for i = 1, #losses do
    if losses[i] ~= ref.losses[i] then
      fail("%s: loss of step %d is %a, the uninterrupted run's %a", what, i, losses[i], ref.losses[i])
    end
  end
  local got = bn.load_safetensors(dir .. "/final.safetensors")
  for name, t in pairs(ref.tensors) do
    if not (got[name] and bn.equal(got[name], t)) then fail("%s: final weight %s differs", what, name) end
  end
  if slurp(dir .. "/final.safetensors") ~= ref.weights then fail("%s: final.safetensors differs in bytes", what) end
  local rows = parse_csv(slurp(dir .. "/run.csv"), what .. ": run.csv")
  check.eq(rows, ref.rows, what .. ": run.csv (all but the timing columns)")
end

local T = {}

-- ---- SIGINT / SIGTERM ---------------------------------------------------------

local function interrupt_and_resume(signal, status)
  local ref = get_reference()
  local dir = temp_dir()
  local at = math.random(2, 60)
  local delay = math.random() * 0.01
  local what = ("%s after step %d (+%.1f ms)"):format(signal, at, delay * 1000)
  local r = train_and_signal(dir, "--step-ms 3", signal, at, delay)
  if r.code ~= status then
    fail("%s: expected exit status %d, got %s\nstderr tail: %s", what, status, tostring(r.code), r.err:sub(-600))
  end
  local message = r.err:match("(bn%.train%.fit: interrupted[^\n]*)\n")
  if not message then fail("%s: no interrupt message in stderr: %s", what, r.err:sub(-600)) end
  check.contains(message, "interrupted by SIG" .. signal)
  check.contains(message, "checkpoint saved to " .. dir .. "/run.ckpt (resume = true continues")
  check.not_contains(r.err, "stack traceback", "the interrupt is one line")
  check.not_contains(r.out, "done:", "fit did not finish")
  local steps = check_run_dir(dir, ref, 0, what)
  if steps < at then fail("%s: the checkpoint holds %d steps, fewer than the %d printed", what, steps, at) end
  local resumed = train(dir, "--resume")
  if resumed.code ~= 0 then fail("%s: resume failed (%s): %s", what, tostring(resumed.code), resumed.err) end
  check_same_result(dir, ref, what .. ", resumed")
end

-- Three random moments each.
function T.sigint_mid_training_checkpoints_and_resume_is_bit_identical()
  for _ = 1, 3 do interrupt_and_resume("INT", 130) end
end

function T.sigterm_mid_training_checkpoints_and_resume_is_bit_identical()
  for _ = 1, 3 do interrupt_and_resume("TERM", 143) end
end

function T.interrupt_without_checkpoint_says_so()
  local dir = temp_dir()
  local r = train_and_signal(dir, "--no-checkpoint --step-ms 3", "INT", math.random(2, 60), 0)
  check.eq(r.code, 130)
  check.contains(r.err, "no checkpoint was written (option 'checkpoint' not set): the run cannot be resumed")
  check.truthy(not exists(dir .. "/run.ckpt"), "no checkpoint file")
end

function T.second_sigint_stops_a_step_that_does_not_end()
  -- The first SIGINT waits for the step; when the step never ends (here an
  -- on_step that loops), the second one stops it at once as outside fit.
  local dir = temp_dir()
  local script = dir .. "/stuck.lua"
  check.write_file(script, [[
local bn = require "bnlab"
local ds = bn.data.blobs{ n = 64, classes = 2, shape = { 4 }, seed = 1 }
local net = bn.models.mlp{ sizes = { 4, 8, 2 } }
bn.train.fit{ model = net, data = ds, optimizer = bn.optim.SGD(net:parameters(), { lr = 0.1 }), epochs = 1,
  batch_size = 16, quiet = true, checkpoint = arg[1] .. "/run.ckpt",
  on_step = function(s)
    io.stderr:write("step ", s.step, "\n")
    if s.step == 2 then while true do end end
  end }
]])
  local err = dir .. "/err"
  local wait_for = 'n=0; until grep -q "%s" %s 2>/dev/null; do n=$((n+1)); [ $n -gt 2000 ] && break; sleep 0.01; done; '
  local cmd = ("%s %s %s 2>%s & pid=$!; "):format(quote(BNLAB), quote(script), quote(dir), quote(err))
    .. wait_for:format("step 2", quote(err)) .. "kill -INT $pid; sleep 0.5; kill -INT $pid; "
    .. REAP
  local _, _, code = os.execute("( " .. cmd .. " ) 2>/dev/null")
  local stderr = slurp(err)
  check.contains(stderr, script .. ":8: interrupted!")
  check.eq(code, 130)
  check.truthy(not exists(dir .. "/run.ckpt"), "no checkpoint: the step never finished")
end

function T.sigterm_outside_fit_still_kills()
  local r = { }
  local _, _, code = os.execute(("( %s -e 'while true do end' & pid=$!; sleep 0.3; kill -TERM $pid; "
    .. "wait $pid ) 2>/dev/null"):format(quote(BNLAB)))
  r.code = code
  check.eq(r.code, 143)
end

function T.defer_interrupts_api()
  check.eq(bn.interrupted(), nil)
  do
    local outer <close> = bn.defer_interrupts()
    do
      local inner <close> = bn.defer_interrupts()
      check.contains(tostring(inner), "open")
    end
    check.contains(tostring(outer), "open")
    check.eq(bn.interrupted(), nil, "nothing pending without a signal")
  end
  check.raises(function() bn.raise_interrupt("x") end, "bn.raise_interrupt: no interrupt is pending")
  check.raises(function() bn.raise_interrupt(42) end, "bn.raise_interrupt: argument #1 (message) expected a string")
  check.eq(getmetatable(bn.defer_interrupts()), false, "the token's metatable is protected")
end

function T.error_mid_epoch_resumes_from_the_last_checkpoint_every()
  -- In process, no signal: a run that dies at step 17 of an epoch resumes
  -- from its step-15 checkpoint (checkpoint_every = 5) and ends as the
  -- uninterrupted run does, bit for bit.
  local dir = temp_dir()
  local function setup(seed)
    bn.manual_seed(seed)
    local ds = bn.data.blobs{ n = 320, classes = 3, shape = { 6 }, seed = 2 }
    local net = bn.nn.Sequential()
    net:add(bn.nn.Linear(6, 16), "fc1")
    net:add(bn.nn.BatchNorm1d(16), "bn1")
    net:add(bn.nn.ReLU(), "relu")
    net:add(bn.nn.Dropout(0.3), "drop")
    net:add(bn.nn.Linear(16, 3), "fc2")
    return net, bn.optim.SGD(net:parameters(), { lr = 0.05, momentum = 0.9 }), ds
  end
  local function fit(net, opt, ds, extra)
    local o = { model = net, data = ds, optimizer = opt, epochs = 2, batch_size = 16, quiet = true, seed = 3 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return bn.train.fit(o)
  end
  local full_net, full_opt, ds = setup(4)
  local full = fit(full_net, full_opt, ds)
  local ckpt = dir .. "/run.ckpt"
  local net, opt = setup(4)
  local err = check.raises(function()
    fit(net, opt, ds, { checkpoint = ckpt, checkpoint_every = 5,
      on_step = function(s) if s.epoch == 2 and s.step == 17 then error("boom") end end })
  end, "boom")
  local state = bn.train.load_checkpoint(ckpt)
  check.eq(state.epoch, 1, err)
  check.eq(state.partial.epoch, 2)
  check.eq(state.partial.steps, 15)
  local net2, opt2 = setup(99) -- a fresh process: other weights, another generator state
  check.raises(function() fit(net2, opt2, ds, { checkpoint = ckpt, resume = true, batch_size = 32 }) end,
    "was written in the middle of epoch 2 with batch_size 16, seed 3 and 20 batches; this run has batch_size 32")
  local resumed = fit(net2, opt2, ds, { checkpoint = ckpt, checkpoint_every = 5, resume = true })
  check.eq(#resumed.step_loss, #full.step_loss)
  for i = 1, #full.step_loss do check.eq(resumed.step_loss[i], full.step_loss[i], "loss " .. i) end
  local p1, p2 = full_net:parameters(), net2:parameters()
  for i = 1, #p1 do check.truthy(bn.equal(p1[i], p2[i]), "parameter " .. i) end
  check.eq(resumed.final.train_loss, full.final.train_loss)
  check.eq(resumed.final.train_acc, full.final.train_acc)
  check.raises(function() fit(net2, opt2, ds, { checkpoint_every = 0 }) end,
    "option 'checkpoint_every' expected a positive integer (steps)")
end

-- ---- kill -9 --------------------------------------------------------------------

-- BNLAB_FAULT_KILLS=N kills N times instead (a longer stress run).
function T.kill_9_at_20_random_moments_keeps_every_file_intact()
  local kills = tonumber(os.getenv("BNLAB_FAULT_KILLS")) or 20
  local ref = get_reference()
  local dir = temp_dir()
  local steps, killed, finished, temps_seen = 0, 0, 0, {}
  local attempts = 0
  while killed < kills do
    attempts = attempts + 1
    if attempts > kills * 3 // 2 then
      fail("only %d of %d runs were killed (%d finished first)", killed, attempts - 1, finished)
    end
    local i = attempts
    local at, delay
    if i % 5 == 0 then
      delay = math.random() * 0.05 -- from the start: loading, resuming, skipping batches
    else
      if steps >= STEPS - 40 then
        -- (long stress runs only) the next signal could find the run finished: start again
        os.execute("rm -f " .. quote(dir) .. "/*")
        steps = 0
      end
      at = steps + math.random(1, 3)
      delay = math.random() * 0.012
    end
    local what = ("kill %d (%s +%.1f ms)"):format(i, at and ("after step " .. at) or "from start", delay * 1000)
    -- Every 3 steps a mid-epoch checkpoint: kills land in those writes too.
    local r = train_and_signal(dir, "--resume --every 3 --step-ms 3", "KILL", at, delay)
    if r.code == 137 then
      killed = killed + 1
    elseif r.code == 0 then
      finished = finished + 1
    else
      fail("%s: exit status %s: %s", what, tostring(r.code), r.err:sub(-600))
    end
    local temps
    steps, temps = check_run_dir(dir, ref, steps, what)
    for _, t in ipairs(temps) do temps_seen[t] = true end
  end
  local r = train(dir, "--resume")
  if r.code ~= 0 then fail("the final resume failed (%s): %s", tostring(r.code), r.err) end
  check_same_result(dir, ref, ("after %d kill -9"):format(kills))
  -- BNLAB_FAULT_VERBOSE=1: how many kills landed inside a write (docs/reliability.md).
  if os.getenv("BNLAB_FAULT_VERBOSE") then
    local n = 0
    for _ in pairs(temps_seen) do n = n + 1 end
    io.stderr:write(("  kill -9: %d killed, %d finished, %d temporaries left by killed writes, seed %d\n"):format(
      killed, finished, n, SEED))
  end
end

-- ---- a full disk ------------------------------------------------------------------

local function mount_tiny_tmpfs()
  local dir = temp_dir()
  local ok = os.execute(("mount -t tmpfs -o size=64k tmpfs %s 2>/dev/null"):format(quote(dir)))
  if not ok then return nil end
  return dir
end

function T.full_disk_errors_name_the_failure_and_keep_the_previous_files()
  local dir = mount_tiny_tmpfs()
  if not dir then check.skip("cannot mount a tmpfs (not root?); the ulimit -f test covers the write errors") end
  local ok, err = pcall(function()
    -- The previous versions, written while there is room.
    bn.write_file(dir .. "/log.csv", "a,b\n1,2\n")
    bn.train.save_checkpoint(dir .. "/run.ckpt", { w = bn.arange(1, 17):reshape(4, 4), epoch = 1 })
    local canvas = bn.render.canvas(8, 8)
    canvas:save_png(dir .. "/fig.png")
    bn.save(bn.ones(3), dir .. "/t.npy")
    local before = {}
    for _, name in ipairs{ "log.csv", "run.ckpt", "fig.png", "t.npy" } do before[name] = slurp(dir .. "/" .. name) end
    -- Fill the disk.
    os.execute(("dd if=/dev/zero of=%s bs=1k count=1000 2>/dev/null"):format(quote(dir .. "/filler")))
    local big = bn.randn(64, 64)
    local function expect_enospc(fn, names)
      local e = check.raises(fn, "No space left on device")
      check.contains(e, names, "the message names what failed")
    end
    expect_enospc(function() bn.write_file(dir .. "/log.csv", string.rep("1,2\n", 3000)) end,
      "bn.write_file: " .. dir .. "/log.csv")
    expect_enospc(function() bn.train.save_checkpoint(dir .. "/run.ckpt", { w = big, epoch = 2 }) end,
      "bn.save_safetensors: safetensors: " .. dir .. "/run.ckpt")
    expect_enospc(function()
      -- noise: a PNG larger than stdio's buffer, so it fails in a write, not at the flush
      local c = bn.render.canvas(128, 128)
      local v = bn.rand(128 * 128):totable()
      for y = 0, 127 do
        for x = 0, 127 do c:fill_rect(x, y, x + 1, y + 1, math.floor(v[y * 128 + x + 1] * 0xffffff)) end
      end
      c:save_png(dir .. "/fig.png")
    end, "bn.render.save_png: " .. dir .. "/fig.png: write of")
    expect_enospc(function() bn.save(big, dir .. "/t.npy") end, "bn.save: npy: " .. dir .. "/t.npy")
    -- A training run whose log and checkpoint land on the full disk.
    local ds = bn.data.blobs{ n = 64, classes = 2, shape = { 4 }, seed = 1 }
    local net = bn.models.mlp{ sizes = { 4, 256, 2 } }
    expect_enospc(function()
      bn.train.fit{ model = net, data = ds, optimizer = bn.optim.SGD(net:parameters(), { lr = 0.1 }), epochs = 1,
        quiet = true, checkpoint = dir .. "/run.ckpt" }
    end, dir .. "/run.ckpt")
    for name, text in pairs(before) do
      check.eq(slurp(dir .. "/" .. name), text, name .. " is the previous version")
    end
    check.eq(bn.train.load_checkpoint(dir .. "/run.ckpt").epoch, 1)
    check.eq(bn.listdir(dir), { "fig.png", "filler", "log.csv", "run.ckpt", "t.npy" }, "no temporaries left")
  end)
  os.execute("umount " .. quote(dir))
  if not ok then error(err, 0) end
end

function T.file_size_limit_errors_name_the_failure_and_keep_the_previous_file()
  -- The fault without root: ulimit -f (SIGXFSZ ignored, so write fails with EFBIG).
  local dir = temp_dir()
  local path = dir .. "/out.txt"
  local code = ([[
bn.write_file(%q, "previous\n")
local ok, e = pcall(bn.write_file, %q, string.rep("x", 100000))
io.stderr:write(tostring(e), "\n")
local ok2, e2 = pcall(bn.save_safetensors, %q, { w = bn.zeros(100000) })
io.stderr:write(tostring(e2), "\n")
os.exit((not ok and not ok2) and 0 or 1)
]]):format(path, path, dir .. "/w.safetensors")
  local err = dir .. "/err"
  local _, _, status = os.execute(("sh -c %s 2>%s"):format(
    quote(("trap '' XFSZ; ulimit -f 16; exec %s -e %s"):format(quote(BNLAB), quote(code))), quote(err)))
  local stderr = slurp(err)
  check.eq(status, 0, "both writes failed: " .. stderr)
  check.contains(stderr, "bn.write_file: " .. path)
  check.contains(stderr, "File too large")
  check.contains(stderr, "bn.save_safetensors: safetensors: " .. dir .. "/w.safetensors")
  check.eq(slurp(path), "previous\n")
  check.eq(bn.listdir(dir), { "err", "out.txt" }, "no temporaries left")
end

-- ---- a failing allocation -----------------------------------------------------------

-- 1 GB of address space: OpenBLAS's start-up takes ~128 MB per thread of
-- buffers and spins forever when it cannot get them (docs/reliability.md).
local VLIMIT_KB = 1024 * 1024

function T.allocation_failure_under_ulimit_v_is_a_lua_error()
  if bn.build.sanitize then
    check.skip("ulimit -v cannot limit an AddressSanitizer build (its shadow memory reserves terabytes)")
  end
  local code = [[
local a = bn.randn(300, 300)
bn.num_threads(2)
local two = bn.matmul(a, a):sum():item()
bn.num_threads(1)
local one = bn.matmul(a, a):sum():item()
print("blas ok", two == two, one == one)
local t = bn.zeros(2^28)
]]
  local dir = temp_dir()
  local out, err = dir .. "/out", dir .. "/err"
  -- timeout: an OpenBLAS start-up that spins must fail the test, not hang it.
  local _, _, status = os.execute(("timeout -s KILL 60 sh -c %s >%s 2>%s"):format(
    quote(("ulimit -v %d; exec %s -e %s"):format(VLIMIT_KB, quote(BNLAB), quote(code))), quote(out), quote(err)))
  local stdout, stderr = slurp(out), slurp(err)
  check.eq(stdout, "blas ok\ttrue\ttrue\n", "OpenBLAS and OpenMP start and run threaded GEMMs under the limit")
  check.contains(stderr, "(command line):7: bn.zeros: tensor: out of memory allocating 1073741824 bytes")
  check.eq(status, 1, "a Lua error, not a crash")
end

-- ---- determinism ----------------------------------------------------------------------

function T.same_seed_and_threads_give_identical_bits()
  local ref = get_reference()
  local dir = temp_dir()
  local r = train(dir)
  check.eq(r.code, 0, r.err)
  check_same_result(dir, ref, "a second run with the same seed and thread count")
end

function T.one_and_two_threads_give_identical_bits_for_this_model()
  -- Our kernels (conv, pooling, BN, losses, reductions, SGD, batches, the
  -- generator) never depend on the thread count; OpenBLAS GEMMs called
  -- outside them do once large enough to be threaded (docs/reliability.md).
  -- This model's only such GEMMs (the 128 -> 4 Linear at batch 16) are too
  -- small to be, so 1 and 2 threads agree bit for bit.
  local ref = get_reference()
  local dir = temp_dir()
  local r = train(dir, "", 1)
  check.eq(r.code, 0, r.err)
  check_same_result(dir, ref, "1 thread against 2")
end

-- Each test's temporary files go when it ends, whatever the outcome.
-- ---- output directories ------------------------------------------------------------

function T.mkdir_creates_parents_and_names_what_fails()
  local dir = check.temp_dir()
  local deep = dir .. "/a b/it's/c"
  bn.mkdir(deep)                              -- a quote and a space: no shell involved
  check.eq(bn.file_type(deep), "directory")
  bn.mkdir(deep .. "/")                       -- existing, trailing slash: fine
  check.write_file(dir .. "/f", "x")
  local ok, err = pcall(bn.mkdir, dir .. "/f/sub")
  check.eq(ok, false)
  check.contains(err, "bn.mkdir: '" .. dir .. "/f' exists and is not a directory")
  ok, err = pcall(bn.mkdir, 3)
  check.eq(ok, false)
  check.contains(err, "bn.mkdir: argument #1 (path) expected a string, got number")
end

return check.cleanup_after(T)
