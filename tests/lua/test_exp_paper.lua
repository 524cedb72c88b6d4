-- experiments/paper.lua: runs the chosen experiments as child processes and
-- writes report.md / report.html / report.json from their summaries; keeps
-- finished experiments on a second run.
local check = require "check"
local X = require "experiment_check"
local json = require "bnlab.json"
local T = {}

local function read(path) return check.read_file(path) or error("missing output file " .. path, 2) end

function T.tiny_report_from_two_experiments_then_resume()
  local dir = X.temp_dir()
  local code, text = X.run("paper.lua", { "--scale", "tiny", "--out", dir, "--only", "activations,output_gradients" })
  check.eq(code, 0, "paper.lua exit status:\n" .. text)
  check.contains(text, "E4: ok", "progress line for E4")
  local md = read(dir .. "/report.md")
  check.contains(md, "| E4 | [Activations vs depth at initialization](#e4)", "claims table row E4")
  check.contains(md, "| E5 |", "claims table row E5")
  check.contains(md, "![activations.png](activations/activations.png)", "E4 figure embedded")
  check.truthy(not md:find("| E2 |", 1, true), "experiments not chosen are not in the report")
  local html = read(dir .. "/report.html")
  check.contains(html, '<img src="output_gradients/output_gradients.png"', "E5 figure shown in the HTML")
  local r = json.decode(read(dir .. "/report.json"))
  check.eq(#r.experiments, 2)
  local s4 = json.decode(read(dir .. "/activations/summary.json"))
  check.eq(r.experiments[1].agrees, s4.holds and "yes" or "no", "report verdict is the experiment's own")
  X.png(dir .. "/activations/activations.png")
  -- second run: both kept, not run again (summary.json untouched)
  code, text = X.run("paper.lua", { "--scale", "tiny", "--out", dir, "--only", "activations,output_gradients" })
  check.eq(code, 0)
  check.truthy(not text:find("E4: ok in", 1, true), "finished experiment not run again:\n" .. text)
  check.eq(json.decode(read(dir .. "/activations/summary.json")).seconds, s4.seconds, "kept summary unchanged")
  X.cleanup()
end

function T.unknown_experiment_is_a_usage_error()
  local code, text = X.run("paper.lua", { "--only", "nonsense", "--out", X.temp_dir() })
  check.eq(code, 2)
  check.contains(text, "known: lr_sweep, divergence")
  X.cleanup()
end

return T
