-- `bnlab sweep SCRIPT --grid k=v1,v2 ... --out DIR`: runs an experiment script
-- once per point of a grid (x seeds), each as its own `bnlab run` process,
-- a few at a time, resumably (docs/batch.md has the whole story).
--
-- The pieces are usable from Lua too (the tests use them):
--   sweep.parse(argv [, getenv]) -> options | nil, help   (raises sweep.UsageError)
--   sweep.expand(grids, seeds) -> configurations in grid order
--   sweep.select(configs, shard, count) -> those of one shard
--   sweep.main(argv) -> exit status (the command)
--
-- Decisions worth knowing:
--  * Grid order: the first --grid varies slowest, seeds fastest; k is the
--    1-based index in that order, shard I of N runs k with (k-1) % N == I-1.
--  * A configuration's folder is DIR/<name>, name = "k1=v1,k2=v2,seed=s" with
--    every character of a value outside [A-Za-z0-9._+-] replaced by "_".
--  * status.json decides resumption: ok and diverged are kept, anything else
--    (failed, or no status.json: never run, or cut short) runs again.
--  * diverged = exit status 0 and the script's summary.json has
--    `diverged = true` at its top level or in any table inside it (a run of
--    several models where one diverged counts).

local bn = require "bnlab"
local json = require "bnlab.json"
local merge = require "bnlab.merge"
local process = require "bnlab.process"

local sweep = {}

local GRACE_SECONDS = 20 -- after forwarding a signal, how long children get before SIGKILL
local MAX_NAME = 200     -- bytes of a configuration's folder name

