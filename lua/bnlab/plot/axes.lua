-- Axes: where the plot area goes inside a panel (margins measured from the
-- title, the axis labels and the tick labels actually drawn), the data to
-- pixel transforms (linear or log), and drawing the frame, ticks, grid,
-- labels and legend. Used by the lines and hist kinds; heatmap uses the
-- frame and label parts with its own index axes.
local ticks = require "bnlab.plot.ticks"

local axes = {}

axes.theme = {
  title = 16, label = 13, tick = 11.5, legend = 11.5, suptitle = 18, note = 11,
  text = 0x262626, frame = 0x262626, muted = 0x595959, grid = 0xe8e8e8,
  tick_len = 5, pad = 12,
}
local T = axes.theme

--- Height (ascent + descent) and width of a text at a size.
function axes.measure(c, text, size)
  local w, asc, desc = c:text_size(text, size)
  return w, asc + desc, asc, desc
end

local function log10(x) return math.log(x, 10) end

-- ---- scales ------------------------------------------------------------------------

--- A continuous axis: {scale = "linear"|"log", lo, hi}; its ticks come later.
local function make_ticks(c, ax, target)
  if ax.scale == "log" then
    ax.ticks, ax.labels, ax.minor = ticks.log(ax.lo, ax.hi, target)
  else
    ax.ticks, ax.labels, ax.minor = ticks.linear(ax.lo, ax.hi, target)
  end
  local maxw, sumw = 0, 0
  ax.widths = {}
  for i, s in ipairs(ax.labels) do
    local w = axes.measure(c, s, T.tick)
    ax.widths[i] = w
    maxw = math.max(maxw, w)
    sumw = sumw + w
  end
  ax.maxw, ax.sumw = maxw, sumw
end

local function frac(ax, v)
  if ax.scale == "log" then
    if not (v > 0) then return -math.huge end
    return (log10(v) - log10(ax.lo)) / (log10(ax.hi) - log10(ax.lo))
  end
  return (v - ax.lo) / (ax.hi - ax.lo)
end

-- Pixel positions stay within a few canvas sizes of the plot: a diverged
-- value draws as a line leaving the plot, never as arithmetic trouble.
local function clamp_px(p)
  if p ~= p then return p end
  if p > 1e6 then return 1e6 end
  if p < -1e6 then return -1e6 end
  return p
end

local Frame = {}
Frame.__index = Frame

function Frame:px(v)
  return clamp_px(self.L + frac(self.x, v) * (self.R - self.L))
end

function Frame:py(v)
  return clamp_px(self.B - frac(self.y, v) * (self.B - self.T))
end

-- ---- layout -------------------------------------------------------------------------

--- Lays out a panel of a continuous x/y plot inside rect {x, y, w, h}.
-- spec: title, xlabel, ylabel, note (a line under the x label), x, y
-- ({scale, lo, hi}), right (px reserved at the right, e.g. for a legend).
function axes.layout(c, rect, spec)
  local x0, y0, w, h = rect[1], rect[2], rect[3], rect[4]
  local top = y0 + T.pad
  if spec.title then top = top + select(2, axes.measure(c, spec.title, T.title)) + 10 end
  local bottom = y0 + h - T.pad
  if spec.note then bottom = bottom - select(2, axes.measure(c, spec.note, T.note)) - 4 end
  if spec.xlabel then bottom = bottom - select(2, axes.measure(c, spec.xlabel, T.label)) - 6 end
  local tick_h = select(2, axes.measure(c, "0123456789", T.tick))
  bottom = bottom - T.tick_len - 4 - tick_h
  local f = setmetatable({ x = spec.x, y = spec.y, spec = spec, tick_h = tick_h }, Frame)
  make_ticks(c, f.y, math.max(2, (bottom - top) / 55))
  local left = x0 + T.pad + f.y.maxw + T.tick_len + 5
  if spec.ylabel then left = left + select(2, axes.measure(c, spec.ylabel, T.label)) + 8 end
  local right = x0 + w - T.pad - (spec.right or 0)
  -- x ticks: as many as fit without their labels touching
  local target = math.max(2, (right - left) / 90)
  for _ = 1, 8 do
    make_ticks(c, f.x, target)
    if f.x.sumw + 18 * #f.x.labels <= (right - left) * 0.9 or target <= 2 then break end
    target = math.max(2, target * 0.7)
  end
  -- the last x label may hang past the plot's right edge: keep it inside the panel
  local n = #f.x.ticks
  if n > 0 then
    local over = f.x.widths[n] / 2 - (x0 + w - 4 - right) - (right - left) * (1 - frac(f.x, f.x.ticks[n]))
    if over > 0 then right = right - over end
  end
  f.L, f.T, f.R, f.B = math.floor(left + 0.5), math.floor(top + 0.5), math.floor(right + 0.5), math.floor(bottom + 0.5)
  if f.R - f.L < 20 or f.B - f.T < 20 then
    error("the panel is too small for its labels (" .. math.floor(w) .. " x " .. math.floor(h) .. " px)", 0)
  end
  f.rect = rect
  return f
