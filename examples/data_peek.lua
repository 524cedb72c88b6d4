-- A first look at the data: load Fashion-MNIST (or, with --set, MNIST /
-- CIFAR-10 / CIFAR-100 from --data DIR), print shapes, class counts, the
-- normalization statistics, one augmented batch's statistics, and how fast
-- batches come.
--   ./bnlab examples/data_peek.lua
--   ./bnlab examples/data_peek.lua --set cifar10 --data ~/data/cifar-10-batches-bin
local bn = require "bnlab"

local opts = bn.args({
  set = { "fashion_mnist", "fashion_mnist, mnist, cifar10 or cifar100" },
  data = { "", "directory of the files (default: the Debian package, or $BNLAB_DATA)" },
  batch_size = { 128, "mini-batch size" },
  seed = { 1, "seed of the batch order and augmentation" },
  validation = { 5000, "training items held out for validation (0: none)" },
  epochs = { 2, "epochs to time" },
}, "Load a data set and print what it looks like.")

local loaders = { fashion_mnist = true, mnist = true, cifar10 = true, cifar100 = true }
if not loaders[opts.set] then
  io.stderr:write("--set expected fashion_mnist, mnist, cifar10 or cifar100, got " .. opts.set .. "\n")
  os.exit(2)
end

local clock = bn.clock or os.clock
local t0 = clock()
local train, val, test = bn.data[opts.set] {
  dir = opts.data ~= "" and opts.data or nil,
  normalize = true,
  validation = opts.validation > 0 and opts.validation or nil,
  seed = 0,
}
if not test then val, test = nil, val end
print(("loaded in %.2f s"):format(clock() - t0))

for _, ds in ipairs({ train, val or false, test }) do
  if ds then
    print(ds)
    print("  images", ds.images, "\n  labels", ds.labels)
  end
end

-- Class counts, with names.
print("\nclass          train   " .. (val and "  val   " or "") .. " test")
local ctr, cva, cte = train:class_counts(), val and val:class_counts(), test:class_counts()
for k = 1, train.classes do
  local name = train.class_names and train.class_names[k] or tostring(k)
  print(("%-12s %7d %s %7d"):format(name, ctr[k], val and ("%7d"):format(cva[k]) or "", cte[k]))
end

print(("\nnormalization (from the training set): mean %s, std %s"):format(
  table.concat(train.stats.mean, ", "), table.concat(train.stats.std, ", ")))

-- One augmented batch.
local x, y, i = train:batches { size = opts.batch_size, shuffle = true, seed = opts.seed, augment = true }()
print(("\nbatch %d: x %s, y %s"):format(i, table.concat(x:shape(), " x "), table.concat(y:shape(), " x ")))
print(("  x: min %.3f  max %.3f  mean %.3f  std %.3f"):format(x:min():item(), x:max():item(), x:mean():item(),
  x:std():item()))
local counts = {}
for _, v in ipairs(y:totable()) do counts[v] = (counts[v] or 0) + 1 end
local parts = {}
for k = 1, train.classes do parts[k] = tostring(counts[k] or 0) end
print("  labels per class: " .. table.concat(parts, " "))

-- Throughput of the pipeline alone (shuffle + gather + pad/crop/flip),
-- after an untimed warm-up epoch (first-touch page faults, allocator).
for _ in train:batches { size = opts.batch_size, augment = true, seed = 0 } do end
for _, augment in ipairs({ false, true }) do
  local n, t = 0, clock()
  for e = 1, opts.epochs do
    for _ in train:batches { size = opts.batch_size, shuffle = true, seed = opts.seed, epoch = e, augment = augment } do
      n = n + 1
    end
  end
  local dt = clock() - t
  print(("%s: %d batches of %d in %.2f s: %.0f batches/s, %.0f images/s"):format(
    augment and "augmented" or "plain    ", n, opts.batch_size, dt, n / dt, n * opts.batch_size / dt))
end
