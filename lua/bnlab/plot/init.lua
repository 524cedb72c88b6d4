-- bn.plot: PNG figures a person can read without opening anything else.
--
--   bn.plot.heatmap(m, {file = "out/means.png", title = ..., xlabel = ..., ylabel = ...})
--   bn.plot.lines{series = {{x = xs, y = ys, label = "BN", band = std}}, logy = true, file = ...}
--   bn.plot.hist{values = g, bins = 50, log = true, file = ...}
--   bn.plot.figure{panels = {{kind = "heatmap", m1, title = ...}, ...}, cols = 2, file = ...}
--   bn.plot.provenance{script = arg[0], args = arg, seed = 1}
--
-- Every PNG carries text chunks saying how it was made (Software, Title,
-- bnlab:script, bnlab:args, bnlab:seed), and every figure can also be
-- written as the numbers it shows (csv = "x.csv", or data = true for a CSV
-- next to the PNG). Files are replaced atomically. See docs/plot.md.
--
-- Drawing goes through bn.render (src/bindings/render.c): a canvas, lines,
-- polygons, FreeType text, colour maps, libpng. Layout (margins, ticks,
-- legends) is here in Lua, one kind per file.
local core = require "bnlab.core"
local util = require "bnlab.plot.util"
local axes = require "bnlab.plot.axes"
local kinds = {
  heatmap = require "bnlab.plot.heatmap",
  lines = require "bnlab.plot.lines",
  hist = require "bnlab.plot.hist",
}

local plot = {}

-- ---- provenance -----------------------------------------------------------------------

local prov = {}

local function quote_arg(a)
  a = tostring(a)
  if a == "" or a:find("[%s'\"\\$`]") then return "'" .. a:gsub("'", "'\\''") .. "'" end
  return a
end

local function default_args()
  if type(arg) ~= "table" then return "" end
  local parts = {}
  for i = 1, #arg do parts[i] = quote_arg(arg[i]) end
  return table.concat(parts, " ")
end

