-- bn.linalg: singular values, random matrix products and their limiting
-- spectra, and the linear maps of a network's weight layers (paper E8:
-- "products of random Gaussian matrices have singular-value spectra that
-- get wider with depth"). docs/probe.md#bnlinalg has the details.
--
--   bn.linalg.svdvals(m)                      singular values, descending (LAPACK sgesdd)
--   bn.linalg.cond(m)                         σmax / σmin
--   bn.linalg.random_product(n, k [, opts])   W_k ... W_1, entries N(0, 1/n)
--   bn.linalg.fuss_catalan_density(x, k)      limit density of squared singular values
--   bn.linalg.fuss_catalan_cdf(x, k)          its distribution function
--   bn.linalg.ks_distance(samples, cdf)       Kolmogorov-Smirnov distance to a cdf
--   bn.linalg.layer_matrices(net [, opts])    each weight layer as a matrix
--   bn.linalg.product_spectra(mats [, opts])  spectra of the partial products
--   bn.linalg.network_spectra(net [, opts])   the two above in one call
--
-- Everything is float32 (bnlab's one dtype); sgesdd's singular values are
-- accurate to about 1e-7 of σmax, so condition numbers beyond ~1e6 are
-- lower bounds set by rounding, not measurements.
local bn = require "bnlab"
local nutil = require "bnlab.nn.util"
local nn = require "bnlab.nn"

local linalg = {}

local function fail(where, msg, level) error(where .. ": " .. msg, (level or 1) + 1) end

local function check_matrix(m, where, what)
  if not bn.is_tensor(m) or m:dim() ~= 2 then
    fail(where, ("%s expected a 2-D tensor, got %s"):format(what or "argument #1 (m)", nutil.show(m)), 3)
  end
end

--- Singular values of a 2-D tensor, descending, as a [min(r, c)] tensor.
-- NaN/Inf entries give NaN values.
function linalg.svdvals(m)
  check_matrix(m, "bn.linalg.svdvals")
  return bn._linalg.svdvals(m)
end

--- σmax / σmin (inf when σmin = 0, NaN for a matrix holding NaN/Inf).
function linalg.cond(m)
  check_matrix(m, "bn.linalg.cond")
  local s = bn._linalg.svdvals(m):totable()
  local hi, lo = s[1], s[#s]
  if lo == 0 then return hi == hi and math.huge or 0 / 0 end
  return hi / lo
end

local PRODUCT_OPTS = nutil.set { "seed", "partial", "variance" }

--- random_product(n, k [, {seed =, partial = false, variance = 1/n}]):
-- W_k ... W_1 for k independent n x n matrices with N(0, variance)
-- entries (the global generator; `seed` calls bn.manual_seed first).
-- partial = true returns the list {W_1, W_2 W_1, ..., W_k ... W_1}.
function linalg.random_product(n, k, opts)
  local where = "bn.linalg.random_product"
  n = nutil.integer(n, where, "argument #1 (n)", 1)
  k = nutil.integer(k, where, "argument #2 (k, the number of factors)", 1)
  opts = nutil.options(opts, where, PRODUCT_OPTS)
  if opts.seed ~= nil then bn.manual_seed(nutil.integer(opts.seed, where, "option 'seed'", 0)) end
  local var = opts.variance and nutil.number(opts.variance, where, "option 'variance'", 0) or 1 / n
  local sd = math.sqrt(var)
  local p, list = nil, {}
  for i = 1, k do
    local w = bn.randn(n, n) * sd
    p = p and bn.matmul(w, p) or w
    list[i] = p
  end
  if opts.partial then return list end
  return p
end

-- ---- the Fuss-Catalan law ------------------------------------------------------------
-- The squared singular values of a product of k independent n x n Gaussian
-- matrices with entry variance 1/n converge (n -> inf) to the Fuss-Catalan
-- law with parameter k, supported on (0, (k+1)^(k+1) / k^k]; k = 1 is
-- Marchenko-Pastur with ratio 1 on (0, 4]. With φ in (0, π/(k+1)):
--   x(φ) = sin((k+1)φ)^(k+1) / (sin φ · sin(kφ)^k)       (decreasing in φ)
--   ρ(x(φ)) = (1/π) · sin(φ)^2 · sin(kφ)^(k-1) / sin((k+1)φ)^k
-- (Haagerup-Möller; Neuschel). Note the 1/π: a form with 1/(πx) in front
-- does not integrate to 1 (at k = 1 it gives MP divided by x).

local function fc_x(phi, k)
  return math.sin((k + 1) * phi) ^ (k + 1) / (math.sin(phi) * math.sin(k * phi) ^ k)
end

local function fc_rho(phi, k)
  return math.sin(phi) ^ 2 * math.sin(k * phi) ^ (k - 1) / (math.pi * math.sin((k + 1) * phi) ^ k)
end

--- The right end of the support, (k+1)^(k+1) / k^k.
function linalg.fuss_catalan_support(k)
  k = nutil.integer(k, "bn.linalg.fuss_catalan_support", "argument #1 (k)", 1)
  return 0, (k + 1) ^ (k + 1) / k ^ k
end

-- φ with x(φ) = x, by bisection (x in (0, xmax)).
local function fc_phi(x, k)
  local lo, hi = 0, math.pi / (k + 1)
  for _ = 1, 80 do
    local mid = 0.5 * (lo + hi)
    if fc_x(mid, k) > x then lo = mid else hi = mid end
  end
  return 0.5 * (lo + hi)
end

-- The mass between φ and π/(k+1) (that is, of (0, x(φ))), by Gauss-Legendre
-- on the integrand ρ(φ)·|dx/dφ|, which stays bounded at both ends.
local GL = { { -0.7745966692414834, 5 / 9 }, { 0, 8 / 9 }, { 0.7745966692414834, 5 / 9 } }
local function fc_mass_below(phi0, k)
  local b = math.pi / (k + 1)
  local function f(phi)
    local x = fc_x(phi, k)
    local dlog = (k + 1) ^ 2 / math.tan((k + 1) * phi) - 1 / math.tan(phi) - k * k / math.tan(k * phi)
    return fc_rho(phi, k) * x * math.abs(dlog)
  end
  local n = 40
  local h = (b - phi0) / n
  local s = 0
  for i = 0, n - 1 do
    local c = phi0 + (i + 0.5) * h
    for _, q in ipairs(GL) do s = s + q[2] * f(c + q[1] * h / 2) end
  end
  return s * h / 2
end

-- Applies fn to a number, a list or a tensor (same shape back).
local function map(x, fn, where)
  if type(x) == "number" then return fn(x) end
  if bn.is_tensor(x) then
    local shape = x:shape()
    local vals = x:reshape(-1):totable()
    for i, v in ipairs(vals) do vals[i] = fn(v) end
    if #shape == 0 then return bn.tensor(vals[1]) end
    return bn.tensor(vals):reshape(shape)
  end
  if type(x) == "table" then
    local out = {}
    for i, v in ipairs(x) do out[i] = fn(v) end
    return out
  end
  fail(where, ("argument #1 (x) expected a number, a list of numbers or a tensor, got %s"):format(nutil.show(x)), 3)
end

--- The Fuss-Catalan density with parameter k (k factors) at x (a number,
-- list or tensor; 0 outside (0, xmax)).
function linalg.fuss_catalan_density(x, k)
  local where = "bn.linalg.fuss_catalan_density"
  k = nutil.integer(k, where, "argument #2 (k)", 1)
  local xmax = (k + 1) ^ (k + 1) / k ^ k
  return map(x, function(v)
    if not (v > 0 and v < xmax) then return 0 end
    return fc_rho(fc_phi(v, k), k)
  end, where)
end

--- Its distribution function P(X <= x).
function linalg.fuss_catalan_cdf(x, k)
  local where = "bn.linalg.fuss_catalan_cdf"
  k = nutil.integer(k, where, "argument #2 (k)", 1)
  local xmax = (k + 1) ^ (k + 1) / k ^ k
  return map(x, function(v)
    if v ~= v then return v end
    if v <= 0 then return 0 end
    if v >= xmax then return 1 end
    return fc_mass_below(fc_phi(v, k), k)
  end, where)
end

--- Kolmogorov-Smirnov distance sup |F_n - F| between the empirical
-- distribution of `samples` (a list or tensor) and `cdf` (a function of a
-- number, e.g. function(x) return bn.linalg.fuss_catalan_cdf(x, 2) end).
function linalg.ks_distance(samples, cdf)
  local where = "bn.linalg.ks_distance"
  if bn.is_tensor(samples) then samples = samples:reshape(-1):totable() end
  if type(samples) ~= "table" or #samples == 0 then fail(where, "argument #1 (samples) expected a non-empty list or tensor", 2) end
  if type(cdf) ~= "function" then fail(where, "argument #2 (cdf) expected a function", 2) end
  local s = {}
  for i, v in ipairs(samples) do s[i] = v end
  table.sort(s)
  local n, d = #s, 0
  for i, v in ipairs(s) do
    local f = cdf(v)
    d = math.max(d, math.abs(f - (i - 1) / n), math.abs(i / n - f))
  end
  return d
end

-- ---- a network's linear maps ------------------------------------------------------------

local LAYER_OPTS = nutil.set { "form", "layers" }

--- layer_matrices(net [, {form = "center", layers = nil}]) -> list of
-- {path =, matrix =, shape =} in forward order. Each Conv2d weight
-- [out x in x kh x kw] becomes a matrix by `form`:
--   "center"  W[:, :, kh//2+1, kw//2+1]   [out x in]  the kernel's centre tap
--   "sum"     Σ_{u,v} W[:, :, u, v]       [out x in]  the map on spatially constant inputs
--   "flat"    W:reshape(out, in·kh·kw)    [out x in·kh·kw]  the im2col matrix
-- a Linear weight is used as it is. layers: which weight layers (a glob, a
-- list of globs or a function(path)); default every Conv2d and Linear not
-- inside a shortcut (the main path of a ResNet, whose "center"/"sum"
-- matrices chain: each one's in = the previous one's out).
function linalg.layer_matrices(net, opts)
  local where = "bn.linalg.layer_matrices"
  if type(net) ~= "table" or type(net.named_modules) ~= "function" then
    fail(where, ("argument #1 (net) expected a bn.nn module, got %s"):format(nutil.show(net)), 2)
  end
  opts = nutil.options(opts, where, LAYER_OPTS)
  local form = nutil.choice(opts.form or "center", where, "option 'form'", { "center", "sum", "flat" })
  local U = require "bnlab.probe.util"
  local select = opts.layers ~= nil and U.selector(net, opts.layers, where)
    or function(path) return not path:match("shortcut") end
  local out = {}
  bn.no_grad(function()
    for _, e in ipairs(net:named_modules { "Conv2d", "Linear" }) do
      local path, m = e[1], e[2]
      if select(path) then
        local w = m.weight:detach()
        local mat
        if nn.is_instance(m, "Linear") then
          mat = w:clone()
        elseif form == "flat" then
          mat = w:reshape(w:size(1), -1):contiguous()
        elseif form == "sum" then
          mat = w:sum(4):sum(3)
        else
          mat = w:select(3, w:size(3) // 2 + 1):select(3, w:size(4) // 2 + 1):contiguous()
        end
        out[#out + 1] = { path = path, matrix = mat, shape = mat:shape() }
      end
    end
  end)
  return out
end

local SPECTRA_OPTS = nutil.set { "keep_products" }

--- product_spectra(mats [, {keep_products = false}]) -> list, entry d =
-- {depth = d, path =, singular_values = svdvals(P_d), cond =, shape =} for
-- the partial products P_d = M_d ... M_1. mats: a list of matrices or of
-- {path =, matrix =} (layer_matrices); each M_d's columns must equal
-- M_{d-1}'s rows.
function linalg.product_spectra(mats, opts)
  local where = "bn.linalg.product_spectra"
  if type(mats) ~= "table" or #mats == 0 then fail(where, "argument #1 (mats) expected a non-empty list of matrices", 2) end
  opts = nutil.options(opts, where, SPECTRA_OPTS)
  local out, p = {}, nil
  bn.no_grad(function()
    for d, e in ipairs(mats) do
      local m = bn.is_tensor(e) and e or e.matrix
      check_matrix(m, where, ("argument #1 (mats)[%d]"):format(d))
      if p and m:size(2) ~= p:size(1) then
        fail(where, ("matrix %d (%s%s) does not chain: it has %d columns, the product so far has %d rows"):format(d,
          nutil.shape_str(m), type(e) == "table" and e.path and (", " .. e.path) or "", m:size(2), p:size(1)), 3)
      end
      p = p and bn.matmul(m, p) or m
      local s = bn._linalg.svdvals(p)
      local sv = s:totable()
      local lo = sv[#sv]
      local rec = { depth = d, path = type(e) == "table" and e.path or nil, singular_values = s, shape = p:shape(),
        cond = lo == 0 and math.huge or sv[1] / lo }
      if opts.keep_products then rec.product = p end
      out[d] = rec
    end
  end)
  return out
end

--- network_spectra(net [, opts]): product_spectra(layer_matrices(net,
-- opts)); opts as layer_matrices (plus keep_products).
function linalg.network_spectra(net, opts)
  opts = opts or {}
  local lm = {}
  for k, v in pairs(opts) do if k ~= "keep_products" then lm[k] = v end end
  return linalg.product_spectra(linalg.layer_matrices(net, lm), { keep_products = opts.keep_products })
end

return linalg
