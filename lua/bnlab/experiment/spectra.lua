-- bnlab.experiment.spectra: condition numbers of long matrix products,
-- measured past the float32 rounding floor (E8, experiments/random_matrices.lua;
-- docs/experiments/random_matrices.md#the-library-piece-bnlabexperimentspectra).
--
--   local S = require "bnlab.experiment.spectra"
--   local r = S.product_conds({ W1, W2, W3 })   -- r[k] = {log10_smax, log10_smin, log10_cond, cond} of W_k ... W_1
--   local g = S.gaussian_chain({ {16, 16}, {32, 16} })   -- Gaussian factors of these shapes, N(0, 1/in)
--
-- Why: σmin of a product of k Gaussian N x N factors is about N^{-(k+1)/2}, so
-- bn.linalg.cond of the float32 product saturates near 1e6-1e7 (sgesdd's
-- singular values are accurate to ~1e-7·σmax) after a few factors. Here the
-- product is kept as P_k = Q_k T_k (Q_k orthonormal columns, T_k r x r upper
-- triangular, r = the first factor's column count) by a QR step per factor,
--   M_k Q_{k-1} = Q_k R_k,   T_k = R_k T_{k-1},   T_k^{-1} = T_{k-1}^{-1} R_k^{-1},
-- all in double precision (Lua numbers), each matrix rescaled to max |entry| 1
-- after every step with its log10 scale kept aside. Then
--   σmax(P_k) = σmax(T_k),  σmin(P_k) = 1 / σmax(T_k^{-1}),
-- and a largest singular value is what any SVD gets to full relative
-- accuracy (taken from bn.linalg.svdvals of the rescaled matrix, relative
-- error ~1e-7). The QR is modified Gram-Schmidt applied twice (orthogonal to
-- double rounding). Requires every factor to have at least r rows (the
-- product keeps rank r): square factors, or a ResNet's main path whose
-- widths only grow. Cost per factor: about 4·rows·r² + r³ flops in Lua.
local bn = require "bnlab"

local S = {}

local function fail(msg) error("bnlab.experiment.spectra: " .. msg, 3) end

-- Dense double matrices: { r = rows, c = cols, [ (i-1)*c + j ] = value }.
local function from_tensor(t)
  if not bn.is_tensor(t) or t:dim() ~= 2 then fail("expected 2-D tensors") end
  local r, c = t:size(1), t:size(2)
  local m = t:contiguous():reshape(-1):totable()
  m.r, m.c = r, c
  return m
end

local function to_tensor(m)
  local flat = {}
  for i = 1, m.r * m.c do flat[i] = m[i] end
  return bn.tensor(flat):reshape(m.r, m.c)
end

local function matmul(a, b)
  local r, n, c = a.r, a.c, b.c
  local out = { r = r, c = c }
  for i = 1, r do
    local ai = (i - 1) * n
    for j = 1, c do out[(i - 1) * c + j] = 0 end
    for k = 1, n do
      local v = a[ai + k]
      if v ~= 0 then
        local bk, oi = (k - 1) * c, (i - 1) * c
        for j = 1, c do out[oi + j] = out[oi + j] + v * b[bk + j] end
      end
    end
  end
  return out
end

-- A (r x c, r >= c) = Q R: Q r x c with orthonormal columns, R c x c upper triangular.
local function qr(a)
  local r, c = a.r, a.c
  local cols = {}
  for j = 1, c do
    local v = {}
    for i = 1, r do v[i] = a[(i - 1) * c + j] end
    cols[j] = v
  end
  local R = { r = c, c = c }
  for i = 1, c * c do R[i] = 0 end
  for j = 1, c do
    local v = cols[j]
    for _ = 1, 2 do
      for i = 1, j - 1 do
        local q, d = cols[i], 0
        for k = 1, r do d = d + q[k] * v[k] end
        R[(i - 1) * c + j] = R[(i - 1) * c + j] + d
        for k = 1, r do v[k] = v[k] - d * q[k] end
      end
    end
    local norm = 0
    for k = 1, r do norm = norm + v[k] * v[k] end
    norm = math.sqrt(norm)
    R[(j - 1) * c + j] = norm
    if norm > 0 then for k = 1, r do v[k] = v[k] / norm end end
  end
  local Q = { r = r, c = c }
  for i = 1, r do for j = 1, c do Q[(i - 1) * c + j] = cols[j][i] end end
  return Q, R
end

-- Inverse of an upper triangular n x n matrix by back substitution.
local function triu_inverse(R)
  local n = R.r
  local X = { r = n, c = n }
  for i = 1, n * n do X[i] = 0 end
  for j = 1, n do
    X[(j - 1) * n + j] = 1 / R[(j - 1) * n + j]
    for i = j - 1, 1, -1 do
      local s = 0
      for k = i + 1, j do s = s + R[(i - 1) * n + k] * X[(k - 1) * n + j] end
      X[(i - 1) * n + j] = -s / R[(i - 1) * n + i]
    end
  end
  return X
end

-- Rescales m in place to max |entry| 1; returns log10 of the factor taken out.
local function normalize(m)
  local mx = 0
  for i = 1, m.r * m.c do local v = math.abs(m[i]); if v > mx then mx = v end end
  if mx == 0 or mx ~= mx or mx == math.huge then return 0 end
  for i = 1, m.r * m.c do m[i] = m[i] / mx end
  return math.log(mx, 10)
end

local function log10_smax(m)
  return math.log(bn.linalg.svdvals(to_tensor(m)):totable()[1], 10)
end

--- product_conds(mats) -> list, entry k = { depth = k, log10_smax, log10_smin, log10_cond, cond, rows, rank }
-- (rank = the columns of M_1) for P_k = M_k ... M_1. mats: 2-D tensors (or {matrix = t} as bn.linalg.layer_matrices gives),
-- each with as many columns as the previous one has rows, and at least as many rows as M_1 has
-- columns. A singular factor gives log10_smin = -inf and cond = inf; NaN/Inf entries give NaN.
function S.product_conds(mats)
  if type(mats) ~= "table" or #mats == 0 then fail("product_conds: expected a non-empty list of matrices") end
  local out, Q, T, Ti, sT, sTi = {}, nil, nil, nil, 0, 0
  for k, e in ipairs(mats) do
    local m = from_tensor(bn.is_tensor(e) and e or e.matrix)
    local bad = false
    for i = 1, m.r * m.c do if m[i] ~= m[i] or math.abs(m[i]) == math.huge then bad = true end end
    local r0 = T and T.r or m.c
    if Q and m.c ~= Q.r then fail(("product_conds: matrix %d has %d columns, the product so far %d rows"):format(k, m.c, Q.r)) end
    if m.r < r0 then fail(("product_conds: matrix %d has %d rows, fewer than the product's rank %d"):format(k, m.r, r0)) end
    local rec = { depth = k, rows = m.r, rank = r0 }
    if bad or (T and T.bad) then
      T = T or {}; T.bad = true
      rec.log10_smax, rec.log10_smin, rec.log10_cond, rec.cond = 0 / 0, 0 / 0, 0 / 0, 0 / 0
    else
      local R
      Q, R = qr(Q and matmul(m, Q) or m)
      local singular = false
      for i = 1, R.r do if R[(i - 1) * R.c + i] == 0 then singular = true end end
      local Ri = not singular and triu_inverse(R) or nil
      T = T and matmul(R, T) or R
      sT = sT + normalize(T)
      rec.log10_smax = log10_smax(T) + sT
      if singular or (Ti and Ti.singular) then
        Ti = Ti or {}; Ti.singular = true
        rec.log10_smin, rec.log10_cond, rec.cond = -math.huge, math.huge, math.huge
      else
        Ti = Ti and matmul(Ti, Ri) or Ri
        sTi = sTi + normalize(Ti)
        rec.log10_smin = -(log10_smax(Ti) + sTi)
        rec.log10_cond = rec.log10_smax - rec.log10_smin
        rec.cond = 10 ^ rec.log10_cond
      end
    end
    out[k] = rec
  end
  return out
end

--- gaussian_chain(shapes [, scale = 1]) -> list of tensors: for each {rows, cols}, N(0, scale/cols)
-- entries (the global generator): random matrices shaped like a network's layers.
function S.gaussian_chain(shapes, scale)
  local mats = {}
  for k, s in ipairs(shapes) do mats[k] = bn.randn(s[1], s[2]) * math.sqrt((scale or 1) / s[2]) end
  return mats
end

--- log10_fc_density(t, k): the density of log10(x) when x follows the Fuss-Catalan law with
-- parameter k (k factors), ρ(10^t)·10^t·ln 10 — for histograms of log10 σ².
function S.log10_fc_density(t, k)
  local x = 10 ^ t
  return bn.linalg.fuss_catalan_density(x, k) * x * math.log(10)
end

return S
