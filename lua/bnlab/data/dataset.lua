-- bn.data.Dataset: a set of images (or vectors) and their labels, with the
-- operations a training run needs: split off a validation set, normalize
-- per channel, and iterate over (augmented, shuffled) mini-batches.
-- The heavy work (gather + pad + crop + flip, statistics) is C:
-- src/data/batch.c through src/bindings/data.c. Reference: docs/data.md.
local core = require "bnlab.core"
local util = require "bnlab.data.util"

local C = core._data
local fail = util.fail

local Dataset = {}
Dataset.__index = Dataset
Dataset.__name = "bn.data.Dataset"

local function is_dataset(v) return getmetatable(v) == Dataset end

-- Calls a C function of bn._data; its errors are re-raised under the name
-- of the public function the user called, at the user's line.
local function call(fn, f, ...)
  local res = table.pack(pcall(f, ...))
  if not res[1] then
    local msg = tostring(res[2]):gsub("^bn%.data%.[%w_]+: ", "")
    fail(fn, "%s", msg)
  end
  return table.unpack(res, 2, res.n)
end

local function copy_list(t)
  if type(t) ~= "table" then return t end
  local out = {}
  for i, v in ipairs(t) do out[i] = v end
  return out
end

local function copy_stats(s)
  if not s then return nil end
  return { mean = copy_list(s.mean), std = copy_list(s.std) }
end

-- The internal constructor (arguments already checked). images: a dense
-- float tensor [N x ...] without autograd; labels: a float tensor [N] of
-- 1-based classes.
local function new(f)
  local shape = f.images:shape()
  table.remove(shape, 1)
  return setmetatable({
    images = f.images,
    labels = f.labels,
    n = f.images:size(1),
    classes = f.classes,
    shape = shape,
    name = f.name or "dataset",
    class_names = f.class_names,
    stats = copy_stats(f.stats),
  }, Dataset)
end
Dataset._new = new

--- bn.data.dataset(images, labels [, {classes =, name =, class_names =}]):
-- a Dataset over existing tensors (used as they are, not copied).
function Dataset.from_tensors(images, labels, opts)
  local fn = "dataset"
  opts = util.check_opts(fn, opts, { classes = true, name = true, class_names = true }, "argument #3")
  if not core.is_tensor(images) or images:is_closed() then
    fail(fn, "argument #1 (images) expected a tensor [N x ...], got %s", util.describe(images))
  end
  if images:dim() < 2 then
    fail(fn, "images expected [N x C x H x W] or [N x D] (at least 2-D), got %s", util.describe(images))
  end
  if images:requires_grad() or images.grad_fn then
    fail(fn, "images expected a data tensor without autograd (use :detach())")
  end
  images = images:contiguous()
  local n = images:size(1)
  local list
  if type(labels) == "table" then
    list = labels
  elseif core.is_tensor(labels) and not labels:is_closed() and labels:dim() == 1 then
    list = labels:totable()
  else
    fail(fn, "argument #2 (labels) expected a table or a 1-D tensor of 1-based classes, got %s",
      util.describe(labels))
  end
  if #list ~= n then fail(fn, "%d images but %d labels", n, #list) end
  local classes = util.int(fn, opts, "classes", 1, 1 << 24, nil)
  local top = 0
  for i = 1, n do
    local v = list[i]
    local k = math.type(v) and math.tointeger(v)
    if not k or k < 1 or (classes and k > classes) then
      fail(fn, "labels[%d] expected a class in [1, %s] (1-based), got %s", i, classes or "classes",
        util.describe(v))
    end
    if k > top then top = k end
  end
  if opts.name ~= nil and type(opts.name) ~= "string" then
    fail(fn, "option 'name' expected a string, got %s", util.describe(opts.name))
  end
  if opts.class_names ~= nil and type(opts.class_names) ~= "table" then
    fail(fn, "option 'class_names' expected a table of strings, got %s", util.describe(opts.class_names))
  end
  return new {
    images = images,
    labels = core.tensor(n > 0 and list or {}):reshape(n),
    classes = classes or math.max(top, 1),
    name = opts.name,
    class_names = opts.class_names,
  }
end

function Dataset:__len() return self.n end

function Dataset:__tostring()
  local s = ("Dataset '%s': %d x [%s], %d classes"):format(self.name, self.n, table.concat(self.shape, " x "),
    self.classes)
  if self.stats then
    local fmt = function(t)
      local parts = {}
      for i, v in ipairs(t) do parts[i] = ("%.4g"):format(v) end
      return table.concat(parts, ", ")
    end
    s = s .. (", normalized (mean %s; std %s)"):format(fmt(self.stats.mean), fmt(self.stats.std))
  end
  return s
end

local function check_index(fn, self, i)
  local k = math.type(i) and math.tointeger(i)
  if not k or k < 1 or k > self.n then
    fail(fn, "index expected an integer in [1, %d], got %s", self.n, util.describe(i))
  end
  return k
end