end

-- ---- drawing --------------------------------------------------------------------------

function Frame:grid(c)
  for _, v in ipairs(self.y.ticks) do
    local p = math.floor(self:py(v))
    if p > self.T and p < self.B - 1 then c:fill_rect(self.L, p, self.R, p + 1, T.grid) end
  end
  for _, v in ipairs(self.x.ticks) do
    local p = math.floor(self:px(v))
    if p > self.L and p < self.R - 1 then c:fill_rect(p, self.T, p + 1, self.B, T.grid) end
  end
end

--- The box around the plot area, 1 px outside it.
function axes.box(c, L, Tp, R, B)
  c:fill_rect(L - 1, Tp - 1, R + 1, Tp, T.frame)
  c:fill_rect(L - 1, B, R + 1, B + 1, T.frame)
  c:fill_rect(L - 1, Tp, L, B, T.frame)
  c:fill_rect(R, Tp, R + 1, B, T.frame)
end

--- x tick at pixel p (major: labelled) below the plot area.
function axes.xtick(c, p, B, label, minor)
  local x = math.floor(p)
  local len = minor and T.tick_len * 0.6 or T.tick_len
  c:fill_rect(x, B + 1, x + 1, B + 1 + len, T.frame)
  if label then
    c:text(label, x + 0.5, B + 1 + T.tick_len + 3, { size = T.tick, color = T.text, halign = "center", valign = "top" })
  end
end

function axes.ytick(c, p, L, label, minor, right_side)
  local y = math.floor(p)
  local len = minor and T.tick_len * 0.6 or T.tick_len
  if right_side then
    c:fill_rect(L, y, L + len, y + 1, T.frame)
    if label then
      c:text(label, L + T.tick_len + 4, y + 0.5, { size = T.tick, color = T.text, halign = "left", valign = "middle" })
    end
  else
    c:fill_rect(L - 1 - len, y, L - 1, y + 1, T.frame)
    if label then
      c:text(label, L - 1 - T.tick_len - 4, y + 0.5, { size = T.tick, color = T.text, halign = "right", valign = "middle" })
    end
  end
end

--- Title above, x label below, y label rotated at the left of rect.
function axes.labels(c, rect, L, Tp, R, B, spec)
  local x0, y0, w, h = rect[1], rect[2], rect[3], rect[4]
  if spec.title then
    c:text(spec.title, (L + R) / 2, y0 + T.pad, { size = T.title, color = T.text, halign = "center", valign = "top" })
  end
  local bottom = y0 + h - T.pad
  if spec.note then
    local _, nh = axes.measure(c, spec.note, T.note)
    c:text(spec.note, R, bottom - nh, { size = T.note, color = T.muted, halign = "right", valign = "top" })
    bottom = bottom - nh - 4
  end
  if spec.xlabel then
    local _, lh = axes.measure(c, spec.xlabel, T.label)
    c:text(spec.xlabel, (L + R) / 2, bottom - lh, { size = T.label, color = T.text, halign = "center", valign = "top" })
  end
  if spec.ylabel then
    c:text(spec.ylabel, x0 + T.pad, (Tp + B) / 2, { size = T.label, color = T.text, halign = "center", valign = "top", rotate = 90 })
  end
end

function Frame:decorate(c)
  axes.box(c, self.L, self.T, self.R, self.B)
  for _, v in ipairs(self.x.minor) do
    local p = self:px(v)
    if p >= self.L - 0.5 and p <= self.R + 0.5 then axes.xtick(c, p, self.B, nil, true) end
  end
  for _, v in ipairs(self.y.minor) do
    local p = self:py(v)
    if p >= self.T - 0.5 and p <= self.B + 0.5 then axes.ytick(c, p, self.L, nil, true) end
  end
  for i, v in ipairs(self.x.ticks) do axes.xtick(c, self:px(v), self.B, self.x.labels[i]) end
  for i, v in ipairs(self.y.ticks) do axes.ytick(c, self:py(v), self.L, self.y.labels[i]) end
  axes.labels(c, self.rect, self.L, self.T, self.R, self.B, self.spec)
