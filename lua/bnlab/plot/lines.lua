-- The lines kind: series of (x, y) points as lines and/or markers, shaded
-- ±std bands, linear or log axes, a legend placed where it covers the least
-- data. NaN and ±Inf are data (a run that diverged): they break the line,
-- and the last finite point before them is marked with an X.
local util = require "bnlab.plot.util"
local axes = require "bnlab.plot.axes"

local lines = {}
local T = axes.theme

lines.options = util.set {
  "series", "logx", "logy", "title", "xlabel", "ylabel", "xlim", "ylim", "legend", "grid",
}
local series_options = util.set {
  "x", "y", "label", "band", "style", "color", "width", "marker", "alpha", "band_alpha",
}

local MARKERS = "os^vDx+."
local DASHES = { ["-"] = false, ["--"] = { 3.7, 1.6 }, [":"] = { 1, 1.65 }, ["-."] = { 6.4, 1.6, 1, 1.6 } }

-- "o-" -> marker "o", line "-"; "--" -> dashed; "o" -> markers only.
local function parse_style(fn, style, where)
  local marker, line
  if #style > 0 and MARKERS:find(style:sub(1, 1), 1, true) then
    marker, line = style:sub(1, 1), style:sub(2)
  elseif #style > 0 and MARKERS:find(style:sub(-1), 1, true) and DASHES[style:sub(1, -2)] ~= nil then
    marker, line = style:sub(-1), style:sub(1, -2)
  else
    line = style
  end
  if line == "" then return marker, nil end
  if DASHES[line] == nil then
    util.fail(fn, "%s.style expected a line style (\"-\", \"--\", \":\", \"-.\") with an optional marker (%s), got '%s'",
      where, "o s ^ v D x + .", style)
  end
  return marker, line
end

local function check_series(fn, i, s, where)
  local w = ("%s[%d]"):format(where, i)
  if type(s) ~= "table" then util.fail(fn, "%s expected a table {x =, y =, label =, ...}, got %s", w, util.describe(s)) end
  util.check_opts(fn, s, series_options, w)
  local y = util.numbers(s.y)
  if not y then
    util.fail(fn, "%s.y expected a 1-D tensor or a table of numbers, got %s", w, util.describe(s.y))
  end
  local x
  if s.x == nil then
    x = {}
    for k = 1, #y do x[k] = k + 0.0 end
  else
    x = util.numbers(s.x)
    if not x then util.fail(fn, "%s.x expected a 1-D tensor or a table of numbers, got %s", w, util.describe(s.x)) end
    if #x ~= #y then util.fail(fn, "%s: x has %d values but y has %d", w, #x, #y) end
  end
  local band
  if s.band ~= nil then
    band = util.numbers(s.band)
    if not band then util.fail(fn, "%s.band expected a 1-D tensor or a table of numbers (±std), got %s", w, util.describe(s.band)) end
    if #band ~= #y then util.fail(fn, "%s: band has %d values but y has %d", w, #band, #y) end
  end
  local out = { x = x, y = y, band = band }
  out.label = util.label(fn, s, "label", w)
  local marker, line = parse_style(fn, util.str(fn, s, "style", "-", w), w)
  if s.marker ~= nil then
    marker = util.str(fn, s, "marker", nil, w)
    if #marker ~= 1 or not MARKERS:find(marker, 1, true) then
      util.fail(fn, "%s.marker expected one of o s ^ v D x + ., got '%s'", w, marker)
    end
  end
  out.marker, out.line = marker, line
  out.color = s.color ~= nil and util.color(fn, s.color, w .. ".color") or nil
  out.width = util.num(fn, s, "width", 2, w, function(v) return v > 0 and v <= 50 end, "a line width in (0, 50] px")
  out.alpha = util.num(fn, s, "alpha", 1, w, function(v) return v >= 0 and v <= 1 end, "a number in [0, 1]")
  out.band_alpha = util.num(fn, s, "band_alpha", 0.2, w, function(v) return v >= 0 and v <= 1 end, "a number in [0, 1]")
  return out
end

-- The range of a list of values usable on an axis (finite; positive on log).
local function extend(r, v, log)
  if util.finite(v) and (not log or v > 0) then
    if v < r[1] then r[1] = v end
    if v > r[2] then r[2] = v end
  end
end

--- Auto limits [lo, hi] with 5% margins (in log space on log axes), unless given.
function lines.limits(r, given, log)
  local lo, hi = r[1], r[2]
  if lo > hi then lo, hi = log and 1 or 0, log and 10 or 1 end
  local f = log and function(v) return math.log(v, 10) end or function(v) return v end
  local g = log and function(v) return 10.0 ^ v end or function(v) return v end
  local a, b = f(lo), f(hi)
  if a == b then
    local d = log and 0.5 or (a ~= 0 and math.abs(a) * 0.05 or 0.5)
    a, b = a - d, b + d
  else
    local m = (b - a) * 0.05
    a, b = a - m, b + m
  end
  lo, hi = g(a), g(b)
  if given then
    lo = given[1] or lo
    hi = given[2] or hi
    if not (lo < hi) then
      if given[1] then hi = log and lo * 10 or lo + 1 else lo = log and hi / 10 or hi - 1 end
    end
  end
  return lo, hi
