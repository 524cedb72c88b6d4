-- bn.experiment: what every script under experiments/ shares, so that each
-- script is only its science (about a page): the common options and the
-- --scale presets, the data, the model, CSV and summary.json writing, the
-- closing human summary, and progress lines for long loops.
--
--   local o = bn.experiment.start{
--     name = "divergence", description = "E2: ...",
--     options = { steps = { 50, "updates probed" } },          -- script-specific (bn.args spec)
--     scales = { quick = { depth = 56, steps = 20 }, paper = { depth = 110, steps = 100 } },
--   }
--   ... science ...
--   bn.experiment.finish(o, summary, "one-line human summary")
--
-- Scale presets fill every option the command line did not give, so
-- `--scale paper --depth 56` means "paper sizes, but 56 layers". The scale
-- "tiny" (synthetic data, a few steps) exists for the test suite. Reference:
-- docs/experiments.md.

local bn = require "bnlab"
local json = require "bnlab.json"

local experiment = {}

local COMMON = {
  scale = { "quick", "quick | paper | tiny (tiny: synthetic data, for tests)" },
  depth = { 56, "ResNet depth 6n+2" },
  norm = { { "bn", "none" }, "normalizations compared: bn, none, last" },
  lr = { 0.1, "learning rate" },
  batch = { 128, "batch size" },
  seed = { 1, "random seed (weights, data order)" },
  data = { "", "data directory (default: Debian's Fashion-MNIST / BNLAB_DATA)" },
  dataset = { "fashion_mnist", "fashion_mnist | mnist | cifar10 | cifar100 | synthetic" },
  out = { "results/experiment", "output directory" },
}
local SCALES = { quick = true, paper = true, tiny = true }
local NORMS = { bn = true, none = true, last = true }

local function fail(fmt, ...) error("bn.experiment: " .. fmt:format(...), 3) end

