-- Batch runs: `bnlab sweep` (grid order, names, sharding, Slurm, failure
-- isolation, resuming after a killed sweep, signals) and `bnlab merge`, and
-- the bindings under them (bnlab.process: spawn, wait, kill, ...; bn.listdir, bn.file_type).
-- Experiments are tests/lua/data/fake_experiment.lua: fast, and told by
-- --mode to succeed, fail, diverge or crash.
local check = require "check"
local bn = require "bnlab"
local json = require "bnlab.json"
local sweep = require "bnlab.sweep"
local process = require "bnlab.process"

local BNLAB = check.bnlab()
local HERE = (arg[0]:match("^(.*)/[^/]*$") or ".")
local FAKE = HERE .. "/data/fake_experiment.lua"

local quote, slurp, temp_dir = check.quote, check.read_file, check.temp_dir
local expect_exit = check.exit_status

local function exists(path) return bn.file_type(path) ~= nil end

--- Runs `bnlab WORDS` (already quoted), with env (a table of variables)
-- when given; returns { out =, err =, code =, how = }.
local function run(words, env) return check.run_bnlab(words, { env = env }) end

local function wait_for(what, fn, timeout)
  local t0 = bn.clock()
  while bn.clock() - t0 < (timeout or 15) do
    local v = fn()
    if v then return v end
    process.sleep(0.02)
  end
  error("timed out waiting for " .. what, 2)
end

--- Starts `bnlab WORDS` in the background; returns its pid and a function
-- that waits for its exit status.
local function start_background(words, dir)
  local pidfile, rcfile = dir .. "/bg.pid", dir .. "/bg.rc"
  os.execute(("(%s %s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s) </dev/null >/dev/null 2>&1 &"):format(
    quote(BNLAB), words, quote(dir .. "/bg.out"), quote(pidfile), quote(rcfile)))
  local pid = wait_for("the background pid", function() return (slurp(pidfile) or ""):match("^(%d+)\n") end)
  local function finished(timeout)
    local rc = wait_for("the background exit status", function() return (slurp(rcfile) or ""):match("^(%d+)\n") end,
      timeout)
    return math.tointeger(tonumber(rc)), slurp(dir .. "/bg.out")
  end
  return math.tointeger(tonumber(pid)), finished
end

--- Is the process running (not gone, not a zombie)?
local function alive(pid)
  local stat = slurp("/proc/" .. pid .. "/stat")
  if not stat then return false end
  return stat:match("%) (%a)") ~= "Z"
end

local function status_of(dir, name)
  local text = slurp(dir .. "/" .. name .. "/status.json")
  return text and json.decode(text) or nil
end

local function count_lines(path)
  local counts = {}
  for line in (slurp(path) or ""):gmatch("[^\n]+") do
    local name = line:match("([^/]+)$")
    counts[name] = (counts[name] or 0) + 1
  end
  return counts
end