end

-- ---- legend -----------------------------------------------------------------------------

local LOCATIONS = {
  "upper right", "upper left", "lower left", "lower right", "center right",
  "center left", "lower center", "upper center", "center",
}
axes.legend_locations = LOCATIONS

local function legend_box(loc, L, Tp, R, B, w, h)
  local m = 8
  local x = loc:find("left") and L + m or loc:find("right") and R - m - w or (L + R - w) / 2
  local y = loc:find("upper") and Tp + m or loc:find("lower") and B - m - h or (Tp + B - h) / 2
  return math.floor(x + 0.5), math.floor(y + 0.5)
end

--- Draws a legend. entries: {label, color, dash, marker, width, band,
-- patch (a filled square), alpha}. loc: one of LOCATIONS or "best";
-- points: {xs, ys} pixel samples of the data, for "best" (the place that
-- covers the fewest of them).
function axes.legend(c, f, entries, loc, points)
  if #entries == 0 then return end
  local size = T.legend
  local row = math.floor(size * 1.55 + 0.5)
  local sample = 30
  local maxw = 0
  for _, e in ipairs(entries) do maxw = math.max(maxw, (axes.measure(c, e.label, size))) end
  local w = math.ceil(10 + sample + 8 + maxw + 10)
  local h = math.ceil(6 + row * #entries + 4)
  local x, y
  if loc == "best" then
    local best, best_score = nil, math.huge
    for _, cand in ipairs(LOCATIONS) do
      local bx, by = legend_box(cand, f.L, f.T, f.R, f.B, w, h)
      local score = 0
      local xs, ys = points[1], points[2]
      for i = 1, #xs do
        local px, py = xs[i], ys[i]
        if px >= bx - 2 and px <= bx + w + 2 and py >= by - 2 and py <= by + h + 2 then score = score + 1 end
      end
      if score < best_score then best, best_score = cand, score end
      if score == 0 then break end
    end
    loc = best
  end
  x, y = legend_box(loc, f.L, f.T, f.R, f.B, w, h)
  c:fill_rect(x, y, x + w, y + h, 0xffffff, 0.85)
  c:fill_rect(x, y, x + w, y + 1, 0xcccccc)
  c:fill_rect(x, y + h - 1, x + w, y + h, 0xcccccc)
  c:fill_rect(x, y, x + 1, y + h, 0xcccccc)
  c:fill_rect(x + w - 1, y, x + w, y + h, 0xcccccc)
  for i, e in ipairs(entries) do
    local cy = y + 6 + row * (i - 1) + row / 2
    local sx0, sx1 = x + 10, x + 10 + sample
    if e.band then c:fill_rect(sx0, cy - 6, sx1, cy + 6, e.color, e.band_alpha or 0.2) end
    if e.patch then
      c:fill_rect(sx0 + 4, cy - 6, sx1 - 4, cy + 6, e.color, e.alpha or 1)
    elseif e.width then
      c:polyline({ sx0, sx1 }, { cy, cy }, e.color, e.width, e.alpha or 1, e.dash)
    end
    if e.marker then c:marker((sx0 + sx1) / 2, cy, e.marker, e.marker_size or 7, e.color) end
    c:text(e.label, sx1 + 8, cy, { size = size, color = T.text, halign = "left", valign = "middle" })
  end
end

--- The pixel samples along a polyline (every few px) for legend placement.
function axes.sample_points(points, xs, ys)
  local ox, oy = points[1], points[2]
  for i = 1, #xs do
    local x, y = xs[i], ys[i]
    if x == x and y == y then
      ox[#ox + 1], oy[#oy + 1] = x, y
      local nx, ny = xs[i + 1], ys[i + 1]
      if nx and nx == nx and ny == ny then
        local d = math.sqrt((nx - x) ^ 2 + (ny - y) ^ 2)
        local k = math.min(200, math.floor(d / 6))
        for j = 1, k - 1 do
          ox[#ox + 1], oy[#oy + 1] = x + (nx - x) * j / k, y + (ny - y) * j / k
        end
      end
    end
  end
end

return axes
