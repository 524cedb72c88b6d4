-- bn.plot and bn.render from Lua: every function writes a PNG that decodes
-- (bn.render.read_png) with the provenance text chunks, CSVs hold the numbers
-- shown, NaN/Inf never crash or corrupt a figure, and wrong arguments fail
-- with messages naming the function and the argument.
local bn = require "bnlab"
local check = require "check"

local T = {}

local tmp_root
local function tmpdir()
  if not tmp_root then
    local base = os.getenv("TMPDIR")
    if not base or base == "" then base = "/tmp" end
    tmp_root = ("%s/bnlab-plot-test-%d-%d"):format(base, os.time(), math.random(1 << 30))
    assert(os.execute("mkdir -p '" .. tmp_root .. "'"))
  end
  return tmp_root
end
local function tmp(name) return tmpdir() .. "/" .. name end

local read = check.read_file

local function csv_rows(path)
  local text = assert(read(path), "missing " .. path)
  local rows = {}
  for line in text:gmatch("[^\n]+") do rows[#rows + 1] = line end
  return rows
end

local function files_matching(pattern)
  local out = {}
  local p = io.popen("ls -1a '" .. tmpdir() .. "'")
  for name in p:lines() do
    if name:find(pattern) then out[#out + 1] = name end
  end
  p:close()
  return out
end

local function has_font()
  return pcall(bn.render.font)
end

local function need_font()
  if not has_font() then check.skip("no font installed (make deps installs fonts-dejavu-core)") end
end

local function rgb(c, x, y)
  local r, g, b = c:pixel(x, y)
  return (r << 16) | (g << 8) | b
end

local function cmap(name, t)
  local r, g, b = bn.render.colormap(name, t)
  return (r << 16) | (g << 8) | b
end

-- Pixels darker than mid grey in a rectangle.
local function dark(c, x0, y0, x1, y1)
  local n = 0
  for y = y0, y1 - 1 do
    for x = x0, x1 - 1 do
      local r = c:pixel(x, y)
      if r < 128 then n = n + 1 end
    end
  end
  return n
end

-- ---- heatmap ---------------------------------------------------------------------------

function T.heatmap_writes_png_with_provenance()
  need_font()
  bn.plot.provenance { script = "experiments/e3.lua", args = { "--depth", "56", "a b" }, seed = 7 }
  local file = tmp("h.png")
  local ret = bn.plot.heatmap(bn.randn(5, 7), { file = file, title = "Layer means", xlabel = "channel", ylabel = "layer" })
  check.eq(ret, file)
  local img, text = bn.render.read_png(file)
  check.eq({ img:size() }, { 800, 600 })
  check.eq(text.Title, "Layer means")
  check.contains(text.Software, "bnlab ")
  check.eq(text["bnlab:script"], "experiments/e3.lua")
  check.eq(text["bnlab:args"], "--depth 56 'a b'")
  check.eq(text["bnlab:seed"], "7")
  check.eq(text["bnlab:kind"], "heatmap")
  check.eq(text["bnlab:data"], nil)
  -- the title is drawn: dark pixels in the top band, around the middle
  check.truthy(dark(img, 300, 0, 500, 40) > 50, "title pixels")
  check.eq(#files_matching("%.tmp%."), 0, "temporary files left")
  bn.plot.provenance { script = false, args = false, seed = false }
end

function T.heatmap_cell_colours_nan_and_marks()
  need_font()
  local m = bn.tensor { { 0, 1 }, { 0.5, 0 / 0 } }
  local file = tmp("cells.png")
  -- no labels, ticks or colour bar: the cells fill the panel less a 12 px margin
  bn.plot.heatmap(m, { file = file, width = 400, height = 300, vmin = 0, vmax = 1, colorbar = false,
    xticks = false, yticks = false, nan_color = "#ff00ff" })
  local img = bn.render.read_png(file)
  check.eq(rgb(img, 100, 80), cmap("viridis", 0))
  check.eq(rgb(img, 300, 80), cmap("viridis", 1))
  check.eq(rgb(img, 100, 220), cmap("viridis", 0.5))
  check.eq(rgb(img, 300, 220), 0xff00ff)
  check.eq(rgb(img, 2, 2), 0xffffff)
  -- a marked cell gets an X through its centre (white on the dark cell)
  bn.plot.heatmap(m, { file = file, width = 400, height = 300, vmin = 0, vmax = 1, colorbar = false,
    xticks = false, yticks = false, mark = { { 1, 1 } } })
  img = bn.render.read_png(file)
  check.eq(rgb(img, 106, 82), 0xffffff)
  check.eq(rgb(img, 300, 80), cmap("viridis", 1))
  -- the same mark from a mask tensor, drawn as an outline
  bn.plot.heatmap(m, { file = file, width = 400, height = 300, vmin = 0, vmax = 1, colorbar = false,
    xticks = false, yticks = false, mark = bn.tensor { { 0, 1 }, { 0, 0 } }, mark_style = "box", mark_color = "red" })
  img = bn.render.read_png(file)
  check.eq(rgb(img, 300, 80), cmap("viridis", 1)) -- the centre stays
  local red = 0
  for x = 200, 390 do if rgb(img, x, 14) == 0xd62728 then red = red + 1 end end
  check.truthy(red > 100, "outline along the cell's top edge")
end

function T.heatmap_colorbar_center_log_and_inf()
  need_font()
  local file = tmp("cb.png")
  local m = bn.tensor { { -1, 3 }, { 0, 2 } }
  bn.plot.heatmap(m, { file = file, center = 0 })
  local img = bn.render.read_png(file)
  -- centred at 0: the most extreme value (3) sets both ends; coolwarm by default
  local found_low, found_high = false, false
  for y = 0, 599 do
    for x = 600, 799 do
      local c = rgb(img, x, y)
      if c == cmap("coolwarm", 0) then found_low = true end
      if c == cmap("coolwarm", 1) then found_high = true end
    end
  end
  check.truthy(found_low and found_high, "colour bar shows both ends of coolwarm")
  -- log scale with Inf, NaN, zero and negative entries: no crash
  local w = bn.tensor { { 1e-3, 1e30 }, { math.huge, 0 / 0 }, { 0, -5 } }
  bn.plot.heatmap(w, { file = file, log = true, cmap = "magma", clabel = "relative loss", data = true })
  local rows = csv_rows(tmp("cb.csv"))
  check.eq(rows[1], "row/col,1,2")
  check.eq(rows[3], "2,inf,nan")
  check.eq(rows[4], "3,0,-5")
end

function T.heatmap_csv_labels_and_npy()
  need_font()
  local m = bn.tensor { { 1.5, 2 }, { 3, 4.25 } }
  local file, csv = bn.plot.heatmap(m, { file = tmp("lab.png"), csv = tmp("lab.csv"), xticks = { 1e-3, 0.01 },
    yticks = { "no BN", "BN, last" }, xlabel = "step size", ylabel = "network" })
  check.eq(csv, tmp("lab.csv"))
  local rows = csv_rows(csv)
  check.eq(rows[1], "network/step size,0.001,0.01")
  check.eq(rows[2], "no BN,1.5,2")
  check.eq(rows[3], '"BN, last",3,4.25')
  local _, text = bn.render.read_png(file)
  check.eq(text["bnlab:data"], csv)
  bn.plot.heatmap(m, { file = tmp("npy.png"), csv = tmp("m.npy") })
  local back = bn.load(tmp("m.npy"))
  check.eq(back:totable(), m:totable())
end

function T.heatmap_errors()
  check.raises(function() bn.plot.heatmap(bn.zeros(3), { file = tmp("e.png") }) end,
    "bn.plot.heatmap: argument #1 expected a 2-D tensor, got [3]")
  check.raises(function() bn.plot.heatmap("x", { file = tmp("e.png") }) end,
    "bn.plot.heatmap: argument #1 expected a 2-D tensor, got string 'x'")
  local closed
  do
    local t <close> = bn.zeros(2, 2)
    closed = t
  end
  check.raises(function() bn.plot.heatmap(closed, { file = tmp("e.png") }) end, "got a closed tensor")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 2), { file = tmp("e.png"), cmpa = "magma" }) end,
    "bn.plot.heatmap: unknown option 'cmpa'")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 2), { file = tmp("e.png"), cmap = "jet" }) end,
    "bn.plot.heatmap: option 'cmap' expected a colour map name")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 2), {}) end,
    "bn.plot.heatmap: option 'file' expected a path ending in .png, got nil")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 2), { file = tmp("x.jpg") }) end, "ending in .png")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 3), { file = tmp("e.png"), xticks = { 1, 2 } }) end,
    "option 'xticks' expected 3 labels (one per column), got 2")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 3), { file = tmp("e.png"), mark = { { 3, 1 } } }) end,
    "option 'mark'[1] = {3, 1} is outside the 2 x 3 matrix")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 3), { file = tmp("e.png"), mark = bn.zeros(3, 2) }) end,
    "expected a mask tensor of shape [2 x 3]")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 2), { file = tmp("e.png"), vmin = 1, vmax = 0 }) end,
    "vmin (1) expected < vmax (0)")
  check.raises(function() bn.plot.heatmap(bn.ones(2, 2), { file = tmp("e.png"), log = true, vmin = -1 }) end,
    "option 'vmin' expected a positive finite number (log = true)")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 2), { file = tmp("e.png"), nan_color = "bleu" }) end,
    "option 'nan_color' expected a colour")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 2), "file.png") end,
    "bn.plot.heatmap: argument #2 expected a table of options, got string 'file.png'")
  check.raises(function() bn.plot.heatmap(bn.zeros(2, 2), { file = tmp("e.png"), csv = tmp("e.txt") }) end,
    "option 'csv' expected a path ending in .csv")
  -- nothing was written by the failed calls
  check.eq(#files_matching("^e%."), 0)
end

-- ---- lines -------------------------------------------------------------------------------

function T.lines_png_csv_and_divergence()
  need_font()
  local file = tmp("l.png")
  local y2 = { 0.5, 0.6, 0 / 0, math.huge, 0.7 }
  local f, csv = bn.plot.lines {
    file = file, data = true, title = "Accuracy", xlabel = "epoch", ylabel = "acc",
    series = {
      { x = bn.tensor { 1, 2, 3, 4, 5 }, y = bn.tensor { 0.1, 0.2, 0.3, 0.4, 0.5 }, band = { 0.01, 0.02, 0.03, 0.04, 0.05 },
        label = "BN, lr 0.1" },
      { y = y2, label = "no BN", style = "o--" },
    },
  }
  check.eq(f, file)
  check.eq(csv, tmp("l.csv"))
  local img, text = bn.render.read_png(file)
  check.eq({ img:size() }, { 800, 600 })
  check.eq(text.Title, "Accuracy")
  check.eq(text["bnlab:kind"], "lines")
  check.eq(text["bnlab:data"], csv)
  local rows = csv_rows(csv)
  check.eq(rows[1], "series,x,y,band")
  check.eq(#rows, 11)
  check.eq(rows[2], '"BN, lr 0.1",1,0.100000001,0.01')
  check.eq(rows[9], "no BN,3,nan,")
  check.eq(rows[10], "no BN,4,inf,")
  -- lines are drawn: both colours appear
  local blue, orange = false, false
  for y = 40, 560, 2 do
    for x = 80, 780, 2 do
      local c = rgb(img, x, y)
      if c == 0x1f77b4 then blue = true end
      if c == 0xff7f0e then orange = true end
    end
  end
  check.truthy(blue and orange, "series colours in the plot")
end

function T.lines_survive_non_finite_and_log_axes()
  need_font()
  local file = tmp("lnan.png")
  -- all NaN, Inf only, huge values, zeros and negatives on log axes
  bn.plot.lines { file = file, series = { { y = { 0 / 0, 0 / 0 } } } }
  bn.plot.lines { file = file, series = { { y = { math.huge, -math.huge } } } }
  bn.plot.lines { file = file, series = { { y = { 1, 1e30, 3e38, 1 } } } }
  bn.plot.lines { file = file, logx = true, logy = true,
    series = { { x = { 0, 1e-5, 1e-3, 1e-1, 10 }, y = { 1, 0, -1, 1e20, math.huge }, band = { 1, 1, 1, 1e19, 0 / 0 } } } }
  bn.plot.lines { file = file, series = { { y = { 5, 5, 5 } } } } -- constant
  bn.plot.lines { file = file, series = { { y = { 1 } } } }        -- one point
  bn.plot.lines { file = file, series = { { y = {} } } }           -- no points
  bn.plot.lines { file = file, xlim = { 0, 10 }, ylim = { nil, 2 }, legend = "lower right",
    series = { { y = { 1, 2, 3 }, label = "a" }, { y = { 3, 2, 1 }, label = "b", style = ":" } } }
  local img = bn.render.read_png(file)
  check.eq({ img:size() }, { 800, 600 })
  check.eq(#files_matching("%.tmp%."), 0)
end

function T.lines_errors()
  check.raises(function() bn.plot.lines { file = tmp("e.png") } end,
    "bn.plot.lines: series expected a non-empty list of series")
  check.raises(function() bn.plot.lines { file = tmp("e.png"), series = { { x = { 1 } } } } end,
    "bn.plot.lines: series[1].y expected a 1-D tensor or a table of numbers, got nil")
  check.raises(function() bn.plot.lines { file = tmp("e.png"), series = { { y = bn.zeros(2, 2) } } } end,
    "series[1].y expected a 1-D tensor or a table of numbers, got tensor [2 x 2]")
  check.raises(function() bn.plot.lines { file = tmp("e.png"), series = { { x = { 1, 2 }, y = { 1 } } } } end,
    "series[1]: x has 2 values but y has 1")
  check.raises(function() bn.plot.lines { file = tmp("e.png"), series = { { y = { 1 }, band = { 1, 2 } } } } end,
    "series[1]: band has 2 values but y has 1")
  check.raises(function() bn.plot.lines { file = tmp("e.png"), series = { { y = { 1 }, style = "==" } } } end,
    "series[1].style expected a line style")
  check.raises(function() bn.plot.lines { file = tmp("e.png"), series = { { y = { 1 }, colour = "red" } } } end,
    "unknown option 'colour' in series[1]")
  check.raises(function() bn.plot.lines { file = tmp("e.png"), series = { { y = { 1 } } }, logy = true, ylim = { 0, 1 } } end,
    "option 'ylim' expected positive limits on a log axis")
  check.raises(function() bn.plot.lines { file = tmp("e.png"), series = { { y = { 1 } } }, legend = "top" } end,
    "option 'legend' expected false, \"best\" or one of")
  check.raises(function() bn.plot.lines { file = tmp("e.png"), series = { { y = { 1 } } }, csv = tmp("e.npy") } end,
    "may end in .npy only for a heatmap")
  check.raises(function() bn.plot.lines(5) end, "bn.plot.lines: argument #1 expected a table")
end

-- ---- hist --------------------------------------------------------------------------------

function T.hist_counts_csv_and_overlay()
  need_font()
  local v = bn.tensor { 0, 0.1, 0.2, 0.5, 0.9, 1, 0 / 0, math.huge }
  local file, csv = bn.plot.hist { values = v, bins = 4, file = tmp("hist.png"), data = true, title = "Gradients" }
  local rows = csv_rows(csv)
  check.eq(rows[1], "bin_lo,bin_hi,count")
  check.eq(#rows, 5)
  check.eq(rows[2], "0,0.25,3")
  check.eq(rows[3], "0.25,0.5,0")
  check.eq(rows[4], "0.5,0.75,1")
  check.eq(rows[5], "0.75,1,2")
  local img, text = bn.render.read_png(file)
  check.eq(text["bnlab:kind"], "hist")
  check.eq(text.Title, "Gradients")
  check.eq({ img:size() }, { 800, 600 })
  -- log counts, density with a theoretical curve, several series, log bins
  bn.plot.hist { values = bn.randn(1000), log = true, file = tmp("h2.png") }
  local _, csv2 = bn.plot.hist { values = bn.rand(2000) * 4, range = { 0, 4 }, bins = 8, file = tmp("h3.png"), data = true,
    overlay = { fn = function(x) return 0.25 end, label = "uniform" } }
  rows = csv_rows(csv2)
  check.eq(rows[1], "bin_lo,bin_hi,count,density") -- an overlay implies density
  local total = 0
  for i = 2, #rows do
    local lo, hi, _, d = rows[i]:match("^([^,]+),([^,]+),([^,]+),([^,]+)$")
    total = total + (tonumber(hi) - tonumber(lo)) * tonumber(d)
  end
  check.near(total, 1, 1e-6, "density integrates to 1")
  local _, csv3 = bn.plot.hist { series = { { values = { 1, 2, 3 }, label = "a" }, { values = { 2, 3, 4 }, label = "b" } },
    bins = 3, file = tmp("h4.png"), data = true }
  rows = csv_rows(csv3)
  check.eq(rows[1], "series,bin_lo,bin_hi,count")
  check.eq(#rows, 7)
  bn.plot.hist { values = { 1e-6, 1e-3, 1, 1e3, 0, -1 }, logx = true, log = true, file = tmp("h5.png") }
  bn.plot.hist { values = { 0 / 0 }, file = tmp("h6.png") }  -- nothing finite
  bn.plot.hist { values = { 2, 2, 2 }, file = tmp("h7.png") } -- one value
  bn.plot.hist { values = { 1, 2 }, file = tmp("h8.png"), overlay = { x = { 1, 2 }, y = { 0.5, 0 / 0 }, style = "--" } }
end

function T.hist_errors()
  check.raises(function() bn.plot.hist { file = tmp("e.png") } end,
    "bn.plot.hist: option 'values' expected a tensor or a table of numbers, got nil")
  check.raises(function() bn.plot.hist { values = "x", file = tmp("e.png") } end,
    "option 'values' expected a tensor or a table of numbers, got string 'x'")
  check.raises(function() bn.plot.hist { values = { 1 }, bins = 0, file = tmp("e.png") } end,
    "option 'bins' expected an integer in [1, 100000], got number 0")
  check.raises(function() bn.plot.hist { values = { 1 }, range = { 2, 1 }, file = tmp("e.png") } end,
    "option 'range' expected lo < hi")
  check.raises(function() bn.plot.hist { values = { 1 }, overlay = 3, file = tmp("e.png") } end,
    "option 'overlay' expected a curve")
  check.raises(function() bn.plot.hist { values = { 1 }, overlay = function() error("boom") end, file = tmp("e.png") } end,
    "bn.plot.hist: overlay.fn failed at x =")
  check.raises(function() bn.plot.hist { values = { 1 }, series = { { values = { 1 } } }, file = tmp("e.png") } end,
    "give option 'values' or option 'series', not both")
end

-- ---- figure --------------------------------------------------------------------------------

function T.figure_panels_and_csvs()
  need_font()
  local file = tmp("fig.png")
  local f, written = bn.plot.figure {
    file = file, title = "Three depths", cols = 2, data = true,
    panels = {
      { kind = "heatmap", bn.randn(4, 6), title = "layer 8" },
      { kind = "heatmap", m = bn.randn(4, 6) * 1000, title = "layer 44", log = false },
      { kind = "lines", series = { { y = { 1, 2, 4 } } }, logy = true, title = "growth" },
      { kind = "hist", values = bn.randn(100), title = "values" },
      { kind = "heatmap", bn.ones(2, 2), csv = tmp("own.npy") },
    },
  }
  check.eq(f, file)
  check.eq(#written, 5)
  check.eq(written[1], tmp("fig.panel1.csv"))
  check.eq(written[5], tmp("own.npy"))
  for i = 1, 4 do check.truthy(read(tmp(("fig.panel%d.csv"):format(i))), "panel csv " .. i) end
  local img, text = bn.render.read_png(file)
  local w, h = img:size()
  check.eq(w, 2 * 560)
  check.truthy(h > 3 * 420 and h < 3 * 420 + 60, "three rows plus the title")
  check.eq(text.Title, "Three depths")
  check.eq(text["bnlab:kind"], "figure")
  check.eq(#files_matching("%.tmp%."), 0)
end

function T.figure_errors()
  check.raises(function() bn.plot.figure { file = tmp("e.png") } end,
    "bn.plot.figure: option 'panels' expected a non-empty list of panels")
  check.raises(function() bn.plot.figure { file = tmp("e.png"), panels = { { kind = "bar" } } } end,
    "bn.plot.figure: panels[1].kind expected one of heatmap, lines, hist, got string 'bar'")
  check.raises(function()
    bn.plot.figure { file = tmp("e.png"), panels = { { kind = "hist", values = { 1 } }, { kind = "heatmap", bn.zeros(3) } } }
  end, "bn.plot.figure: panels[2].m expected a 2-D tensor, got [3]")
  check.raises(function()
    bn.plot.figure { file = tmp("e.png"), panels = { { kind = "lines", series = { { y = { 1 }, band = "x" } } } } }
  end, "panels[1].series[1].band expected")
  check.raises(function()
    bn.plot.figure { file = tmp("e.png"), panels = { { kind = "heatmap", bn.zeros(2, 2), cmap = "nope" } } }
  end, "panels[1].cmap expected a colour map name")
  check.raises(function()
    bn.plot.figure { file = tmp("e.png"), panels = { { kind = "heatmap", bn.zeros(2, 2), file = "x.png" } } }
  end, "unknown option 'file' in panels[1]")
end

-- ---- provenance ----------------------------------------------------------------------------

function T.provenance_defaults_and_extras()
  need_font()
  local p = bn.plot.provenance()
  check.eq(p.script, arg[0])
  check.eq(type(p.args), "string")
  check.eq(p.seed, tostring(bn.rng_state().seed))
  p = bn.plot.provenance { seed = 123, run = "e2-nobn", args = "--lr 0.1" }
  check.eq(p.seed, "123")
  local file = tmp("prov.png")
  bn.plot.hist { values = { 1, 2 }, file = file }
  local _, text = bn.render.read_png(file)
  check.eq(text["bnlab:seed"], "123")
  check.eq(text["bnlab:args"], "--lr 0.1")
  check.eq(text["bnlab:run"], "e2-nobn")
  check.eq(text.Title, nil) -- no title given, no Title chunk
  p = bn.plot.provenance { seed = false, run = false, args = false }
  check.eq(p.run, nil)
  check.raises(function() bn.plot.provenance { seed = {} } end,
    "bn.plot.provenance: field 'seed' expected a string, number or boolean, got table")
  check.raises(function() bn.plot.provenance(3) end, "bn.plot.provenance: argument #1 expected a table")
end

-- ---- ticks and layout ------------------------------------------------------------------

function T.ticks_nice_numbers_and_decades()
  local ticks = require "bnlab.plot.ticks"
  local m = "\u{2212}"
  local _, l = ticks.linear(0, 1, 5)
  check.eq(l, { "0.0", "0.2", "0.4", "0.6", "0.8", "1.0" })
  _, l = ticks.linear(-1, 1, 4)
  check.eq(l, { m .. "1.0", m .. "0.5", "0.0", "0.5", "1.0" })
  _, l = ticks.linear(0, 3e5, 4)
  check.eq(l, { "0", "1e5", "2e5", "3e5" })
  _, l = ticks.linear(0, 2.5e-4, 5)
  check.eq(l, { "0", "5e" .. m .. "5", "1e" .. m .. "4", "1.5e" .. m .. "4", "2e" .. m .. "4", "2.5e" .. m .. "4" })
  local v, minor
  v, l, minor = ticks.log(1e-3, 1e2, 10)
  check.eq(l, { "10^{" .. m .. "3}", "10^{" .. m .. "2}", "10^{" .. m .. "1}", "10^{0}", "10^{1}", "10^{2}" })
  check.truthy(#minor > 30, "2..9 minor ticks")
  v, l = ticks.log(1e-6, 1e30, 6) -- 37 decades: every 10th
  check.eq(l, { "10^{0}", "10^{10}", "10^{20}", "10^{30}" })
  v, l = ticks.log(2, 30, 5) -- within two decades: 1-2-5 values
  check.eq(l, { "2", "5", "10", "20" })
  check.eq(v[3], 10.0)
  check.eq(ticks.stride(64, 12, 3, 400), 5)
  check.eq(ticks.stride(10, 12, 3, 400), 1)
  check.eq(ticks.stride(64, 12, 3, 400, true), 3)
end

function T.x_tick_labels_never_overlap()
  need_font()
  local axes = require "bnlab.plot.axes"
  for _, case in ipairs { { 200, "linear", 0, 123456 }, { 300, "linear", -0.001, 0.002 }, { 500, "log", 1e-7, 1e9 },
    { 800, "linear", 0, 1 }, { 260, "log", 3, 700 } } do
    local w = case[1]
    local c <close> = bn.render.canvas(w, 300)
    local f = axes.layout(c, { 0, 0, w, 300 }, { xlabel = "x", ylabel = "y",
      x = { scale = case[2], lo = case[3], hi = case[4] }, y = { scale = "linear", lo = 0, hi = 1 } })
    check.truthy(#f.x.ticks >= 2, "at least two x ticks at width " .. w)
    for i = 2, #f.x.ticks do
      local a = f:px(f.x.ticks[i - 1]) + f.x.widths[i - 1] / 2
      local b = f:px(f.x.ticks[i]) - f.x.widths[i] / 2
      check.truthy(b - a >= 4, ("labels %s and %s overlap at width %d"):format(f.x.labels[i - 1], f.x.labels[i], w))
    end
    check.truthy(f:px(f.x.ticks[#f.x.ticks]) + f.x.widths[#f.x.ticks] / 2 <= w, "last label inside the image")
  end
end

-- ---- bn.render ------------------------------------------------------------------------------

function T.render_primitives()
  need_font()
  local c <close> = bn.render.canvas(100, 60)
  check.eq(tostring(c), "canvas 100 x 60")
  check.eq({ c:pixel(0, 0) }, { 255, 255, 255 })
  c:fill_rect(10, 10, 20, 20, "#ff0000")
  check.eq({ c:pixel(15, 15) }, { 255, 0, 0 })
  c:polyline({ 0, 99 }, { 40.5, 40.5 }, 0x0000ff, 1)
  check.eq({ c:pixel(50, 40) }, { 0, 0, 255 })
  c:polyline({ 0, 0 / 0, 99 }, { 30.5, 0 / 0, 30.5 }, 0x0000ff, 1) -- a NaN break: nothing in between
  check.eq({ c:pixel(50, 30) }, { 255, 255, 255 })
  c:text("Hi", 50, 5, { size = 14, halign = "center", valign = "top" })
  check.truthy(dark(c, 40, 0, 60, 25) > 10, "text drawn")
  local w, asc, desc = c:text_size("Hi", 14)
  check.truthy(w > 5 and w < 40 and asc > 8 and desc > 1, "text_size")
  check.raises(function() c:polyline({ 1 }, { 1, 2 }, 0, 1) end, "bn.render.polyline: xs and ys expected the same length")
  check.raises(function() c:fill_rect(0, 0, 1, 1, "blue") end, "bn.render.fill_rect: argument #6 (color) expected a colour")
  check.raises(function() c:text("x", 0, 0, { rotate = 45 }) end, "bn.render.text: option 'rotate' expected 0 or 90")
  check.raises(function() c:text("x", 0, 0, { halign = "middle" }) end,
    "option 'halign' expected one of left, center, right, got 'middle'")
  check.raises(function() c:heatmap(bn.zeros(3), 0, 0, 10, 10) end, "bn.render.heatmap: argument #2 expected a 2-D tensor")
  check.raises(function() bn.render.canvas(0, 10) end, "bn.render.canvas: argument #1 (width) expected")
  check.raises(function() bn.render.colormap("jet", 0) end,
    "bn.render.colormap: argument #1 (cmap) expected a colour map name (viridis, magma, coolwarm, gray")
  check.raises(function() c:colorbar(0, 0, 5, 5, 3) end, "bn.render.colorbar: argument #6 (cmap) expected a string, got number 3")
  check.raises(function() bn.render.read_png(tmp("none.png")) end, "bn.render.read_png: cannot open")
  local r = bn.render.range(bn.tensor { 1, 0 / 0, math.huge, -2 })
  check.eq({ r.lo, r.hi, r.used, r.nan, r.posinf, r.neginf }, { -2.0, 1.0, 2, 1, 1, 0 })
  c:close()
  check.raises(function() c:pixel(0, 0) end, "argument #1 is a closed canvas")
end

-- A missing font: a clear error naming BNLAB_FONT (checked in a child process).
function T.missing_font_message()
  local bnlab = check.bnlab()
  if not bnlab then check.skip("cannot find the bnlab binary") end
  local cmd = ("BNLAB_FONT=/no/such/font.ttf %s -e 'bn.plot.heatmap(bn.zeros(2, 2), {file = \"%s\"})' 2>&1")
      :format(bnlab, tmp("nofont.png"))
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  check.contains(out, "bn.plot.heatmap: BNLAB_FONT=/no/such/font.ttf is not a readable font file")
  check.eq(read(tmp("nofont.png")), nil)
end

return T