-- Was option `name` written on the command line (any spelling bn.args takes)?
local function given(argv, name)
  local dashed = name:gsub("_", "-")
  for _, a in ipairs(argv) do
    for _, n in ipairs{ name, dashed } do
      if a == "--" .. n or a == "--no-" .. n or a:sub(1, #n + 3) == "--" .. n .. "=" then return true end
    end
  end
  return false
end

local function script_argv()
  local argv = {}
  if type(arg) == "table" and arg[-1] ~= nil then for i = 1, #arg do argv[i] = arg[i] end end
  return argv
end

local function preset_text(scales)
  local names, lines = {}, {}
  for s in pairs(scales) do names[#names + 1] = s end
  table.sort(names)
  for _, s in ipairs(names) do
    local keys, parts = {}, {}
    for k in pairs(scales[s]) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = scales[s][k]
      parts[#parts + 1] = ("%s=%s"):format(k, type(v) == "table" and table.concat(v, ",") or tostring(v))
    end
    lines[#lines + 1] = ("  --scale %s: %s"):format(s, table.concat(parts, " "))
  end
  return table.concat(lines, "\n")
end

--- bn.experiment.start{ name, description, options = {bn.args spec}, scales = {scale = {option = value}},
-- argv = (default: the script's arguments) } -> options. Parses the command line (--help lists the
-- options and the presets), applies the preset of --scale, checks --norm, creates --out, seeds the
-- generator and records provenance for every figure.
function experiment.start(spec)
  if type(spec) ~= "table" or type(spec.name) ~= "string" then
    fail("start: argument #1 expected a table with a name, got %s", type(spec))
  end
  local scales = spec.scales or {}
  scales.tiny = scales.tiny or {}
  local options = {}
  for k, v in pairs(COMMON) do options[k] = v end
  options.out = { "results/" .. spec.name, "output directory" }
  for k, v in pairs(spec.options or {}) do options[k] = v end
  local argv = spec.argv or script_argv()
  local description = (spec.description or spec.name) .. "\n\nScale presets (an option given on the command line wins):\n"
    .. preset_text(scales)
  local o = bn.args(options, { description = description, argv = argv })
  if not SCALES[o.scale] then
    io.stderr:write(("%s: --scale expected quick, paper or tiny, got '%s'\n"):format(spec.name, o.scale))
    os.exit(2, true)
  end
  for k, v in pairs(scales[o.scale] or {}) do
    if not given(argv, k) then o[k] = v end
  end
  if o.scale == "tiny" and not given(argv, "dataset") then o.dataset = "synthetic" end
  for _, n in ipairs(type(o.norm) == "table" and o.norm or { o.norm }) do
    if not NORMS[n] then
      io.stderr:write(("%s: --norm expected a list of bn, none, last; got '%s'\n"):format(spec.name, tostring(n)))
      os.exit(2, true)
    end
  end
  if (o.depth - 2) % 6 ~= 0 or o.depth < 8 then
    io.stderr:write(("%s: --depth expected 6n+2 (8, 14, 20, 32, 44, 56, 110, ...), got %d\n"):format(spec.name, o.depth))
    os.exit(2, true)
  end
  o.name = spec.name
  o.t0 = bn.clock()
  bn.mkdir(o.out)
  bn.manual_seed(o.seed)
  bn.plot.provenance{ seed = o.seed, args = argv, scale = o.scale }
  return o
end

--- bn.experiment.data(o) -> train, test: the data set of --dataset from --data, normalized per
-- channel; "synthetic" is Gaussian blobs of 1x28x28 images in 10 classes (o.synthetic_n items).
function experiment.data(o)
  if o.dataset == "synthetic" then
    local n = o.synthetic_n or 512
    local all = bn.data.blobs{ n = n + n // 4, classes = 10, shape = { 1, 28, 28 }, seed = o.seed, separation = 0.5 }
    local train, test = all:split{ validation = n // 4, seed = o.seed }
    o.train_set = train
    return train, test
  end
  local load = bn.data[o.dataset]
  if type(load) ~= "function" then fail("data: unknown dataset '%s'", tostring(o.dataset)) end
  local train, test = load{ dir = o.data ~= "" and o.data or nil, normalize = true }
  o.train_set = train
  return train, test
end

--- bn.experiment.batch(ds, size, seed) -> x, y: the first batch of a seeded shuffle.
function experiment.batch(ds, size, seed)
  for x, y in ds:batches{ size = math.min(size, ds.n), shuffle = true, seed = seed } do return x, y end
end

--- bn.experiment.resnet(o, norm [, depth [, seed]]) -> the CIFAR ResNet of --depth for this data.
function experiment.resnet(o, norm, depth, seed)
  local train = o.train_set
  return bn.models.resnet{ depth = depth or o.depth, norm = norm, seed = seed or o.seed,
    in_channels = train and train.shape[1] or 1, classes = train and train.classes or 10 }
end

--- The label a figure uses for a normalization.
function experiment.label(norm)
  return ({ bn = "BN", none = "no BN", last = "BN after the last block" })[norm] or tostring(norm)
end

local function cell(v)
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "nan" elseif v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
    return ("%.9g"):format(v)
  end
  v = tostring(v)
  if v:find('[,"\n]') then v = '"' .. v:gsub('"', '""') .. '"' end
  return v
end

--- bn.experiment.csv(o, file, header, rows) -> path: writes OUT/file atomically; header is a list
-- of column names, rows a list of lists (numbers to 9 significant digits, nan/inf spelled out).
function experiment.csv(o, file, header, rows)
  local lines = { table.concat(header, ",") }
  for i, row in ipairs(rows) do
    local cells = {}
    for j = 1, #header do cells[j] = cell(row[j] == nil and "" or row[j]) end
    lines[i + 1] = table.concat(cells, ",")
  end
  local path = experiment.path(o, file)
  bn.write_file(path, table.concat(lines, "\n") .. "\n")
  return path
end

--- OUT/file.
function experiment.path(o, file) return o.out .. "/" .. file end

--- bn.experiment.progress(total, label) -> p with p:step(i [, text]): a redrawn line on a
-- terminal, otherwise a plain line at most every 10% of the work (and at the end).
function experiment.progress(total, label)
  local tty, t0, last_pct = bn.isatty(io.stdout), bn.clock(), -1
  local p = {}
  function p:step(i, text)
    local pct = math.floor(100 * i / math.max(total, 1))
    local elapsed = bn.clock() - t0
    local eta = i > 0 and elapsed / i * (total - i) or 0 / 0
    local line = ("%s %d/%d (%d%%) %s, ETA %s%s"):format(label, i, total, pct, bn.progress.clock_text(elapsed),
      bn.progress.clock_text(eta), text and ("  " .. text) or "")
    if tty then
      io.stdout:write("\r\27[K" .. line .. (i >= total and "\n" or ""))
      io.stdout:flush()
    elseif pct >= last_pct + 10 or i >= total then
      last_pct = pct
      print(line)
    end
  end
  return p
end

--- bn.experiment.finish(o, summary, message): completes summary (experiment, scale, options, seconds,
-- bnlab version, message = the human summary), writes OUT/summary.json atomically, prints the message and where the results are.
-- summary.claim (what the paper says) and summary.holds (boolean: does our measurement agree) are
-- expected from every experiment; the report (experiments/paper.lua) reads them.
function experiment.finish(o, summary, message)
  summary.experiment = o.name
  summary.scale = o.scale
  summary.seconds = bn.clock() - o.t0
  summary.bnlab_version = bn.version
  summary.message = message
  local opts = {}
  for k, v in pairs(o) do
    if type(v) ~= "table" or (#v > 0 and type(v[1]) ~= "table") then
      if k ~= "t0" and k ~= "train_set" then opts[k] = v end
    end
  end
  summary.options = opts
  json.write(experiment.path(o, "summary.json"), summary)
  if message then print(message) end
  print(("%s: %s in %.0f s; figures and numbers in %s/"):format(o.name,
    summary.holds == nil and "done" or (summary.holds and "agrees with the paper" or "does NOT agree with the paper"),
    summary.seconds, o.out))
  return summary
end

return experiment
