-- The hist kind: histograms of one or several sets of values (counts or
-- densities, a linear or log count axis, equal or log-spaced bins), with
-- theoretical density curves drawn on top (random-matrix spectra) and a
-- note saying how many values could not be shown (NaN/Inf, out of range).
local core = require "bnlab.core"
local util = require "bnlab.plot.util"
local axes = require "bnlab.plot.axes"
local lines = require "bnlab.plot.lines"

local hist = {}
local T = axes.theme

hist.options = util.set {
  "values", "series", "bins", "log", "logx", "range", "density", "overlay", "title", "xlabel", "ylabel",
  "color", "label", "legend", "grid",
}
local series_options = util.set { "values", "label", "color" }
local overlay_options = util.set { "x", "y", "fn", "label", "color", "style", "width" }

local function as_tensor(fn, v, w)
  if core.is_tensor(v) then
    if v:is_closed() then util.fail(fn, "%s expected a tensor, got a closed tensor", w) end
    return v
  end
  local nums = util.numbers(v)
  if not nums then util.fail(fn, "%s expected a tensor or a table of numbers, got %s", w, util.describe(v)) end
  if #nums == 0 then return core.zeros(0) end
  return core.tensor(nums)
end

local function check_overlay(fn, v, lo, hi, logx, where)
  local w = where and (where .. ".overlay") or "overlay"
  if v == nil then return {} end
  local list
  if type(v) == "function" then list = { { fn = v } }
  elseif type(v) == "table" and (v.x ~= nil or v.y ~= nil or v.fn ~= nil) then list = { v }
  elseif type(v) == "table" and #v > 0 then list = v
  else
    util.fail(fn, "%s expected a curve {x =, y =, label =}, {fn = function(x), label =}, a function or a list of them, got %s",
      where and w or "option 'overlay'", util.describe(v))
  end
  local out = {}
  for i, o in ipairs(list) do
    local ow = #list > 1 and ("%s[%d]"):format(w, i) or w
    if type(o) == "function" then o = { fn = o } end
    if type(o) ~= "table" then util.fail(fn, "%s expected a curve table, got %s", ow, util.describe(o)) end
    util.check_opts(fn, o, overlay_options, ow)
    local x, y
    if o.fn ~= nil then
      if type(o.fn) ~= "function" then util.fail(fn, "%s.fn expected a function, got %s", ow, util.describe(o.fn)) end
      x, y = {}, {}
      local n = 400
      for k = 0, n - 1 do
        local t = k / (n - 1)
        local xv = logx and 10.0 ^ (math.log(lo, 10) + t * (math.log(hi, 10) - math.log(lo, 10))) or lo + t * (hi - lo)
        local ok, yv = pcall(o.fn, xv)
        if not ok then util.fail(fn, "%s.fn failed at x = %g: %s", ow, xv, tostring(yv)) end
        x[#x + 1], y[#y + 1] = xv, type(yv) == "number" and yv or 0 / 0
      end
    else
      x, y = util.numbers(o.x), util.numbers(o.y)
      if not x then util.fail(fn, "%s.x expected a 1-D tensor or a table of numbers, got %s", ow, util.describe(o.x)) end
      if not y then util.fail(fn, "%s.y expected a 1-D tensor or a table of numbers, got %s", ow, util.describe(o.y)) end
      if #x ~= #y then util.fail(fn, "%s: x has %d values but y has %d", ow, #x, #y) end
    end
    local dash = nil
    local style = util.str(fn, o, "style", "-", ow)
    if style == "--" then dash = { 7, 4 } elseif style == ":" then dash = { 2, 3 } elseif style == "-." then dash = { 10, 3, 2, 3 }
    elseif style ~= "-" then util.fail(fn, "%s.style expected \"-\", \"--\", \":\" or \"-.\", got '%s'", ow, style) end
    out[i] = {
      x = x, y = y, dash = dash, label = util.label(fn, o, "label", ow),
      color = o.color ~= nil and util.color(fn, o.color, ow .. ".color") or (i == 1 and 0x000000 or 0xd62728),
      width = util.num(fn, o, "width", 2, ow, function(z) return z > 0 and z <= 50 end, "a line width in (0, 50] px"),
    }
  end
  return out
end

function hist.prepare(fn, opts, where)
  local s = { kind = "hist" }
  local function name(n) return where and (where .. "." .. n) or ("option '" .. n .. "'") end
  if opts.values ~= nil and opts.series ~= nil then util.fail(fn, "give %s or %s, not both", name("values"), name("series")) end
  local list = {}
  if opts.series ~= nil then
    if type(opts.series) ~= "table" or #opts.series == 0 then
      util.fail(fn, "%s expected a non-empty list of {values =, label =}, got %s", name("series"), util.describe(opts.series))
    end
    for i, se in ipairs(opts.series) do
      local w = ("%s[%d]"):format(where and (where .. ".series") or "series", i)
      if type(se) ~= "table" or core.is_tensor(se) then util.fail(fn, "%s expected a table {values =, label =}, got %s", w, util.describe(se)) end
      util.check_opts(fn, se, series_options, w)
      list[i] = {
        t = as_tensor(fn, se.values, w .. ".values"), label = util.label(fn, se, "label", w),
        color = se.color ~= nil and util.color(fn, se.color, w .. ".color") or tonumber(util.palette[(i - 1) % 10 + 1]:sub(2), 16),
      }
    end
  else
    if opts.values == nil then util.fail(fn, "%s expected a tensor or a table of numbers, got nil", name("values")) end
    list[1] = {
      t = as_tensor(fn, opts.values, name("values")), label = util.label(fn, opts, "label", where),
      color = opts.color ~= nil and util.color(fn, opts.color, name("color")) or 0x1f77b4,
    }
  end
  s.series = list
  s.bins = util.int(fn, opts, "bins", 1, 100000, 50, where)
  s.log = util.bool(fn, opts, "log", false, where)
  s.logx = util.bool(fn, opts, "logx", false, where)
  s.density = util.bool(fn, opts, "density", opts.overlay ~= nil, where)
  s.title = util.label(fn, opts, "title", where)
  s.xlabel = util.label(fn, opts, "xlabel", where)
  s.ylabel = util.label(fn, opts, "ylabel", where) or (s.density and "density" or "count")
  s.grid = util.bool(fn, opts, "grid", true, where)
  local legend = opts.legend
  if legend == nil then legend = "best" end
  if legend ~= false and legend ~= "best" then
    local ok = false
    for _, l in ipairs(axes.legend_locations) do ok = ok or legend == l end
    if not ok then util.fail(fn, "%s expected false, \"best\" or a location such as \"upper right\", got %s", name("legend"), util.describe(legend)) end
  end
  s.legend = legend
  local range = util.limits(fn, opts, "range", where)
  if range and s.logx and ((range[1] and range[1] <= 0) or (range[2] and range[2] <= 0)) then
    util.fail(fn, "%s expected positive limits with logx = true", name("range"))
  end
  -- the bin range: given, else the finite (positive with logx) values
  local lo, hi = math.huge, -math.huge
  for _, se in ipairs(list) do
    local r = core.render.range(se.t, s.logx)
    if r.lo then lo, hi = math.min(lo, r.lo), math.max(hi, r.hi) end
  end
  if range then lo, hi = range[1] or lo, range[2] or hi end
  if not (lo <= hi) or lo == math.huge then lo, hi = s.logx and 1 or 0, s.logx and 10 or 1 end
  if lo == hi then
    if s.logx then lo, hi = lo / 2, hi * 2 else lo, hi = lo - 0.5, hi + 0.5 end
  end
  s.lo, s.hi = lo, hi
  local notes = {}
  local lost = { nonfinite = 0, outside = 0, nonpositive = 0 }
  for _, se in ipairs(list) do
    local counts, edges, info = core.render.histogram(se.t, lo, hi, s.bins, s.logx)
    se.counts, se.edges, se.info = counts, edges, info
    se.n = info.in_range
    se.values = {}
    for k = 1, s.bins do
      local v = counts[k]
      if s.density then v = se.n > 0 and counts[k] / (se.n * (edges[k + 1] - edges[k])) or 0 end
      se.values[k] = v
    end
    for key in pairs(lost) do lost[key] = lost[key] + info[key] end
  end
  if lost.nonfinite > 0 then notes[#notes + 1] = ("%d NaN/Inf"):format(lost.nonfinite) end
  if lost.outside > 0 then notes[#notes + 1] = ("%d outside the range"):format(lost.outside) end
  if lost.nonpositive > 0 then notes[#notes + 1] = ("%d \u{2264} 0 (log bins)"):format(lost.nonpositive) end
  if #notes > 0 then
    local total = lost.nonfinite + lost.outside + lost.nonpositive
    s.note = ("not shown: %s value%s"):format(table.concat(notes, ", "), total == 1 and "" or "s")
  end
  s.overlay = check_overlay(fn, opts.overlay, lo, hi, s.logx, where)
  -- the value axis
  local top, minpos = 0, math.huge
  for _, se in ipairs(list) do
    for _, v in ipairs(se.values) do
      top = math.max(top, v)
      if v > 0 then minpos = math.min(minpos, v) end
    end
  end
  local otop, ominpos = top, minpos
  for _, o in ipairs(s.overlay) do
    for k = 1, #o.y do
      local v = o.y[k]
      if util.finite(v) and util.finite(o.x[k]) and o.x[k] >= lo and o.x[k] <= hi then
        if s.log then
          if v > 0 and (top == 0 or (v <= top * 100 and v >= minpos / 100)) then
            otop, ominpos = math.max(otop, v), math.min(ominpos, v)
          end
        elseif top == 0 or v <= top * 3 then
          otop = math.max(otop, v)
        end
      end
    end
  end
  top, minpos = otop, ominpos
  if s.log then
    if minpos == math.huge then minpos, top = 0.5, 10 end
    s.ylo, s.yhi = lines.limits({ minpos, top }, nil, true)
    if not s.density then s.ylo = math.min(s.ylo, 0.5) end
  else
    s.ylo, s.yhi = lines.limits({ 0, top > 0 and top or 1 }, { 0, nil }, false)
  end
  s.xlo, s.xhi = lines.limits({ lo, hi }, nil, s.logx)
  return s
end

function hist.draw(c, rect, s)
  local f = axes.layout(c, rect, {
    title = s.title, xlabel = s.xlabel, ylabel = s.ylabel, note = s.note,
    x = { scale = s.logx and "log" or "linear", lo = s.xlo, hi = s.xhi },
    y = { scale = s.log and "log" or "linear", lo = s.ylo, hi = s.yhi },
  })
  if s.grid then f:grid(c) end
  c:clip(f.L, f.T, f.R, f.B)
  local many = #s.series > 1
  local points = { {}, {} }
  for _, se in ipairs(s.series) do
    local sx, sy = { f:px(se.edges[1]) }, { f.B + 2 }
    for k = 1, s.bins do
      local v = se.values[k]
      local x0, x1 = f:px(se.edges[k]), f:px(se.edges[k + 1])
      local y = v > 0 and f:py(v) or f.B + 2
      if v > 0 then
        -- whole pixels: neighbouring bars must not leave seams between them
        if many then c:fill_rect(math.floor(x0 + 0.5), y, math.floor(x1 + 0.5), f.B, se.color, 0.35)
        else c:fill_rect(math.floor(x0 + 0.5), y, math.floor(x1 + 0.5), f.B, util.mix(se.color, 0xffffff, 0.75)) end
        for py = y, f.B, 12 do
          points[1][#points[1] + 1], points[2][#points[2] + 1] = (x0 + x1) / 2, py
        end
      end
      sx[#sx + 1], sy[#sy + 1] = x0, y
      sx[#sx + 1], sy[#sy + 1] = x1, y
    end
    sx[#sx + 1], sy[#sy + 1] = f:px(se.edges[s.bins + 1]), f.B + 2
    c:polyline(sx, sy, se.color, many and 1.5 or 1)
  end
  for _, o in ipairs(s.overlay) do
    local xs, ys = {}, {}
    for k = 1, #o.x do
      local x, y = o.x[k], o.y[k]
      if util.finite(x) and util.finite(y) and not (s.logx and x <= 0) and not (s.log and y <= 0) then
        xs[k], ys[k] = f:px(x), f:py(y)
      else
        xs[k], ys[k] = 0 / 0, 0 / 0
      end
    end
    c:polyline(xs, ys, o.color, o.width, 1, o.dash)
    axes.sample_points(points, xs, ys)
  end
  c:clip()
  f:decorate(c)
  if s.legend then
    local entries = {}
    for _, se in ipairs(s.series) do
      if se.label then entries[#entries + 1] = { label = se.label, color = se.color, patch = true, alpha = many and 0.5 or 0.75 } end
    end
    for _, o in ipairs(s.overlay) do
      if o.label then entries[#entries + 1] = { label = o.label, color = o.color, width = o.width, dash = o.dash } end
    end
    axes.legend(c, f, entries, s.legend, points)
  end
end

--- bin_lo,bin_hi,count (+ density when shown as one; series first when several).
function hist.csv(s)
  local many = #s.series > 1
  local head = { "bin_lo", "bin_hi", "count" }
  if s.density then head[#head + 1] = "density" end
  if many then table.insert(head, 1, "series") end
  local out = { table.concat(head, ",") }
  for i, se in ipairs(s.series) do
    for k = 1, s.bins do
      local row = { util.csv_number(se.edges[k]), util.csv_number(se.edges[k + 1]), tostring(se.counts[k]) }
      if s.density then row[#row + 1] = util.csv_number(se.values[k]) end
      if many then table.insert(row, 1, util.csv_field(se.label or ("series " .. i))) end
      out[#out + 1] = table.concat(row, ",")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

return hist
