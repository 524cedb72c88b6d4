-- The heatmap kind: a 2-D tensor as coloured cells (row 1 at the top), index
-- or user tick labels thinned to fit, an optional colour bar with its own
-- ticks (log decades on a log scale), extension triangles when values lie
-- beyond the scale (±Inf included), a NaN swatch when NaN cells exist, and
-- marked cells (an X or an outline, e.g. diverged entries).
local core = require "bnlab.core"
local util = require "bnlab.plot.util"
local axes = require "bnlab.plot.axes"
local ticks = require "bnlab.plot.ticks"

local heatmap = {}
local T = axes.theme

heatmap.options = util.set {
  "title", "xlabel", "ylabel", "xticks", "yticks", "cmap", "log", "center", "vmin", "vmax",
  "colorbar", "clabel", "mark", "mark_style", "mark_color", "mark_label", "nan_color", "aspect",
}

local function log10(x) return math.log(x, 10) end

-- A tick label for a number: %g without exponent padding, real minus.
local function fmt(v)
  local s = ("%.4g"):format(v)
  local m, e = s:match("^(.-)e(.*)$")
  if m then s = m .. "e" .. tostring(math.tointeger(tonumber(e))):gsub("^%-", "\u{2212}") end
  return (s:gsub("^%-", "\u{2212}"))
end

-- Labels for a list of numbers: positive ones spanning three decades or
-- more (a step-size grid) read best as powers of ten, 10^{-3}, with the
-- values between them as 3.2e-3.
local function fmt_all(vals)
  local lo, hi = math.huge, 0
  for _, v in ipairs(vals) do
    if not (v > 0 and v < math.huge) then lo = -1 break end
    lo, hi = math.min(lo, v), math.max(hi, v)
  end
  local out = {}
  if lo > 0 and hi / lo >= 1000 then
    for i, v in ipairs(vals) do
      local k = math.floor(math.log(v, 10) + 0.5)
      if math.abs(v / 10.0 ^ k - 1) < 1e-6 then out[i] = "10^{" .. tostring(k):gsub("^%-", "\u{2212}") .. "}"
      else
        local m, e = ("%.1e"):format(v):match("^(.-)e(.*)$")
        out[i] = m .. "e" .. tostring(math.tointeger(tonumber(e))):gsub("^%-", "\u{2212}")
      end
    end
    return out
  end
  for i, v in ipairs(vals) do out[i] = fmt(v) end
  return out
end