--- Sets what every figure records about how it was made, and returns the
-- values in force. Fields: script (default: arg[0]), args (a string or a
-- list; default: the script's arguments from `arg`), seed (default: the
-- global generator's seed, bn.rng_state().seed); any other string key is
-- recorded as "bnlab:<key>". A field set to false goes back to its default.
function plot.provenance(t)
  local fn = "provenance"
  if t ~= nil then
    if type(t) ~= "table" then util.fail(fn, "argument #1 expected a table {script =, args =, seed =}, got %s", util.describe(t)) end
    for k, v in pairs(t) do
      if type(k) ~= "string" or not k:match("^[%w_%-%.]+$") or #k > 60 then
        util.fail(fn, "keys expected names of letters, digits, _ - . (at most 60), got %s", util.describe(k))
      end
      if k == "args" and type(v) == "table" then
        local parts = {}
        for i, a in ipairs(v) do parts[i] = quote_arg(a) end
        v = table.concat(parts, " ")
      end
      if v == false then prov[k] = nil
      elseif type(v) == "string" or type(v) == "number" or type(v) == "boolean" then prov[k] = tostring(v)
      else util.fail(fn, "field '%s' expected a string, number or boolean, got %s", k, util.describe(v)) end
    end
  end
  local out = {}
  for k, v in pairs(prov) do out[k] = v end
  out.script = out.script or (type(arg) == "table" and arg[0] and tostring(arg[0])) or "(interactive)"
  out.args = out.args or default_args()
  out.seed = out.seed or tostring(core.rng_state().seed)
  return out
end

local function text_chunks(title, kind, csv)
  local p = plot.provenance()
  local chunks = {}
  if title then chunks[#chunks + 1] = { "Title", title } end
  local ok, build = pcall(require, "bnlab.build")
  chunks[#chunks + 1] = { "Software", "bnlab " .. (ok and type(build) == "table" and build.version or "(unknown version)") }
  chunks[#chunks + 1] = { "bnlab:script", p.script }
  chunks[#chunks + 1] = { "bnlab:args", p.args }
  chunks[#chunks + 1] = { "bnlab:seed", p.seed }
  local extra = {}
  for k in pairs(p) do
    if k ~= "script" and k ~= "args" and k ~= "seed" then extra[#extra + 1] = k end
  end
  table.sort(extra)
  for _, k in ipairs(extra) do chunks[#chunks + 1] = { "bnlab:" .. k, p[k] } end
  chunks[#chunks + 1] = { "bnlab:kind", kind }
  if csv then chunks[#chunks + 1] = { "bnlab:data", csv } end
  return chunks
end

-- ---- output ---------------------------------------------------------------------------------

local output_options = { "file", "csv", "data", "width", "height" }

local function check_output(fn, opts, defw, defh)
  local out = {}
  out.file = opts.file
  if type(out.file) ~= "string" or not out.file:lower():match("%.png$") or #out.file < 5 then
    util.fail(fn, "option 'file' expected a path ending in .png, got %s", util.describe(out.file))
  end
  out.data = util.bool(fn, opts, "data", false)
  out.csv = opts.csv
  if out.csv ~= nil and (type(out.csv) ~= "string" or not (out.csv:lower():match("%.csv$") or out.csv:lower():match("%.npy$"))) then
    util.fail(fn, "option 'csv' expected a path ending in .csv (or .npy for a heatmap), got %s", util.describe(out.csv))
  end
  if not out.csv and out.data then out.csv = out.file:sub(1, -5) .. ".csv" end
  out.width = util.int(fn, opts, "width", 100, 16384, defw)
  out.height = util.int(fn, opts, "height", 100, 16384, defh)
  return out
end

-- Font first: a missing font is the one failure a new machine commonly has.
local function need_font(fn)
  util.guard(fn, core.render.font)
end

local function write_data(fn, spec, path)
  if path:lower():match("%.npy$") then
    if spec.kind ~= "heatmap" then util.fail(fn, "option 'csv' may end in .npy only for a heatmap, got '%s'", path) end
    util.guard(fn, core.save, spec.m:contiguous(), path)
  else
    util.guard(fn, core.write_file, path, kinds[spec.kind].csv(spec))
  end
end

local function save(fn, c, out, title, kind)
  util.guard(fn, c.save_png, c, out.file, text_chunks(title, kind, out.csv))
  c:close()
end

local function merged(known_sets)
  local s = {}
  for _, set in ipairs(known_sets) do for k in pairs(set) do s[k] = true end end
  return s
end

local function single(fn, kind, spec, out)
  local c <close> = util.guard(fn, core.render.canvas, out.width, out.height)
  util.guard(fn, kinds[kind].draw, c, { 0, 0, out.width, out.height }, spec)
  if out.csv then write_data(fn, spec, out.csv) end
  save(fn, c, out, spec.title, kind)
  return out.file, out.csv
end

-- ---- the figure kinds ---------------------------------------------------------------------

--- bn.plot.heatmap(m, opts): m a 2-D tensor, rows top to bottom.
function plot.heatmap(m, opts)
  local fn = "heatmap"
  opts = util.check_opts(fn, opts, merged { kinds.heatmap.options, util.set(output_options) }, "argument #2")
  local spec = kinds.heatmap.prepare(fn, m, opts, nil, "argument #1")
  local out = check_output(fn, opts, 800, 600)
  need_font(fn)
  return single(fn, "heatmap", spec, out)
end

--- bn.plot.lines{series = {{x =, y =, label =, band =, style =}, ...}, ...}
function plot.lines(opts)
  local fn = "lines"
  if type(opts) ~= "table" then util.fail(fn, "argument #1 expected a table {series = ..., file = ...}, got %s", util.describe(opts)) end
  util.check_opts(fn, opts, merged { kinds.lines.options, util.set(output_options) })
  local spec = kinds.lines.prepare(fn, opts)
  local out = check_output(fn, opts, 800, 600)
  need_font(fn)
  return single(fn, "lines", spec, out)
end

--- bn.plot.hist{values = t, bins = 50, log = false, density = false, overlay = ..., ...}
function plot.hist(opts)
  local fn = "hist"
  if type(opts) ~= "table" then util.fail(fn, "argument #1 expected a table {values = ..., file = ...}, got %s", util.describe(opts)) end
  util.check_opts(fn, opts, merged { kinds.hist.options, util.set(output_options) })
  local spec = kinds.hist.prepare(fn, opts)
  local out = check_output(fn, opts, 800, 600)
  need_font(fn)
  return single(fn, "hist", spec, out)
end

--- bn.plot.figure{panels = {{kind = "heatmap", m, ...}, {kind = "lines", series = ...}, ...},
--                 cols = 2, title =, file =, width =, height =, csv/data}
-- Each panel has its own axes, scale and colour bar. With data = true every
-- panel's numbers go to <stem>.panel<i>.csv; a panel may also name its own csv.
function plot.figure(opts)
  local fn = "figure"
  if type(opts) ~= "table" then util.fail(fn, "argument #1 expected a table {panels = ..., file = ...}, got %s", util.describe(opts)) end
  util.check_opts(fn, opts, util.set { "panels", "cols", "title", "file", "data", "width", "height", "panel_width", "panel_height" })
  local panels = opts.panels
  if type(panels) ~= "table" or #panels == 0 then
    util.fail(fn, "option 'panels' expected a non-empty list of panels {kind = \"heatmap\"|\"lines\"|\"hist\", ...}, got %s",
      util.describe(panels))
  end
  local specs = {}
  for i, p in ipairs(panels) do
    local w = ("panels[%d]"):format(i)
    if type(p) ~= "table" then util.fail(fn, "%s expected a table {kind = ..., ...}, got %s", w, util.describe(p)) end
    local kind = p.kind
    if not kinds[kind] then
      util.fail(fn, "%s.kind expected one of heatmap, lines, hist, got %s", w, util.describe(kind))
    end
    local known = merged { kinds[kind].options, util.set { "kind", "csv" } }
    if kind == "heatmap" then known.m = true end
    util.check_opts(fn, p, known, w)
    local spec
    if kind == "heatmap" then
      local m = p.m
      if m == nil then m = p[1] end
      spec = kinds.heatmap.prepare(fn, m, p, w, w .. ".m")
    else
      spec = kinds[kind].prepare(fn, p, w)
    end
    if p.csv ~= nil and (type(p.csv) ~= "string" or not (p.csv:lower():match("%.csv$") or p.csv:lower():match("%.npy$"))) then
      util.fail(fn, "%s.csv expected a path ending in .csv (or .npy for a heatmap), got %s", w, util.describe(p.csv))
    end
    spec.csv = p.csv
    specs[i] = spec
  end
  local n = #specs
  local cols = util.int(fn, opts, "cols", 1, 64, math.min(n, 2))
  local rows = math.ceil(n / cols)
  local pw = util.int(fn, opts, "panel_width", 100, 8192, 560)
  local ph = util.int(fn, opts, "panel_height", 100, 8192, 420)
  local title = util.label(fn, opts, "title")
  local title_h = 0
  need_font(fn)
  if title then
    local _, asc, desc = util.guard(fn, core.render.text_size, title, axes.theme.suptitle)
    title_h = math.ceil(asc + desc) + 14
  end
  local out = check_output(fn, opts, cols * pw, rows * ph + title_h)
  if opts.data and out.csv then out.csv = nil end -- per panel below
  local c <close> = util.guard(fn, core.render.canvas, out.width, out.height)
  local cw, chh = out.width / cols, (out.height - title_h) / rows
  if title then
    -- a title wider than the image is set smaller (down to 9 px) rather than cut off
    local size = axes.theme.suptitle
    local tw = util.guard(fn, core.render.text_size, title, size)
    if tw > out.width - 20 then size = math.max(9, size * (out.width - 20) / tw) end
    c:text(title, out.width / 2, 10, { size = size, color = axes.theme.text, halign = "center", valign = "top" })
  end
  local written = {}
  for i, spec in ipairs(specs) do
    local r, col = (i - 1) // cols, (i - 1) % cols
    local rect = { math.floor(col * cw), math.floor(title_h + r * chh), math.floor(cw), math.floor(chh) }
    util.guard(fn, kinds[spec.kind].draw, c, rect, spec)
    local path = spec.csv or (out.data and ("%s.panel%d.csv"):format(out.file:sub(1, -5), i)) or nil
    if path then
      write_data(fn, spec, path)
      written[#written + 1] = path
    end
  end
  save(fn, c, { file = out.file, csv = #written > 0 and table.concat(written, " ") or nil }, title, "figure")
  return out.file, written
end

return plot
