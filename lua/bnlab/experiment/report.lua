-- The whole-paper report (experiments/paper.lua): which experiments exist,
-- running one as a child bnlab process, reading back what it wrote, and the
-- report in Markdown and HTML (same content; the HTML shows the figures
-- inline for a browser). Each experiment's summary.json carries `claim`,
-- `holds` and `message` (bn.experiment.finish), so the report needs no
-- knowledge of any one experiment.

local bn = require "bnlab"
local json = require "bnlab.json"
local merge = require "bnlab.merge"
local process = require "bnlab.process"

local report = {}

-- In the paper's order. `claim` is used when an experiment did not run.
report.EXPERIMENTS = {
  { id = "E1", script = "lr_sweep", title = "Learning rate is the key",
    claim = "at a small lr BN and no BN reach similar accuracy; BN's best is at a large lr; no BN diverges there" },
  { id = "E2", script = "divergence", title = "Divergence: relative loss vs step size",
    claim = "without BN the loss explodes once the step exceeds ~1e-3; with BN it stays bounded much longer" },
  { id = "E3", script = "diverging_update", title = "Anatomy of a diverging update",
    claim = "along a diverging update the deepest layer's channel moments grow by orders of magnitude" },
  { id = "E4", script = "activations", title = "Activations vs depth at initialization",
    claim = "without BN channel statistics grow with depth; with BN they stay flat" },
  { id = "E5", script = "output_gradients", title = "Output gradients at initialization",
    claim = "without BN one class dominates and per-example gradients agree; kernel gradients are far larger" },
  { id = "E6", script = "grad_coherence", title = "Coherence of convolution gradients",
    claim = "without BN the terms of a conv weight gradient agree in sign (ratio ~1/2), with BN ~1e-2" },
  { id = "E7", script = "bn_last_layer", title = "BN only after the last block",
    claim = "one BN after the last residual block tolerates clearly larger learning rates than no BN" },
  { id = "E8", script = "random_matrices", title = "Random matrix products",
    claim = "products of random matrices have wider spectra and larger condition numbers as depth grows" },
  { id = "E9", script = "gradient_noise", title = "Learning rate as noise",
    claim = "the SGD noise is bounded by alpha^2 C / |B|" },
  { id = "E10", script = "depth", title = "Depth",
    claim = "shallower unnormalized networks tolerate larger steps" },
}

function report.script_names()
  local names = {}
  for i, e in ipairs(report.EXPERIMENTS) do names[i] = e.script end
  return table.concat(names, ", ")
end

local function summary_of(dir)
  local s = merge.read_json(dir .. "/summary.json")
  return type(s) == "table" and s or nil
end