local function check_labels(fn, opts, name, n, what, where)
  local v = opts[name]
  if v == nil or v == false then return v end
  if type(v) ~= "table" or core.is_tensor(v) then
    if core.is_tensor(v) and v:dim() == 1 and not v:is_closed() then v = v:totable()
    else
      util.fail(fn, "%s expected a table of %d labels (one per %s) or false, got %s",
        where and (where .. "." .. name) or ("option '" .. name .. "'"), n, what, util.describe(v))
    end
  end
  if #v ~= n then
    util.fail(fn, "%s expected %d labels (one per %s), got %d", where and (where .. "." .. name) or ("option '" .. name .. "'"),
      n, what, #v)
  end
  local out, raw, nums = {}, {}, {}
  for i = 1, n do
    local x = v[i]
    if type(x) == "number" then raw[i], nums[#nums + 1] = util.csv_number(x), x
    elseif type(x) == "string" then out[i], raw[i] = x, x
    else
      util.fail(fn, "%s[%d] expected a string or a number, got %s", where and (where .. "." .. name) or ("option '" .. name .. "'"),
        i, util.describe(x))
    end
  end
  if #nums > 0 then
    local labels, k = fmt_all(nums), 0
    for i = 1, n do
      if out[i] == nil then k = k + 1 out[i] = labels[k] end
    end
  end
  return out, raw
end

-- Marked cells as a list of {row, col}: from pairs or from a mask tensor.
local function check_marks(fn, v, rows, cols, where)
  local name = where and (where .. ".mark") or "option 'mark'"
  if v == nil then return {} end
  local out = {}
  if core.is_tensor(v) then
    if v:is_closed() or v:dim() ~= 2 or v:size(1) ~= rows or v:size(2) ~= cols then
      util.fail(fn, "%s expected a mask tensor of shape [%d x %d], got %s", name, rows, cols, util.describe(v))
    end
    local t = v:totable()
    for i = 1, rows do
      for j = 1, cols do
        local x = t[i][j]
        if x ~= 0 then out[#out + 1] = { i, j } end -- NaN counts as marked: it is not "no"
      end
    end
    return out
  end
  if type(v) ~= "table" then
    util.fail(fn, "%s expected a list of {row, col} or a mask tensor, got %s", name, util.describe(v))
  end
  for k, p in ipairs(v) do
    if type(p) ~= "table" or #p ~= 2 or math.type(p[1]) == nil or math.type(p[2]) == nil then
      util.fail(fn, "%s[%d] expected {row, col}, got %s", name, k, util.describe(p))
    end
    local i, j = math.tointeger(p[1]), math.tointeger(p[2])
    if not i or not j or i < 1 or i > rows or j < 1 or j > cols then
      util.fail(fn, "%s[%d] = {%s, %s} is outside the %d x %d matrix", name, k, tostring(p[1]), tostring(p[2]), rows, cols)
    end
    out[#out + 1] = { i, j }
  end
  return out
end

--- Checks the matrix and the options; returns the spec to draw.
function heatmap.prepare(fn, m, opts, where, mwhere)
  if not core.is_tensor(m) or m:is_closed() or m:dim() ~= 2 then
    local got = core.is_tensor(m) and (m:is_closed() and "a closed tensor" or util.shape_str(m)) or util.describe(m)
    util.fail(fn, "%s expected a 2-D tensor, got %s", mwhere or "argument #1", got)
  end
  local rows, cols = m:size(1), m:size(2)
  if rows < 1 or cols < 1 then
    util.fail(fn, "%s expected a non-empty matrix, got %s", mwhere or "argument #1", util.shape_str(m))
  end
  local s = { kind = "heatmap", m = m, rows = rows, cols = cols }
  s.title = util.label(fn, opts, "title", where)
  s.xlabel = util.label(fn, opts, "xlabel", where)
  s.ylabel = util.label(fn, opts, "ylabel", where)
  s.clabel = util.label(fn, opts, "clabel", where)
  s.xticks, s.xticks_csv = check_labels(fn, opts, "xticks", cols, "column", where)
  s.yticks, s.yticks_csv = check_labels(fn, opts, "yticks", rows, "row", where)
  s.log = util.bool(fn, opts, "log", false, where)
  s.center = util.num(fn, opts, "center", nil, where, util.finite, "a finite number")
  if s.log and s.center and not (s.center > 0) then
    util.fail(fn, "%s expected a positive number with log = true, got %s",
      where and (where .. ".center") or "option 'center'", util.describe(s.center))
  end
  s.cmap = util.str(fn, opts, "cmap", s.center and "coolwarm" or "viridis", where)
  if not pcall(core.render.colormap, s.cmap, 0) then
    util.fail(fn, "%s expected a colour map name (%s), got %s", where and (where .. ".cmap") or "option 'cmap'",
      core.render.colormaps(), util.describe(s.cmap))
  end
  local vcheck = s.log and function(v) return v > 0 and v < math.huge end or util.finite
  local vexp = s.log and "a positive finite number (log = true)" or "a finite number"
  s.vmin = util.num(fn, opts, "vmin", nil, where, vcheck, vexp)
  s.vmax = util.num(fn, opts, "vmax", nil, where, vcheck, vexp)
  if s.vmin and s.vmax and not (s.vmin < s.vmax) then
    util.fail(fn, "%s: vmin (%g) expected < vmax (%g)", where or "options", s.vmin, s.vmax)
  end
  s.colorbar = util.bool(fn, opts, "colorbar", true, where)
  s.marks = check_marks(fn, opts.mark, rows, cols, where)
  s.mark_style = util.choice(fn, opts, "mark_style", { "x", "box" }, "x", where)
  s.mark_color = opts.mark_color ~= nil and opts.mark_color ~= "auto"
      and util.color(fn, opts.mark_color, where and (where .. ".mark_color") or "option 'mark_color'") or nil
  s.mark_label = util.label(fn, opts, "mark_label", where)
  s.nan_color = opts.nan_color ~= nil
      and util.color(fn, opts.nan_color, where and (where .. ".nan_color") or "option 'nan_color'") or 0xd9d9d9
  s.aspect = util.choice(fn, opts, "aspect", { "auto", "equal" }, "auto", where)

  -- the colour scale
  local r = core.render.range(m, s.log)
  s.stats = r
  local lo, hi = r.lo, r.hi
  if not lo then lo, hi = s.log and 1 or 0, s.log and 10 or 1 end
  local tr = s.log and log10 or function(v) return v end
  local inv = s.log and function(v) return 10.0 ^ v end or function(v) return v end
  if s.center and not (s.vmin and s.vmax) then
    local c0 = tr(s.center)
    local half = math.max(math.abs(tr(hi) - c0), math.abs(c0 - tr(lo)))
    if s.vmin then half = math.max(half, math.abs(c0 - tr(s.vmin))) end
    if s.vmax then half = math.max(half, math.abs(tr(s.vmax) - c0)) end
    if half == 0 then half = s.log and 1 or math.max(math.abs(c0) * 0.1, 1) end
    s.vmin, s.vmax = inv(c0 - half), inv(c0 + half)
  end
  s.vmin = s.vmin or math.min(lo, s.vmax or lo)
  s.vmax = s.vmax or math.max(hi, s.vmin)
  if not (s.vmin < s.vmax) then
    if s.log then s.vmin, s.vmax = s.vmin / 10, s.vmax * 10
    else
      local d = s.vmin ~= 0 and math.abs(s.vmin) * 0.1 or 1
      s.vmin, s.vmax = s.vmin - d, s.vmax + d
    end
  end
  s.above = r.posinf > 0 or (r.hi and r.hi > s.vmax)
  s.below = r.neginf > 0 or (r.lo and r.lo < s.vmin)
  s.has_nan = r.nan > 0 or (s.log and r.nonpositive > 0)
  s.nan_label = (r.nan > 0 and s.log and r.nonpositive > 0) and "NaN, \u{2264}0" or r.nan > 0 and "NaN" or "\u{2264}0"
  return s
end

-- The colour a value gets (for picking a mark colour that stands out).
local function color_of(s, v)
  local t
  if v ~= v or (s.log and not (v > 0)) then return s.nan_color end
  if s.log then t = (log10(v) - log10(s.vmin)) / (log10(s.vmax) - log10(s.vmin))
  else t = (v - s.vmin) / (s.vmax - s.vmin) end
  if t ~= t then t = v > 0 and 1 or 0 end
  local r, g, b = core.render.colormap(s.cmap, math.max(0, math.min(1, t)))
  return (r << 16) | (g << 8) | b
end

-- Which labels an index axis shows: every `stride`-th, starting at 1 for
-- user labels, at multiples of the stride for 1..n (plus 1 when there is room).
local function shown(n, stride, user, cell, need)
  local out = {}
  if stride <= 1 then
    for i = 1, n do out[#out + 1] = i end
    return out
  end
  if user then
    for i = 1, n, stride do out[#out + 1] = i end
    return out
  end
  if (stride - 1) * cell >= need then out[1] = 1 end
  for i = stride, n, stride do out[#out + 1] = i end
  return out
end

local function draw_marks(c, s, L, Tp, cw, ch)
  if #s.marks == 0 then return end
  local vals = #s.marks > 0 and s.m:totable() or nil
  local side = math.min(cw, ch)
  local width = math.max(1.25, math.min(3, side * 0.1))
  for _, p in ipairs(s.marks) do
    local i, j = p[1], p[2]
    local x0, y0 = L + (j - 1) * cw, Tp + (i - 1) * ch
    local color = s.mark_color
    if not color then color = util.luminance(color_of(s, vals[i][j])) > 0.5 and 0x000000 or 0xffffff end
    if s.mark_style == "box" then
      local inset = width / 2 + 0.5
      c:polyline({ x0 + inset, x0 + cw - inset, x0 + cw - inset, x0 + inset, x0 + inset },
        { y0 + inset, y0 + inset, y0 + ch - inset, y0 + ch - inset, y0 + inset }, color, width)
    else
      local q = math.max(1.5, side * 0.3)
      local cx, cy = x0 + cw / 2, y0 + ch / 2
      c:polyline({ cx - q, cx + q, 0 / 0, cx - q, cx + q }, { cy - q, cy + q, 0 / 0, cy + q, cy - q }, color, width)
    end
  end
end

--- Draws the heatmap panel into rect {x, y, w, h}.
function heatmap.draw(c, rect, s)
  local x0, y0, w, h = rect[1], rect[2], rect[3], rect[4]
  local tick_h = select(2, axes.measure(c, "0123456789", T.tick))
  local top = y0 + T.pad
  if s.title then top = top + select(2, axes.measure(c, s.title, T.title)) + 10 end
  local note = s.mark_label and #s.marks > 0
  local note_w = note and (axes.measure(c, s.mark_label, T.note)) + 18 or 0
  local bottom = y0 + h - T.pad
  -- the note shares the x label's line when both fit side by side (checked below)
  local note_line = note and not s.xlabel
  if note and s.xlabel then
    -- the x label is centred on the plot, the note right-aligned to it; the plot is the
    -- panel less the row labels and the colour bar (estimated: the layout comes later)
    local xw = axes.measure(c, s.xlabel, T.label)
    local plot_w = w - 2 * T.pad - (s.colorbar and 110 or 0) - 40
    note_line = plot_w / 2 < xw / 2 + note_w + 20
  end
  if note_line then bottom = bottom - select(2, axes.measure(c, s.mark_label, T.note)) - 4 end
  if s.xlabel then bottom = bottom - select(2, axes.measure(c, s.xlabel, T.label)) - 6 end
  if s.xticks ~= false then bottom = bottom - T.tick_len - 4 - tick_h end
  if s.has_nan and s.colorbar then bottom = math.min(bottom, y0 + h - T.pad - 22 - (note and 16 or 0)) end

  -- the colour bar's scale and the room it takes at the right
  local cb = nil
  local right = x0 + w - T.pad
  if s.colorbar then
    local ax = { scale = s.log and "log" or "linear", lo = s.vmin, hi = s.vmax }
    local bar_h = bottom - top
    if ax.scale == "log" then ax.ticks, ax.labels = ticks.log(ax.lo, ax.hi, math.max(2, bar_h / 60))
    else ax.ticks, ax.labels = ticks.linear(ax.lo, ax.hi, math.max(2, bar_h / 60)) end
    local maxw = 0
    for _, lab in ipairs(ax.labels) do maxw = math.max(maxw, (axes.measure(c, lab, T.tick))) end
    if s.has_nan then maxw = math.max(maxw, (axes.measure(c, s.nan_label, T.tick)) - 3) end
    local room = 14 + 16 + T.tick_len + 4 + maxw
    if s.clabel then room = room + 8 + select(2, axes.measure(c, s.clabel, T.label)) end
    right = right - room
    cb = { ax = ax }
  end

  -- row labels (their width sets the left margin)
  local ph = bottom - top
  local ylabels = s.yticks or {}
  if s.yticks == nil then for i = 1, s.rows do ylabels[i] = tostring(i) end end
  local yshow = {}
  if s.yticks ~= false then
    local stride = ticks.stride(s.rows, tick_h, 3, ph, s.yticks ~= nil)
    yshow = shown(s.rows, stride, s.yticks ~= nil, ph / s.rows, tick_h + 3)
  end
  local ymaxw = 0
  for _, i in ipairs(yshow) do ymaxw = math.max(ymaxw, (axes.measure(c, ylabels[i], T.tick))) end
  local left = x0 + T.pad + (s.yticks ~= false and (ymaxw + T.tick_len + 5) or 0)
  if s.ylabel then left = left + select(2, axes.measure(c, s.ylabel, T.label)) + 8 end

  -- column labels
  local pw = right - left
  local xlabels = s.xticks or {}
  if s.xticks == nil then for j = 1, s.cols do xlabels[j] = tostring(j) end end
  local xshow = {}
  if s.xticks ~= false then
    local xmaxw = 0
    for j = 1, s.cols do xmaxw = math.max(xmaxw, (axes.measure(c, xlabels[j], T.tick))) end
    local stride = ticks.stride(s.cols, xmaxw, 10, pw, s.xticks ~= nil)
    xshow = shown(s.cols, stride, s.xticks ~= nil, pw / s.cols, xmaxw + 10)
  end

  local L, Tp, R, B = math.floor(left + 0.5), math.floor(top + 0.5), math.floor(right + 0.5), math.floor(bottom + 0.5)
  if R - L < 10 or B - Tp < 10 then
    error("the panel is too small for its labels (" .. math.floor(w) .. " x " .. math.floor(h) .. " px)", 0)
  end
  if s.aspect == "equal" then
    local cell = math.min((R - L) / s.cols, (B - Tp) / s.rows)
    local nw, nh = cell * s.cols, cell * s.rows
    L = math.floor(L + ((R - L) - nw) / 2 + 0.5)
    R = math.floor(L + nw + 0.5)
    Tp = math.floor(Tp + ((B - Tp) - nh) / 2 + 0.5)
    B = math.floor(Tp + nh + 0.5)
  end
  local cw, ch = (R - L) / s.cols, (B - Tp) / s.rows

  c:heatmap(s.m, L, Tp, R, B, { cmap = s.cmap, vmin = s.vmin, vmax = s.vmax, log = s.log, nan_color = s.nan_color })
  c:clip(L, Tp, R, B)
  draw_marks(c, s, L, Tp, cw, ch)
  c:clip()
  axes.box(c, L, Tp, R, B)
  for _, j in ipairs(xshow) do axes.xtick(c, L + (j - 0.5) * cw, B, xlabels[j]) end
  for _, i in ipairs(yshow) do axes.ytick(c, Tp + (i - 0.5) * ch, L, ylabels[i]) end
  local label_rect = rect
  if note and note_line and s.xlabel then
    -- the note has the bottom line to itself: the x label goes on the line above it
    label_rect = { x0, y0, w, h - select(2, axes.measure(c, s.mark_label, T.note)) - 4 }
  end
  axes.labels(c, label_rect, L, Tp, R, B, { title = s.title, xlabel = s.xlabel, ylabel = s.ylabel })
  if note then
    local q = 4
    local nh = select(2, axes.measure(c, s.mark_label, T.note))
    local ny = y0 + h - T.pad - nh / 2
    if not note_line then ny = y0 + h - T.pad - select(2, axes.measure(c, s.xlabel, T.label)) / 2 end
    local tw = axes.measure(c, s.mark_label, T.note)
    local mx = R - tw - 14
    c:polyline({ mx - q, mx + q, 0 / 0, mx - q, mx + q }, { ny - q, ny + q, 0 / 0, ny + q, ny - q }, T.text, 1.5)
    c:text(s.mark_label, R, ny, { size = T.note, color = T.muted, halign = "right", valign = "middle" })
  end

  if cb then
    local bx0 = R + 14
    local bx1 = bx0 + 16
    local bt, bb = Tp, B
    local tri = 11
    if s.above then bt = bt + tri + 2 end
    if s.below then bb = bb - tri - 2 end
    c:colorbar(bx0, bt, bx1, bb, s.cmap)
    axes.box(c, bx0, bt, bx1, bb)
    if s.above then
      local r, g, b = core.render.colormap(s.cmap, 1)
      c:polygon({ bx0 - 0.5, bx1 + 0.5, (bx0 + bx1) / 2 }, { bt - 1, bt - 1, bt - 1 - tri }, (r << 16) | (g << 8) | b)
      c:polyline({ bx0 - 0.5, (bx0 + bx1) / 2, bx1 + 0.5 }, { bt - 1, bt - 1 - tri, bt - 1 }, T.frame, 1)
    end
    if s.below then
      local r, g, b = core.render.colormap(s.cmap, 0)
      c:polygon({ bx0 - 0.5, bx1 + 0.5, (bx0 + bx1) / 2 }, { bb + 1, bb + 1, bb + 1 + tri }, (r << 16) | (g << 8) | b)
      c:polyline({ bx0 - 0.5, (bx0 + bx1) / 2, bx1 + 0.5 }, { bb + 1, bb + 1 + tri, bb + 1 }, T.frame, 1)
    end
    local ax = cb.ax
    local function pos(v)
      local t = ax.scale == "log" and (log10(v) - log10(ax.lo)) / (log10(ax.hi) - log10(ax.lo))
          or (v - ax.lo) / (ax.hi - ax.lo)
      return bb - t * (bb - bt)
    end
    local maxw = 0
    for i, v in ipairs(ax.ticks) do
      axes.ytick(c, pos(v), bx1, ax.labels[i], false, true)
      maxw = math.max(maxw, (axes.measure(c, ax.labels[i], T.tick)))
    end
    if s.clabel then
      c:text(s.clabel, bx1 + T.tick_len + 4 + maxw + 8, (bt + bb) / 2,
        { size = T.label, color = T.text, halign = "center", valign = "top", rotate = 90 })
    end
    if s.has_nan then
      local sy = B + 8
      c:fill_rect(bx0, sy, bx1, sy + 12, s.nan_color)
      axes.box(c, bx0, sy, bx1, sy + 12)
      c:text(s.nan_label, bx1 + 6, sy + 6, { size = T.tick, color = T.text, halign = "left", valign = "middle" })
    end
  end
end

--- The numbers shown, as a CSV matrix with row and column labels.
function heatmap.csv(s)
  local lines = {}
  local head = { util.csv_field((s.ylabel or "row") .. "/" .. (s.xlabel or "col")) }
  for j = 1, s.cols do head[j + 1] = util.csv_field(s.xticks_csv and s.xticks_csv[j] or j) end
  lines[1] = table.concat(head, ",")
  local t = s.m:totable()
  for i = 1, s.rows do
    local row = { util.csv_field(s.yticks_csv and s.yticks_csv[i] or i) }
    for j = 1, s.cols do row[j + 1] = util.csv_number(t[i][j]) end
    lines[i + 1] = table.concat(row, ",")
  end
  return table.concat(lines, "\n") .. "\n"
end

return heatmap