--- ds:get(i) -> image (a view [C x H x W] of ds.images), label (integer).
function Dataset:get(i)
  i = check_index("get", self, i)
  return self.images[i], math.tointeger(self.labels[i])
end

--- ds:label(i) -> the 1-based class of item i.
function Dataset:label(i)
  i = check_index("label", self, i)
  return math.tointeger(self.labels[i])
end

--- ds:label_list() -> a Lua table of the n labels (integers, 1-based).
function Dataset:label_list()
  local t = self.n > 0 and self.labels:totable() or {}
  for i = 1, #t do t[i] = math.tointeger(t[i]) end
  return t
end

--- ds:class_counts() -> counts[k] = number of items of class k.
function Dataset:class_counts()
  local counts = {}
  for k = 1, self.classes do counts[k] = 0 end
  for _, k in ipairs(self:label_list()) do counts[k] = counts[k] + 1 end
  return counts
end

--- ds:subset(indices [, name]) -> a new Dataset of the items at indices (a
-- table or 1-D tensor of 1-based indices, repeats allowed), copied.
function Dataset:subset(indices, name)
  if name ~= nil and type(name) ~= "string" then
    fail("subset", "argument #2 (name) expected a string, got %s", util.describe(name))
  end
  return new {
    images = call("subset", C.gather, self.images, indices),
    labels = call("subset", C.gather, self.labels, indices),
    classes = self.classes,
    name = name or (self.name .. ":subset"),
    class_names = self.class_names,
    stats = self.stats,
  }
end

