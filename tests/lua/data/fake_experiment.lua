-- A stand-in experiment for tests/lua/test_sweep.lua: takes the options a
-- sweep passes, writes its process id to <out>/pid.txt, appends "<out>" to
-- --counter (how often each configuration ran), optionally sleeps, and
-- then, by --mode:
--   ok       writes summary.json { score = 10 * seed + lr, mode, seed, nested = {...}, list = {...} }
--   fail     raises an error (exit status 1) before writing anything
--   diverge  writes summary.json with diverged = true at the top level
--   nested   writes summary.json with runs = { none = { diverged = true } }
--   crash    kills itself with SIGKILL
local bn = require "bnlab"
local json = require "bnlab.json"
local process = require "bnlab.process"

local o = bn.args({
  mode = { "ok", "ok | fail | diverge | nested | crash" },
  lr = { 0.5, "a number that goes into the score" },
  seed = 1,
  out = { "", "output directory" },
  counter = { "", "file to append the output directory to" },
  sleep = { 0.0, "seconds to sleep before finishing" },
}, "Fake experiment for the sweep tests.")

bn.mkdir(o.out)
local stat = assert(io.open("/proc/self/stat"))
local pid = stat:read("l"):match("^(%d+)")
stat:close()
bn.write_file(o.out .. "/pid.txt", pid .. "\n")
if o.counter ~= "" then
  local f = assert(io.open(o.counter, "a"))
  f:write(o.out, "\n")
  f:close()
end
print(("fake_experiment: mode %s lr %g seed %d"):format(o.mode, o.lr, o.seed))
if o.sleep > 0 then process.sleep(o.sleep) end

if o.mode == "fail" then error("fake failure for mode=fail") end
if o.mode == "crash" then process.kill(math.tointeger(pid), "KILL") end

local summary = { score = 10 * o.seed + o.lr, mode = o.mode, seed = o.seed, nested = { a = 1, b = { c = "deep" } },
                  list = { 1, 2, 3 } }
if o.mode == "diverge" then summary.diverged = true end
if o.mode == "nested" then summary.runs = { none = { diverged = true }, bn = { diverged = false } } end
json.write(o.out .. "/summary.json", summary)