--- Has the experiment in dir finished at this scale?
function report.finished(dir, scale)
  local s = summary_of(dir)
  return s ~= nil and s.scale == scale
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Runs `bnlab run script args...` with output to log; returns exit code and seconds.
function report.run_script(script, args, log)
  local words = { quote(process.executable()), "-t", tostring(bn.num_threads()), "run", quote(script) }
  for _, a in ipairs(args) do words[#words + 1] = quote(a) end
  bn.mkdir(log:match("^(.*)/[^/]*$") or ".")
  local t0 = bn.clock()
  local ok, how, code = os.execute(table.concat(words, " ") .. " > " .. quote(log) .. " 2>&1")
  if how == "signal" then code = 128 + code end
  if code == 130 or code == 143 then
    error(("paper.lua: interrupted while running %s (exit %d)"):format(script, code), 0)
  end
  return ok and 0 or code, bn.clock() - t0
end

-- The PNGs in dir (none when dir does not exist), by name.
local function list_figures(dir)
  local figures = {}
  if bn.file_type(dir, true) ~= "directory" then return figures end
  for _, name in ipairs(bn.listdir(dir)) do
    if name:match("^[^.].*%.png$") then figures[#figures + 1] = name end
  end
  return figures
end

--- What the experiment in dir left: { experiment, status, summary, figures, dir }.
function report.collect(e, dir, status)
  local s = summary_of(dir)
  if status == "not run" and s then status = "ok (kept)" end
  return { e = e, status = status, summary = s, figures = list_figures(dir), dir = dir }
end

local function verdict(r)
  if not r.summary then return r.status:match("^failed") and "failed" or "not run" end
  if r.summary.holds == true then return "yes" end
  if r.summary.holds == false then return "no" end
  return "n/a"
end

-- The measured values worth showing: scalars of the summary (one level of nesting), not options.
local SKIP = { options = true, claim = true, holds = true, message = true, experiment = true, scale = true, bnlab_version = true }
local function numbers(s)
  local rows = {}
  local function add(key, v)
    if type(v) == "number" then
      rows[#rows + 1] = { key, math.type(v) == "integer" and tostring(v) or ("%.4g"):format(v) }
    elseif type(v) == "boolean" or type(v) == "string" then
      rows[#rows + 1] = { key, tostring(v) }
    end
  end
  local keys = {}
  for k in pairs(s) do if not SKIP[k] then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = s[k]
    if type(v) == "table" and #v == 0 then
      local sub = {}
      for k2 in pairs(v) do sub[#sub + 1] = k2 end
      table.sort(sub)
      for _, k2 in ipairs(sub) do add(k .. "." .. k2, v[k2]) end
    else
      add(k, v)
    end
  end
  return rows
end

local function seconds_text(r)
  return r.summary and r.summary.seconds and ("%.0f s"):format(r.summary.seconds) or "-"
end

--- A plain-text table of the claims, for the terminal.
function report.claims_table(results)
  local lines = { ("%-4s %-22s %-8s %8s  %s"):format("", "experiment", "agrees", "time", "measured") }
  for _, r in ipairs(results) do
    local msg = r.summary and r.summary.message or r.status
    lines[#lines + 1] = ("%-4s %-22s %-8s %8s  %s"):format(r.e.id, r.e.script, verdict(r), seconds_text(r), msg)
  end
  return table.concat(lines, "\n")
end

local function md_cell(s) return (tostring(s):gsub("|", "\\|"):gsub("\n", " ")) end
local function html_escape(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

local function header_facts(meta, results)
  local total, agree, measured = 0, 0, 0
  for _, r in ipairs(results) do
    total = total + (r.summary and r.summary.seconds or 0)
    if r.summary and r.summary.holds ~= nil then
      measured = measured + 1
      if r.summary.holds then agree = agree + 1 end
    end
  end
  return {
    { "scale", meta.scale }, { "seed", tostring(meta.seed) }, { "bnlab", tostring(bn.version) },
    { "threads", tostring(bn.num_threads()) }, { "written", os.date("!%Y-%m-%d %H:%M UTC") },
    { "experiment time", ("%.1f min"):format(total / 60) },
    { "claims that agree", ("%d of %d measured"):format(agree, measured) },
  }
end

local function markdown(results, meta)
  local out = { "# Understanding Batch Normalization — reproduced with bnlab", "",
    "Every experiment of `../shared/paper.md`, run by `bnlab run experiments/paper.lua`. "
    .. "Each folder beside this file holds an experiment's figures, CSVs and `summary.json`.", "" }
  for _, f in ipairs(header_facts(meta, results)) do out[#out + 1] = ("- %s: %s"):format(f[1], f[2]) end
  out[#out + 1] = ""
  out[#out + 1] = "## Claims"
  out[#out + 1] = ""
  out[#out + 1] = "| | experiment | the paper says | we measured | agrees | time |"
  out[#out + 1] = "|---|---|---|---|---|---:|"
  for _, r in ipairs(results) do
    local s = r.summary or {}
    out[#out + 1] = ("| %s | [%s](#%s) | %s | %s | %s | %s |"):format(r.e.id, md_cell(r.e.title), r.e.id:lower(),
      md_cell(s.claim or r.e.claim), md_cell(s.message or r.status), verdict(r), seconds_text(r))
  end
  for _, r in ipairs(results) do
    local s = r.summary or {}
    out[#out + 1] = ""
    out[#out + 1] = ('<a id="%s"></a>'):format(r.e.id:lower())
    out[#out + 1] = ("## %s — %s (`experiments/%s.lua`)"):format(r.e.id, r.e.title, r.e.script)
    out[#out + 1] = ""
    out[#out + 1] = "**The paper says:** " .. (s.claim or r.e.claim) .. "."
    out[#out + 1] = ""
    out[#out + 1] = "**We measured:** " .. (s.message or r.status) .. " — agrees: **" .. verdict(r) .. "**."
    out[#out + 1] = ""
    for _, fig in ipairs(r.figures) do
      out[#out + 1] = ("![%s](%s/%s)"):format(fig, r.e.script, fig)
      out[#out + 1] = ""
    end
    local rows = r.summary and numbers(s) or {}
    if #rows > 0 then
      out[#out + 1] = "| value | measured |"
      out[#out + 1] = "|---|---:|"
      for _, row in ipairs(rows) do out[#out + 1] = ("| %s | %s |"):format(md_cell(row[1]), md_cell(row[2])) end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local function html(results, meta)
  local out = { "<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
    "<title>Understanding Batch Normalization — bnlab report</title>",
    "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    .. "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
    .. ".yes{color:#1a7f37;font-weight:bold}.no{color:#c62828;font-weight:bold}img{max-width:100%}</style>",
    "</head><body>", "<h1>Understanding Batch Normalization — reproduced with bnlab</h1><ul>" }
  for _, f in ipairs(header_facts(meta, results)) do
    out[#out + 1] = ("<li>%s: %s</li>"):format(html_escape(f[1]), html_escape(f[2]))
  end
  out[#out + 1] = "</ul><h2>Claims</h2><table><tr><th></th><th>experiment</th><th>the paper says</th>"
    .. "<th>we measured</th><th>agrees</th><th>time</th></tr>"
  for _, r in ipairs(results) do
    local s, v = r.summary or {}, verdict(r)
    out[#out + 1] = ('<tr><td>%s</td><td><a href="#%s">%s</a></td><td>%s</td><td>%s</td><td class="%s">%s</td><td>%s</td></tr>')
      :format(r.e.id, r.e.id:lower(), html_escape(r.e.title), html_escape(s.claim or r.e.claim),
        html_escape(s.message or r.status), v, v, seconds_text(r))
  end
  out[#out + 1] = "</table>"
  for _, r in ipairs(results) do
    local s, v = r.summary or {}, verdict(r)
    out[#out + 1] = ('<h2 id="%s">%s — %s <small><code>experiments/%s.lua</code></small></h2>'):format(
      r.e.id:lower(), r.e.id, html_escape(r.e.title), r.e.script)
    out[#out + 1] = "<p><b>The paper says:</b> " .. html_escape(s.claim or r.e.claim) .. ".</p>"
    out[#out + 1] = ('<p><b>We measured:</b> %s — agrees: <span class="%s">%s</span>.</p>'):format(
      html_escape(s.message or r.status), v, v)
    for _, fig in ipairs(r.figures) do
      out[#out + 1] = ('<p><img src="%s/%s" alt="%s"></p>'):format(r.e.script, fig, html_escape(fig))
    end
    local rows = r.summary and numbers(s) or {}
    if #rows > 0 then
      out[#out + 1] = "<table><tr><th>value</th><th>measured</th></tr>"
      for _, row in ipairs(rows) do
        out[#out + 1] = ("<tr><td>%s</td><td>%s</td></tr>"):format(html_escape(row[1]), html_escape(row[2]))
      end
      out[#out + 1] = "</table>"
    end
  end
  out[#out + 1] = "</body></html>"
  return table.concat(out, "\n") .. "\n"
end

--- Writes OUT/report.md and OUT/report.html (atomically) and OUT/report.json (every summary);
-- returns the two paths.
function report.write(out, results, meta)
  local md, page = out .. "/report.md", out .. "/report.html"
  bn.write_file(md, markdown(results, meta))
  bn.write_file(page, html(results, meta))
  local all = {}
  for _, r in ipairs(results) do
    all[#all + 1] = { id = r.e.id, script = r.e.script, status = r.status, agrees = verdict(r), summary = r.summary }
  end
  json.write(out .. "/report.json", { scale = meta.scale, seed = meta.seed, experiments = all })
  return md, page
end

return report
