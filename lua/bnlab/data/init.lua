-- bn.data: data sets and mini-batches (docs/data.md).
--
--   local train, test = bn.data.fashion_mnist{ normalize = true }
--   for x, y, i in train:batches{ size = 128, shuffle = true, epoch = e, augment = true } do
--     local loss = bn.cross_entropy(net:forward(x), y)
--   end
--
-- Loaders: fashion_mnist, mnist (IDX files, gzip or raw), cifar10, cifar100
-- (the binary version); synthetic sets: blobs, random_labels; a Dataset
-- over your own tensors: dataset(images, labels). Datasets are
-- bn.data.Dataset objects (lua/bnlab/data/dataset.lua). The C readers and
-- kernels are src/data/{idx,cifar,batch}.c, bound in src/bindings/data.c.
local core = require "bnlab.core"
local util = require "bnlab.data.util"
local Dataset = require "bnlab.data.dataset"
local synthetic = require "bnlab.data.synthetic"

local C = core._data
local fail = util.fail

local data = {
  Dataset = Dataset,
  is_dataset = Dataset.is_dataset,
  dataset = Dataset.from_tensors,
  blobs = synthetic.blobs,
  random_labels = synthetic.random_labels,
}

--- Where Debian's dataset-fashion-mnist installs its files.
data.FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

local DATA_HINT = "pass dir = DIR (scripts: --data DIR) or set BNLAB_DATA"

-- What each data set looks like on disk and how to get it.
local SETS = {
  fashion_mnist = {
    title = "Fashion-MNIST",
    format = "idx",
    subdirs = { "fashion-mnist", "fashion_mnist", "FashionMNIST" },
    system = data.FASHION_MNIST_DIR,
    files = {
      train = { "train-images-idx3-ubyte", "train-labels-idx1-ubyte" },
      test = { "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" },
    },
    classes = 10,
    class_names = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
      "Ankle boot" },
    hint = "install Debian's dataset-fashion-mnist (make deps, or apt-get install dataset-fashion-mnist), or "
      .. DATA_HINT,
  },
  mnist = {
    title = "MNIST",
    format = "idx",
    subdirs = { "mnist", "MNIST" },
    files = {
      train = { "train-images-idx3-ubyte", "train-labels-idx1-ubyte" },
      test = { "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" },
    },
    classes = 10,
    class_names = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" },
    hint = "MNIST has no Debian package: download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
      .. "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (https://yann.lecun.com/exdb/mnist/ or a mirror) "
      .. "into a directory and " .. DATA_HINT,
  },
  cifar10 = {
    title = "CIFAR-10",
    format = "cifar",
    label_bytes = 1,
    subdirs = { "cifar-10-batches-bin", "cifar10", "cifar-10" },
    files = {
      train = { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin" },
      test = { "test_batch.bin" },
    },
    classes = 10,
    class_names = { "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck" },
    names_file = "batches.meta.txt",
    hint = "get the binary version (cifar-10-binary.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html, "
      .. "unpack it and " .. DATA_HINT,
  },
  cifar100 = {
    title = "CIFAR-100",
    format = "cifar",
    label_bytes = 2,
    subdirs = { "cifar-100-binary", "cifar100", "cifar-100" },
    files = { train = { "train.bin" }, test = { "test.bin" } },
    classes = 100,
    coarse_classes = 20,
    names_file = "fine_label_names.txt",
    coarse_names_file = "coarse_label_names.txt",
    hint = "get the binary version (cifar-100-binary.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html, "
      .. "unpack it and " .. DATA_HINT,
  },
}

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The names a file may have on disk: IDX files as distributed (.gz) or
-- unpacked, also with the dot some mirrors use (train-images.idx3-ubyte).
local function variants(spec, base)
  if spec.format ~= "idx" then return { base } end
  local dotted = base:gsub("%-(idx%d)", ".%1", 1)
  return { base .. ".gz", base, dotted .. ".gz", dotted }
end

local function shown_name(spec, base)
  return spec.format == "idx" and (base .. "[.gz]") or base
end