end

function lines.prepare(fn, opts, where)
  local s = { kind = "lines" }
  local series = opts.series
  local sw = where and (where .. ".series") or "series"
  if type(series) ~= "table" or #series == 0 then
    util.fail(fn, "%s expected a non-empty list of series {x =, y =, label =, band =}, got %s", sw, util.describe(series))
  end
  s.logx = util.bool(fn, opts, "logx", false, where)
  s.logy = util.bool(fn, opts, "logy", false, where)
  s.title = util.label(fn, opts, "title", where)
  s.xlabel = util.label(fn, opts, "xlabel", where)
  s.ylabel = util.label(fn, opts, "ylabel", where)
  s.xlim = util.limits(fn, opts, "xlim", where)
  s.ylim = util.limits(fn, opts, "ylim", where)
  for _, pair in ipairs { { "xlim", s.logx }, { "ylim", s.logy } } do
    local lim = s[pair[1]]
    if pair[2] and lim and ((lim[1] and lim[1] <= 0) or (lim[2] and lim[2] <= 0)) then
      util.fail(fn, "%s expected positive limits on a log axis", where and (where .. "." .. pair[1]) or ("option '" .. pair[1] .. "'"))
    end
  end
  local legend = opts.legend
  if legend == nil then legend = "best" end
  if legend ~= false then
    local ok = legend == "best"
    for _, l in ipairs(axes.legend_locations) do ok = ok or legend == l end
    if not ok then
      util.fail(fn, "%s expected false, \"best\" or one of %s, got %s", where and (where .. ".legend") or "option 'legend'",
        table.concat(axes.legend_locations, ", "), util.describe(legend))
    end
  end
  s.legend = legend
  s.grid = util.bool(fn, opts, "grid", true, where)
  s.series = {}
  local xr, yr = { math.huge, -math.huge }, { math.huge, -math.huge }
  local dropped = 0
  for i, raw in ipairs(series) do
    local se = check_series(fn, i, raw, sw)
    se.color = se.color or tonumber(util.palette[(i - 1) % #util.palette + 1]:sub(2), 16)
    for k = 1, #se.y do
      local x, y = se.x[k], se.y[k]
      extend(xr, x, s.logx)
      extend(yr, y, s.logy)
      if se.band and util.finite(y) and util.finite(se.band[k]) then
        extend(yr, y + se.band[k], s.logy)
        extend(yr, y - se.band[k], s.logy)
      end
      if (s.logx and util.finite(x) and x <= 0) or (s.logy and util.finite(y) and y <= 0) then dropped = dropped + 1 end
    end
    s.series[i] = se
  end
  s.xlo, s.xhi = lines.limits(xr, s.xlim, s.logx)
  s.ylo, s.yhi = lines.limits(yr, s.ylim, s.logy)
  s.empty = yr[1] > yr[2]
  if dropped > 0 then s.note = ("%d point%s \u{2264} 0 not shown on the log axis"):format(dropped, dropped == 1 and "" or "s") end
  return s
end

-- Finite pixel coordinates of a point, or NaN when it cannot be drawn.
local function point(f, s, x, y)
  if not util.finite(x) or not util.finite(y) or (s.logx and x <= 0) or (s.logy and y <= 0) then return 0 / 0, 0 / 0 end
  return f:px(x), f:py(y)
end

-- Indices of the last finite point before a NaN/±Inf (where a run diverged).
local function divergence_points(se)
  local out = {}
  for k = 2, #se.y do
    local v, prev = se.y[k], se.y[k - 1]
    if not util.finite(v) and util.finite(prev) and util.finite(se.x[k - 1]) then out[#out + 1] = k - 1 end
  end
  return out
end

-- Long series (more points than pixels) are thinned per pixel column to the
-- first, lowest, highest and last point of the column (in their order): the
-- drawn line is the same, and drawing stays fast for 10^5-10^6 points.
local function thin(xs, ys)
  local n = #xs
  local ox, oy = {}, {}
  local col, first, last, lo, hi
  local function flush()
    if not col then return end
    local idx = { first, lo, hi, last }
    table.sort(idx)
    local prev
    for _, i in ipairs(idx) do
      if i ~= prev then ox[#ox + 1], oy[#oy + 1] = xs[i], ys[i] end
      prev = i
    end
    col = nil
  end
  for i = 1, n do
    local x, y = xs[i], ys[i]
    if x ~= x or y ~= y then
      flush()
      ox[#ox + 1], oy[#oy + 1] = 0 / 0, 0 / 0
    else
      local cx = math.floor(x)
      if cx ~= col then
        flush()
        col, first, last, lo, hi = cx, i, i, i, i
      else
        last = i
        if y < ys[lo] then lo = i end
        if y > ys[hi] then hi = i end
      end
    end
  end
  flush()
  return ox, oy
end

local function draw_band(c, f, s, se, points)
  local xs, up, lo = {}, {}, {}
  local function flush()
    if #xs > 2 * (f.R - f.L) then -- per pixel column: the widest extent of the band
      local cx, cu, cl, col = {}, {}, {}, nil
      for k = 1, #xs do
        local x = math.floor(xs[k])
        if x ~= col then
          cx[#cx + 1], cu[#cu + 1], cl[#cl + 1], col = xs[k], up[k], lo[k], x
        else
          cu[#cu] = math.min(cu[#cu], up[k]) -- pixels grow downwards
          cl[#cl] = math.max(cl[#cl], lo[k])
        end
      end
      xs, up, lo = cx, cu, cl
    end
    if #xs >= 2 then
      local px, py = {}, {}
      for k = 1, #xs do px[#px + 1], py[#py + 1] = xs[k], up[k] end
      for k = #xs, 1, -1 do px[#px + 1], py[#py + 1] = xs[k], lo[k] end
      c:polygon(px, py, se.color, se.band_alpha)
      for k = 1, #xs do -- the band's area counts for legend placement
        for y = up[k], math.min(lo[k], f.B), 10 do
          points[1][#points[1] + 1], points[2][#points[2] + 1] = xs[k], y
        end
      end
    end
    xs, up, lo = {}, {}, {}
  end
  for k = 1, #se.y do
    local x, y, b = se.x[k], se.y[k], se.band[k]
    local ok = util.finite(x) and util.finite(y) and util.finite(b) and not (s.logx and x <= 0) and not (s.logy and y <= 0)
    if ok then
      xs[#xs + 1] = f:px(x)
      up[#up + 1] = f:py(y + math.abs(b))
      local l = y - math.abs(b)
      lo[#lo + 1] = (s.logy and l <= 0) and f.B + 50 or f:py(l)
    else
      flush()
    end
  end
  flush()
end

function lines.draw(c, rect, s)
  local f = axes.layout(c, rect, {
    title = s.title, xlabel = s.xlabel, ylabel = s.ylabel, note = s.note,
    x = { scale = s.logx and "log" or "linear", lo = s.xlo, hi = s.xhi },
    y = { scale = s.logy and "log" or "linear", lo = s.ylo, hi = s.yhi },
  })
  if s.grid then f:grid(c) end
  c:clip(f.L, f.T, f.R, f.B)
  local points = { {}, {} }
  for _, se in ipairs(s.series) do
    if se.band then draw_band(c, f, s, se, points) end
  end
  local diverged = false
  for _, se in ipairs(s.series) do
    local xs, ys = {}, {}
    for k = 1, #se.y do xs[k], ys[k] = point(f, s, se.x[k], se.y[k]) end
    local lx, ly = xs, ys
    if #xs > 4 * (f.R - f.L) then lx, ly = thin(xs, ys) end
    if se.line then
      local dash = DASHES[se.line]
      if dash then
        local d = {}
        for k, v in ipairs(dash) do d[k] = v * math.max(se.width, 1.5) end
        dash = d
      end
      c:polyline(lx, ly, se.color, se.width, se.alpha, dash or nil)
    end
    if se.marker then
      for k = 1, #xs do
        if xs[k] == xs[k] then c:marker(xs[k], ys[k], se.marker, math.max(6, se.width * 3.5), se.color, se.alpha) end
      end
    end
    axes.sample_points(points, lx, ly)
    for _, k in ipairs(divergence_points(se)) do
      diverged = true
      if xs[k] == xs[k] then
        c:marker(xs[k], ys[k], "x", 14, 0xffffff)
        c:marker(xs[k], ys[k], "x", 11, se.color)
      end
    end
  end
  if s.empty then
    c:text("no finite values to show", (f.L + f.R) / 2, (f.T + f.B) / 2,
      { size = T.label, color = T.muted, halign = "center", valign = "middle" })
  end
  c:clip()
  f:decorate(c)
  if s.legend then
    local entries = {}
    for _, se in ipairs(s.series) do
      if se.label then
        entries[#entries + 1] = {
          label = se.label, color = se.color, width = se.line and se.width or nil, alpha = se.alpha,
          dash = se.line and DASHES[se.line] and (function()
            local d = {}
            for k, v in ipairs(DASHES[se.line]) do d[k] = v * math.max(se.width, 1.5) end
            return d
          end)() or nil,
          marker = se.marker, band = se.band ~= nil, band_alpha = se.band_alpha,
        }
      end
    end
    if diverged and #entries > 0 then
      entries[#entries + 1] = { label = "last finite value (then NaN/Inf)", color = T.text, marker = "x", marker_size = 11 }
    end
    axes.legend(c, f, entries, s.legend, points)
  end
end

--- Long format: series,x,y,band (band empty when the series has none).
function lines.csv(s)
  local out = { "series,x,y,band" }
  for i, se in ipairs(s.series) do
    local name = util.csv_field(se.label or ("series " .. i))
    for k = 1, #se.y do
      out[#out + 1] = table.concat({ name, util.csv_number(se.x[k]), util.csv_number(se.y[k]),
        se.band and util.csv_number(se.band[k]) or "" }, ",")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

return lines