--- ds:split{validation = 5000 (or a fraction), seed = 0} -> train, val:
-- a held-out validation set drawn at random (the same for the same seed,
-- whatever bn.manual_seed says), both copies in the original order.
function Dataset:split(opts)
  local fn = "split"
  opts = util.check_opts(fn, opts, { validation = true, seed = true })
  local v = opts.validation
  if v == nil then fail(fn, "option 'validation' (a count, or a fraction in (0, 1)) is required") end
  if math.type(v) == "float" and v > 0 and v < 1 then
    v = math.floor(v * self.n + 0.5)
    if v < 1 or v > self.n - 1 then
      fail(fn, "validation fraction %s of %d items leaves an empty part", tostring(opts.validation), self.n)
    end
  else
    v = util.int(fn, opts, "validation", 1, math.max(self.n - 1, 1))
    if self.n < 2 then fail(fn, "cannot split a data set of %d item(s)", self.n) end
  end
  local seed = util.int(fn, opts, "seed", 0, nil, 0)
  local perm = C.randperm(self.n, util.derive(seed, 0, 3)):totable()
  local held = {}
  for i = 1, v do held[math.tointeger(perm[i])] = true end
  local tr, va = {}, {}
  for i = 1, self.n do
    if held[i] then va[#va + 1] = i else tr[#tr + 1] = i end
  end
  return self:subset(tr, self.name .. ":train"), self:subset(va, self.name .. ":val")
end

--- ds:channel_stats() -> {mean = {...}, std = {...}}: per-channel mean
-- and (population) standard deviation over all items and pixels.
-- (ds.stats is the field set by normalize.)
function Dataset:channel_stats()
  local mean, std = call("channel_stats", C.channel_stats, self.images)
  return { mean = mean, std = std }
end

--- ds:normalize([stats]) -> stats: x = (x - mean[c]) / std[c] in place.
-- Without stats they are computed on ds; stats may be a table {mean =,
-- std =} (numbers or one per channel) or another Dataset (its stats, e.g.
-- the training set's for the test set). Kept in ds.stats.
function Dataset:normalize(stats)
  local fn = "normalize"
  if self.stats then
    fail(fn, "'%s' is already normalized; load it again to normalize differently", self.name)
  end
  if stats == nil then
    stats = self:channel_stats()
  elseif is_dataset(stats) then
    if not stats.stats then fail(fn, "the dataset '%s' given for statistics is not normalized", stats.name) end
    stats = stats.stats
  elseif type(stats) ~= "table" or stats.mean == nil or stats.std == nil then
    fail(fn, "argument #2 (stats) expected a table {mean =, std =} or a normalized Dataset, got %s",
      util.describe(stats))
  end
  local C_ = self.images:size(2)
  local function expand(v)
    if type(v) == "number" then
      local t = {}
      for c = 1, C_ do t[c] = v end
      return t
    end
    return copy_list(v)
  end
  call(fn, C.normalize, self.images, stats.mean, stats.std)
  self.stats = { mean = expand(stats.mean), std = expand(stats.std) }
  return copy_stats(self.stats)
end

--- ds:num_batches([size [, drop_last]]) -> batches per epoch.
function Dataset:num_batches(size, drop_last)
  size = size or 128
  if not (math.type(size) and math.tointeger(size) and size >= 1) then
    fail("num_batches", "argument #2 (size) expected an integer >= 1, got %s", util.describe(size))
  end
  size = math.tointeger(size)
  if drop_last then return self.n // size end
  return (self.n + size - 1) // size
end

-- augment option -> C gather options (without seed/offset), or nil.
local function augment_opts(fn, self, a)
  if a == nil or a == false then return nil end
  if a == true then a = { crop = 4, flip = true } end
  if type(a) ~= "table" then
    fail(fn, "option 'augment' expected true, false or a table {crop =, flip =, fill =}, got %s", util.describe(a))
  end
  util.check_opts(fn, a, { crop = true, flip = true, fill = true }, "option 'augment'")
  local crop = util.int(fn, a, "crop", 0, 4096, 0)
  local flip = util.bool(fn, a, "flip", false)
  if crop == 0 and not flip then return nil end
  if self.images:dim() ~= 4 then
    fail(fn, "augmentation (crop, flip) needs images [N x C x H x W], '%s' has items [%s]", self.name,
      table.concat(self.shape, " x "))
  end
  local fill = a.fill
  if fill == nil or fill == "black" then
    -- Padding is a black border: raw pixel 0, which normalization moved.
    fill = nil
    if self.stats then
      fill = {}
      for c = 1, self.images:size(2) do fill[c] = -self.stats.mean[c] / self.stats.std[c] end
    end
  elseif type(fill) ~= "number" and type(fill) ~= "table" then
    fail(fn, "augment option 'fill' expected \"black\", a number or a table (one per channel), got %s",
      util.describe(fill))
  end
  return { crop = crop, flip = flip, fill = fill }
end

--- ds:batches{size = 128, shuffle = false, seed =, epoch = 1, drop_last =
-- false, augment = nil|true|{crop =, flip =, fill =}} -> an iterator:
--   for x, y, i in ds:batches{...} do ... end
-- x [B x C x H x W] (a new tensor per batch), y [B] 1-based labels (what
-- bn.cross_entropy takes), i the batch number. The order and augmentation
-- depend only on (seed, epoch); without seed, one is drawn from the global
-- generator (bn.manual_seed fixes it).
function Dataset:batches(opts)
  local fn = "batches"
  opts = util.check_opts(fn, opts,
    { size = true, shuffle = true, seed = true, epoch = true, drop_last = true, augment = true })
  local size = util.int(fn, opts, "size", 1, nil, 128)
  local shuffle = util.bool(fn, opts, "shuffle", false)
  local drop_last = util.bool(fn, opts, "drop_last", false)
  local epoch = util.int(fn, opts, "epoch", 0, nil, 1)
  local seed = util.int(fn, opts, "seed", 0, nil, nil)
  local aug = augment_opts(fn, self, opts.augment)
  if seed == nil and (shuffle or aug) then seed = C.seed() end
  local n = self.n
  local order
  if shuffle then
    order = C.randperm(n, util.derive(seed, epoch, 1))
  else
    order = core.arange(1, n + 1)
  end
  if aug then
    aug.seed = util.derive(seed, epoch, 2)
    -- Fail now, not at the first batch: checks fill against the channels.
    if n > 0 then call(fn, C.gather, self.images, { 1 }, aug) end
  end
  local count = self:num_batches(size, drop_last)
  local images, labels = self.images, self.labels
  local i = 0
  return function()
    i = i + 1
    if i > count then return nil end
    local start = (i - 1) * size
    local len = math.min(size, n - start)
    local idx = order:narrow(1, start + 1, len)
    local x
    if aug then
      aug.offset = start -- each image's draw depends on its position in the epoch only
      x = call(fn, C.gather, images, idx, aug)
    else
      x = call(fn, C.gather, images, idx)
    end
    return x, call(fn, C.gather, labels, idx), i
  end
end

--- ds:with_random_labels{fraction = 1, seed = 0} -> a Dataset sharing
-- ds.images whose labels are, for each item with probability `fraction`,
-- replaced by a uniformly random class (Zhang et al.'s memorization test).
function Dataset:with_random_labels(opts)
  local fn = "with_random_labels"
  opts = util.check_opts(fn, opts, { fraction = true, seed = true })
  local fraction = opts.fraction == nil and 1 or opts.fraction
  if type(fraction) ~= "number" or not (fraction >= 0 and fraction <= 1) then
    fail(fn, "option 'fraction' expected a number in [0, 1], got %s", util.describe(fraction))
  end
  local seed = util.int(fn, opts, "seed", 0, nil, 0)
  local list = self:label_list()
  if self.n > 0 then
    local pick = C.uniform({ self.n }, util.derive(seed, 0, 4)):totable()
    local class = C.uniform({ self.n }, util.derive(seed, 0, 5)):totable()
    for i = 1, self.n do
      if pick[i] < fraction then list[i] = math.min(math.floor(class[i] * self.classes) + 1, self.classes) end
    end
  end
  return new {
    images = self.images,
    labels = core.tensor(self.n > 0 and list or {}):reshape(self.n),
    classes = self.classes,
    name = self.name .. ":random_labels",
    class_names = self.class_names,
    stats = self.stats,
  }
end

Dataset.is_dataset = is_dataset
return Dataset
