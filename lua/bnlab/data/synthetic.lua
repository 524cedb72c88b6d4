-- Synthetic data sets for tests and quick checks: Gaussian blobs and random
-- labels. Each is fixed by its seed alone (a private generator: the global
-- one, and so bn.manual_seed, is untouched).
local core = require "bnlab.core"
local util = require "bnlab.data.util"
local Dataset = require "bnlab.data.dataset"

local C = core._data
local fail = util.fail

local synthetic = {}

-- The item shape from {dim = d} or {shape = {C, H, W}} (or any sizes).
local function item_shape(fn, opts, default)
  if opts.dim ~= nil and opts.shape ~= nil then fail(fn, "give either 'dim' or 'shape', not both") end
  if opts.dim ~= nil then return { util.int(fn, opts, "dim", 1, 1 << 24) } end
  local shape = opts.shape or default
  if type(shape) ~= "table" or #shape < 1 or #shape > 7 then
    fail(fn, "option 'shape' expected a table of 1 to 7 sizes ({C, H, W}), got %s", util.describe(shape))
  end
  local out, numel = {}, 1
  for i, s in ipairs(shape) do
    local k = math.type(s) and math.tointeger(s)
    if not k or k < 1 then fail(fn, "option 'shape' size %d expected an integer >= 1, got %s", i, util.describe(s)) end
    out[i] = k
    numel = numel * k
    if numel > (1 << 30) then fail(fn, "option 'shape' has too many elements per item") end
  end
  return out
end

local function positive(fn, opts, name, def)
  local v = opts[name]
  if v == nil then return def end
  if type(v) ~= "number" or not (v >= 0 and v < math.huge) then
    fail(fn, "option '%s' expected a finite number >= 0, got %s", name, util.describe(v))
  end
  return v
end

local function sizes(n, shape)
  local s = { n }
  for i, v in ipairs(shape) do s[i + 1] = v end
  return s
end

--- bn.data.blobs{n = 1000, classes = 3, dim = 2 | shape = {C, H, W},
-- separation = 3, spread = 1, seed = 0}: class k's items are centre_k +
-- N(0, spread^2) noise, centres drawn N(0, separation^2) per coordinate.
-- Classes are balanced (sizes differ by at most 1) and in random order.
function synthetic.blobs(opts)
  local fn = "blobs"
  opts = util.check_opts(fn, opts,
    { n = true, classes = true, dim = true, shape = true, separation = true, spread = true, seed = true, name = true })
  local n = util.int(fn, opts, "n", 1, 1 << 24, 1000)
  local classes = util.int(fn, opts, "classes", 1, 1 << 24, 3)
  local shape = item_shape(fn, opts, { 2 })
  local separation = positive(fn, opts, "separation", 3)
  local spread = positive(fn, opts, "spread", 1)
  local seed = util.int(fn, opts, "seed", 0, nil, 0)
  local name = util.name(fn, opts, "name", "blobs")
  local d = 1
  for _, s in ipairs(shape) do d = d * s end
  local centres = C.normal({ classes, d }, util.derive(seed, 0, 6), 0, separation)
  local perm = C.randperm(n, util.derive(seed, 0, 7)):totable()
  local labels = {}
  for i = 1, n do labels[i] = (math.tointeger(perm[i]) - 1) % classes + 1 end
  local x = C.gather(centres, labels) + C.normal({ n, d }, util.derive(seed, 0, 8), 0, spread)
  return Dataset._new {
    images = x:reshape(sizes(n, shape)):contiguous(),
    labels = core.tensor(labels),
    classes = classes,
    name = name,
  }
end

--- bn.data.random_labels{n = 1000, classes = 10, shape = {1, 28, 28} | dim =,
-- seed = 0}: images uniform in [0, 1), labels uniform over the classes and
-- unrelated to them: nothing to learn, everything to memorize.
function synthetic.random_labels(opts)
  local fn = "random_labels"
  opts = util.check_opts(fn, opts, { n = true, classes = true, dim = true, shape = true, seed = true, name = true })
  local n = util.int(fn, opts, "n", 1, 1 << 24, 1000)
  local classes = util.int(fn, opts, "classes", 1, 1 << 24, 10)
  local shape = item_shape(fn, opts, { 1, 28, 28 })
  local seed = util.int(fn, opts, "seed", 0, nil, 0)
  local name = util.name(fn, opts, "name", "random_labels")
  local u = C.uniform({ n }, util.derive(seed, 0, 10)):totable()
  local labels = {}
  for i = 1, n do labels[i] = math.min(math.floor(u[i] * classes) + 1, classes) end
  return Dataset._new {
    images = C.uniform(sizes(n, shape), util.derive(seed, 0, 9)),
    labels = core.tensor(labels),
    classes = classes,
    name = name,
  }
end

return synthetic
