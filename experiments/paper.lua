-- The whole paper in one command: runs every experiment E1–E10 as its own
-- bnlab process (one folder each under --out), then writes report.md and
-- report.html: for each claim of ../shared/paper.md the figures, the
-- measured numbers and whether they agree. Finished experiments (their
-- summary.json at the same scale) are not run again unless --force, so an
-- interrupted report resumes where it stopped; a failing experiment is
-- reported as failed and the others still run.
--   bnlab run experiments/paper.lua --scale quick --out results/
local bn = require "bnlab"
local report = require "bnlab.experiment.report"

local o = bn.args({
  scale = { "quick", "quick | paper | tiny (tiny: synthetic data, for tests)" },
  out = { "results", "output directory: one folder per experiment, report.md, report.html" },
  only = { { "all" }, "experiments to run, by script name (e.g. divergence,activations) or all" },
  data = { "", "data directory passed to every experiment" },
  seed = { 1, "random seed passed to every experiment" },
  force = { false, "run experiments again even when their summary.json exists" },
  report_only = { false, "write the report from what is already in --out, run nothing" },
}, "Run the paper's experiments E1–E10 and write report.md / report.html.")

local chosen = {}
for _, name in ipairs(o.only) do chosen[name] = true end
local todo = {}
for _, e in ipairs(report.EXPERIMENTS) do
  if chosen.all or chosen[e.script] then todo[#todo + 1] = e end
end
if #todo == 0 then
  io.stderr:write("paper.lua: --only matched no experiment; known: " .. report.script_names() .. "\n")
  os.exit(2, true)
end
bn.mkdir(o.out)

local results = {}
for i, e in ipairs(todo) do
  local dir = o.out .. "/" .. e.script
  local status
  if o.report_only then
    status = "not run"
  elseif not o.force and report.finished(dir, o.scale) then
    status = "ok (kept)"
  else
    print(("[%d/%d] %s — %s"):format(i, #todo, e.id, e.title))
    local args = { "--scale", o.scale, "--out", dir, "--seed", tostring(o.seed) }
    if o.data ~= "" then args[#args + 1] = "--data"; args[#args + 1] = o.data end
    local code, seconds = report.run_script("experiments/" .. e.script .. ".lua", args, dir .. "/log.txt")
    status = code == 0 and "ok" or ("failed (exit " .. tostring(code) .. ", see " .. dir .. "/log.txt)")
    print(("[%d/%d] %s: %s in %.0f s"):format(i, #todo, e.id, status, seconds))
  end
  results[#results + 1] = report.collect(e, dir, status)
end

local md, html = report.write(o.out, results, { scale = o.scale, seed = o.seed })
print()
print(report.claims_table(results))
print(("report: %s and %s"):format(md, html))
