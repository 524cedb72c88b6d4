-- bn.data: the real Fashion-MNIST (Debian's dataset-fashion-mnist), batches
-- (coverage, determinism, augmentation rates), normalization, splits,
-- synthetic sets, and damaged or missing files written into a temp dir,
-- which must fail with a message naming the loader, the file, the problem
-- and how to get the data. Loads Fashion-MNIST once (about a second).
local bn = require "bnlab"
local check = require "check"

local T = {}

local FMNIST = "/usr/share/datasets/fashion-mnist"

-- ---- helpers ------------------------------------------------------------------

local cache = {}
-- Fashion-MNIST normalized with the training statistics (shared, read-only).
local function fmnist()
  if not cache.train then
    local f = io.open(FMNIST .. "/train-images-idx3-ubyte.gz", "rb")
    if not f then check.skip("Fashion-MNIST is not installed (make deps)") end
    f:close()
    cache.train, cache.test = bn.data.fashion_mnist { normalize = true }
  end
  return cache.train, cache.test
end

-- A data set whose item i is an image filled with the value i (label
-- (i-1) % classes + 1): batches reveal exactly which items they hold.
local function indexed(n, h, w, classes)
  h, w, classes = h or 2, w or 2, classes or 10
  local images = bn.arange(1, n + 1):view(n, 1, 1, 1):expand(n, 1, h, w):contiguous()
  local labels = {}
  for i = 1, n do labels[i] = (i - 1) % classes + 1 end
  return bn.data.dataset(images, labels, { classes = classes, name = "indexed" })
end

-- The item numbers in a batch of an indexed set (pixel [1, 1] of each image).
local function ids(x)
  local out = {}
  for j, v in ipairs(x:select(2, 1):select(2, 1):select(2, 1):totable()) do out[j] = math.tointeger(v) end
  return out
end

local function as_ints(t)
  local out = {}
  for i, v in ipairs(t:totable()) do out[i] = math.tointeger(v) end
  return out
end

local tmp_root
local function tmpdir(name)
  if not tmp_root then
    local base = os.getenv("TMPDIR")
    if not base or base == "" then base = "/tmp" end
    tmp_root = ("%s/bnlab-data-test-%d-%d"):format(base, os.time(), math.random(1 << 30))
    assert(os.execute("mkdir -p '" .. tmp_root .. "'"))
  end
  local d = tmp_root .. "/" .. name
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

-- IDX files: images (magic 0x803, N x H x W bytes) and labels (0x801).
local function idx_images(n, h, w, fill)
  local parts = { string.pack(">I4I4I4I4", 0x803, n, h, w) }
  for i = 0, n - 1 do parts[#parts + 1] = string.rep(string.char(fill and fill(i) or (i * 7) % 256), h * w) end
  return table.concat(parts)
end
local function idx_labels(n, classes)
  local parts = { string.pack(">I4I4", 0x801, n) }
  for i = 0, n - 1 do parts[#parts + 1] = string.char(i % (classes or 10)) end
  return table.concat(parts)
end

-- A small, valid MNIST directory: 20 train and 10 test items of 4 x 4.
local function mnist_dir(name)
  local d = tmpdir(name)
  write(d .. "/train-images-idx3-ubyte", idx_images(20, 4, 4))
  write(d .. "/train-labels-idx1-ubyte", idx_labels(20))
  write(d .. "/t10k-images-idx3-ubyte", idx_images(10, 4, 4))
  write(d .. "/t10k-labels-idx1-ubyte", idx_labels(10))
  return d
end

-- CIFAR records: label byte(s) then 3072 pixel bytes.
local function cifar_records(n, label_bytes, first_label)
  local parts = {}
  for i = 0, n - 1 do
    if label_bytes == 2 then parts[#parts + 1] = string.char((i + first_label) % 20) end
    parts[#parts + 1] = string.char((i + first_label) % 10)
    parts[#parts + 1] = string.rep(string.char(255), 1024) .. string.rep(string.char(0), 2048)
  end
  return table.concat(parts)
end

-- ---- Fashion-MNIST --------------------------------------------------------------

function T.fashion_mnist_loads()
  local train, test = fmnist()
  check.eq(train.n, 60000)
  check.eq(test.n, 10000)
  check.eq(#train, 60000)
  check.eq(train.classes, 10)
  check.eq(train.shape, { 1, 28, 28 })
  check.eq(train.images:shape(), { 60000, 1, 28, 28 })
  check.eq(train.labels:shape(), { 60000 })
  check.eq(train.class_names[1], "T-shirt/top")
  check.eq(train.name, "fashion_mnist/train")
  -- Balanced: 6000 per class in train, 1000 in test; labels are 1-based.
  for k, c in ipairs(train:class_counts()) do check.eq(c, 6000, "train class " .. k) end
  for k, c in ipairs(test:class_counts()) do check.eq(c, 1000, "test class " .. k) end
  check.eq(train.labels:min():item(), 1.0)
  check.eq(train.labels:max():item(), 10.0)
  local img, label = train:get(1)
  check.eq(img:shape(), { 1, 28, 28 })
  check.eq(label, 10) -- the first training item is an ankle boot
  check.eq(train:label(1), 10)
  check.eq(#train:label_list(), 60000)
end

function T.fashion_mnist_raw_values_in_unit_range()
  local f = io.open(FMNIST .. "/t10k-images-idx3-ubyte.gz", "rb")
  if not f then check.skip("Fashion-MNIST is not installed") end
  f:close()
  local test = bn.data.fashion_mnist { split = "test" }
  check.eq(test.n, 10000)
  check.eq(test.stats, nil)
  check.eq(test.images:min():item(), 0.0)
  check.eq(test.images:max():item(), 1.0)
  check.near(test.images:mean():item(), 0.2868, 1e-3) -- the known test-set mean
  -- The same files from an explicit dir and from BNLAB_DATA's layout.
  local again = bn.data.fashion_mnist { split = "test", dir = FMNIST }
  check.truthy(bn.equal(again.labels, test.labels), "same labels from dir =")
end

function T.normalize_gives_zero_mean_unit_std_on_train()
  local train, test = fmnist()
  check.near(train.stats.mean[1], 0.2860, 1e-3)
  check.near(train.stats.std[1], 0.3530, 1e-3)
  local s = train:channel_stats()
  check.near(s.mean[1], 0, 1e-5, "train mean after normalizing")
  check.near(s.std[1], 1, 1e-5, "train std after normalizing")
  -- The test set got the training statistics, not its own.
  check.eq(test.stats, train.stats)
  local t = test:channel_stats()
  check.truthy(math.abs(t.mean[1]) < 0.05 and math.abs(t.std[1] - 1) < 0.05, "test roughly standardized")
  check.truthy(t.mean[1] ~= 0, "test not normalized by its own stats")
  check.raises(function() train:normalize() end, "bn.data.normalize: 'fashion_mnist/train' is already normalized")
end

function T.fashion_mnist_epoch_covers_every_item()
  local train = fmnist()
  local counts, seen, batches = {}, 0, 0
  for k = 1, 10 do counts[k] = 0 end
  for x, y, i in train:batches { size = 128, shuffle = true, seed = 3 } do
    batches = batches + 1
    check.eq(i, batches)
    check.eq(x:size(1), y:size(1))
    for _, k in ipairs(as_ints(y)) do counts[k] = counts[k] + 1 end
    seen = seen + x:size(1)
  end
  check.eq(batches, 469) -- ceil(60000 / 128)
  check.eq(seen, 60000)
  check.eq(counts, train:class_counts())
  check.eq(train:num_batches(128), 469)
  check.eq(train:num_batches(128, true), 468)
end

function T.fashion_mnist_augmented_batch()
  local train = fmnist()
  local it = train:batches { size = 128, shuffle = true, seed = 1, augment = true }
  local x, y, i = it()
  check.eq(x:shape(), { 128, 1, 28, 28 })
  check.eq(y:shape(), { 128 })
  check.eq(i, 1)
  -- Padding is black: raw 0, i.e. -mean/std after normalization; nothing lower.
  local black = -train.stats.mean[1] / train.stats.std[1]
  check.near(x:min():item(), black, 1e-5)
  -- The labels are in the form bn.cross_entropy takes.
  local loss = bn.cross_entropy(bn.zeros(128, 10), y)
  check.near(loss:item(), math.log(10), 1e-5)
end

function T.split_sizes_on_fashion_mnist()
  local train = fmnist()
  local tr, va = train:split { validation = 5000, seed = 0 }
  check.eq(tr.n, 55000)
  check.eq(va.n, 5000)
  check.eq(tr.stats, train.stats) -- the parts keep the normalization they came with
  local full, a, b = train:class_counts(), tr:class_counts(), va:class_counts()
  for k = 1, 10 do check.eq(a[k] + b[k], full[k]) end
end

-- ---- batches ----------------------------------------------------------------------

function T.batches_cover_each_index_once_when_shuffled()
  local ds = indexed(1000)
  for _, drop in ipairs({ false, true }) do
    local seen, count, sizes = {}, 0, {}
    for x, y, i in ds:batches { size = 64, shuffle = true, seed = 7, drop_last = drop } do
      sizes[i] = x:size(1)
      local items, labels = ids(x), as_ints(y)
      for j, item in ipairs(items) do
        check.eq(seen[item], nil, "item " .. item .. " seen twice")
        seen[item] = true
        count = count + 1
        check.eq(labels[j], (item - 1) % 10 + 1, "label travels with its image")
      end
    end
    if drop then
      check.eq(count, 960)
      check.eq(#sizes, 15)
    else
      check.eq(count, 1000)
      check.eq(#sizes, 16)
      check.eq(sizes[16], 1000 - 15 * 64)
    end
    check.eq(sizes[1], 64)
  end
  -- Shuffled means not in order; unshuffled means in order.
  local first = ids((ds:batches { size = 10, shuffle = true, seed = 1 })())
  check.truthy(not (first[1] == 1 and first[2] == 2 and first[3] == 3), "shuffled")
  check.eq(ids((ds:batches { size = 4 })()), { 1, 2, 3, 4 })
end

local function epoch(ds, opts)
  local out = {}
  for x, y in ds:batches(opts) do out[#out + 1] = { x, y } end
  return out
end

local function same_epochs(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if not (bn.equal(a[i][1], b[i][1]) and bn.equal(a[i][2], b[i][2])) then return false end
  end
  return true
end

function T.batches_deterministic_for_a_seed()
  local ds = bn.data.random_labels { n = 300, shape = { 3, 8, 8 }, seed = 2 }
  local opts = { size = 32, shuffle = true, seed = 11, augment = { crop = 2, flip = true } }
  local a = epoch(ds, opts)
  local b = epoch(ds, opts)
  check.truthy(same_epochs(a, b), "same seed, same batches")
  check.truthy(not same_epochs(a, epoch(ds, { size = 32, shuffle = true, seed = 12, augment = opts.augment })),
    "another seed, other batches")
  check.truthy(not same_epochs(a, epoch(ds, { size = 32, shuffle = true, seed = 11, epoch = 2,
    augment = opts.augment })), "another epoch, other batches")
  -- Independent of the thread count.
  local was = bn.num_threads()
  bn.num_threads(1)
  local one = epoch(ds, opts)
  bn.num_threads(4)
  local four = epoch(ds, opts)
  bn.num_threads(was)
  check.truthy(same_epochs(one, a) and same_epochs(four, a), "same batches for 1 and 4 threads")
  -- Without a seed, bn.manual_seed decides.
  bn.manual_seed(5)
  local c = epoch(ds, { size = 32, shuffle = true, augment = true })
  bn.manual_seed(5)
  local d = epoch(ds, { size = 32, shuffle = true, augment = true })
  check.truthy(same_epochs(c, d), "manual_seed fixes the default seed")
  -- An image's augmentation depends on its position in the epoch, not on the batch size.
  local whole = epoch(ds, { size = 300, shuffle = true, seed = 11, augment = opts.augment })[1][1]
  local parts = {}
  for _, b2 in ipairs(a) do parts[#parts + 1] = b2[1] end
  check.truthy(bn.equal(bn.cat(parts, 1), whole), "batch size does not change augmentation")
end

-- Images whose pixel (r, c) holds r * W + c + 1 (1-based r, c from 0):
-- after augmentation, the centre pixel and its right neighbour reveal the
-- crop offset and the flip of every image.
local function coded(n, h, w)
  local images = bn.arange(1, h * w + 1):view(1, 1, h, w):expand(n, 1, h, w):contiguous()
  local labels = {}
  for i = 1, n do labels[i] = 1 end
  return bn.data.dataset(images, labels, { classes = 1 })
end

local function draws(x, h, w)
  local cy, cx = h // 2, w // 2 -- 0-based centre
  local centre = x:select(3, cy + 1):select(3, cx + 1):select(2, 1):totable()
  local right = x:select(3, cy + 1):select(3, cx + 2):select(2, 1):totable()
  local out = {}
  for j = 1, #centre do
    local v = math.tointeger(centre[j]) - 1
    local sy, sx = v // w, v % w
    local flip = right[j] < centre[j]
    local dx = flip and (sx - (w - 1 - cx)) or (sx - cx)
    out[j] = { dy = sy - cy, dx = dx, flip = flip }
  end
  return out
end

function T.augmentation_rates_and_shapes()
  local H, W, n = 12, 12, 3000
  local ds = coded(n, H, W)
  local x = ds:batches { size = n, seed = 4, augment = { crop = 4, flip = true } }()
  check.eq(x:shape(), { n, 1, H, W })
  local flips, moved, dys = 0, 0, {}
  for k = -4, 4 do dys[k] = 0 end
  for _, d in ipairs(draws(x, H, W)) do
    check.truthy(d.dy >= -4 and d.dy <= 4 and d.dx >= -4 and d.dx <= 4, "offsets within the padding")
    if d.flip then flips = flips + 1 end
    if d.dy ~= 0 or d.dx ~= 0 then moved = moved + 1 end
    dys[d.dy] = dys[d.dy] + 1
  end
  -- Flip with probability 1/2 (sd 27), offsets uniform over 9 values (sd 16):
  check.truthy(math.abs(flips - n / 2) < 150, ("flips %d of %d"):format(flips, n))
  check.truthy(math.abs(moved - n * 80 / 81) < 60, ("moved %d of %d"):format(moved, n))
  for k = -4, 4 do
    check.truthy(math.abs(dys[k] - n / 9) < 100, ("dy %d drawn %d times"):format(k, dys[k]))
  end
  -- Padding is zero in raw data; never below it here.
  check.eq(x:min():item(), 0.0)
  -- crop only: never flipped; flip only: never moved.
  for _, d in ipairs(draws(ds:batches { size = 500, seed = 4, augment = { crop = 3 } }(), H, W)) do
    check.eq(d.flip, false)
  end
  local nflip = 0
  for _, d in ipairs(draws(ds:batches { size = 500, seed = 4, augment = { flip = true } }(), H, W)) do
    check.eq(d.dy, 0)
    check.eq(d.dx, 0)
    if d.flip then nflip = nflip + 1 end
  end
  check.truthy(nflip > 180 and nflip < 320, "flip-only flips about half")
  -- No augmentation: the images as they are.
  check.truthy(bn.equal(ds:batches { size = 5 }(), ds.images:narrow(1, 1, 5)), "augment = nil copies")
  -- A custom fill value.
  local xf = ds:batches { size = 200, seed = 1, augment = { crop = 4, fill = -3 } }()
  check.eq(xf:min():item(), -3.0)
end

function T.batches_option_errors()
  local ds = indexed(10)
  check.raises(function() ds:batches { size = 0 } end, "bn.data.batches: option 'size' expected an integer >= 1, got number 0")
  check.raises(function() ds:batches { sise = 4 } end, "bn.data.batches: unknown option 'sise'")
  check.raises(function() ds:batches { shuffle = 1 } end, "option 'shuffle' expected a boolean, got number 1")
  check.raises(function() ds:batches { augment = "yes" } end, "option 'augment' expected true, false or a table")
  check.raises(function() ds:batches { augment = { crop = -1 } } end, "option 'crop' expected an integer in [0, 4096]")
  check.raises(function() ds:batches { augment = { crop = 1, fill = { 1, 2 } } } end,
    "bn.data.batches: option 'fill' expected 1 numbers (one per channel), got a table of 2")
  local flat = bn.data.blobs { n = 10 }
  check.raises(function() flat:batches { augment = true } end,
    "bn.data.batches: augmentation (crop, flip) needs images [N x C x H x W], 'blobs' has items [2]")
  -- Raised at the caller's line, not inside bn.data.
  local err = check.raises(function() ds:batches { size = -1 } end)
  check.contains(err, "test_data.lua:")
end

-- ---- splits, subsets, normalization ---------------------------------------------------

function T.split_disjoint_complete_deterministic()
  local ds = indexed(1000)
  local tr, va = ds:split { validation = 100, seed = 3 }
  check.eq(tr.n, 900)
  check.eq(va.n, 100)
  check.eq(tr.name, "indexed:train")
  local seen = {}
  for _, part in ipairs({ tr, va }) do
    local prev = 0
    for _, item in ipairs(ids(part.images)) do
      check.eq(seen[item], nil, "item in both parts")
      seen[item] = true
      check.truthy(item > prev, "original order kept")
      prev = item
    end
  end
  for i = 1, 1000 do check.truthy(seen[i], "item " .. i .. " in a part") end
  -- Same seed, same split; another seed, another one; the default seed is fixed.
  local _, va2 = ds:split { validation = 100, seed = 3 }
  check.eq(ids(va2.images), ids(va.images))
  local _, va3 = ds:split { validation = 100, seed = 4 }
  check.truthy(not bn.equal(va3.images, va.images), "another seed")
  bn.manual_seed(1)
  local _, d1 = ds:split { validation = 100 }
  bn.manual_seed(2)
  local _, d2 = ds:split { validation = 100 }
  check.eq(ids(d1.images), ids(d2.images))
  -- A fraction.
  local a, b = ds:split { validation = 0.25 }
  check.eq({ a.n, b.n }, { 750, 250 })
  check.raises(function() ds:split { validation = 1000 } end,
    "bn.data.split: option 'validation' expected an integer in [1, 999], got number 1000")
  check.raises(function() ds:split {} end, "bn.data.split: option 'validation' (a count, or a fraction in (0, 1)) is required")
end

function T.subset_get_and_counts()
  local ds = indexed(30, 2, 2, 3)
  local s = ds:subset({ 5, 5, 30 }, "mine")
  check.eq(s.n, 3)
  check.eq(s.name, "mine")
  check.eq(ids(s.images), { 5, 5, 30 })
  check.eq(s:label_list(), { 2, 2, 3 })
  check.eq(ds:class_counts(), { 10, 10, 10 })
  check.eq(ds:subset(bn.tensor { 2, 1 }):label_list(), { 2, 1 })
  check.raises(function() ds:subset({ 0 }) end, "bn.data.subset: indices[1] expected an index in [1, 30], got number 0")
  check.raises(function() ds:get(31) end, "bn.data.get: index expected an integer in [1, 30], got number 31")
  check.contains(tostring(ds), "Dataset 'indexed': 30 x [1 x 2 x 2], 3 classes")
end

function T.normalize_with_given_stats_and_datasets()
  local a = bn.data.random_labels { n = 200, shape = { 3, 4, 4 }, seed = 1 }
  local b = bn.data.random_labels { n = 50, shape = { 3, 4, 4 }, seed = 2 }
  local stats = a:normalize()
  check.eq(#stats.mean, 3)
  local s = a:channel_stats()
  for c = 1, 3 do
    check.near(s.mean[c], 0, 1e-5)
    check.near(s.std[c], 1, 1e-5)
  end
  b:normalize(a) -- a's statistics, not b's own
  check.eq(b.stats, a.stats)
  local c = bn.data.random_labels { n = 10, shape = { 3, 2, 2 }, seed = 3 }
  local before = c.images:clone()
  c:normalize { mean = 0.5, std = 0.25 }
  check.truthy(bn.allclose(c.images, (before - 0.5) / 0.25, 1e-6, 1e-6), "given numbers")
  check.eq(c.stats.mean, { 0.5, 0.5, 0.5 })
  local d = bn.data.random_labels { n = 10, shape = { 3, 2, 2 } }
  check.raises(function() d:normalize { mean = { 1, 2 }, std = 1 } end,
    "bn.data.normalize: mean expected 3 numbers (one per channel), got a table of 2")
  check.raises(function() d:normalize { mean = 0, std = 0 } end, "std[1] expected finite and > 0, got 0")
  check.raises(function() d:normalize(d) end, "bn.data.normalize: the dataset 'random_labels' given for statistics is not normalized")
  check.raises(function() d:normalize "x" end, "argument #2 (stats) expected a table {mean =, std =}")
  -- Constant channels cannot be standardized.
  local flat = bn.data.dataset(bn.ones(4, 1, 2, 2), { 1, 1, 1, 1 })
  check.raises(function() flat:normalize() end, "(a constant channel)")
end

-- ---- synthetic sets --------------------------------------------------------------------

function T.blobs()
  local ds = bn.data.blobs { n = 600, classes = 3, dim = 5, seed = 1, separation = 5 }
  check.eq(ds.images:shape(), { 600, 5 })
  check.eq(ds.classes, 3)
  check.eq(ds:class_counts(), { 200, 200, 200 })
  -- Seeded: the same seed gives the same set, another seed another.
  local again = bn.data.blobs { n = 600, classes = 3, dim = 5, seed = 1, separation = 5 }
  check.truthy(bn.equal(ds.images, again.images) and bn.equal(ds.labels, again.labels), "same seed")
  check.truthy(not bn.equal(ds.images, bn.data.blobs { n = 600, classes = 3, dim = 5, seed = 2 }.images), "another seed")
  -- Separable: nearest class mean classifies almost everything.
  local x, labels = ds.images:totable(), ds:label_list()
  local means, counts = {}, {}
  for k = 1, 3 do means[k], counts[k] = { 0, 0, 0, 0, 0 }, 0 end
  for i = 1, 600 do
    local k = labels[i]
    counts[k] = counts[k] + 1
    for j = 1, 5 do means[k][j] = means[k][j] + x[i][j] end
  end
  local right = 0
  for i = 1, 600 do
    local best, bestd = nil, math.huge
    for k = 1, 3 do
      local dist = 0
      for j = 1, 5 do dist = dist + (x[i][j] - means[k][j] / counts[k]) ^ 2 end
      if dist < bestd then best, bestd = k, dist end
    end
    if best == labels[i] then right = right + 1 end
  end
  check.truthy(right > 570, ("nearest-mean accuracy %d / 600"):format(right))
  -- Image-shaped blobs work with augmentation.
  local img = bn.data.blobs { n = 20, classes = 4, shape = { 3, 8, 8 } }
  check.eq(img.images:shape(), { 20, 3, 8, 8 })
  check.eq(img.shape, { 3, 8, 8 })
  check.eq(img:batches { size = 8, augment = true, seed = 1 }():shape(), { 8, 3, 8, 8 })
  check.raises(function() bn.data.blobs { dim = 2, shape = { 2 } } end, "bn.data.blobs: give either 'dim' or 'shape', not both")
  check.raises(function() bn.data.blobs { classes = 0 } end, "bn.data.blobs: option 'classes' expected an integer in [1, 16777216], got number 0")
end

function T.random_labels_and_global_generator_untouched()
  bn.manual_seed(9)
  local a = bn.rand(3)
  bn.manual_seed(9)
  local ds = bn.data.random_labels { n = 500, classes = 7, seed = 3 }
  local b = bn.rand(3)
  check.truthy(bn.equal(a, b), "synthetic sets use their own generator")
  check.eq(ds.images:shape(), { 500, 1, 28, 28 })
  check.truthy(ds.images:min():item() >= 0 and ds.images:max():item() < 1, "uniform in [0, 1)")
  check.eq(ds.classes, 7)
  local counts = ds:class_counts()
  for k = 1, 7 do check.truthy(counts[k] > 40 and counts[k] < 105, "class " .. k .. " drawn " .. counts[k]) end
  check.truthy(bn.equal(ds.labels, bn.data.random_labels { n = 500, classes = 7, seed = 3 }.labels), "seeded")
  -- Random labels over a real set: a fraction of them replaced.
  local base = indexed(1000)
  local half = base:with_random_labels { fraction = 0.5, seed = 1 }
  check.eq(half.images, base.images) -- shared, not copied
  local changed, orig, new = 0, base:label_list(), half:label_list()
  for i = 1, 1000 do if orig[i] ~= new[i] then changed = changed + 1 end end
  -- Replaced with probability 1/2, and a replacement keeps the label 1/10 of the time.
  check.truthy(changed > 390 and changed < 510, "changed " .. changed)
  check.eq(base:with_random_labels { fraction = 0 }:label_list(), orig)
end

function T.dataset_from_tensors_checks()
  local x = bn.zeros(4, 1, 2, 2)
  local ds = bn.data.dataset(x, bn.tensor { 1, 2, 3, 2 })
  check.eq(ds.classes, 3)
  check.eq(bn.data.is_dataset(ds), true)
  check.raises(function() bn.data.dataset(x, { 1, 2, 3 }) end, "bn.data.dataset: 4 images but 3 labels")
  check.raises(function() bn.data.dataset(x, { 1, 2, 0, 1 }) end, "bn.data.dataset: labels[3] expected a class in [1, classes] (1-based), got number 0")
  check.raises(function() bn.data.dataset(x, { 1, 2, 5, 1 }, { classes = 4 }) end, "labels[3] expected a class in [1, 4]")
  check.raises(function() bn.data.dataset(bn.zeros(4), { 1, 1, 1, 1 }) end, "images expected [N x C x H x W] or [N x D]")
  check.raises(function() bn.data.dataset(bn.zeros(4, 2):requires_grad(true), { 1, 1, 1, 1 }) end, "without autograd")
  check.raises(function() bn.data.dataset(x, { 1, 1, 1, 1 }, { clases = 2 }) end, "unknown option 'clases'")
end

-- ---- files: formats, damage, missing data -------------------------------------------------

function T.mnist_from_a_directory()
  local d = mnist_dir("mnist_ok")
  local train, test = bn.data.mnist { dir = d }
  check.eq({ train.n, test.n }, { 20, 10 })
  check.eq(train.shape, { 1, 4, 4 })
  check.eq(train:label_list()[1], 1)  -- byte 0 is class 1
  check.eq(train:label_list()[10], 10)
  check.near(train.images[2]:max():item(), 7 / 255, 1e-7)
  -- Validation split and normalization in one call: stats from the 15 training items.
  local tr, va, te = bn.data.mnist { dir = d, validation = 5, normalize = true, seed = 1 }
  check.eq({ tr.n, va.n, te.n }, { 15, 5, 10 })
  check.eq({ tr.name, va.name, te.name }, { "mnist/train", "mnist/val", "mnist/test" })
  check.near(tr:channel_stats().mean[1], 0, 1e-5)
  check.eq(te.stats, tr.stats)
  -- One split; the test set alone, normalized with the training statistics.
  check.eq(bn.data.mnist { dir = d, split = "train" }.n, 20)
  local t2 = bn.data.mnist { dir = d, split = "test", normalize = true }
  local t3 = bn.data.mnist { dir = d, split = "test", normalize = bn.data.mnist { dir = d, split = "train", normalize = true } }
  check.truthy(bn.equal(t2.images, t3.images), "normalize = true on test uses the training stats")
end

function T.bnlab_data_environment_variable()
  -- BNLAB_DATA is a root holding a directory per data set (mnist/,
  -- fashion-mnist/, cifar-10-batches-bin/, ...) or the files themselves.
  local root = tmpdir("root")
  os.execute("mkdir -p '" .. root .. "/mnist'")
  write(root .. "/mnist/t10k-images-idx3-ubyte", idx_images(10, 4, 4))
  write(root .. "/mnist/t10k-labels-idx1-ubyte", idx_labels(10))
  local function run(dir, code)
    local p = io.popen(("BNLAB_DATA='%s' %s -e '%s' 2>&1"):format(dir, check.bnlab(), code))
    local out = p:read("a")
    p:close()
    return out
  end
  check.eq(run(root, 'print(bn.data.mnist{split = "test"}.n)'), "10\n")
  check.eq(run(root .. "/mnist", 'print(bn.data.mnist{split = "test"}.n)'), "10\n")
  local out = run(root, 'bn.data.mnist{split = "train"}')
  check.contains(out, "bn.data.mnist: idx: " .. root .. "/mnist/train-images-idx3-ubyte[.gz]: no such file (also looked in "
    .. root .. "/MNIST, " .. root .. ")")
end

function T.damaged_idx_files()
  local function fails(name, files, want)
    local d = tmpdir(name)
    write(d .. "/train-images-idx3-ubyte", files.images or idx_images(20, 4, 4))
    write(d .. "/train-labels-idx1-ubyte", files.labels or idx_labels(20))
    write(d .. "/t10k-images-idx3-ubyte", idx_images(10, 4, 4))
    write(d .. "/t10k-labels-idx1-ubyte", idx_labels(10))
    local err = check.raises(function() bn.data.mnist { dir = d } end)
    for _, w in ipairs(want) do check.contains(err, (w:gsub("DIR", d))) end
    check.contains(err, "MNIST has no Debian package") -- how to get intact files
    return err
  end
  local good = idx_images(20, 4, 4)
  fails("truncated", { images = good:sub(1, #good - 5) },
    { "bn.data.mnist: idx: DIR/train-images-idx3-ubyte: truncated: header declares 20 images of 4 x 4 (320 data bytes), the file has 315 data bytes" })
  fails("truncated_header", { images = good:sub(1, 10) }, { "idx: DIR/train-images-idx3-ubyte: truncated: the file ends inside the 16-byte IDX header" })
  fails("bad_magic", { images = "\x12\x34" .. good:sub(3) }, { "idx: DIR/train-images-idx3-ubyte: not an IDX file: magic is 0x12340803" })
  fails("swapped", { images = idx_labels(20) }, { "DIR/train-images-idx3-ubyte: magic 0x00000801: 1 dimension", "(this looks like a labels file)" })
  fails("counts", { labels = idx_labels(19) },
    { "bn.data.mnist: idx: DIR/train-images-idx3-ubyte has 20 images but DIR/train-labels-idx1-ubyte has 19 labels" })
  fails("extra", { labels = idx_labels(20) .. "xyz" }, { "DIR/train-labels-idx1-ubyte: header declares 20 labels (20 data bytes), the file has 23 data bytes (3 too many)" })
  local bad_label = idx_labels(20):sub(1, -2) .. string.char(10)
  fails("label_range", { labels = bad_label }, { "bn.data.mnist: idx: DIR/train-labels-idx1-ubyte: label 10 is out of range for MNIST's 10 classes" })
  -- A missing file names the file and how to get the data.
  local empty = tmpdir("empty")
  local err = check.raises(function() bn.data.mnist { dir = empty } end)
  check.contains(err, "bn.data.mnist: idx: " .. empty .. "/train-images-idx3-ubyte[.gz]: no such file; MNIST has no Debian package")
  local err2 = check.raises(function() bn.data.fashion_mnist { dir = empty } end)
  check.contains(err2, "bn.data.fashion_mnist: idx: " .. empty .. "/train-images-idx3-ubyte[.gz]: no such file; install Debian's dataset-fashion-mnist")
  -- Missing test files fail before the training files are read.
  local half = tmpdir("half")
  write(half .. "/train-images-idx3-ubyte", good)
  write(half .. "/train-labels-idx1-ubyte", idx_labels(20))
  check.raises(function() bn.data.mnist { dir = half } end, "idx: " .. half .. "/t10k-images-idx3-ubyte[.gz]: no such file")
  check.eq(bn.data.mnist { dir = half, split = "train" }.n, 20)
  -- Position: the user's line.
  check.contains(err, "test_data.lua:")
end

function T.cifar_files()
  local d = tmpdir("cifar10")
  for b = 1, 5 do write(d .. "/data_batch_" .. b .. ".bin", cifar_records(2, 1, b)) end
  write(d .. "/test_batch.bin", cifar_records(3, 1, 0))
  local train, test = bn.data.cifar10 { dir = d }
  check.eq({ train.n, test.n }, { 10, 3 })
  check.eq(train.shape, { 3, 32, 32 })
  check.eq(train.class_names[1], "airplane")
  check.eq(test:label_list(), { 1, 2, 3 })
  check.eq(train:label_list()[1], 2) -- batch 1, record 0: byte 1
  local c = train:channel_stats()
  check.eq({ c.mean[1], c.mean[2], c.mean[3] }, { 1.0, 0.0, 0.0 }) -- red images
  check.eq(train:batches { size = 4, augment = true, seed = 1 }():shape(), { 4, 3, 32, 32 })
  -- Damaged: a size that is not whole records.
  write(d .. "/data_batch_3.bin", cifar_records(2, 1, 0):sub(1, 5000))
  local err = check.raises(function() bn.data.cifar10 { dir = d } end)
  check.contains(err, "bn.data.cifar10: cifar: " .. d .. "/data_batch_3.bin: file size 5000 is not a multiple of the 3073-byte CIFAR-10 record")
  check.contains(err, "https://www.cs.toronto.edu/~kriz/cifar.html")
  -- Missing.
  os.remove(d .. "/test_batch.bin")
  check.raises(function() bn.data.cifar10 { dir = d, split = "test" } end,
    "bn.data.cifar10: cifar: " .. d .. "/test_batch.bin: no such file; get the binary version (cifar-10-binary.tar.gz)")
  -- CIFAR-100: fine (default) or coarse labels.
  local e = tmpdir("cifar100")
  write(e .. "/train.bin", cifar_records(4, 2, 0))
  write(e .. "/test.bin", cifar_records(2, 2, 5))
  local fine = bn.data.cifar100 { dir = e, split = "train" }
  check.eq(fine.classes, 100)
  check.eq(fine:label_list(), { 1, 2, 3, 4 })
  local coarse = bn.data.cifar100 { dir = e, split = "test", labels = "coarse" }
  check.eq(coarse.classes, 20)
  check.eq(coarse:label_list(), { 6, 7 })
  check.raises(function() bn.data.cifar100 { dir = e, labels = "medium" } end,
    "bn.data.cifar100: option 'labels' expected one of \"fine\", \"coarse\", got string 'medium'")
  check.raises(function() bn.data.cifar10 { dir = e, labels = "fine" } end, "bn.data.cifar10: unknown option 'labels'")
end

function T.loader_option_errors()
  check.raises(function() bn.data.fashion_mnist { splt = "train" } end, "bn.data.fashion_mnist: unknown option 'splt'")
  check.raises(function() bn.data.fashion_mnist { split = "val" } end,
    "bn.data.fashion_mnist: option 'split' expected one of \"train\", \"test\", \"both\", got string 'val'")
  check.raises(function() bn.data.fashion_mnist { dir = 3 } end, "option 'dir' expected a directory name, got number 3")
  check.raises(function() bn.data.fashion_mnist { validation = -1 } end,
    "option 'validation' expected a count >= 1 or a fraction in (0, 1), got number -1")
  check.raises(function() bn.data.fashion_mnist { normalize = "yes" } end, "option 'normalize' expected true, false")
  check.raises(function() bn.data.fashion_mnist "train" end, "bn.data.fashion_mnist: argument #1 expected a table of options")
end

-- Last in sorted order: removes the temp files.
function T.zz_cleanup()
  if tmp_root then os.execute("rm -rf '" .. tmp_root .. "'") end
  cache.train, cache.test = nil, nil
  collectgarbage()
end

return T
