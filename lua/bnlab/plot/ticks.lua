-- Tick positions and labels: nice numbers in 1-2-5 steps on linear axes,
-- decades 10^k on log axes (with 2..9 minor ticks), and index labels of
-- heatmap rows/columns thinned so they never overlap. Labels use the text
-- markup of bn.render ("10^{-3}") and a real minus sign.
local ticks = {}

local MINUS = "\u{2212}"

local function log10(x) return math.log(x, 10) end

--- The smallest 1, 2 or 5 x 10^k that is >= raw.
function ticks.nice_step(raw)
  if not (raw > 0) or raw == math.huge then return 1 end
  local e = math.floor(log10(raw))
  local base = 10.0 ^ e
  for _, m in ipairs { 1, 2, 5, 10 } do
    if m * base >= raw * (1 - 1e-9) then return m * base end
  end
  return 10 * base
end

local function minus(s) return (s:gsub("^%-", MINUS)) end

--- Labels for ticks `vals` spaced `step` apart: fixed decimals, or 2.5e-4
-- style when the numbers are very large or very small.
function ticks.format_linear(vals, step)
  local big = 0
  for _, v in ipairs(vals) do big = math.max(big, math.abs(v)) end
  local out = {}
  if big >= 1e5 or (big > 0 and big < 1e-3) then
    local mant_digits = math.max(0, math.floor(log10(big) + 1e-9) - math.floor(log10(step) + 1e-9))
    for i, v in ipairs(vals) do
      if v == 0 then
        out[i] = "0"
      else
        local s = ("%." .. math.min(mant_digits, 6) .. "e"):format(v)
        local m, e = s:match("^(.-)e(.*)$")
        m = m:gsub("(%..-)0+$", "%1"):gsub("%.$", "")
        out[i] = minus(m) .. "e" .. minus(tostring(math.tointeger(tonumber(e))))
      end
    end
    return out
  end
  local decimals = math.max(0, -math.floor(log10(step) + 1e-9))
  for i, v in ipairs(vals) do
    local s = ("%." .. decimals .. "f"):format(v)
    if tonumber(s) == 0 then s = ("%." .. decimals .. "f"):format(0) end -- no "-0.0"
    out[i] = minus(s)
  end
  return out
end

--- About `target` nice ticks within [lo, hi]: values, labels.
function ticks.linear(lo, hi, target)
  target = math.max(2, target)
  local step = ticks.nice_step((hi - lo) / target)
  local first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
  local vals = {}
  for k = first, last do
    local v = k * step
    if math.abs(v) < step * 1e-9 then v = 0.0 end
    vals[#vals + 1] = v
  end
  return vals, ticks.format_linear(vals, step), {}
end

--- A number in a short form for a log axis inside one decade (0.002, 50, 3e-5).
local function short(v)
  local s = ("%.3g"):format(v)
  local m, e = s:match("^(.-)e(.*)$")
  if m then s = m .. "e" .. minus(tostring(math.tointeger(tonumber(e)))) end
  return minus(s)
end

--- Ticks of a log axis over [lo, hi] (lo > 0): values, labels, minor values.
function ticks.log(lo, hi, target)
  target = math.max(2, target)
  local a, b = log10(lo), log10(hi)
  local k0, k1 = math.ceil(a - 1e-9), math.floor(b + 1e-9)
  local vals, labels, minor = {}, {}, {}
  if k1 - k0 + 1 >= 2 then
    local n = k1 - k0 + 1
    local stride = 1
    for _, s in ipairs { 1, 2, 3, 4, 5, 10, 20, 25, 50, 100 } do
      stride = s
      if math.ceil(n / s) <= target then break end
    end
    for k = k0, k1 do
      if k % stride == 0 then
        vals[#vals + 1] = 10.0 ^ k
        labels[#labels + 1] = "10^{" .. minus(tostring(k)) .. "}"
      else
        minor[#minor + 1] = 10.0 ^ k
      end
    end
    if stride == 1 and (b - a) <= 10 then
      for k = math.floor(a), math.ceil(b) do
        for m = 2, 9 do
          local v = m * 10.0 ^ k
          if v >= lo * (1 - 1e-9) and v <= hi * (1 + 1e-9) then minor[#minor + 1] = v end
        end
      end
    end
    return vals, labels, minor
  end
  -- less than two decades: label 1-2-5 multiples (or all of 1..9) inside
  for _, ms in ipairs { { 1, 2, 5 }, { 1, 2, 3, 4, 5, 6, 7, 8, 9 } } do
    vals, labels = {}, {}
    for k = math.floor(a), math.ceil(b) do
      for _, m in ipairs(ms) do
        local v = m * 10.0 ^ k
        if v >= lo * (1 - 1e-9) and v <= hi * (1 + 1e-9) then
          vals[#vals + 1] = v
          labels[#labels + 1] = short(v)
        end
      end
    end
    if #vals >= 3 then break end
  end
  if #vals < 2 then return ticks.linear(lo, hi, target) end
  return vals, labels, {}
end

--- The smallest stride in 1, 2, 5, 10, 20, ... with `n` items of `size` px
-- each (plus `gap`) fitting in `length` px; `any` allows every integer.
function ticks.stride(n, size, gap, length, any)
  local need = (size + gap) * n / math.max(length, 1)
  if need <= 1 then return 1 end
  if any then return math.ceil(need) end
  return math.floor(ticks.nice_step(need) + 0.5)
end

return ticks