--- The "[k/N] label" lines of a dry run, as a list of k.
local function listed(out)
  local ks = {}
  for k in out:gmatch("%[(%d+)/%d+%] [^\n]*") do ks[#ks + 1] = math.tointeger(tonumber(k)) end
  return ks
end

local T = {}

-- ---- the grid -------------------------------------------------------------

function T.expand_orders_first_grid_slowest_and_seed_fastest()
  local configs = sweep.expand({ { key = "lr", values = { "0.1", "0.01" } }, { key = "norm", values = { "bn", "none" } } },
    { 1, 2 })
  local names = {}
  for i, c in ipairs(configs) do
    check.eq(c.index, i)
    names[i] = c.name
  end
  check.eq(names, {
    "lr=0.1,norm=bn,seed=1", "lr=0.1,norm=bn,seed=2", "lr=0.1,norm=none,seed=1", "lr=0.1,norm=none,seed=2",
    "lr=0.01,norm=bn,seed=1", "lr=0.01,norm=bn,seed=2", "lr=0.01,norm=none,seed=1", "lr=0.01,norm=none,seed=2",
  })
  check.eq(configs[3].label, "lr=0.1 norm=none seed=1")
  check.eq(configs[3].params, { { "lr", "0.1" }, { "norm", "none" } })
end

function T.names_are_filesystem_safe_and_collisions_are_refused()
  local configs = sweep.expand({ { key = "data", values = { "../x y", "a,b=c", "1e-3" } } }, { 7 })
  check.eq(configs[1].name, "data=.._x_y,seed=7")
  check.eq(configs[2].name, "data=a_b_c,seed=7")
  check.eq(configs[3].name, "data=1e-3,seed=7")
  check.eq(configs[1].label, "data=../x y seed=7") -- the label shows the value as given
  local ok, err = pcall(sweep.expand, { { key = "p", values = { "a/b", "a b" } } }, { 1 })
  check.eq(ok, false)
  check.eq(getmetatable(err), sweep.UsageError)
  check.contains(tostring(err), "would share the folder p=a_b,seed=1")
end

function T.shards_partition_the_grid()
  local grid = sweep.expand({ { key = "a", values = { "1", "2", "3" } }, { key = "b", values = { "x", "y" } } },
    { 1, 2 })
  check.eq(#grid, 12)
  for n = 1, 5 do
    local seen = {}
    for i = 1, n do
      for _, c in ipairs(sweep.select(grid, i, n)) do
        check.eq(seen[c.index], nil, ("config %d in two shards of %d"):format(c.index, n))
        check.eq((c.index - 1) % n, i - 1, "shard rule")
        seen[c.index] = true
      end
    end
    for k = 1, #grid do check.truthy(seen[k], ("config %d in no shard of %d"):format(k, n)) end
  end
end

function T.parse_reads_slurm_array_variables()
  local function env(t) return function(name) return t[name] end end
  local base = { FAKE, "--out", "/nonexistent/x", "--grid", "a=1,2" }
  local o = sweep.parse(base, env { SLURM_ARRAY_TASK_ID = "7", SLURM_ARRAY_TASK_COUNT = "3", SLURM_ARRAY_TASK_MIN = "5" })
  check.eq({ o.shard, o.shards, o.shard_from }, { 3, 3, "SLURM_ARRAY_TASK_ID" })
  o = sweep.parse(base, env { SLURM_ARRAY_TASK_ID = "0", SLURM_ARRAY_TASK_COUNT = "4" })
  check.eq({ o.shard, o.shards }, { 1, 4 })
  -- --array=5-9:2 gives ids 5, 7, 9
  o = sweep.parse(base, env { SLURM_ARRAY_TASK_ID = "9", SLURM_ARRAY_TASK_COUNT = "3", SLURM_ARRAY_TASK_MIN = "5",
                              SLURM_ARRAY_TASK_STEP = "2" })
  check.eq({ o.shard, o.shards }, { 3, 3 })
  -- --shard wins over Slurm; no Slurm: everything
  local argv = { table.unpack(base) }
  argv[#argv + 1] = "--shard"
  argv[#argv + 1] = "2/2"
  o = sweep.parse(argv, env { SLURM_ARRAY_TASK_ID = "0", SLURM_ARRAY_TASK_COUNT = "4" })
  check.eq({ o.shard, o.shards }, { 2, 2 })
  o = sweep.parse(base, env {})
  check.eq({ o.shard, o.shards }, { 1, 1 })
  local err = check.raises(sweep.parse, nil, base,
    env { SLURM_ARRAY_TASK_ID = "4", SLURM_ARRAY_TASK_COUNT = "3", SLURM_ARRAY_TASK_MIN = "1" })
  check.contains(tostring(err), "SLURM_ARRAY_TASK_ID=4 does not fit")
end

function T.dry_run_lists_each_shard_and_slurm_agrees()
  local d = temp_dir()
  local out = d .. "/sweep"
  local words = ("sweep %s --grid a=1,2,3 --grid b=x,y --seeds 2 --out %s --dry-run"):format(quote(FAKE), quote(out))
  local all = run(words)
  expect_exit(all, 0)
  check.eq(listed(all.out), { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 })
  check.contains(all.out, "[1/12] a=1 b=x seed=1\n")
  check.contains(all.out, "[12/12] a=3 b=y seed=2\n")
  check.contains(all.out, "run " .. FAKE .. " --a 1 --b x --seed 1 --out " .. out .. "/a=1,b=x,seed=1")
  local n, union = 3, {}
  for i = 1, n do
    local r = run(words .. " --shard " .. i .. "/" .. n)
    expect_exit(r, 0)
    local ks = listed(r.out)
    for _, k in ipairs(ks) do
      check.eq(union[k], nil, "listed by two shards")
      check.eq((k - 1) % n, i - 1)
      union[k] = true
    end
    local slurm = run(words, { SLURM_ARRAY_TASK_ID = i, SLURM_ARRAY_TASK_MIN = 1, SLURM_ARRAY_TASK_COUNT = n })
    expect_exit(slurm, 0)
    check.eq(listed(slurm.out), ks, "Slurm task " .. i)
    check.contains(slurm.out, "shard " .. i .. "/" .. n .. " (SLURM_ARRAY_TASK_ID)")
  end
  for k = 1, 12 do check.truthy(union[k], "config " .. k .. " listed by no shard") end
  check.eq(exists(out), false, "a dry run creates nothing")
  local seeds = run(("sweep %s --grid a=1 --seed-list 5,9 --out %s --dry-run"):format(quote(FAKE), quote(out)))
  expect_exit(seeds, 0)
  check.contains(seeds.out, "[1/2] a=1 seed=5\n[2/2] a=1 seed=9\n")
end

-- ---- running --------------------------------------------------------------

function T.failures_are_isolated_and_statuses_recorded()
  local d = temp_dir()
  local dir, counter = d .. "/s", d .. "/counter"
  local words = ("sweep %s --grid mode=ok,fail,diverge,nested,crash --grid lr=0.5 -j 2 --out %s -- --counter %s")
    :format(quote(FAKE), quote(dir), quote(counter))
  local r = run(words)
  expect_exit(r, 1, "a sweep with failures")
  local want = { ok = "ok", fail = "failed", diverge = "diverged", nested = "diverged", crash = "failed" }
  for mode, status in pairs(want) do
    local st = status_of(dir, "mode=" .. mode .. ",lr=0.5,seed=1")
    check.eq(st and st.status, status, mode)
    check.truthy(type(st.seconds) == "number" and st.seconds >= 0, "seconds of " .. mode)
  end
  check.eq(status_of(dir, "mode=fail,lr=0.5,seed=1").exit_code, 1)
  check.eq(status_of(dir, "mode=crash,lr=0.5,seed=1").signal, "SIGKILL")
  check.eq(status_of(dir, "mode=crash,lr=0.5,seed=1").exit_code, nil)
  check.eq(status_of(dir, "mode=ok,lr=0.5,seed=1").exit_code, 0)
  check.contains(slurp(dir .. "/mode=fail,lr=0.5,seed=1/log.txt"), "fake failure for mode=fail")
  check.contains(slurp(dir .. "/mode=ok,lr=0.5,seed=1/log.txt"), "fake_experiment: mode ok lr 0.5 seed 1")
  local config = json.decode(slurp(dir .. "/mode=diverge,lr=0.5,seed=1/config.json"))
  check.eq(config.params, { mode = "diverge", lr = "0.5", seed = 1 })
  check.eq(config.index, 3)
  check.eq({ table.unpack(config.argv, #config.argv - 9) },
    { "--mode", "diverge", "--lr", "0.5", "--seed", "1", "--out", dir .. "/mode=diverge,lr=0.5,seed=1", "--counter",
      counter })
  -- progress lines
  check.contains(r.out, "[1/5] mode=ok lr=0.5 seed=1: started\n")
  check.truthy(r.out:match("%[1/5%] mode=ok lr=0%.5 seed=1: ok in %d+%.%d s\n"), "ok line in\n" .. r.out)
  check.truthy(r.out:match("%[2/5%] mode=fail lr=0%.5 seed=1: failed %(exit 1%) in [^\n]*fake failure"), r.out)
  check.truthy(r.out:match("%[5/5%] mode=crash lr=0%.5 seed=1: failed %(killed by SIGKILL%)"), r.out)
  check.truthy(r.out:match("%[3/5%] mode=diverge lr=0%.5 seed=1: diverged in"), r.out)
  -- the table: printed, and as CSV and JSON
  local csv = slurp(dir .. "/sweep.csv")
  local lines = {}
  for line in csv:gmatch("[^\n]+") do lines[#lines + 1] = line end
  check.eq(lines[1], "config,mode,lr,seed,status,seconds,diverged,score")
  check.eq(#lines, 6)
  check.truthy(lines[2]:match('^"mode=ok,lr=0%.5,seed=1",ok,0%.5,1,ok,[%d.e-]+,,10%.5$'), lines[2])
  check.truthy(lines[3]:match('^"mode=fail,lr=0%.5,seed=1",fail,0%.5,1,failed,[%d.e-]+,,$'), lines[3])
  check.truthy(lines[4]:match('^"mode=diverge,lr=0%.5,seed=1",diverge,0%.5,1,diverged,[%d.e-]+,true,10%.5$'), lines[4])
  local tab = json.decode(slurp(dir .. "/sweep.json"))
  check.eq(tab.columns, { "config", "mode", "lr", "seed", "status", "seconds", "diverged", "score" })
  check.eq(tab.rows[4].status, "diverged")
  check.eq(tab.rows[4].score, 10.5)
  check.truthy(r.out:match("\nconfig%s+mode%s+lr%s+seed%s+status%s+seconds%s+diverged%s+score\n"), r.out)

  -- rerun: only the failed ones run again
  local again = run(words)
  expect_exit(again, 1)
  check.contains(again.out, "[1/5] mode=ok lr=0.5 seed=1: ok earlier, skipped")
  check.contains(again.out, "[4/5] mode=nested lr=0.5 seed=1: diverged earlier, skipped")
  check.eq(count_lines(counter), {
    ["mode=ok,lr=0.5,seed=1"] = 1, ["mode=diverge,lr=0.5,seed=1"] = 1, ["mode=nested,lr=0.5,seed=1"] = 1,
    ["mode=fail,lr=0.5,seed=1"] = 2, ["mode=crash,lr=0.5,seed=1"] = 2,
  })
end

function T.a_killed_sweep_resumes_without_rerunning_finished_configs()
  local d = temp_dir()
  local dir, counter = d .. "/s", d .. "/counter"
  local words = ("sweep %s --grid lr=1,2,3,4 -j 1 --out %s -- --sleep 0.6 --counter %s"):format(quote(FAKE),
    quote(dir), quote(counter))
  local pid, finished = start_background(words, d)
  wait_for("the first configuration", function() return status_of(dir, "lr=1,seed=1") end)
  local child = math.tointeger(tonumber(wait_for("the second configuration to start",
    function() return (slurp(dir .. "/lr=2,seed=1/pid.txt") or ""):match("^(%d+)\n") end)))
  os.execute("kill -KILL " .. pid)
  check.eq(finished(), 137, "killed sweep")
  -- its running child goes too (it gets SIGTERM when the sweep dies)
  wait_for("the orphaned child to end", function() return not alive(child) end, 5)
  local done = {}
  for k = 1, 4 do
    local st = status_of(dir, ("lr=%d,seed=1"):format(k))
    if st then
      check.eq(st.status, "ok")
      done[k] = true
    end
  end
  check.truthy(done[1] and not done[4], "killed between the first and the last configuration")

  local r = run(words)
  expect_exit(r, 0, "resumed sweep")
  local counts = count_lines(counter)
  for k = 1, 4 do
    local name = ("lr=%d,seed=1"):format(k)
    check.eq(status_of(dir, name).status, "ok", name)
    if done[k] then
      check.eq(counts[name], 1, name .. " finished before the kill: not run again")
      check.contains(r.out, ("[%d/4] lr=%d seed=1: ok earlier, skipped"):format(k, k))
    else
      check.truthy(counts[name] and counts[name] >= 1, name .. " ran")
      check.contains(r.out, ("[%d/4] lr=%d seed=1: started"):format(k, k))
    end
  end
end

local function interrupt_test(signal, code, more)
  local d = temp_dir()
  local dir = d .. "/s"
  local words = ("sweep %s --grid lr=1,2,3 -j 2 --out %s -- --sleep 5"):format(quote(FAKE), quote(dir))
  local pid, finished = start_background(words, d)
  local children = {}
  for k = 1, 2 do
    children[k] = math.tointeger(tonumber(wait_for("configuration " .. k .. " to start",
      function() return (slurp(dir .. ("/lr=%d,seed=1/pid.txt"):format(k)) or ""):match("^(%d+)\n") end)))
  end
  local t0 = bn.clock()
  os.execute("kill -" .. signal .. " " .. pid)
  local rc, out = finished(10)
  check.eq(rc, code, "exit status after SIG" .. signal)
  check.truthy(bn.clock() - t0 < 4, "the children were stopped, not waited for")
  check.contains(out, "SIG" .. signal .. ": stopping 2 running configurations")
  for k = 1, 2 do
    check.eq(alive(children[k]), false, "child " .. k)
    check.eq(status_of(dir, ("lr=%d,seed=1"):format(k)), nil, "no status for a stopped configuration")
  end
  check.eq(exists(dir .. "/lr=3,seed=1"), false, "-j 2: the third never started")
  local tab = json.decode(slurp(dir .. "/sweep.json"))
  check.eq({ tab.rows[1].status, tab.rows[2].status, tab.rows[3].status }, { "unfinished", "unfinished", "pending" })
  if more then more(dir) end
end

function T.sigterm_stops_the_children_and_exits_143()
  interrupt_test("TERM", 143)
end

function T.sigint_is_passed_on_and_exits_130()
  interrupt_test("INT", 130, function(dir)
    -- the children stopped the Lua way, at a line of the script
    check.contains(slurp(dir .. "/lr=1,seed=1/log.txt") or "", "interrupted!")
  end)
end

-- ---- merge ----------------------------------------------------------------

local function write(path, text)
  bn.mkdir(path:match("^(.*)/[^/]*$"))
  bn.write_file(path, text)
end

function T.merge_joins_configs_and_flattens_summaries()
  local d = temp_dir()
  local root = d .. "/runs"
  write(root .. "/x/summary.json",
    '{"loss": 0.5, "none": {"growth": 12.5, "deep": {"v": true}}, "list": [1, 2], "seed": 3, "note": "a,b"}')
  write(root .. "/x/config.json", '{"name": "x", "params": {"lr": "0.1", "seed": 3}}')
  write(root .. "/x/status.json", '{"status": "ok", "seconds": 1.5}')
  write(root .. "/y/deeper/summary.json", '{"loss": 0.25, "bn": {"growth": 1}, "seed": 8}')
  write(root .. "/y/deeper/config.json", '{"lr": 0.01, "seed": 4}') -- no params: its top-level values
  write(root .. "/z/summary.json", "{broken")
  local out_csv = d .. "/all.csv"
  local r = run(("merge %s --out %s"):format(quote(root), quote(out_csv)))
  expect_exit(r, 0)
  check.contains(r.err, "skipped " .. root .. "/z/summary.json")
  local header = r.out:match("^[^\n]+")
  check.eq((header:gsub("%s+", " ")), "dir lr seed status seconds bn.growth loss none.deep.v none.growth note summary.seed")
  check.eq(slurp(out_csv), table.concat({
    "dir,lr,seed,status,seconds,bn.growth,loss,none.deep.v,none.growth,note,summary.seed",
    'x,0.1,3,ok,1.5,,0.5,true,12.5,"a,b",',
    "y/deeper,0.01,4,,,1,0.25,,,,8",
  }, "\n") .. "\n")
  local out_json = d .. "/all.json"
  expect_exit(run(("merge %s --out %s"):format(quote(root), quote(out_json))), 0)
  local tab = json.decode(slurp(out_json))
  check.eq(tab.columns[1], "dir")
  check.eq(tab.rows[1], { dir = "x", lr = "0.1", seed = 3, status = "ok", seconds = 1.5, loss = 0.5,
                          ["none.growth"] = 12.5, ["none.deep.v"] = true, note = "a,b" })
  check.eq(tab.rows[2]["summary.seed"], 8)
  -- two directories: dir keeps the argument
  local two = run(("merge %s %s"):format(quote(root .. "/x"), quote(root .. "/y")))
  expect_exit(two, 0)
  check.contains(two.out, "\n" .. root .. "/x ")
  check.contains(two.out, "\n" .. root .. "/y/deeper ")
end

function T.merge_reads_what_a_sweep_wrote()
  local d = temp_dir()
  local dir = d .. "/s"
  expect_exit(run(("sweep %s --grid lr=1,2 --seeds 2 --out %s"):format(quote(FAKE), quote(dir))), 0)
  local r = run("merge " .. quote(dir) .. " --out " .. quote(d .. "/m.csv"))
  expect_exit(r, 0)
  local lines = {}
  for line in slurp(d .. "/m.csv"):gmatch("[^\n]+") do lines[#lines + 1] = line end
  check.eq(lines[1], "dir,lr,seed,status,seconds,mode,nested.a,nested.b.c,score")
  check.eq(#lines, 5)
  check.truthy(lines[2]:match('^"lr=1,seed=1",1,1,ok,[%d.e-]+,ok,1,deep,11$'), lines[2])
  check.truthy(lines[5]:match('^"lr=2,seed=2",2,2,ok,[%d.e-]+,ok,1,deep,22$'), lines[5])
end

function T.merge_usage_and_empty_results()
  local d = temp_dir()
  local r = run("merge")
  expect_exit(r, 2)
  check.contains(r.err, "bnlab merge: no directory given")
  r = run("merge " .. quote(d .. "/missing"))
  expect_exit(r, 2)
  check.contains(r.err, "no such file or directory: " .. d .. "/missing")
  r = run("merge " .. quote(d))
  expect_exit(r, 1)
  check.contains(r.err, "no summary.json found below " .. d)
  r = run("merge --bogus " .. quote(d))
  expect_exit(r, 2)
  check.contains(r.err, "unknown option '--bogus'")
  r = run("merge " .. quote(d) .. " --out")
  expect_exit(r, 2)
  check.contains(r.err, "needs a file name")
  r = run("merge --help")
  expect_exit(r, 0)
  check.contains(r.out, "usage: bnlab merge DIR... [--out FILE]")
end

-- ---- usage ----------------------------------------------------------------

function T.sweep_usage_errors_exit_2()
  local d = temp_dir()
  local out = quote(d .. "/s")
  local cases = {
    { "", "no script given" },
    { quote(FAKE) .. " --grid a=1", "no --out DIR given" },
    { quote(d .. "/nope.lua") .. " --out " .. out, "cannot open the script " .. d .. "/nope.lua" },
    { quote(FAKE) .. " --out " .. out .. " --grid lr", "--grid expects KEY=V1,V2,..., got 'lr'" },
    { quote(FAKE) .. " --out " .. out .. " --grid =1,2", "--grid expects KEY=V1,V2,... with KEY a name" },
    { quote(FAKE) .. " --out " .. out .. " --grid lr=", "--grid lr: empty value" },
    { quote(FAKE) .. " --out " .. out .. " --grid lr=1,,2", "--grid lr: empty value in '1,,2'" },
    { quote(FAKE) .. " --out " .. out .. " --grid lr=1,1", "--grid lr: value '1' given twice" },
    { quote(FAKE) .. " --out " .. out .. " --grid lr=1 --grid lr=2", "--grid lr given twice" },
    { quote(FAKE) .. " --out " .. out .. " --grid seed=1,2", "--grid seed: give seeds with --seeds N" },
    { quote(FAKE) .. " --out " .. out .. " --shard 0/4", "--shard: I must be from 1 to 4, got '0/4'" },
    { quote(FAKE) .. " --out " .. out .. " --shard 5/4", "--shard: I must be from 1 to 4, got '5/4'" },
    { quote(FAKE) .. " --out " .. out .. " --shard 2", "--shard expects I/N" },
    { quote(FAKE) .. " --out " .. out .. " -j 0", "-j/--jobs expects a whole number from 1 to 4096, got '0'" },
    { quote(FAKE) .. " --out " .. out .. " --seeds 0", "--seeds expects a whole number from 1" },
    { quote(FAKE) .. " --out " .. out .. " --seeds 2 --seed-list 1", "give --seeds or --seed-list, not both" },
    { quote(FAKE) .. " --out " .. out .. " --seed-list 1,x", "--seed-list expects comma-separated whole numbers" },
    { quote(FAKE) .. " --out " .. out .. " --jobs", "option --jobs needs a value" },
    { quote(FAKE) .. " --out " .. out .. " --lr 1", "unknown option '--lr' (options for the script go after --)" },
    { quote(FAKE) .. " --out " .. out .. " more", "unexpected argument 'more'" },
    { quote(FAKE) .. " --out " .. out .. " --grid lr=1 -- --lr=2", "the script argument '--lr=2' would override what the sweep sets" },
  }
  for _, case in ipairs(cases) do
    local r = run("sweep " .. case[1])
    expect_exit(r, 2, case[1])
    check.contains(r.err, "bnlab sweep: " .. case[2], case[1])
    check.contains(r.err, "Try 'bnlab sweep --help'", case[1])
  end
  check.eq(exists(d .. "/s"), false, "nothing created by a usage error")
  local h = run("sweep --help")
  expect_exit(h, 0)
  for _, word in ipairs { "--grid KEY=V1,V2", "--shard I/N", "SLURM_ARRAY_TASK_ID", "--dry-run", "status.json",
                          "diverged", "resumes" } do
    check.contains(h.out, word)
  end
  local top = run("--help")
  expect_exit(top, 0)
  check.contains(top.out, "sweep SCRIPT")
  check.contains(top.out, "merge DIR...")
end

-- ---- the bindings ---------------------------------------------------------

function T.spawn_wait_kill_and_their_argument_checks()
  local d = temp_dir()
  local log = d .. "/log.txt"
  local pid = process.spawn({ "/bin/sh", "-c", "echo out; echo err >&2; read x; echo \"[$x]\"; exit 3" },
    { output = log, input = "/dev/null" })
  check.eq({ process.wait(pid, 10) }, { pid, 3 })
  check.eq(slurp(log), "out\nerr\n[]\n")
  local sleeper = process.spawn({ "/bin/sleep", "10" })
  check.eq({ process.wait({ sleeper }, 0.05) }, { nil, "timeout" })
  check.eq(process.kill(sleeper, "TERM"), true)
  check.eq({ process.wait({ sleeper }, 10) }, { sleeper, nil, "SIGTERM" })
  check.eq(process.kill(sleeper), false, "gone: no such process")
  local exe = process.executable()
  check.eq(bn.file_type(exe, true), "file")
  check.raises(process.spawn, "bn.process.spawn: cannot run /nonexistent/prog: No such file or directory",
    { "/nonexistent/prog" })
  check.raises(process.spawn, "bn.process.spawn: cannot open output", { "/bin/true" },
    { output = d .. "/no/such/log" })
  check.raises(process.spawn, "bn.process.spawn: argument #1 (argv) expected a non-empty list of strings", {})
  check.raises(process.spawn, "bn.process.spawn: argument #1 (argv) expected a list of strings", "/bin/true")
  check.raises(process.spawn,
    "bn.process.spawn: argument #1 (argv) element 2 expected a string without zero bytes, got number 5",
    { "/bin/true", 5 })
  check.raises(process.spawn, "bn.process.spawn: argument #2 has an unknown option string 'outptu'", { "/bin/true" },
    { outptu = "x" })
  check.raises(process.spawn, "field 'append' expected a boolean, got string 'yes'", { "/bin/true" }, { append = "yes" })
  check.raises(process.wait,
    "bn.process.wait: argument #1 (pids) expected a process id or a non-empty list of them, got table", {})
  check.raises(process.wait, "bn.process.wait: argument #2 (timeout) expected a number of seconds >= 0", { 1 }, -1)
  check.raises(process.wait, "bn.process.wait: process 1 is not a child of this process", 1, 0)
  check.raises(process.kill,
    "bn.process.kill: argument #1 (pid) expected a process id (an integer >= 1), got number 0", 0)
  check.raises(process.kill, "bn.process.kill: argument #2 (signal) expected a signal name", 1, "NOPE")
  check.raises(process.sleep, "bn.process.sleep: argument #1 (seconds) expected a number of seconds >= 0", -1)
  check.raises(process.trap_signals, "bn.process.trap_signals: argument #1 (on) expected", "yes")
end

function T.process_control_is_not_in_bn_itself()
  -- The API fuzzer drives every function in bn with random arguments:
  -- kill(1), sleep(1e9) or spawn must not be among them.
  for _, name in ipairs { "spawn", "wait", "kill", "sleep", "trap_signals", "caught_signal", "executable" } do
    check.eq(rawget(bn, name), nil, "bn." .. name)
    check.eq(type(process[name]), "function", "bnlab.process." .. name)
  end
  check.eq(bn.process, process, "bn.process loads bnlab.process on first use")
end

function T.listdir_file_type_and_trapped_signals()
  local d = temp_dir()
  write(d .. "/b.txt", "")
  write(d .. "/a/c.txt", "")
  check.eq(bn.listdir(d), { "a", "b.txt" })
  check.eq(bn.file_type(d .. "/a"), "directory")
  check.eq(bn.file_type(d .. "/b.txt"), "file")
  check.eq(bn.file_type(d .. "/none"), nil)
  os.execute("ln -s b.txt " .. quote(d .. "/link"))
  check.eq(bn.file_type(d .. "/link"), "link")
  check.eq(bn.file_type(d .. "/link", true), "file")
  check.raises(bn.listdir, "bn.listdir: " .. d .. "/none: No such file or directory", d .. "/none")
  check.raises(bn.listdir, "bn.listdir: argument #1 (path) expected a non-empty path", "")
  -- a trapped SIGTERM cuts a wait short and is reported once
  process.trap_signals(true)
  local ok, err = pcall(function()
    local pid = process.spawn({ "/bin/sh", "-c", "kill -TERM $PPID; sleep 0.2" })
    check.eq({ process.wait(pid, 10) }, { nil, "interrupted" })
    check.eq({ process.caught_signal() }, { "SIGTERM", 15 })
    check.eq(process.caught_signal(), nil)
    check.eq({ process.wait(pid, 10) }, { pid, 0 })
  end)
  process.trap_signals(false)
  assert(ok, err)
end

-- Each test's temporary directories go when it ends, whatever the outcome.
return check.cleanup_after(T)