sweep.HELP = [[
usage: bnlab sweep SCRIPT --grid KEY=V1,V2,... [--grid ...] --out DIR [options] [-- ARGS]

Runs SCRIPT once per configuration: every combination of the --grid values,
times the seeds. Each is its own process,
  bnlab [-t T] run SCRIPT --KEY V ... --seed S --out DIR/<config> ARGS
with its standard output and error in DIR/<config>/log.txt, at most -j at a
time. <config> is "KEY=V,...,seed=S" (characters other than letters, digits
and ._+- in values become _). The first --grid varies slowest, the seed
fastest. SCRIPT must accept --seed and --out (options of its bn.args).

options:
  --grid KEY=V1,V2,...  a parameter and its values (repeatable, one per KEY)
  --seeds N             seeds 1..N (default 1)
  --seed-list S1,S2,... these seeds instead
  -j, --jobs N          run N configurations at a time (default 1)
  -t, --threads T       each run uses T threads (default: BNLAB_THREADS if
                        set, else the cores divided by -j, at least 1)
  --out DIR             the sweep's directory (required)
  --shard I/N           run only configurations k (1-based, in grid order)
                        with (k-1) % N == I-1; I in 1..N. Without it, a Slurm
                        array task (SLURM_ARRAY_TASK_ID and _COUNT set) runs
                        shard (TASK_ID - SLURM_ARRAY_TASK_MIN) / STEP + 1 of COUNT
  --dry-run             list this shard's configurations and exit
  -h, --help            show this help
  --                    the words after it go to every run of SCRIPT

In DIR/<config>: config.json (its parameters and command), log.txt, what the
script writes, and status.json once the run ended: status "ok" (exit 0),
"diverged" (exit 0 and summary.json has diverged = true, at the top or in a
table inside), or "failed" (another exit status, or killed), with exit_code
or signal, and seconds.

Rerunning the same command resumes: configurations whose status is ok or
diverged are skipped; failed and unfinished ones run again. One failing
configuration never stops the others. Ctrl-C or SIGTERM (SIGHUP) passes the
signal on to the running configurations (SIGKILL after 20 s, or at a second
signal), keeps what finished, and exits 130 (143, 129). At the end, a table
(config, parameters, status, seconds, the top-level numbers and strings of
each summary.json; all shards' configurations) is printed and written to
DIR/sweep.csv and DIR/sweep.json.

exit status: 0 every configuration of this shard ok or diverged, 1 some
failed, 2 usage error, 128+signal when interrupted.
More: docs/batch.md]]

-- ---- usage errors ---------------------------------------------------------

sweep.UsageError = {}
sweep.UsageError.__index = sweep.UsageError
sweep.UsageError.__tostring = function(e) return "bnlab sweep: " .. e.message end

local function usage_error(fmt, ...)
  error(setmetatable({ message = fmt:format(...) }, sweep.UsageError), 0)
end

-- ---- parsing --------------------------------------------------------------

local function whole_number(s, what, lo, hi)
  local n = math.tointeger(tonumber(s))
  if not n or not tostring(s):match("^%s*[+]?%d+%s*$") or n < lo or (hi and n > hi) then
    usage_error("%s expects a whole number %s, got '%s'", what,
      hi and ("from " .. lo .. " to " .. hi) or (">= " .. lo), tostring(s))
  end
  return n
end

local function split_commas(s)
  local items = {}
  for item in (s .. ","):gmatch("([^,]*),") do items[#items + 1] = item end
  return items
end

local function parse_grid(spec, grids, seen)
  local key, values = spec:match("^([^=]*)=(.*)$")
  if not key then usage_error("--grid expects KEY=V1,V2,..., got '%s'", spec) end
  if not key:match("^[%a_][%w_%-]*$") then
    usage_error("--grid expects KEY=V1,V2,... with KEY a name (letters, digits, _ and -), got '%s'", spec)
  end
  local norm = key:gsub("%-", "_")
  if norm == "seed" then usage_error("--grid %s: give seeds with --seeds N or --seed-list S1,S2,...", key) end
  if norm == "out" then usage_error("--grid out: the output folder of each run is set by the sweep") end
  if seen[norm] then usage_error("--grid %s given twice (list all its values in one --grid)", key) end
  seen[norm] = true
  local list, dup = split_commas(values), {}
  for _, v in ipairs(list) do
    if v == "" then usage_error("--grid %s: empty value in '%s'", key, values) end
    if v:sub(1, 2) == "--" then usage_error("--grid %s: a value may not start with '--', got '%s'", key, v) end
    if dup[v] then usage_error("--grid %s: value '%s' given twice", key, v) end
    dup[v] = true
  end
  grids[#grids + 1] = { key = key, values = list }
end

local function parse_shard(s, origin)
  local i, n = tostring(s):match("^(%d+)/(%d+)$")
  if not i then usage_error("%s expects I/N (for example 2/4), got '%s'", origin, tostring(s)) end
  i, n = math.tointeger(tonumber(i)), math.tointeger(tonumber(n))
  if not n or n < 1 then usage_error("%s: N must be at least 1, got '%s'", origin, s) end
  if not i or i < 1 or i > n then usage_error("%s: I must be from 1 to %d, got '%s'", origin, n, s) end
  return i, n
end

--- The shard from Slurm's array variables, or nil when not in an array job.
local function slurm_shard(getenv)
  local id, count = getenv("SLURM_ARRAY_TASK_ID"), getenv("SLURM_ARRAY_TASK_COUNT")
  if not id or id == "" or not count or count == "" then return nil end
  local min = getenv("SLURM_ARRAY_TASK_MIN")
  local step = getenv("SLURM_ARRAY_TASK_STEP")
  local nid = whole_number(id, "SLURM_ARRAY_TASK_ID", 0)
  local ncount = whole_number(count, "SLURM_ARRAY_TASK_COUNT", 1)
  local nmin = (min and min ~= "") and whole_number(min, "SLURM_ARRAY_TASK_MIN", 0) or 0
  local nstep = (step and step ~= "") and whole_number(step, "SLURM_ARRAY_TASK_STEP", 1) or 1
  local offset = nid - nmin
  if offset < 0 or offset % nstep ~= 0 or offset // nstep >= ncount then
    usage_error("SLURM_ARRAY_TASK_ID=%s does not fit SLURM_ARRAY_TASK_MIN=%d, _STEP=%d, _COUNT=%d",
      id, nmin, nstep, ncount)
  end
  return offset // nstep + 1, ncount
end

--- sweep.parse(argv [, getenv]) -> options, or nil, help text for --help.
-- Raises a sweep.UsageError for a bad command line.
function sweep.parse(argv, getenv)
  getenv = getenv or os.getenv
  local o = { grids = {}, jobs = 1, extra = {}, dry_run = false }
  local seen, i = {}, 1
  local seeds_count, seed_list
  local function value(a, name)
    local glued = a:match("^" .. name:gsub("%-", "%%-") .. "=(.*)$")
    if glued then return glued end
    if #a > #name and a:sub(1, #name) == name and #name == 2 then return a:sub(3) end -- -j4, -t2
    i = i + 1
    if argv[i] == nil then usage_error("option %s needs a value", name) end
    return argv[i]
  end
  local function is(a, long, short)
    return a == long or a:sub(1, #long + 1) == long .. "=" or
      (short and (a == short or (a:sub(1, 2) == short and #a > 2 and a:sub(3, 3) ~= "-")))
  end
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do o.extra[#o.extra + 1] = argv[j] end
      break
    elseif a == "-h" or a == "--help" then
      return nil, sweep.HELP
    elseif is(a, "--grid") then
      parse_grid(value(a, "--grid"), o.grids, seen)
    elseif is(a, "--seeds") then
      if seed_list then usage_error("give --seeds or --seed-list, not both") end
      seeds_count = whole_number(value(a, "--seeds"), "--seeds", 1, 1000000)
    elseif is(a, "--seed-list") then
      if seeds_count then usage_error("give --seeds or --seed-list, not both") end
      local text = value(a, "--seed-list")
      seed_list = {}
      local dup = {}
      for _, s in ipairs(split_commas(text)) do
        local n = math.tointeger(tonumber(s))
        if not n or not s:match("^%-?%d+$") then
          usage_error("--seed-list expects comma-separated whole numbers, got '%s' in '%s'", s, text)
        end
        if dup[n] then usage_error("--seed-list: seed %d given twice", n) end
        dup[n] = true
        seed_list[#seed_list + 1] = n
      end
    elseif is(a, "--jobs", "-j") then
      o.jobs = whole_number(value(a, a:sub(1, 2) == "-j" and "-j" or "--jobs"), "-j/--jobs", 1, 4096)
    elseif is(a, "--threads", "-t") then
      o.threads = whole_number(value(a, a:sub(1, 2) == "-t" and "-t" or "--threads"), "-t/--threads", 1, 4096)
    elseif is(a, "--out") then
      o.out = value(a, "--out")
      if o.out == "" then usage_error("--out needs a directory") end
    elseif is(a, "--shard") then
      o.shard, o.shards = parse_shard(value(a, "--shard"), "--shard")
      o.shard_from = "--shard"
    elseif a == "--dry-run" then
      o.dry_run = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      usage_error("unknown option '%s' (options for the script go after --)", a)
    elseif o.script then
      usage_error("unexpected argument '%s' after the script %s (arguments for the script go after --)", a, o.script)
    else
      o.script = a
    end
    i = i + 1
  end
  if not o.script then usage_error("no script given (bnlab sweep SCRIPT --grid KEY=V1,V2 --out DIR)") end
  if not o.out then usage_error("no --out DIR given (where the configurations' folders go)") end
  local f = io.open(o.script, "r")
  if not f then usage_error("cannot open the script %s", o.script) end
  f:close()
  o.seeds = seed_list
  if not o.seeds then
    o.seeds = {}
    for s = 1, seeds_count or 1 do o.seeds[s] = s end
  end
  -- The script's own arguments must not fight over what the sweep sets.
  local reserved = { seed = true, out = true }
  for _, g in ipairs(o.grids) do reserved[(g.key:gsub("%-", "_"))] = true end
  for _, w in ipairs(o.extra) do
    local name = w:match("^%-%-([%w_%-]+)")
    if name and reserved[(name:gsub("%-", "_"))] then
      usage_error("the script argument '%s' would override what the sweep sets (--seed, --out, the grid)", w)
    end
  end
  if not o.shard then
    local si, sn = slurm_shard(getenv)
    if si then o.shard, o.shards, o.shard_from = si, sn, "SLURM_ARRAY_TASK_ID" end
  end
  o.shard, o.shards = o.shard or 1, o.shards or 1
  return o
end

-- ---- the grid -------------------------------------------------------------

local function safe(v) return (v:gsub("[^%w%._%+%-]", "_")) end

--- sweep.expand(grids, seeds) -> { {index = k, params = {{key, value}...}, seed,
-- name, label}, ... } in grid order (first grid slowest, seed fastest).
function sweep.expand(grids, seeds)
  local configs, by_name = {}, {}
  local function rec(level, params)
    if level > #grids then
      for _, s in ipairs(seeds) do
        local name_parts, label_parts = {}, {}
        for _, p in ipairs(params) do
          name_parts[#name_parts + 1] = p[1] .. "=" .. safe(p[2])
          label_parts[#label_parts + 1] = p[1] .. "=" .. p[2]
        end
        name_parts[#name_parts + 1] = "seed=" .. s
        label_parts[#label_parts + 1] = "seed=" .. s
        local c = { index = #configs + 1, params = { table.unpack(params) }, seed = s,
                    name = table.concat(name_parts, ","), label = table.concat(label_parts, " ") }
        if by_name[c.name] then
          usage_error("configurations '%s' and '%s' would share the folder %s (values differ only in characters "
            .. "that are replaced by _)", by_name[c.name].label, c.label, c.name)
        end
        if #c.name > MAX_NAME then
          usage_error("the folder name of '%s' is longer than %d bytes; use shorter values", c.label, MAX_NAME)
        end
        by_name[c.name] = c
        configs[#configs + 1] = c
      end
      return
    end
    for _, v in ipairs(grids[level].values) do
      params[level] = { grids[level].key, v }
      rec(level + 1, params)
    end
    params[level] = nil
  end
  rec(1, {})
  return configs
end

--- sweep.select(configs, shard, count) -> the configurations k with (k-1) % count == shard-1.
function sweep.select(configs, shard, count)
  local mine = {}
  for _, c in ipairs(configs) do
    if (c.index - 1) % count == shard - 1 then mine[#mine + 1] = c end
  end
  return mine
end

-- ---- running --------------------------------------------------------------

local function shell_quote(s)
  if s:match("^[%w%._%+%-/=,:@]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function config_dir(o, c) return o.out .. "/" .. c.name end

local function command(o, c, exe)
  local argv = { exe }
  if o.child_threads then
    argv[#argv + 1] = "-t"
    argv[#argv + 1] = tostring(o.child_threads)
  end
  argv[#argv + 1] = "run"
  argv[#argv + 1] = o.script
  for _, p in ipairs(c.params) do
    argv[#argv + 1] = "--" .. p[1]
    argv[#argv + 1] = p[2]
  end
  argv[#argv + 1] = "--seed"
  argv[#argv + 1] = tostring(c.seed)
  argv[#argv + 1] = "--out"
  argv[#argv + 1] = config_dir(o, c)
  for _, w in ipairs(o.extra) do argv[#argv + 1] = w end
  return argv
end

local function command_text(argv)
  local words = {}
  for i, w in ipairs(argv) do words[i] = shell_quote(w) end
  return table.concat(words, " ")
end

local function read_status(o, c)
  local st = merge.read_json(config_dir(o, c) .. "/status.json")
  return type(st) == "table" and st or nil
end

local function is_done(st) return st and (st.status == "ok" or st.status == "diverged") end

--- true when t, or any table inside it (any depth), has diverged = true.
local function any_diverged(t, depth)
  if type(t) ~= "table" or depth > 32 then return false end
  if t.diverged == true then return true end
  for _, v in pairs(t) do
    if type(v) == "table" and any_diverged(v, depth + 1) then return true end
  end
  return false
end
sweep.any_diverged = function(t) return any_diverged(t, 0) end

local function last_line(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  f:seek("set", math.max(0, size - 4096))
  local text = f:read("a") or ""
  f:close()
  local last
  for line in text:gmatch("[^\n]+") do
    if line:match("%S") and not line:match("^%s*%[C%]") and not line:match("^stack traceback") and
      not line:match("^\t") then
      last = line
    end
  end
  return last
end

local function out(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
  io.stdout:flush()
end

-- ---- the final table ------------------------------------------------------

local function final_table(o, configs)
  local columns = { "config" }
  for _, g in ipairs(o.grids) do columns[#columns + 1] = g.key end
  columns[#columns + 1] = "seed"
  columns[#columns + 1] = "status"
  columns[#columns + 1] = "seconds"
  local fixed = {}
  for _, c in ipairs(columns) do fixed[c] = true end
  local rows, extra_keys = {}, {}
  for _, c in ipairs(configs) do
    local row = { config = c.name, seed = c.seed }
    for _, p in ipairs(c.params) do row[p[1]] = p[2] end
    local dir = config_dir(o, c)
    local st = read_status(o, c)
    if st then
      row.status = st.status
      row.seconds = st.seconds
    elseif bn.file_type(dir .. "/config.json") then
      row.status = "unfinished"
    else
      row.status = "pending"
    end
    local summary = merge.read_json(dir .. "/summary.json")
    if type(summary) == "table" then
      for k, v in pairs(summary) do
        local tv = type(v)
        if type(k) == "string" and (tv == "number" or tv == "string" or tv == "boolean") then
          -- a value the sweep already shows (the seed) is not repeated
          local key = k
          if fixed[k] then key = not merge.same_value(row[k], v) and ("summary." .. k) or nil end
          if key then
            row[key] = v
            extra_keys[key] = true
          end
        end
      end
    end
    rows[#rows + 1] = row
  end
  local sorted = {}
  for k in pairs(extra_keys) do sorted[#sorted + 1] = k end
  table.sort(sorted)
  for _, k in ipairs(sorted) do columns[#columns + 1] = k end
  return columns, rows
end

local function write_table(o, configs)
  local columns, rows = final_table(o, configs)
  io.stdout:write("\n", merge.table_text(columns, rows))
  local ok, err = pcall(function()
    merge.write(o.out .. "/sweep.csv", columns, rows)
    merge.write(o.out .. "/sweep.json", columns, rows)
  end)
  if ok then
    out("table: %s/sweep.csv, %s/sweep.json", o.out, o.out)
  else
    io.stderr:write("bnlab sweep: could not write the table: ", tostring(err), "\n")
  end
end

-- ---- main -----------------------------------------------------------------

local function child_threads(o, getenv)
  if o.threads then return o.threads end
  local env = getenv("BNLAB_THREADS")
  if env and env ~= "" then return nil end -- the children read it themselves
  return math.max(1, bn.num_threads() // o.jobs)
end

local function dry_run(o, configs, mine, exe)
  out("%d configurations; %s %d:", #configs,
    o.shards > 1 and ("shard " .. o.shard .. "/" .. o.shards .. " (" .. o.shard_from .. ") runs") or "all", #mine)
  for _, c in ipairs(mine) do
    local st = read_status(o, c)
    out("[%d/%d] %s%s", c.index, #configs, c.label, is_done(st) and ("  (" .. st.status .. " earlier: skipped)") or "")
  end
  if mine[1] then out("command: %s", command_text(command(o, mine[1], exe))) end
  return 0
end

--- Runs the configurations in `todo`; returns the signal number that stopped
-- the sweep (nil when it ran to the end) and the count of failures.
local function run_all(o, configs, todo, exe)
  local total = #configs
  local running, n_running, next_i = {}, 0, 1
  local failures, stopping = 0, nil

  local function start(c)
    local dir = config_dir(o, c)
    local argv = command(o, c, exe)
    local ok, pid_or_error = pcall(function()
      bn.mkdir(dir)
      os.remove(dir .. "/status.json")
      local params = { seed = c.seed }
      for _, p in ipairs(c.params) do params[p[1]] = p[2] end
      json.write(dir .. "/config.json", { name = c.name, index = c.index, script = o.script, params = params,
                                          argv = argv })
      return process.spawn(argv, { output = dir .. "/log.txt", input = "/dev/null" })
    end)
    if not ok then
      failures = failures + 1
      out("[%d/%d] %s: failed to start: %s", c.index, total, c.label, tostring(pid_or_error))
      pcall(json.write, dir .. "/status.json", { status = "failed", error = tostring(pid_or_error), seconds = 0,
                                                 config = c.name })
      return
    end
    running[pid_or_error] = { config = c, t0 = bn.clock(), started = os.date("!%Y-%m-%dT%H:%M:%SZ") }
    n_running = n_running + 1
    out("[%d/%d] %s: started", c.index, total, c.label)
  end

  -- A child ended: status.json, unless the sweep itself stopped it.
  local function finish(pid, code, signal)
    local r = running[pid]
    running[pid] = nil
    n_running = n_running - 1
    local c = r.config
    local dir = config_dir(o, c)
    local seconds = math.floor((bn.clock() - r.t0) * 1000 + 0.5) / 1000
    if stopping and code ~= 0 then
      out("[%d/%d] %s: stopped after %.1f s (unfinished: runs again next time)", c.index, total, c.label, seconds)
      return
    end
    local status, note = "failed", nil
    if code == 0 then
      status = "ok"
      local summary, err = merge.read_json(dir .. "/summary.json")
      if err then note = "summary.json unreadable: " .. tostring(err)
      elseif any_diverged(summary, 0) then status = "diverged" end
    end
    local record = { status = status, exit_code = code, signal = signal, seconds = seconds, started = r.started,
                     finished = os.date("!%Y-%m-%dT%H:%M:%SZ"), config = c.name, note = note }
    local ok, err = pcall(json.write, dir .. "/status.json", record)
    if not ok then io.stderr:write("bnlab sweep: ", tostring(err), "\n") end
    local how
    if status == "failed" then
      failures = failures + 1
      local why = signal and ("killed by " .. signal) or ("exit " .. tostring(code))
      local last = last_line(dir .. "/log.txt")
      how = ("failed (%s) in %.1f s; %s/log.txt%s"):format(why, seconds, dir, last and (": " .. last) or "")
    else
      how = ("%s in %.1f s%s"):format(status, seconds, note and (" (" .. note .. ")") or "")
    end
    out("[%d/%d] %s: %s", c.index, total, c.label, how)
  end

  local function pids()
    local list = {}
    for pid in pairs(running) do list[#list + 1] = pid end
    table.sort(list)
    return list
  end

  while true do
    while not stopping and n_running < o.jobs and next_i <= #todo do
      start(todo[next_i])
      next_i = next_i + 1
    end
    if n_running == 0 then break end
    if stopping then
      -- Forwarded already: wait for the children, SIGKILL them at the grace
      -- period's end or at the next signal.
      local pid, code, signal = process.wait(pids(), math.max(0, stopping.deadline - bn.clock()))
      if pid then
        finish(pid, code, signal)
      elseif code == "timeout" or process.caught_signal() then
        if not stopping.killed then
          out("bnlab sweep: killing %d configuration%s (SIGKILL)", n_running, n_running == 1 and "" or "s")
          for _, p in ipairs(pids()) do process.kill(p, "KILL") end
          stopping.killed = true
        end
        stopping.deadline = math.huge
      end
    else
      local pid, code, signal = process.wait(pids())
      if pid then
        finish(pid, code, signal)
      else
        local name, number = process.caught_signal()
        if name then
          stopping = { signal = number, deadline = bn.clock() + GRACE_SECONDS }
          local forward = (name == "SIGINT") and "INT" or "TERM"
          out("bnlab sweep: %s: stopping %d running configuration%s (SIG%s; again to kill at once)", name,
            n_running, n_running == 1 and "" or "s", forward)
          for _, p in ipairs(pids()) do process.kill(p, forward) end
        end
      end
    end
  end
  return stopping and stopping.signal or nil, failures
end

--- sweep.main(argv) -> exit status.
function sweep.main(argv)
  local ok, o, help = pcall(sweep.parse, argv)
  local err, configs = not ok and o or nil, nil
  if ok and o then
    ok, configs = pcall(sweep.expand, o.grids, o.seeds)
    if not ok then err = configs end
  end
  if err ~= nil then
    if getmetatable(err) == sweep.UsageError then
      io.stderr:write(tostring(err), "\nTry 'bnlab sweep --help' for more information.\n")
      return 2
    end
    error(err, 0)
  end
  if not o then
    io.stdout:write(help, "\n")
    return 0
  end
  local exe = process.executable()
  o.child_threads = child_threads(o, os.getenv)
  local mine = sweep.select(configs, o.shard, o.shards)
  if o.dry_run then return dry_run(o, configs, mine, exe) end

  bn.mkdir(o.out)
  local todo, skipped = {}, 0
  for _, c in ipairs(mine) do
    local st = read_status(o, c)
    if is_done(st) then
      skipped = skipped + 1
      out("[%d/%d] %s: %s earlier, skipped", c.index, #configs, c.label, st.status)
    else
      todo[#todo + 1] = c
    end
  end
  out("bnlab sweep: %d configurations%s; %d to run, %d at a time%s", #configs,
    o.shards > 1 and (", shard " .. o.shard .. "/" .. o.shards .. " has " .. #mine) or "", #todo, o.jobs,
    skipped > 0 and (", " .. skipped .. " done earlier") or "")

  process.trap_signals(true)
  local run_ok, signal, failures = pcall(run_all, o, configs, todo, exe)
  process.trap_signals(false)
  if not run_ok then error(signal, 0) end

  write_table(o, configs)
  if signal then
    out("bnlab sweep: interrupted; rerun the same command to resume")
    return 128 + signal
  end
  if failures > 0 then
    out("bnlab sweep: %d configuration%s failed (see their log.txt); rerun the same command to retry them",
      failures, failures == 1 and "" or "s")
    return 1
  end
  return 0
end

return sweep