-- The directories to look in, in order.
local function candidates(spec, dir)
  if dir then return { dir } end
  local list = {}
  local env = os.getenv("BNLAB_DATA")
  if env and env ~= "" then
    for _, sub in ipairs(spec.subdirs) do list[#list + 1] = env .. "/" .. sub end
    list[#list + 1] = env
  end
  if spec.system then list[#list + 1] = spec.system end
  return list
end

-- Finds the files of the wanted splits: the first candidate directory that
-- has all of them. Returns dir, {split = {paths}}; raises naming the first
-- missing file and how to get the data.
local function locate(fn, spec, dir, splits)
  local dirs = candidates(spec, dir)
  if #dirs == 0 then
    fail(fn, "no data directory for %s: %s", spec.title, spec.hint)
  end
  local best_missing, best_dir, best_found = nil, nil, -1
  for _, d in ipairs(dirs) do
    local found, missing, paths = 0, nil, {}
    for _, split in ipairs(splits) do
      paths[split] = {}
      for _, base in ipairs(spec.files[split]) do
        local path
        for _, name in ipairs(variants(spec, base)) do
          if file_exists(d .. "/" .. name) then
            path = d .. "/" .. name
            break
          end
        end
        if path then
          found = found + 1
          table.insert(paths[split], path)
        elseif not missing then
          missing = d .. "/" .. shown_name(spec, base)
        end
      end
    end
    if not missing then return d, paths end
    if found > best_found then best_missing, best_dir, best_found = missing, d, found end
  end
  local others = {}
  for _, d in ipairs(dirs) do
    if d ~= best_dir then others[#others + 1] = d end
  end
  fail(fn, "%s: %s: no such file%s; %s", spec.format, best_missing,
    #others > 0 and (" (also looked in " .. table.concat(others, ", ") .. ")") or "", spec.hint)
end

-- Class names from a CIFAR names file (one per line), if present.
local function read_names(path, count)
  local f = io.open(path, "r")
  if not f then return nil end
  local names = {}
  for line in f:lines() do
    line = line:gsub("%s+$", "")
    if line ~= "" then names[#names + 1] = line end
  end
  f:close()
  return #names == count and names or nil
end

-- Loads one split as a Dataset.
local function load_split(fn, spec, dir, split, paths, opts)
  local images, labels, coarse, msg
  if spec.format == "idx" then
    images, labels = C.load_idx(paths[1], paths[2])
    if not images then msg = labels end
  else
    images, labels, coarse = C.load_cifar(paths, spec.label_bytes)
    if not images then msg = labels end
  end
  if msg then
    -- The reader says which file and what is wrong; add how to get the data.
    if not msg:find("BNLAB_DATA", 1, true) then msg = msg .. "; to get intact files: " .. spec.hint end
    fail(fn, "%s", msg)
  end
  local classes, class_names = spec.classes, spec.class_names
  if spec.names_file then class_names = read_names(dir .. "/" .. spec.names_file, classes) or class_names end
  if opts.labels == "coarse" then
    labels, classes = coarse, spec.coarse_classes
    class_names = read_names(dir .. "/" .. spec.coarse_names_file, classes)
  end
  local top = labels:numel() > 0 and labels:max():item() or 0
  if top > classes then
    fail(fn, "%s: %s: label %d is out of range for %s's %d classes; to get intact files: %s", spec.format,
      paths[#paths], math.tointeger(top) - 1, spec.title, classes, spec.hint)
  end
  return Dataset._new {
    images = images,
    labels = labels,
    classes = classes,
    name = fn .. "/" .. split,
    class_names = class_names,
  }
end

local LOAD_OPTS = { split = true, dir = true, normalize = true, validation = true, seed = true }
local CIFAR100_OPTS = { split = true, dir = true, normalize = true, validation = true, seed = true, labels = true }

-- The loaders' common body: see data.fashion_mnist.
local function load(fn, opts)
  local spec = SETS[fn]
  opts = util.check_opts(fn, opts, spec.coarse_classes and CIFAR100_OPTS or LOAD_OPTS)
  local split = util.str(fn, opts, "split", { "train", "test", "both" }, "both")
  local dir = opts.dir
  if dir ~= nil and (type(dir) ~= "string" or dir == "") then
    fail(fn, "option 'dir' expected a directory name, got %s", util.describe(dir))
  end
  local normalize = opts.normalize
  if normalize ~= nil and type(normalize) ~= "boolean" and not Dataset.is_dataset(normalize)
    and not (type(normalize) == "table" and normalize.mean ~= nil and normalize.std ~= nil) then
    fail(fn, "option 'normalize' expected true, false, a table {mean =, std =} or a normalized Dataset, got %s",
      util.describe(normalize))
  end
  if Dataset.is_dataset(normalize) and not normalize.stats then
    fail(fn, "option 'normalize': the dataset '%s' is not normalized", normalize.name)
  end
  local validation = opts.validation
  if validation ~= nil then
    local ok = (math.type(validation) == "float" and validation > 0 and validation < 1)
      or (math.type(validation) and math.tointeger(validation) and validation >= 1)
    if not ok then
      fail(fn, "option 'validation' expected a count >= 1 or a fraction in (0, 1), got %s", util.describe(validation))
    end
  end
  local seed = util.int(fn, opts, "seed", 0, nil, 0)
  util.str(fn, opts, "labels", { "fine", "coarse" }, "fine")

  local want_train = split ~= "test" or normalize == true
  local want_test = split ~= "train"
  local splits = {}
  if want_train then splits[#splits + 1] = "train" end
  if want_test then splits[#splits + 1] = "test" end
  -- Every file is found before anything is read: a missing test file fails at once.
  local d, paths = locate(fn, spec, dir, splits)

  local train, val, test
  if want_train then
    train = load_split(fn, spec, d, "train", paths.train, opts)
    if validation then
      local count = math.type(validation) == "float" and math.floor(validation * train.n + 0.5) or validation
      if count < 1 or count >= train.n then
        fail(fn, "option 'validation' = %s leaves no training data (%d items)", tostring(validation), train.n)
      end
      local tr, va = train:split { validation = count, seed = seed }
      tr.name, va.name = fn .. "/train", fn .. "/val"
      train, val = tr, va
    end
  end
  if want_test then test = load_split(fn, spec, d, "test", paths.test, opts) end

  if normalize == true then
    local stats = train:normalize()
    if val then val:normalize(stats) end
    if test then test:normalize(stats) end
  elseif normalize then
    for _, ds in ipairs({ train or false, val or false, test or false }) do
      if ds then ds:normalize(normalize) end
    end
  end

  if split == "train" then
    if val then return train, val end
    return train
  elseif split == "test" then
    return test
  end
  if val then return train, val, test end
  return train, test
end

--- bn.data.fashion_mnist{split =, dir =, normalize =, validation =, seed =}
-- Fashion-MNIST (28 x 28 grey images, 10 classes; 60000 train, 10000 test)
-- from Debian's dataset-fashion-mnist, `dir`, or $BNLAB_DATA.
--   split      "train" | "test" | "both" (default): what to return
--   validation hold out this many (or this fraction of) training items
--   seed       which items are held out (default 0)
--   normalize  true: per-channel stats of the (remaining) training set,
--              applied to every returned set; or given stats / a Dataset
-- Returns train, test; train, val, test with validation; with split =
-- "train": train (, val); with split = "test": test.
function data.fashion_mnist(opts) return load("fashion_mnist", opts) end

--- bn.data.mnist{...}: MNIST, the same options (dir or BNLAB_DATA needed).
function data.mnist(opts) return load("mnist", opts) end

--- bn.data.cifar10{...}: CIFAR-10 binary version (dir or BNLAB_DATA needed).
function data.cifar10(opts) return load("cifar10", opts) end

--- bn.data.cifar100{..., labels = "fine" | "coarse"}: CIFAR-100.
function data.cifar100(opts) return load("cifar100", opts) end

--- bn.data.read_idx(images_path, labels_path) -> images [N x 1 x H x W],
-- labels [N] (1-based): one pair of IDX files, raising on any problem.
-- Argument errors from the C loader carry its own name: say ours instead.
local function renamed(name, c_name, ok, ...)
  if ok then return ... end
  local err = ...
  if type(err) == "string" then
    err = err:gsub("^[^\n]-:%d+: ", ""):gsub("^bn%.data%." .. c_name .. ":", "bn.data." .. name .. ":")
  end
  error(err, 3)
end

function data.read_idx(images_path, labels_path)
  local images, labels = renamed("read_idx", "load_idx", pcall(C.load_idx, images_path, labels_path))
  if not images then fail("read_idx", "%s", labels) end
  return images, labels
end

--- bn.data.read_cifar(paths, label_bytes) -> images [N x 3 x 32 x 32],
-- labels [N] (1-based; fine for CIFAR-100), coarse labels or nil.
function data.read_cifar(paths, label_bytes)
  local images, labels, coarse = renamed("read_cifar", "load_cifar", pcall(C.load_cifar, paths, label_bytes))
  if not images then fail("read_cifar", "%s", labels) end
  return images, labels, coarse
end

--- Low-level kernels (docs/data.md): gather rows with crop/flip, seeded
-- permutations, per-channel statistics, seeded random tensors.
data.gather = C.gather
data.randperm = C.randperm
data.channel_stats = C.channel_stats
data.uniform = C.uniform
data.normal = C.normal

return data
