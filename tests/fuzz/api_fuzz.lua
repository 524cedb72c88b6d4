-- API fuzzer for bnlab's Lua API (the C bindings and the tensor helpers).
--
--   bnlab tests/fuzz/api_fuzz.lua [--calls N] [--seed S] [--trace] [--quiet]
--                                 [--samples FILE] [--list] [--show KEY,KEY] [--hang S]
-- --trace prints each call to stderr before making it (the last line before
-- a crash is the culprit; same seed, same calls); --show prints every error
-- of the given entries ("bn.conv2d,Tensor.item"); --samples writes the first
-- error message of each entry to FILE.
--
-- Drives every public function of the `bn` table, every Tensor method
-- (bn.Tensor), the tensor operators/metamethods and every sub-table of C
-- functions (bn._data, bn.render with the canvas methods, bn._linalg,
-- bn._probe; new ones are picked up) with random calls: plausible
-- arguments built from a signature table, then mutated -- wrong types, wrong
-- arities, nil, NaN/Inf, empty and huge shapes, negative sizes, mismatched
-- shapes, non-contiguous views (transposed, narrowed, expanded, subsampled),
-- closed tensors (`<close>` or the __close metamethod), tensors that require
-- grad, calls inside bn.no_grad and coroutines, backward on random results,
-- hooks that raise, close their argument, keep it or re-enter the API.
-- A pool of interesting tensors is kept and mutated by the calls themselves.
--
-- Deterministic for a seed (own xorshift generator, sorted enumeration, the
-- global bnlab generator reseeded from the fuzzer's). The summary line is
--   api_fuzz: seed S, calls N, errors raised E, successes K, violations V, ...
-- and the script exits 1 when V > 0.
--
-- Checks (a failure is a "violation"):
--   * every error is a string naming the function: "bn.<name>" (or, for
--     luaL-style checks, the name in quotes); the tensor operators name
--     the bn function behind them (a + b -> bn.add, t[i] -> bn.index);
--   * when the fuzzer broke exactly one argument's *type* (a string where a
--     tensor goes, a closed tensor, nil for a required argument), the message
--     names an argument ("argument #k", an argument's name, or an option);
--   * bn.no_grad restores the grad mode, even when the function raises;
--   * tensor memory never exceeds the limit set (bn.mem_set_limit);
--   * no call uses more than HANG_SECONDS (20; --hang S) of CPU time;
--   * after the run and a full collection, tensor memory and autograd nodes
--     are back to where they were (no leak).
-- Crashes and sanitizer reports end the process: run under the ASan+UBSan
-- build (make BUILD=build-fuzz SANITIZE=1 build-fuzz/bnlab) to catch them.
--
-- Skipped or restricted (and why):
--   * bn.args, bn.build, bn.version: not functions of the tensor API
--     (bn.args parses the command line; os-level).
--   * bn.isatty: os-level (asks the terminal about a Lua file handle).
--   * lazily loaded Lua submodules (bn.nn, bn.optim, bn.data, bn.train, ...):
--     Lua libraries over this API, not part of the enumerated bn table.
--   * bn.num_threads: only called with invalid arguments or 1..2 (a valid
--     4096 would start thousands of OpenMP threads: not a bug, a fork bomb).
--   * bn.mem_set_limit: fuzzed, but the harness puts its own limit
--     (256 MB) back right after, so a huge valid allocation stays an error.
--   * functions that touch the file system (bn.save, bn.load, bn.write_file,
--     bn.save_safetensors, bn.load_safetensors, bn._data.load_idx,
--     bn._data.load_cifar, bn.render.read_png, canvas:save_png) only ever
--     get paths under a private temporary directory (plus invalid ones:
--     "", a zero byte); unknown new functions get temp paths for any string.
--   * huge-but-valid requests that the tensor memory limit cannot bound are
--     scaled down: bn.render.canvas above 2^20 pixels (a 16384^2 canvas is
--     1.8 GB of C memory), and tensors above 2^20 elements passed to
--     functions that copy them into Lua memory or onto disk (totable, equal,
--     render.range/histogram/heatmap, save, save_safetensors), counting the
--     nested tables too ([2^31 x 0] is 2^31 empty tables); and
--     bn._data.randperm above 2^20 (valid to 2^24, but 10+ s under ASan).
--   * comparison, concatenation, //, % and bitwise operators: not defined
--     for tensors; Lua raises its own "attempt to compare ..." errors.
--   * the `debug` library (can rewrite metatables: outside the promise).

local M = {}

-- A call using more CPU than this is reported (CPU, not wall time: a loaded
-- machine must not turn slow-but-valid calls into findings).
local HANG_SECONDS = 20
local MEM_LIMIT = 256 * 2 ^ 20 // 1
local POOL_MAX = 40
local KEEP_NUMEL = 1 << 16        -- results bigger than this are closed at once
local MATERIALIZE_NUMEL = 1 << 20 -- guard for functions copying into Lua memory
local NAN, INF = 0 / 0, math.huge

-- ---------------------------------------------------------------------------
-- Deterministic random numbers: xorshift64*, integers only.
local function new_rng(seed)
  local s = (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) | 1
  local r = {}
  function r.next()
    s = s ~ (s >> 12); s = s ~ (s << 25); s = s ~ (s >> 27)
    return (s * 0x2545F4914F6CDD1D) >> 11 -- 53 non-negative bits
  end
  function r.int(n) return r.next() % n + 1 end             -- 1..n
  function r.range(a, b) return a + r.next() % (b - a + 1) end
  function r.float() return r.next() / 2 ^ 53 end
  function r.chance(p) return r.float() < p end
  function r.pick(t) return t[r.next() % #t + 1] end
  return r
end

-- ---------------------------------------------------------------------------
-- Signatures: "kind:name ...". A trailing ? marks an optional argument.
-- Kinds: T tensor, TC tensor (closed ok), TN tensor or number, N number,
-- I integer, D dim, B boolean, STR string, P path, F function, L list of
-- tensors, LAB labels, O options, PAIR number or {h, w}, DATA tensor data,
-- C canvas, COL colour, NUMS array of numbers, TAB table, IDX indices,
-- NN number or numbers, SZ sizes (varargs or a table), DIMS permutation,
-- CORR correction, ANY anything, ANY* any number of anything.
local SPECS = {
  -- creation
  tensor = "DATA:data",
  zeros = "SZ:sizes", ones = "SZ:sizes", empty = "SZ:sizes", rand = "SZ:sizes", randn = "SZ:sizes",
  full = "SZ:sizes N:value",
  zeros_like = "T:input", ones_like = "T:input", empty_like = "T:input", rand_like = "T:input",
  randn_like = "T:input", full_like = "T:input N:value",
  arange = "N:start N?:end N?:step",
  linspace = "N:start N:end I:steps", logspace = "N:start N:end I:steps N?:base",
  eye = "I:n I?:m", manual_seed = "I:seed", is_tensor = "ANY:value",
  -- views
  view = "T:self SZ:sizes", reshape = "T:self SZ:sizes", view_as = "T:self T:other",
  permute = "T:self DIMS:dims", transpose = "T:self D:dim0 D:dim1", t = "T:self",
  narrow = "T:self D:dim I:start I:length", select = "T:self D:dim I:index",
  expand = "T:self SZ:sizes", expand_as = "T:self T:other",
  flatten = "T:self D?:start_dim D?:end_dim", squeeze = "T:self D?:dim", unsqueeze = "T:self D:dim",
  subsample = "T:x D:dim I:start I:step", contiguous = "T:self", clone = "T:self", detach = "T:self",
  -- reductions
  sum = "T:self D?:dim B?:keepdim", mean = "T:self D?:dim B?:keepdim", max = "T:self D?:dim B?:keepdim",
  min = "T:self D?:dim B?:keepdim", argmax = "T:self D?:dim B?:keepdim",
  var = "T:self D?:dim B?:keepdim CORR?:correction", std = "T:self D?:dim B?:keepdim CORR?:correction",
  -- arithmetic
  add = "TN:a TN:b", sub = "TN:a TN:b", mul = "TN:a TN:b", div = "TN:a TN:b", pow = "TN:a TN:b",
  neg = "T:input", exp = "T:input", log = "T:input", sqrt = "T:input", abs = "T:input",
  relu = "T:input", tanh = "T:input", sigmoid = "T:input", clamp = "T:input N?:min N?:max",
  -- nn ops
  matmul = "T:a T:b", linear = "T:x T:weight T?:bias", conv2d = "T:input T:weight T?:bias O?:options",
  batch_norm = "T:input T?:running_mean T?:running_var T?:weight T?:bias O?:options",
  softmax = "T:input D:dim", log_softmax = "T:input D:dim",
  cross_entropy = "T:logits LAB:labels", mse_loss = "T:input T:target",
  max_pool2d = "T:input PAIR:kernel_size O?:options", avg_pool2d = "T:input PAIR:kernel_size O?:options",
  adaptive_avg_pool2d = "T:input PAIR:output_size", dropout = "T:input N?:p B?:training",
  cat = "L:tensors D?:dim", stack = "L:tensors D?:dim", pad = "T:input TAB:pads N?:value",
  -- autograd
  requires_grad = "T:self B?:flag", requires_grad_ = "T:self B?:flag",
  backward = "T:self T?:grad B?:retain_graph", retain_grad = "T:self", register_hook = "T:self F:fn",
  zero_grad = "T:self", no_grad = "F:fn ANY*:args", set_grad_enabled = "B:mode", is_grad_enabled = "",
  hooks_add = "STR:pattern F?:fwd_fn F?:bwd_fn", hooks_remove = "I:id", nodes_alive = "",
  -- memory, files, runtime
  mem_in_use = "", mem_peak = "", mem_reset_peak = "", mem_set_limit = "I?:bytes",
  save = "T:tensor P:path", load = "P:path", save_safetensors = "P:path TAB:tensors TAB?:metadata",
  load_safetensors = "P:path", rng_state = "", set_rng_state = "TAB:state", write_file = "P:path STR:text",
  clock = "", num_threads = "I?:n", blas_version = "", sgd_step = "TAB:params TAB?:bufs TAB:opts",
  defer_interrupts = "", interrupted = "", raise_interrupt = "STR:message",
  -- tensor facts and contents (methods)
  shape = "T:self", size = "T:self D?:dim", dim = "T:self", numel = "T:self", item = "T:self",
  totable = "T:self", tolist = "T:self", is_contiguous = "T:self", is_closed = "TC:self",
  fill = "T:self N:value", fill_ = "T:self N:value", zero_ = "T:self", copy = "T:self T:src",
  copy_ = "T:self T:src", name = "T:self STR?:name",
  -- Lua helpers (lua/bnlab/tensor.lua)
  allclose = "TN:a TN:b N?:rtol N?:atol", equal = "T:a T:b", norm = "T:self N?:p", square = "T:self",
  type = "T:self",
  -- bn._data
  ["_data.load_idx"] = "P:images P:labels", ["_data.load_cifar"] = "TAB:paths I:label_bytes",
  ["_data.gather"] = "T:src IDX:indices O?:options", ["_data.randperm"] = "I:n I:seed", ["_data.seed"] = "",
  ["_data.channel_stats"] = "T:images", ["_data.normalize"] = "T:images NN:mean NN:std",
  ["_data.uniform"] = "TAB:sizes I:seed N?:lo N?:hi", ["_data.normal"] = "TAB:sizes I:seed N?:mean N?:std",
  -- bn._linalg, bn._probe (C halves of bn.linalg and bn.probe)
  ["_linalg.svdvals"] = "T:m", ["_probe.channel_stats"] = "T:x", ["_probe.histc"] = "T:x I:bins N?:min N?:max",
  ["_probe.conv_coherence"] = "T:dout T:input I:kh I:kw O?:options", ["_probe.node_id"] = "T:t",
  ["_probe.node_inputs"] = "T:t",
  -- bn.render and canvas methods
  ["render.canvas"] = "I:width I:height COL?:background", ["render.read_png"] = "P:path",
  ["render.colormap"] = "STR:name N:t", ["render.colormaps"] = "", ["render.font"] = "",
  ["render.text_size"] = "STR:text N?:size", ["render.range"] = "T:values B?:positive_only",
  ["render.histogram"] = "T:values N:lo N:hi I:bins B?:logbins",
  ["canvas.size"] = "C:canvas", ["canvas.pixel"] = "C:canvas I:x I:y",
  ["canvas.clip"] = "C:canvas N?:x0 N?:y0 N?:x1 N?:y1",
  ["canvas.fill_rect"] = "C:canvas N:x0 N:y0 N:x1 N:y1 COL:color N?:alpha",
  ["canvas.polyline"] = "C:canvas NUMS:xs NUMS:ys COL:color N:width N?:alpha NUMS?:dash",
  ["canvas.polygon"] = "C:canvas NUMS:xs NUMS:ys COL:color N?:alpha",
  ["canvas.marker"] = "C:canvas N:x N:y STR:shape N:size COL:color N?:alpha",
  ["canvas.text"] = "C:canvas STR:text N:x N:y O?:options", ["canvas.text_size"] = "C:canvas STR:text N?:size",
  ["canvas.heatmap"] = "C:canvas T:matrix N:x0 N:y0 N:x1 N:y1 O?:options",
  ["canvas.colorbar"] = "C:canvas N:x0 N:y0 N:x1 N:y1 STR?:cmap",
  ["canvas.save_png"] = "C:canvas P:path TAB?:text", ["canvas.close"] = "C:canvas",
  -- operators and metamethods
  ["op.add"] = "TN:a TN:b", ["op.sub"] = "TN:a TN:b", ["op.mul"] = "TN:a TN:b", ["op.div"] = "TN:a TN:b",
  ["op.pow"] = "TN:a TN:b", ["op.unm"] = "TC:a", ["op.index"] = "TC:self ANY:key",
  ["op.newindex"] = "TC:self ANY:key ANY:value", ["op.len"] = "TC:self", ["op.tostring"] = "TC:self",
  ["op.close"] = "TC:self", ["meta.__close"] = "ANY:value", ["meta.__gc"] = "ANY:value",
}

-- Skipped entries of the enumerated tables (see the header).
local SKIP = { args = "os-level (command line)", build = "not a function", version = "not a function",
  isatty = "os-level (terminal)" }
-- Tables of bn not enumerated as sub-tables of C functions.
local SUB_SKIP = { args = "os-level (command line parser)", build = "build facts",
  Tensor = "the methods table (enumerated as Tensor.*)" }

-- Functions whose string arguments are file names: only temp paths.
local FS = { save = true, load = true, write_file = true, save_safetensors = true, load_safetensors = true,
  ["_data.load_idx"] = true, ["_data.load_cifar"] = true, ["render.read_png"] = true,
  ["canvas.save_png"] = true }

-- Functions that copy a tensor into Lua memory or onto disk.
local MATERIALIZE = { totable = true, tolist = true, equal = true, save = true, save_safetensors = true,
  ["render.range"] = true, ["render.histogram"] = true, ["canvas.heatmap"] = true }

-- Where the message of an error is expected to come from, when not "bn.<key>".
local EXPECT = {
  fill_ = { "bn.fill" }, copy_ = { "bn.copy" }, tolist = { "bn.totable" },
  ["op.add"] = { "bn.add" }, ["op.sub"] = { "bn.sub" }, ["op.mul"] = { "bn.mul" }, ["op.div"] = { "bn.div" },
  ["op.pow"] = { "bn.pow" }, ["op.unm"] = { "bn.neg" }, ["op.len"] = { "bn.len" },
  ["op.index"] = { "bn.index", "bn.grad", "bn.is_leaf", "bn.grad_fn" },
  ["op.newindex"] = { "bn.newindex", "bn.grad" }, ["op.tostring"] = { "bn.tostring" },
  ["op.close"] = { "bn.close" }, ["meta.__close"] = { "bn.close" }, ["meta.__gc"] = { "bn.gc" },
}

-- Entries whose arity is not positional enough to blame a missing argument.
local NO_DROP_BLAME = { full = true, arange = true, ["canvas.clip"] = true, requires_grad = true,
  name = true }

local function parse_spec(spec)
  local params = {}
  for word in spec:gmatch("%S+") do
    local kind, name = word:match("^([^:]+):(.+)$")
    local opt = kind:sub(-1) == "?"
    if opt then kind = kind:sub(1, -2) end
    params[#params + 1] = { kind = kind, name = name, opt = opt }
  end
  return params
end

-- ---------------------------------------------------------------------------
function M.run(bn, opts)
  opts = opts or {}
  local calls_wanted = opts.calls or 5000
  local seed = opts.seed or 1
  local trace = opts.trace
  local out = opts.out or io.stdout
  local R = new_rng(seed)
  local T = bn.Tensor
  local TMT = getmetatable(bn.zeros(1))
  local D, RENDER = bn._data, bn.render
  local PACKED = table.pack

  -- ------------------------------------------------------------ state to restore
  collectgarbage("collect"); collectgarbage("collect")
  local base_mem, base_nodes = bn.mem_in_use(), bn.nodes_alive()
  local saved_threads = bn.num_threads()
  local saved_rng = bn.rng_state()
  local saved_grad = bn.is_grad_enabled()
  bn.num_threads(1)
  bn.manual_seed(seed)
  bn.mem_set_limit(MEM_LIMIT)

  -- ------------------------------------------------------------ temp dir
  local tmpdir
  do
    local name = os.tmpname() -- creates the file; we use its unique name
    os.remove(name)
    local suffix = name:match("[^/]*$")
    local shm = io.open("/dev/shm/.bnfuzz_probe", "w")
    if shm then shm:close(); os.remove("/dev/shm/.bnfuzz_probe") end
    tmpdir = (shm and "/dev/shm/" or (name:match("^(.*)/") or "/tmp") .. "/") .. "bnfuzz_" .. suffix
    assert(os.execute("mkdir -p '" .. tmpdir .. "'"), "api_fuzz: cannot create " .. tmpdir)
  end
  local function writebin(name, bytes)
    local f = assert(io.open(tmpdir .. "/" .. name, "wb")); f:write(bytes); f:close()
    return tmpdir .. "/" .. name
  end
  local function be32(n) return string.pack(">I4", n) end
  -- Seed files: valid, truncated, lying.
  writebin("idx_images", "\0\0\8\3" .. be32(2) .. be32(2) .. be32(3) .. string.rep("\7", 12))
  writebin("idx_labels", "\0\0\8\1" .. be32(2) .. "\1\9")
  writebin("idx_trunc", "\0\0\8\3" .. be32(2) .. be32(2))
  writebin("idx_huge", "\0\0\8\3" .. be32(0xFFFFFFFF) .. be32(10000) .. be32(10000) .. "\0\0\0")
  writebin("cifar.bin", "\3" .. string.rep("\200", 3072))
  writebin("cifar_bad.bin", "\3" .. string.rep("\200", 3000))
  writebin("garbage", "\147NUMPY\1\0\255\255{'descr': '<f4', 'shape': (1<<62,)}")
  writebin("empty", "")
  pcall(bn.save, bn.arange(6):view(2, 3), tmpdir .. "/a.npy")
  pcall(bn.save_safetensors, tmpdir .. "/c.safetensors", { w = bn.ones(2, 2), b = bn.zeros(3) }, { epoch = 3 })
  do
    local f = io.open(tmpdir .. "/a.npy", "rb")
    if f then local s = f:read("a"); f:close(); writebin("a_trunc.npy", s:sub(1, #s - 5)) end
    f = io.open(tmpdir .. "/c.safetensors", "rb")
    if f then
      local s = f:read("a"); f:close()
      writebin("c_trunc.safetensors", s:sub(1, #s - 3))
      writebin("c_lie.safetensors", string.pack("<I8", 1 << 40) .. s:sub(9))
    end
  end
  if RENDER then
    pcall(function() local c = RENDER.canvas(4, 3); c:save_png(tmpdir .. "/p.png", { { "Title", "x" } }); c:close() end)
  end
  local PATHS = {}
  for _, n in ipairs { "idx_images", "idx_labels", "idx_trunc", "idx_huge", "cifar.bin", "cifar_bad.bin",
    "garbage", "empty", "a.npy", "a_trunc.npy", "c.safetensors", "c_trunc.safetensors", "c_lie.safetensors",
    "p.png", "new.npy", "new.safetensors", "new.png", "new.txt", "missing/dir/x.npy", "", "." } do
    PATHS[#PATHS + 1] = n == "" and tmpdir or tmpdir .. "/" .. n
  end
  PATHS[#PATHS + 1] = ""
  PATHS[#PATHS + 1] = tmpdir .. "/zero\0byte.npy"
  local function norm_msg(s) -- temp paths out of messages (stable across runs)
    if type(s) ~= "string" then return s end
    local i = s:find(tmpdir, 1, true)
    while i do
      s = s:sub(1, i - 1) .. "$TMP" .. s:sub(i + #tmpdir)
      i = s:find(tmpdir, 1, true)
    end
    return s
  end

  -- ------------------------------------------------------------ value pools
  local NUM_PLAIN = { 0, 1, 2, 3, -1, 0.5, 1.5, 4, 0.1, 10, -2 }
  local NUM_WEIRD = { 0, -0.0, 1, -1, 2, -2, 0.5, -0.5, 1e-45, 1e-30, 1e30, 1e300, -1e300, INF, -INF, NAN,
    math.maxinteger, math.mininteger, 2 ^ 31, 2 ^ 31 - 1, -2 ^ 31, 2 ^ 32, 2 ^ 40, 2 ^ 40 + 1, 2 ^ 53, 2 ^ 63,
    -2 ^ 63, 1 << 40, (1 << 62), 1e15, 65536, 6 / 2, 7, 8, 9, 16, 1000, 4096, 3.0, 1e-5, 2 ^ 24, 2 ^ 24 + 1 }
  local STRINGS = { "", "x", "1", "2", "nan", "-1", "a.b", "*", "?", "stage*.relu", "zero\0byte",
    string.rep("long", 300), "\xff\xfe", "é", "%s%n%d", "[", "grad", "is_leaf", "grad_fn", "viridis",
    "magma", "gray", "o", "s", "^", "x", "+", ".", "#fff", "#1f77b4", "#zzzzzz", "left", "center", "top" }
  local NAMES = { "", "a", "x.y", "stage1.relu", "stage1.block2.conv1", "*", "?", "stage*", "layer.*.conv",
    "a\0b", string.rep("n", 500), "é", "\xff", "%s" }
  local COLORS = { 0, 0xFFFFFF, 0x1f77b4, 0xd62728, "#fff", "#1f77b4", "#D62728", 0, 0x2ca02c, "#000",
    -1, 0x1000000, "#zz0000", "red", "", 1.5, "#12345", NAN }
  local CMAPS = { "viridis", "magma", "gray", "inferno", "nope", "", "VIRIDIS" }
  local MARKERS = { "o", "s", "^", "v", "D", "x", "+", ".", "", "oo", "?" }

  local stats = { calls = 0, errors = 0, successes = 0, violations = 0, harness_errors = 0 }
  local per_fn = {}          -- key -> {calls, errors, ok}
  local violations = {}      -- list of {key, reason, msg, call}
  local samples = {}         -- key -> first error message
  local soft = {}            -- key -> first "nil, message" result
  local slowest = { t = 0 }
  local digest = 2166136261
  local function mix(s)
    for i = 1, #s do digest = ((digest ~ s:byte(i)) * 16777619) & 0xFFFFFFFF end
  end

  -- ------------------------------------------------------------ tensors
  local pool, canvases, hook_ids = {}, {}, {}
  local specials = {}

  local function is_tensor(v) return bn.is_tensor(v) end
  local function live(v) return bn.is_tensor(v) and not v:is_closed() end
  local function numel(v) return live(v) and v:numel() or 0 end
  local function close(v) if bn.is_tensor(v) then TMT.__close(v) end end

  local function pool_add(t)
    if not live(t) then return end
    if t:numel() > KEEP_NUMEL then close(t); return end
    if #pool < POOL_MAX then pool[#pool + 1] = t; return end
    local i = R.int(POOL_MAX)
    if R.chance(0.3) then close(pool[i]) end
    pool[i] = t
  end

  local function rand_shape(maxdim)
    local nd = R.pick { 0, 1, 1, 2, 2, 2, 3, 4, 4 }
    if maxdim and nd > maxdim then nd = maxdim end
    local s = {}
    for i = 1, nd do s[i] = R.pick { 0, 1, 1, 2, 2, 3, 3, 4, 5, 7 } end
    return s
  end
  local function copyt(t) local c = {} for i, v in ipairs(t) do c[i] = v end return c end

  -- A tensor of the given logical shape with a random layout and grad status.
  local function shaped(shape)
    local ok, t = pcall(function()
      local nd, r = #shape, R.int(7)
      local x
      if r == 1 and nd >= 2 then
        local s2 = copyt(shape); s2[nd], s2[nd - 1] = s2[nd - 1], s2[nd]
        x = bn.randn(s2):transpose(nd - 1, nd)
      elseif r == 2 and nd >= 1 then
        local s2 = copyt(shape); s2[1] = s2[1] + 2
        x = bn.randn(s2):narrow(1, 2, shape[1])
      elseif r == 3 and nd >= 1 then
        local s2 = copyt(shape); s2[1] = 1
        x = bn.randn(s2):expand(shape)
      elseif r == 4 and nd >= 1 and shape[nd] > 0 then
        local s2 = copyt(shape); s2[nd] = 2 * s2[nd]
        x = bn.randn(s2):subsample(nd, 1, 2)
      else
        x = bn.randn(shape)
      end
      if R.chance(0.1) then
        bn.no_grad(function() x:fill(R.pick { NAN, INF, -INF, 0, 1e30 }) end)
      end
      local g = R.float()
      if g < 0.25 then
        x = x:detach():requires_grad(true)
      elseif g < 0.4 then
        x = (x:detach():requires_grad(true) * 1.5)
      end
      return x
    end)
    if ok then return t end
    return bn.zeros(1)
  end

  local function fresh() return shaped(rand_shape()) end

  local function make_specials()
    specials = {}
    local function add(f) local ok, t = pcall(f); if ok and t then specials[#specials + 1] = t end end
    add(function() return bn.ones(1, 1):expand(1 << 14, 1 << 13) end) -- 2^27 elements, 512 MB dense
    add(function() return bn.ones(1):expand(1 << 22) end)
    add(function() return bn.tensor(3) end)
    add(function() return bn.zeros(0) end)
    add(function() return bn.zeros(3, 0, 2) end)
    -- empty, but with a huge dim: loops over the other dims must not run
    add(function() return bn.zeros(1 << 24, 0) end)
    add(function() return bn.zeros(0, 1 << 24) end)
    add(function() return bn.zeros(0, 1 << 20, 4) end)
    add(function() return bn.ones(1, 1, 1, 1, 1, 1, 1, 2) end)
    add(function() return bn.tensor { { NAN, INF }, { -INF, 1 } } end)
    add(function() local t = bn.zeros(2, 2); close(t); return t end)
    add(function() return bn.randn(3, 4):requires_grad(true) end)
    add(function() return bn.randn(2, 3, 4, 4):requires_grad(true) * 2 end)
    add(function() return bn.randn(4, 6):t() end)
    add(function() return bn.randn(5, 5):narrow(2, 2, 3) end)
    add(function() return bn.randn(2, 3, 5, 5) end)
  end

  local function any_tensor()
    if #specials > 0 and R.chance(0.15) then return R.pick(specials) end
    if #pool == 0 or R.chance(0.1) then local t = fresh(); pool_add(t); return t end
    return R.pick(pool)
  end
  local function live_tensor(pred)
    for _ = 1, 8 do
      local t = any_tensor()
      if live(t) and t:numel() <= KEEP_NUMEL * 4 and (not pred or pred(t)) then return t end
    end
    local t = fresh()
    if pred and not pred(t) then t = shaped { 2, 3 } end
    pool_add(t)
    return t
  end

  -- ------------------------------------------------------------ fuzz functions
  local one_call -- forward
  local depth = 0
  local FUZZ_ERR = setmetatable({}, { __tostring = function() return "FUZZFN: error object" end })
  local function tagged(name, body)
    return function(...)
      local r = PACKED(pcall(body, ...))
      if not r[1] then
        if r[2] == FUZZ_ERR then error(FUZZ_ERR, 0) end
        error("FUZZFN(" .. name .. "): " .. tostring(r[2]), 0)
      end
      return table.unpack(r, 2, r.n)
    end
  end
  local FNS = {
    tagged("noop", function() end),
    tagged("error", function() error("deliberate error") end),
    function() error(FUZZ_ERR, 0) end, -- a non-string error value
    tagged("close_args", function(...)
      for i = 1, select("#", ...) do close((select(i, ...))) end
    end),
    tagged("keep_args", function(...)
      for i = 1, select("#", ...) do local v = select(i, ...); if live(v) then pool_add(v) end end
    end),
    tagged("reenter", function()
      if depth < 2 then
        depth = depth + 1
        pcall(one_call)
        depth = depth - 1
      end
    end),
    tagged("return_args", function(...) return ... end),
    tagged("yield", function() coroutine.yield(1) end),
    tagged("grad_on", function() bn.set_grad_enabled(true) end),
    tagged("backward_again", function(...)
      local v = select(-1, ...)
      if live(v) and depth < 2 then depth = depth + 1; pcall(T.backward, v, bn.ones_like(v)); depth = depth - 1 end
    end),
  }
  local FN_NAMES = { "noop", "error", "error_object", "close_args", "keep_args", "reenter", "return_args",
    "yield", "grad_on", "backward_again" }

  local TABLES = {
    function() return {} end,
    function() return { 1, 2, 3 } end,
    function() return { { 1 }, { 2 } } end,
    function() return { NAN } end,
    function() return { x = 1 } end,
    function() return { true } end,
    function() return { -1 } end,
    function() return { 2 ^ 40, 2 ^ 40 } end,
    function() return { 1, nil, 3 } end,
    function() return { {} } end,
    function() return { any_tensor(), any_tensor() } end,
    function() return { 1.5, 2 } end,
    function() return setmetatable({}, { __index = function() error("FUZZFN: __index", 0) end,
      __len = function() error("FUZZFN: __len", 0) end }) end,
    function() return setmetatable({ 1, 2 }, { __len = function() return 2 ^ 40 end }) end,
    function() local t = {} for i = 1, 9 do t[i] = 1 end return t end,
  }

  local function new_canvas()
    if not RENDER then return nil end
    local ok, c = pcall(RENDER.canvas, R.range(1, 40), R.range(1, 30))
    if not ok then return nil end
    canvases[#canvases + 1] = c
    if #canvases > 4 then local old = table.remove(canvases, 1); pcall(old.close, old) end
    return c
  end
  local function canvas_live(c) return c and tostring(c) ~= "canvas (closed)" end
  -- A canvas: usually a live one, sometimes a closed one.
  local function canvas_any(want_live)
    local c = #canvases > 0 and R.pick(canvases) or nil
    if c == nil or R.chance(0.03) or (want_live and not canvas_live(c)) then c = new_canvas() end
    return c
  end
  local function random_value(fs)
    local r = R.float()
    if r < 0.25 then return R.pick(NUM_WEIRD)
    elseif r < 0.35 then return fs and R.pick(PATHS) or R.pick(STRINGS)
    elseif r < 0.40 then return R.chance(0.5)
    elseif r < 0.48 then return nil
    elseif r < 0.60 then return R.pick(TABLES)()
    elseif r < 0.65 then return R.pick(FNS)
    elseif r < 0.92 then return any_tensor()
    elseif r < 0.96 then return canvas_any(false) or 0
    elseif r < 0.98 then return coroutine.create(function() end)
    else return io.stdout end
  end

  -- ------------------------------------------------------------ plausible arguments
  local function ndim_of(t) return live(t) and t:dim() or R.range(0, 3) end
  local function gen_dim(t, extra)
    local n = math.max(ndim_of(t) + (extra or 0), 1)
    local d = R.range(1, n)
    if R.chance(0.3) then d = -d end
    return d
  end
  local function gen_sizes_for(key, self)
    if (key == "view" or key == "reshape") and live(self) then
      local n = self:numel()
      local c = R.int(5)
      if c == 1 then return { -1 } elseif c == 2 then return { n }
      elseif c == 3 then return { 1, -1 }
      elseif c == 4 and self:dim() >= 1 then local s = self:shape(); return { s[#s], -1 } end
      return rand_shape()
    elseif key == "expand" and live(self) then
      local s = self:shape()
      for i = 1, #s do
        if s[i] == 1 and R.chance(0.5) then s[i] = R.range(0, 4) elseif R.chance(0.3) then s[i] = -1 end
      end
      if R.chance(0.3) then table.insert(s, 1, R.range(1, 3)) end
      return s
    end
    return rand_shape()
  end
  local function opts_table(list)
    local t = {}
    for _, kv in ipairs(list) do
      if R.chance(0.5) then t[kv[1]] = kv[2]() end
    end
    if R.chance(0.08) then t.strid = 2 end          -- a misspelt option
    if R.chance(0.03) then t[1] = "positional" end
    return t
  end
  local function small_pair(lo, hi)
    if R.chance(0.6) then return R.range(lo, hi) end
    return { R.range(lo, hi), R.range(lo, hi) }
  end
  local function labels_for(n, k)
    local t = {}
    for i = 1, n do t[i] = R.range(1, math.max(k, 1)) end
    if R.chance(0.3) and n > 0 then return bn.tensor(t) end
    return t
  end
  local OPTS = {
    conv2d = { { "stride", function() return small_pair(1, 3) end }, { "padding", function() return small_pair(0, 2) end } },
    max_pool2d = { { "stride", function() return small_pair(1, 3) end }, { "padding", function() return small_pair(0, 1) end } },
    avg_pool2d = { { "stride", function() return small_pair(1, 3) end }, { "padding", function() return small_pair(0, 1) end },
      { "count_include_pad", function() return R.chance(0.5) end } },
    batch_norm = { { "training", function() return R.chance(0.5) end }, { "momentum", function() return R.pick { 0, 0.1, 1 } end },
      { "eps", function() return R.pick { 1e-5, 0, 1 } end } },
    ["_data.gather"] = { { "crop", function() return R.range(0, 3) end }, { "flip", function() return R.chance(0.5) end },
      { "seed", function() return R.range(0, 5) end }, { "offset", function() return R.range(0, 100) end },
      { "fill", function() return R.chance(0.5) and 0.5 or { 0.1, 0.2, 0.3 } end } },
    ["canvas.text"] = { { "size", function() return R.pick { 8, 13, 40, 2000 } end }, { "color", function() return R.pick(COLORS) end },
      { "halign", function() return R.pick { "left", "center", "right", "middle" } end },
      { "valign", function() return R.pick { "baseline", "top", "middle", "bottom", "left" } end },
      { "rotate", function() return R.pick { 0, 90, 45 } end } },
    ["canvas.heatmap"] = { { "cmap", function() return R.pick(CMAPS) end }, { "vmin", function() return R.pick { 0, -1, NAN } end },
      { "vmax", function() return R.pick { 1, 0, INF } end }, { "log", function() return R.chance(0.5) end },
      { "nan_color", function() return R.pick(COLORS) end } },
  }

  local function nums(n) local t = {} for i = 1, n do t[i] = R.pick { 0, 1, 5, 10.5, 20, NAN, -3, 1e9 } end return t end

  -- Kind generators: plausible values for one argument.
  local GEN = {}
  GEN.T = function(ctx) return live_tensor() end
  GEN.TC = function(ctx) return R.chance(0.9) and live_tensor() or any_tensor() end
  GEN.TN = function(ctx) return R.chance(0.75) and live_tensor() or R.pick(NUM_PLAIN) end
  GEN.N = function() return R.pick(NUM_PLAIN) end
  GEN.I = function() return R.range(0, 5) end
  GEN.D = function(ctx) return gen_dim(ctx.self) end
  GEN.B = function() return R.chance(0.5) end
  GEN.STR = function() return R.pick(NAMES) end
  GEN.P = function() return R.pick(PATHS) end
  GEN.F = function() return R.pick(FNS) end
  GEN.L = function(ctx)
    local base = live_tensor()
    ctx.self = base
    local l = { base }
    for i = 2, R.range(1, 3) do l[i] = R.chance(0.7) and shaped(base:shape()) or live_tensor() end
    return l
  end
  GEN.LAB = function(ctx) return labels_for(R.range(0, 4), 3) end
  GEN.O = function(ctx) return opts_table(OPTS[ctx.key] or {}) end
  GEN.PAIR = function() return small_pair(1, 3) end
  GEN.DATA = function()
    local c = R.int(4)
    if c == 1 then return R.pick(NUM_PLAIN) elseif c == 2 then return live_tensor() end
    local s = rand_shape(3)
    local function build(d)
      if d > #s then return R.pick(NUM_PLAIN) end
      local t = {}
      for i = 1, s[d] do t[i] = build(d + 1) end
      return t
    end
    return build(1)
  end
  GEN.C = function() return canvas_any(R.chance(0.95)) end
  GEN.COL = function() return R.pick(COLORS) end
  GEN.NUMS = function() return nums(R.range(0, 5)) end
  GEN.TAB = function() return R.pick(TABLES)() end
  GEN.IDX = function(ctx)
    local n = live(ctx.self) and ctx.self:dim() >= 1 and ctx.self:size(1) or 2
    return labels_for(R.range(0, 4), n)
  end
  GEN.NN = function() return R.chance(0.5) and R.pick { 0.5, 1, 0 } or { 0.5, 0.5, 0.5 } end
  GEN.CORR = function() return R.pick { 0, 1, true, false, 2 } end
  GEN.ANY = function() return random_value(false) end

  -- Function-specific builders: return args, n (and may set ctx.self).
  local CUSTOM = {}
  CUSTOM.conv2d = function(ctx)
    local n, c, o, k = R.range(1, 2), R.range(1, 3), R.range(1, 3), R.range(1, 3)
    local x = shaped { n, c, R.range(1, 7), R.range(1, 7) }
    return { x, shaped { o, c, k, k }, R.chance(0.5) and shaped { o } or nil, opts_table(OPTS.conv2d) }, 4
  end
  CUSTOM.linear = function()
    local n, i, o = R.range(0, 3), R.range(1, 4), R.range(1, 4)
    return { shaped { n, i }, shaped { o, i }, R.chance(0.5) and shaped { o } or nil }, 3
  end
  CUSTOM.matmul = function()
    local a, b, c, bt = R.range(0, 3), R.range(1, 4), R.range(1, 3), R.range(1, 2)
    local forms = {
      { { a, b }, { b, c } }, { { b }, { b, c } }, { { a, b }, { b } }, { { b }, { b } },
      { { bt, a, b }, { bt, b, c } }, { { a, b }, { c, b } },
    }
    local f = R.pick(forms)
    return { shaped(f[1]), shaped(f[2]) }, 2
  end
  CUSTOM.batch_norm = function()
    local c = R.range(1, 3)
    local x = R.chance(0.5) and shaped { R.range(1, 4), c } or shaped { R.range(1, 3), c, R.range(1, 3), R.range(1, 3) }
    local rv = bn.rand(c) + 0.5
    return { x, R.chance(0.8) and bn.zeros(c) or nil, R.chance(0.8) and rv or nil,
      R.chance(0.5) and shaped { c } or nil, R.chance(0.5) and shaped { c } or nil, opts_table(OPTS.batch_norm) }, 6
  end
  CUSTOM.cross_entropy = function()
    local n, k = R.range(0, 4), R.range(1, 5)
    return { shaped { n, k }, labels_for(n, k) }, 2
  end
  CUSTOM.mse_loss = function() local s = rand_shape(); return { shaped(s), shaped(s) }, 2 end
  local function pool_args(key)
    local x = R.chance(0.8) and shaped { R.range(1, 2), R.range(1, 3), R.range(1, 6), R.range(1, 6) }
      or shaped { R.range(1, 3), R.range(1, 6), R.range(1, 6) }
    return { x, small_pair(1, 3), opts_table(OPTS[key]) }, 3
  end
  CUSTOM.max_pool2d = function() return pool_args("max_pool2d") end
  CUSTOM.avg_pool2d = function() return pool_args("avg_pool2d") end
  CUSTOM.adaptive_avg_pool2d = function()
    return { shaped { R.range(1, 2), R.range(1, 3), R.range(1, 6), R.range(1, 6) }, small_pair(1, 4) }, 2
  end
  CUSTOM.pad = function()
    local x = live_tensor()
    local nd = x:dim()
    local p = {}
    for i = 1, 2 * R.range(1, math.max(nd, 1)) do p[i] = R.range(-1, 2) end
    return { x, p, R.chance(0.2) and 0 or nil }, 3
  end
  CUSTOM.copy = function()
    local x = live_tensor()
    return { x, R.chance(0.7) and shaped(x:shape()) or live_tensor() }, 2
  end
  CUSTOM.copy_ = CUSTOM.copy
  CUSTOM.narrow = function(ctx)
    local x = live_tensor(function(t) return t:dim() >= 1 end)
    ctx.self = x
    local d = R.range(1, x:dim())
    local size = x:size(d)
    local start = R.range(1, size + 1)
    return { x, R.chance(0.3) and d - x:dim() - 1 or d, start, R.range(0, size - start + 1) }, 4
  end
  CUSTOM.select = function(ctx)
    local x = live_tensor(function(t) return t:dim() >= 1 end)
    local d = R.range(1, x:dim())
    return { x, d, R.range(-x:size(d), math.max(x:size(d), 1)) }, 3
  end
  CUSTOM.subsample = function(ctx)
    local x = live_tensor(function(t) return t:dim() >= 1 end)
    local d = R.range(1, x:dim())
    return { x, d, R.range(1, math.max(x:size(d), 1)), R.range(1, 3) }, 4
  end
  CUSTOM.permute = function(ctx)
    local x = live_tensor()
    local nd = x:dim()
    local p = {}
    for i = 1, nd do p[i] = i end
    for i = nd, 2, -1 do local j = R.int(i); p[i], p[j] = p[j], p[i] end
    if R.chance(0.5) then return { x, p }, 2 end
    local args = { x }
    for i = 1, nd do args[i + 1] = p[i] end
    return args, nd + 1
  end
  CUSTOM.unsqueeze = function(ctx)
    local x = live_tensor()
    return { x, gen_dim(x, 1) }, 2
  end
  CUSTOM.backward = function(ctx)
    local x = live_tensor(function(t) return t.grad_fn ~= nil or t:requires_grad() end)
    if R.chance(0.3) then
      local ok, y = pcall(function() return (x * 2):sum() end)
      if ok then x = y end
    end
    local g
    if x:numel() ~= 1 or R.chance(0.3) then g = R.chance(0.8) and bn.ones_like(x) or live_tensor() end
    return { x, g, R.chance(0.3) or nil }, 3
  end
  CUSTOM.register_hook = function()
    return { live_tensor(function(t) return t:requires_grad() end), R.pick(FNS) }, 2
  end
  CUSTOM.hooks_add = function()
    local f1, f2 = R.chance(0.6) and R.pick(FNS) or nil, R.chance(0.6) and R.pick(FNS) or nil
    if not f1 and not f2 then f2 = FNS[1] end
    return { R.pick(NAMES), f1, f2 }, 3
  end
  CUSTOM.hooks_remove = function()
    if #hook_ids > 0 and R.chance(0.8) then return { R.pick(hook_ids) }, 1 end
    return { R.range(1, 50) }, 1
  end
  CUSTOM.no_grad = function()
    local args, n = { R.pick(FNS) }, 1
    for _ = 1, R.range(0, 2) do n = n + 1; args[n] = random_value(false) end
    return args, n
  end
  CUSTOM.sgd_step = function()
    local ps, bufs = {}, {}
    for i = 1, R.range(1, 3) do
      local p = live_tensor()
      if R.chance(0.6) then pcall(function() p.grad = bn.randn(p:shape()) end) end
      ps[i] = p
      if R.chance(0.3) then bufs[i] = bn.zeros(p:shape()) end
    end
    local o = { lr = R.pick { 0.1, 0, 1 } }
    if R.chance(0.5) then o.momentum = R.pick { 0, 0.9 } end
    if R.chance(0.3) then o.weight_decay = 1e-4 end
    if R.chance(0.2) then o.nesterov = true end
    if R.chance(0.2) then o.dampening = 0.5 end
    if R.chance(0.2) then o.maximize = true end
    return { ps, R.chance(0.8) and bufs or nil, o }, 3
  end
  CUSTOM.save_safetensors = function()
    local ts = {}
    for _ = 1, R.range(0, 3) do ts[R.pick(NAMES)] = live_tensor() end
    local meta = R.chance(0.5) and { epoch = R.range(0, 9), lr = 0.1, ok = true, [R.pick(NAMES)] = "v" } or nil
    return { R.pick(PATHS), ts, meta }, 3
  end
  CUSTOM.set_rng_state = function()
    return { { seed = R.pick { 0, 1, 12345, -1, math.maxinteger }, offset = R.pick { 0, 7, -1, 2 ^ 40 // 1 } } }, 1
  end
  CUSTOM.manual_seed = function() return { R.pick { 0, 1, 7, 2 ^ 31 // 1, math.maxinteger } }, 1 end
  CUSTOM.num_threads = function() return { R.chance(0.5) and R.range(1, 2) or nil }, 1 end
  CUSTOM.mem_set_limit = function() return { R.pick { 0, 1, 1 << 20, MEM_LIMIT } }, 1 end
  CUSTOM["_data.load_cifar"] = function()
    local ps = {}
    for i = 1, R.range(1, 2) do ps[i] = R.pick(PATHS) end
    return { ps, R.range(1, 2) }, 2
  end
  CUSTOM["_data.load_idx"] = function()
    return { R.chance(0.5) and PATHS[1] or R.pick(PATHS), R.chance(0.5) and PATHS[2] or R.pick(PATHS) }, 2
  end
  CUSTOM["_data.gather"] = function(ctx)
    local src = R.chance(0.5) and shaped { R.range(1, 4), R.range(1, 3), R.range(1, 4), R.range(1, 4) } or live_tensor()
    ctx.self = src
    return { src, GEN.IDX(ctx), opts_table(OPTS["_data.gather"]) }, 3
  end
  CUSTOM["_data.normalize"] = function()
    local x = bn.rand(R.range(1, 3), 3, R.range(1, 3))
    return { x, GEN.NN(), R.chance(0.5) and { 1, 2, 0.5 } or 0.5 }, 3
  end
  CUSTOM["_data.randperm"] = function() return { R.range(0, 50), R.range(0, 5) }, 2 end
  CUSTOM["_data.uniform"] = function() return { rand_shape(), R.range(0, 5), 0, 1 }, 4 end
  CUSTOM["_data.normal"] = CUSTOM["_data.uniform"]
  CUSTOM["render.canvas"] = function() return { R.range(1, 64), R.range(1, 64), R.chance(0.5) and R.pick(COLORS) or nil }, 3 end
  CUSTOM["render.colormap"] = function() return { R.pick(CMAPS), R.pick { 0, 0.5, 1, -1, 2, NAN } }, 2 end
  CUSTOM["render.histogram"] = function()
    return { live_tensor(), R.pick { 0, -1, 1e-3 }, R.pick { 1, 10, 0 }, R.range(1, 20), R.chance(0.3) or nil }, 5
  end
  CUSTOM["canvas.marker"] = function()
    return { GEN.C(), R.range(0, 40), R.range(0, 30), R.pick(MARKERS), R.pick { 1, 5, 0, 1000 }, R.pick(COLORS),
      R.chance(0.5) and 0.5 or nil }, 7
  end
  CUSTOM["canvas.polyline"] = function()
    local n = R.range(0, 6)
    return { GEN.C(), nums(n), nums(n), R.pick(COLORS), R.pick { 1, 2.5, 0.2, 0, 1000 },
      R.chance(0.5) and 0.7 or nil, R.chance(0.3) and { 2, 1 } or nil }, 7
  end
  CUSTOM["canvas.polygon"] = function()
    local n = R.range(0, 6)
    return { GEN.C(), nums(n), nums(n), R.pick(COLORS), R.chance(0.5) and 0.5 or nil }, 5
  end
  CUSTOM["canvas.heatmap"] = function()
    return { GEN.C(), shaped { R.range(0, 5), R.range(0, 5) }, 0, 0, R.range(1, 40), R.range(1, 30),
      opts_table(OPTS["canvas.heatmap"]) }, 7
  end
  CUSTOM["canvas.colorbar"] = function()
    return { GEN.C(), 0, 0, R.range(1, 40), R.range(1, 30), R.chance(0.7) and R.pick(CMAPS) or nil }, 6
  end
  CUSTOM["canvas.pixel"] = function() return { GEN.C(), R.range(0, 40), R.range(0, 30) }, 3 end
  CUSTOM["canvas.save_png"] = function()
    return { GEN.C(), R.pick(PATHS), R.chance(0.5) and { { "Title", R.pick(NAMES) }, Software = "bnlab" } or nil }, 3
  end
  CUSTOM["_probe.conv_coherence"] = function()
    local n, c, o, k, h, w = R.range(1, 2), R.range(1, 3), R.range(1, 3), R.range(1, 3), R.range(3, 6), R.range(3, 6)
    local x = shaped { n, c, h, w }
    local g = shaped { n, o, h - k + 1, w - k + 1 }
    return { g, x, k, k, R.chance(0.5) and opts_table(OPTS.conv2d) or nil }, 5
  end
  CUSTOM["_probe.histc"] = function()
    return { live_tensor(), R.range(1, 20), R.chance(0.5) and R.pick { 0, -1 } or nil, R.chance(0.5) and R.pick { 1, 0 } or nil }, 4
  end
  CUSTOM.item = function()
    return { live_tensor(function(t) return t:numel() == 1 end) }, 1
  end
  CUSTOM.retain_grad = function()
    return { live_tensor(function(t) return t.grad_fn ~= nil or t:requires_grad() end) }, 1
  end
  local function same_numel(x)
    local n = x:numel()
    local forms = { { n }, { 1, n }, { n, 1 }, x:shape() }
    if n % 2 == 0 and n > 0 then forms[#forms + 1] = { 2, n // 2 } end
    return shaped(R.pick(forms))
  end
  CUSTOM.view_as = function()
    local x = live_tensor()
    return { x, same_numel(x) }, 2
  end
  CUSTOM.expand_as = function()
    local x = live_tensor()
    local s = x:shape()
    for i = 1, #s do if s[i] == 1 then s[i] = R.range(0, 3) end end
    if R.chance(0.3) then table.insert(s, 1, 2) end
    return { x, shaped(s) }, 2
  end
  local function file_like(pattern)
    local m = {}
    for _, p in ipairs(PATHS) do if p:find(pattern) then m[#m + 1] = p end end
    return R.chance(0.7) and #m > 0 and R.pick(m) or R.pick(PATHS)
  end
  CUSTOM.load = function() return { file_like("%.npy$") }, 1 end
  CUSTOM.load_safetensors = function() return { file_like("%.safetensors$") }, 1 end
  CUSTOM["render.read_png"] = function() return { file_like("%.png$") }, 1 end
  CUSTOM.save = function() return { live_tensor(), file_like("%.npy$") }, 2 end
  CUSTOM["op.index"] = function()
    local x = live_tensor()
    return { x, R.chance(0.5) and R.pick { "grad", "is_leaf", "grad_fn", "shape", "nope" }
      or R.pick { 1, -1, 2, 0, 1.5, 2 ^ 40 } }, 2
  end
  CUSTOM["op.newindex"] = function()
    local x = live_tensor()
    local key = R.chance(0.4) and "grad" or R.pick { 1, -1, 2, 0, 1.5, "nope" }
    local v = R.chance(0.5) and R.pick(NUM_PLAIN) or (key == "grad" and R.chance(0.5) and shaped(x:shape()))
      or live_tensor()
    if key == "grad" and R.chance(0.2) then v = nil end
    return { x, key, v }, 3
  end

  -- ------------------------------------------------------------ the entries
  local entries = {}
  local function sorted_keys(t)
    local ks = {}
    for k, v in pairs(t) do if type(k) == "string" then ks[#ks + 1] = k end end
    table.sort(ks)
    return ks
  end
  local function stub(code, env)
    local chunk = assert(load("local bn, T, D, RENDER, TMT = ... " .. code, "=fuzz-stub", "t"))
    return chunk(bn, T, D, RENDER, TMT)
  end
  local function add_entry(key, spec_key, caller, opts2)
    local spec = SPECS[spec_key]
    local e = { key = key, spec_key = spec_key, call = caller, params = spec and parse_spec(spec) or nil,
      fs = FS[spec_key] or (spec == nil), expect = EXPECT[spec_key] }
    if not e.expect then
      local qual = spec_key:gsub("^_", ""):gsub("^canvas%.", "render.")
      e.expect = { "bn." .. qual }
    end
    e.short = spec_key:match("([^.]+)$")
    for k, v in pairs(opts2 or {}) do e[k] = v end
    entries[#entries + 1] = e
    per_fn[key] = { calls = 0, errors = 0, ok = 0 }
  end
  local skipped = {}
  for _, k in ipairs(sorted_keys(bn)) do
    local v = rawget(bn, k)
    if SKIP[k] then skipped[#skipped + 1] = "bn." .. k .. ": " .. SKIP[k]
    elseif SUB_SKIP[k] and type(v) == "table" then skipped[#skipped + 1] = "bn." .. k .. ": " .. SUB_SKIP[k]
    elseif type(v) == "function" then
      add_entry("bn." .. k, k, stub("return function(...) return bn." .. k .. "(...) end"))
    end
  end
  for _, k in ipairs(sorted_keys(T)) do
    if type(T[k]) == "function" then
      -- Method syntax when self is a tensor (the usual way), else through the table.
      add_entry("Tensor." .. k, k, stub("local m = function(s, ...) return s:" .. k .. "(...) end " ..
        "local f = function(...) return T." .. k .. "(...) end " ..
        "return function(s, ...) if bn.is_tensor(s) then return m(s, ...) end return f(s, ...) end"),
        { method = true })
    end
  end
  -- Sub-tables of C functions: bn._data (messages "bn.data.<fn>"), bn.render,
  -- and any other (bn._linalg, ...): the leading "_" is not in messages.
  -- Lua submodules (bn.train, bn.nn, ...) that earlier code in this process
  -- loaded into bn are modules in package.loaded: not enumerated, as when
  -- the fuzzer runs alone (the header says why).
  local lua_modules = {}
  for _, m in pairs(package.loaded) do
    if type(m) == "table" then lua_modules[m] = true end
  end
  for _, sub in ipairs(sorted_keys(bn)) do
    local t = rawget(bn, sub)
    if type(t) == "table" and not SUB_SKIP[sub] and not lua_modules[t] then
      for _, k in ipairs(sorted_keys(t)) do
        if type(t[k]) == "function" then
          local code = "local t = ... return function(...) return t." .. k .. "(...) end"
          add_entry("bn." .. sub .. "." .. k, sub .. "." .. k, assert(load(code, "=fuzz-stub", "t"))(t))
        end
      end
    end
  end
  local CM
  if RENDER then
    local ok, c = pcall(RENDER.canvas, 2, 2)
    if ok then
      CM = getmetatable(c).__index
      c:close()
      for _, k in ipairs(sorted_keys(CM)) do
        -- Method syntax when self is a canvas, else through the methods table.
        add_entry("canvas:" .. k, "canvas." .. k, assert(load("local CM = ... return function(s, ...) " ..
          "if type(s) == 'userdata' and getmetatable(s) and getmetatable(s).__index == CM " ..
          "then return s:" .. k .. "(...) end return CM." .. k .. "(s, ...) end", "=fuzz-stub", "t"))(CM),
          { method = true })
      end
    end
  end
  local OPS = {
    ["op.add"] = "return function(a, b) return a + b end", ["op.sub"] = "return function(a, b) return a - b end",
    ["op.mul"] = "return function(a, b) return a * b end", ["op.div"] = "return function(a, b) return a / b end",
    ["op.pow"] = "return function(a, b) return a ^ b end", ["op.unm"] = "return function(a) return -a end",
    ["op.index"] = "return function(a, k) return a[k] end",
    ["op.newindex"] = "return function(a, k, v) a[k] = v end",
    ["op.len"] = "return function(a) return #a end", ["op.tostring"] = "return function(a) return tostring(a) end",
    ["op.close"] = "return function(a) do local c <close> = a end end",
    ["meta.__close"] = "return function(v) return TMT.__close(v) end",
    ["meta.__gc"] = "return function(v) return TMT.__gc(v) end",
  }
  local BINARY = { ["op.add"] = true, ["op.sub"] = true, ["op.mul"] = true, ["op.div"] = true, ["op.pow"] = true }
  for _, k in ipairs(sorted_keys(OPS)) do add_entry(k, k, stub(OPS[k]), { op = true, binary = BINARY[k] }) end
  local nospec = {}
  for _, e in ipairs(entries) do if not e.params then nospec[#nospec + 1] = e.key end end

  if opts.list then
    for _, e in ipairs(entries) do
      out:write(e.key, "  ", SPECS[e.spec_key] or "(no signature: random arguments, temp paths)", "\n")
    end
    for _, s in ipairs(skipped) do out:write("skip ", s, "\n") end
  end

  -- ------------------------------------------------------------ checks
  local ACCEPT = {
    T = live, TN = function(v) return type(v) == "number" or live(v) end,
    TC = is_tensor, N = function(v) return type(v) == "number" end,
    I = function(v) return type(v) == "number" end, D = function(v) return type(v) == "number" end,
    B = function(v) return type(v) == "boolean" end, STR = function(v) return type(v) == "string" end,
    P = function(v) return type(v) == "string" end, F = function(v) return type(v) == "function" end,
    L = function(v) return type(v) == "table" end,
    LAB = function(v) return type(v) == "table" or live(v) end,
    O = function(v) return type(v) == "table" end,
    PAIR = function(v) return type(v) == "number" or type(v) == "table" end,
    DATA = function(v) return type(v) == "number" or type(v) == "table" or live(v) end,
    C = function(v) return type(v) == "userdata" and not bn.is_tensor(v) and v ~= io.stdout
      and (pcall(tostring, v)) and tostring(v) ~= "canvas (closed)" end,
    COL = function(v) return type(v) == "number" or type(v) == "string" end,
    NUMS = function(v) return type(v) == "table" end, TAB = function(v) return type(v) == "table" end,
    IDX = function(v) return type(v) == "table" or live(v) end,
    NN = function(v) return type(v) == "number" or type(v) == "table" end,
    SZ = function(v) return type(v) == "number" or type(v) == "table" end,
    DIMS = function(v) return type(v) == "number" or type(v) == "table" end,
    CORR = function(v) return type(v) == "number" or type(v) == "boolean" end,
  }
  local function accepts(kind, opt, v)
    if kind == nil or kind == "ANY" or kind == "ANY*" then return true end
    if v == nil then return opt end
    local f = ACCEPT[kind]
    return not f or f(v)
  end

  local function describe(v)
    if bn.is_tensor(v) then
      if v:is_closed() then return "tensor(closed)" end
      local s = v:shape()
      local flags = {}
      if not v:is_contiguous() then flags[#flags + 1] = "strided" end
      if v:requires_grad() then flags[#flags + 1] = "requires_grad" end
      if v.grad_fn then flags[#flags + 1] = "grad_fn=" .. v.grad_fn end
      return "tensor[" .. table.concat(s, "x") .. "]" .. (#flags > 0 and "{" .. table.concat(flags, ",") .. "}" or "")
    end
    local t = type(v)
    if t == "number" then return math.type(v) == "integer" and tostring(v) or ("%.17g"):format(v) end
    if t == "string" then return ("%q"):format(norm_msg(#v > 40 and v:sub(1, 37) .. "..." or v)) end
    if t == "table" then
      if getmetatable(v) then return "table(with metatable)" end
      local parts = {}
      for i = 1, math.min(#v, 6) do parts[i] = describe(v[i]) end
      for k, x in pairs(v) do
        if type(k) ~= "number" then parts[#parts + 1] = tostring(k) .. "=" .. describe(x) end
      end
      return "{" .. table.concat(parts, ", ") .. "}"
    end
    if t == "function" then
      for i, f in ipairs(FNS) do if f == v then return "fn:" .. FN_NAMES[i] end end
      return "function"
    end
    if t == "userdata" and v ~= io.stdout then
      local ok, s = pcall(tostring, v)
      return ok and s or "userdata"
    end
    return tostring(v)
  end
  local function describe_call(e, args, n)
    local parts = {}
    for i = 1, n do parts[i] = describe(args[i]) end
    return e.key .. "(" .. table.concat(parts, ", ") .. ")"
  end

  local function names_argument(msg, e)
    if msg:find("argument", 1, true) or msg:find("option", 1, true) then return true end
    for _, p in ipairs(e.params or {}) do
      if #p.name >= 2 and msg:find("%f[%w_]" .. p.name:gsub("%p", "%%%0") .. "%f[^%w_]") then return true end
    end
    return false
  end
  local function names_function(msg, e)
    for _, x in ipairs(e.expect) do if msg:find(x, 1, true) then return true end end
    -- luaL_check* messages: "bad argument #2 to 'polyline'" (or the global name)
    if #e.short >= 3 and msg:find("'[%w_.:]*" .. e.short:gsub("%p", "%%%0") .. "'") then return true end
    return false
  end

  -- Violations grouped by (function, reason): a count and the first example.
  local vgroups = {}
  local function violation(e, reason, msg, desc)
    stats.violations = stats.violations + 1
    local g = e.key .. "\0" .. reason
    if vgroups[g] then vgroups[g].count = vgroups[g].count + 1; return end
    local v = { key = e.key, reason = reason, msg = norm_msg(tostring(msg)), call = desc, count = 1 }
    vgroups[g] = v
    violations[#violations + 1] = v
  end

  -- ------------------------------------------------------------ one call
  local function guard_args(e, args, n)
    -- Huge-but-valid requests the tensor limit cannot bound (see the header).
    if e.spec_key == "render.canvas" and type(args[1]) == "number" and type(args[2]) == "number"
        and args[1] * args[2] > (1 << 20) and args[1] <= 16384 and args[2] <= 16384 then
      args[1], args[2] = 64, 48
    end
    if e.spec_key == "_data.randperm" and type(args[1]) == "number" and args[1] > (1 << 20)
        and args[1] <= (1 << 24) then
      args[1] = 1 << 20 -- valid up to 2^24, but 10+ s under ASan
    end
    if e.spec_key == "num_threads" and args[1] ~= nil and type(args[1]) == "number" and args[1] > 2
        and args[1] <= 4096 and args[1] == math.floor(args[1]) then
      args[1] = 2
    end
    if MATERIALIZE[e.spec_key] then
      -- What a copy into Lua costs: the elements, and the tables (totable of
      -- an empty [2^31 x 0] makes 2^31 empty tables from 0 bytes of data).
      local function costly(x)
        if not live(x) then return false end
        local tables, level, s = 1, 1, x:shape() -- 1 + s1 + s1*s2 + ... ([2^24 x 0 x 1]: 2^24 empty tables)
        for d = 1, #s - 1 do level = level * s[d]; tables = tables + level end
        return x:numel() > MATERIALIZE_NUMEL or tables > MATERIALIZE_NUMEL
      end
      for i = 1, n do
        local v = args[i]
        if costly(v) then args[i] = bn.zeros(2) end
        if type(v) == "table" and not getmetatable(v) then
          for k, x in pairs(v) do if costly(x) then v[k] = bn.zeros(2) end end
        end
      end
    end
    if e.fs then -- strings only as temp paths (positions of kind P, or anywhere for unknown functions)
      for i = 1, n do
        local p = e.params and e.params[i]
        if type(args[i]) == "string" and (not e.params or (p and p.kind == "P")) then
          local ok = args[i] == "" or args[i]:find("\0", 1, true) or args[i]:sub(1, #tmpdir) == tmpdir
          if not ok then args[i] = R.pick(PATHS) end
        end
        if e.spec_key == "_data.load_cifar" and type(args[i]) == "table" and not getmetatable(args[i]) then
          for k, x in pairs(args[i]) do
            if type(x) == "string" and x ~= "" and x:sub(1, #tmpdir) ~= tmpdir then args[i][k] = R.pick(PATHS) end
          end
        end
      end
    end
  end

  local function build_args(e)
    local ctx = { key = e.spec_key }
    local args, n, kinds = {}, 0, {}
    if not e.params or (not e.op and R.chance(0.08)) then -- fully random arguments
      n = R.range(0, 5)
      for i = 1, n do args[i] = random_value(e.fs) end
      return args, n, kinds, nil
    end
    local custom = CUSTOM[e.spec_key]
    if custom and R.chance(0.85) then
      args, n = custom(ctx)
    else
      for _, p in ipairs(e.params) do
        local kind = p.kind
        if kind == "SZ" then
          local s = gen_sizes_for(e.spec_key, ctx.self)
          if R.chance(0.5) or #s == 0 then n = n + 1; args[n] = s
          else for _, x in ipairs(s) do n = n + 1; args[n] = x end end
        elseif kind == "DIMS" then
          n = n + 1; args[n] = { 1 }
        elseif kind == "ANY*" then
          for _ = 1, R.range(0, 2) do n = n + 1; args[n] = random_value(e.fs) end
        else
          n = n + 1
          if p.opt and R.chance(0.35) then args[n] = nil
          else
            args[n] = GEN[kind] and GEN[kind](ctx) or random_value(e.fs)
            if (kind == "T" or kind == "TC") and ctx.self == nil then ctx.self = args[n] end
          end
        end
      end
      while n > 0 and args[n] == nil do n = n - 1 end
    end
    -- kinds by position (sizes and ANY* consume the rest)
    local pi = 1
    for i = 1, math.max(n, #e.params) do
      local p = e.params[pi]
      if p then
        kinds[i] = p
        if p.kind ~= "SZ" and p.kind ~= "ANY*" and p.kind ~= "DIMS" then pi = pi + 1 end
      end
    end
    -- mutate (keeping the plausible arguments, to confirm a blame later)
    local orig = table.pack(table.unpack(args, 1, n))
    local blame
    local r = R.float()
    if e.op and e.spec_key ~= "op.index" and e.spec_key ~= "op.newindex" and r >= 0.45 then
      r = 0.5 -- operators: only value mutations (a non-tensor pair gives Lua's own error)
    end
    if e.spec_key == "op.close" then r = 0 end
    if r < 0.45 then
      -- as built
    elseif r < 0.75 then
      local k = R.range(1, math.max(n, 1) + (R.chance(0.2) and 1 or 0))
      local v = random_value(e.fs)
      args[k] = v
      if k > n then n = k end
      local p = kinds[k]
      if p and p.kind ~= "SZ" and p.kind ~= "DIMS" and not accepts(p.kind, p.opt, v) then blame = k end
    elseif r < 0.85 then
      local keep = R.range(0, math.max(n - 1, 0))
      for i = keep + 1, n do args[i] = nil end
      local p = kinds[keep + 1]
      if p and not p.opt and p.kind ~= "SZ" and p.kind ~= "ANY*" and p.kind ~= "ANY" and p.kind ~= "DIMS"
          and not NO_DROP_BLAME[e.spec_key] then
        blame = keep + 1
      end
      n = keep
    elseif r < 0.92 then
      for _ = 1, R.range(1, 3) do n = n + 1; args[n] = random_value(e.fs) end
    else
      local k = R.range(1, math.max(n, 1))
      local v = args[k]
      if type(v) == "number" or v == nil then args[k] = R.pick(NUM_WEIRD)
      elseif is_tensor(v) then args[k] = R.pick(specials) or v
      elseif type(v) == "table" then args[k] = R.pick(TABLES)()
      elseif type(v) == "string" then args[k] = e.fs and R.pick(PATHS) or R.pick(STRINGS)
      end
      if k > n then n = k end
      local p = kinds[k]
      if p and p.kind ~= "SZ" and p.kind ~= "DIMS" and not accepts(p.kind, p.opt, args[k]) then blame = k end
    end
    return args, n, kinds, blame, orig
  end

  local function handle_results(e, r)
    -- r = packed results of a successful call
    for i = 2, r.n do
      local v = r[i]
      if bn.is_tensor(v) then
        if not v:is_closed() then
          local ok, nd = pcall(T.dim, v)
          if not ok or nd < 0 or nd > 8 then violation(e, "result tensor is broken", tostring(nd), e.key) end
          if R.chance(0.05) and v.grad_fn then -- backward on random results
            stats.calls = stats.calls + 1
            per_fn["Tensor.backward"].calls = per_fn["Tensor.backward"].calls + 1
            local okb, err = pcall(function()
              if v:numel() == 1 then v:backward() else v:backward(bn.ones_like(v)) end
            end)
            if okb then stats.successes = stats.successes + 1 else
              stats.errors = stats.errors + 1
              if type(err) == "string" and not err:find("FUZZFN", 1, true) and not err:find("bn.backward", 1, true)
                  and not err:find("bn.ones_like", 1, true) then
                violation(e, "backward error does not name bn.backward", err, "backward on result of " .. e.key)
              end
            end
          end
          pool_add(v)
        end
      elseif type(v) == "table" and e.spec_key == "load_safetensors" then
        for _, k in ipairs(sorted_keys(v)) do pool_add(v[k]) end
      elseif type(v) == "userdata" and CM and getmetatable(v) and getmetatable(v).__index == CM then
        canvases[#canvases + 1] = v
        if #canvases > 4 then local old = table.remove(canvases, 1); pcall(CM.close, old) end
      end
    end
    -- (r[1] is pcall's true; the results start at r[2])
    if e.spec_key == "hooks_add" and math.type(r[2]) == "integer" then
      hook_ids[#hook_ids + 1] = r[2]
      if #hook_ids > 8 then pcall(bn.hooks_remove, table.remove(hook_ids, 1)) end
    end
    if (e.spec_key == "_data.load_idx" or e.spec_key == "_data.load_cifar") and r[2] == nil and type(r[3]) == "string" then
      soft[e.key] = soft[e.key] or norm_msg(r[3])
    end
  end

  one_call = function()
    local e = R.pick(entries)
    -- A builder may meet a pool tensor that a pool eviction just closed:
    -- then the call gets random arguments instead.
    local okb, args, n, kinds, blame, orig = pcall(build_args, e)
    if not okb then
      stats.harness_errors = stats.harness_errors + 1
      args, n, kinds, blame = {}, R.range(0, 3), {}, nil
      for i = 1, n do args[i] = random_value(e.fs) end
      orig = table.pack()
    end
    guard_args(e, args, n)
    local desc = trace and describe_call(e, args, n) or nil
    if trace then io.stderr:write(stats.calls + 1, " ", desc, "\n"); io.stderr:flush() end
    local st = per_fn[e.key]
    stats.calls = stats.calls + 1
    st.calls = st.calls + 1
    local mode = R.float()
    local grad_before = bn.is_grad_enabled()
    local t0, c0 = bn.clock(), os.clock()
    local r
    if mode < 0.80 or depth > 0 then
      r = PACKED(pcall(e.call, table.unpack(args, 1, n)))
    elseif mode < 0.93 then
      r = PACKED(pcall(bn.no_grad, function() return e.call(table.unpack(args, 1, n)) end))
      if bn.is_grad_enabled() ~= grad_before then
        violation(e, "bn.no_grad did not restore the grad mode", "", desc or describe_call(e, args, n))
        bn.set_grad_enabled(grad_before)
      end
    else
      local co = coroutine.create(function() return e.call(table.unpack(args, 1, n)) end)
      r = PACKED(coroutine.resume(co))
      if r[1] and coroutine.status(co) == "suspended" then r = PACKED(true) end -- yielded: fine
      if not r[1] then r = PACKED(false, r[2]) end
    end
    local dt, cpu = bn.clock() - t0, os.clock() - c0
    if dt > slowest.t then slowest = { t = dt, cpu = cpu, key = e.key, call = desc or describe_call(e, args, n) } end
    if cpu > (opts.hang or HANG_SECONDS) then
      violation(e, ("call took %.1f s of CPU (%.1f s wall)"):format(cpu, dt), "", desc or describe_call(e, args, n))
    end
    if e.spec_key == "mem_set_limit" then bn.mem_set_limit(MEM_LIMIT) end
    if e.spec_key == "num_threads" then bn.num_threads(1) end
    if bn.mem_in_use() > MEM_LIMIT then
      violation(e, "tensor memory above the limit: " .. bn.mem_in_use(), "", desc or describe_call(e, args, n))
    end
    if r[1] then
      stats.successes = stats.successes + 1
      st.ok = st.ok + 1
      mix(e.key .. "+")
      handle_results(e, r)
    else
      stats.errors = stats.errors + 1
      st.errors = st.errors + 1
      local msg = r[2]
      mix(e.key .. "-")
      if opts.show and opts.show[e.key] then
        out:write("  [", e.key, "] ", describe_call(e, args, n), "\n      -> ", norm_msg(tostring(msg)), "\n")
      end
      if msg == FUZZ_ERR then return end
      if type(msg) ~= "string" then
        violation(e, "error value is a " .. type(msg) .. ", not a message", tostring(msg), desc or describe_call(e, args, n))
        return
      end
      if msg:find("FUZZFN", 1, true) then return end
      -- Lua's own errors for an operator on a non-tensor ("attempt to get length of a number value")
      if e.op and not (is_tensor(args[1]) or (e.binary and is_tensor(args[2]))) then return end
      if not samples[e.key] then samples[e.key] = { msg = norm_msg(msg), call = describe_call(e, args, n) } end
      if not names_function(msg, e) then
        violation(e, "message does not name the function (" .. e.expect[1] .. ")", msg, desc or describe_call(e, args, n))
      elseif blame and not names_argument(msg, e) then
        -- Confirm that argument #blame was the fault: the same call with the
        -- plausible arguments must succeed (else another argument is at
        -- fault too, and a message about that one is right).
        -- (An omitted optional argument is given a plausible value: size(t)
        -- works on a 0-d t, size(t, 1) does not, whatever the type of dim.)
        local p = kinds[blame]
        if orig[blame] == nil and p and GEN[p.kind] then
          orig[blame] = GEN[p.kind]({ key = e.spec_key, self = live(orig[1]) and orig[1] or nil })
          if blame > orig.n then orig.n = blame end
        end
        guard_args(e, orig, orig.n)
        if pcall(e.call, table.unpack(orig, 1, orig.n)) then
          violation(e, "message does not name the faulty argument #" .. blame, msg, desc or describe_call(e, args, n))
        end
      end
    end
  end

  -- ------------------------------------------------------------ scenarios
  -- Sequences that random arguments reach too rarely: aliasing, hooks that
  -- close what they get, backward twice, closing mid-graph. Each API call
  -- counts as a call and its error message is checked like any other.
  local by_key = {}
  for _, e in ipairs(entries) do by_key[e.key] = e end
  local function sc(key, f, ...)
    local e = by_key[key] or { key = key, expect = { "bn." .. key:match("([^.:]+)$") }, short = key }
    stats.calls = stats.calls + 1
    local st = per_fn[key]
    if st then st.calls = st.calls + 1 end
    local r = PACKED(pcall(f, ...))
    if r[1] then
      stats.successes = stats.successes + 1
      if st then st.ok = st.ok + 1 end
      mix(key .. "+")
      return table.unpack(r, 2, r.n)
    end
    stats.errors = stats.errors + 1
    if st then st.errors = st.errors + 1 end
    mix(key .. "-")
    local msg = r[2]
    if msg == FUZZ_ERR then return nil end
    if type(msg) ~= "string" then
      violation(e, "error value is a " .. type(msg) .. ", not a message", tostring(msg), "scenario: " .. key)
    elseif not msg:find("FUZZFN", 1, true) and not names_function(msg, e) then
      violation(e, "message does not name the function (" .. e.expect[1] .. ")", msg, "scenario: " .. key)
    end
    return nil
  end
  local function leaf(shape) return shaped(shape or rand_shape()):detach():requires_grad(true) end
  local SCENARIOS = {
    function() -- a gradient hook (any of the fuzz functions), backward twice
      local w = leaf()
      sc("Tensor.register_hook", T.register_hook, w, R.pick(FNS))
      local y = sc("Tensor.mul", T.mul, w, 2)
      if R.chance(0.5) and y then sc("Tensor.retain_grad", T.retain_grad, y) end
      if y and R.chance(0.5) then sc("Tensor.register_hook", T.register_hook, y, R.pick(FNS)) end
      local l = y and sc("Tensor.sum", T.sum, y)
      if l then
        sc("Tensor.backward", T.backward, l, nil, R.chance(0.5))
        sc("Tensor.backward", T.backward, l)
      end
      local g = w.grad
      if g and R.chance(0.5) then close(g); local _ = w.grad end
      pool_add(w); pool_add(y)
    end,
    function() -- pattern hooks fired by naming and by backward
      local id = sc("bn.hooks_add", bn.hooks_add, R.pick { "s*", "s1", "*", "?1" }, R.pick(FNS), R.pick(FNS))
      local x = leaf()
      local y = sc("Tensor.mul", T.mul, x, 3)
      if y then sc("Tensor.name", T.name, y, R.pick { "s1", "t1", "s" }) end
      local l = y and sc("Tensor.sum", T.sum, y)
      if l then sc("Tensor.backward", T.backward, l) end
      if id then sc("bn.hooks_remove", bn.hooks_remove, id) end
      if id and R.chance(0.3) then sc("bn.hooks_remove", bn.hooks_remove, id) end
    end,
    function() -- writing a tensor into itself and into overlapping views
      local x = live_tensor()
      bn.no_grad(function()
        sc("Tensor.copy", T.copy, x, x)
        if x:dim() == 2 and x:size(1) == x:size(2) then sc("Tensor.copy", T.copy, x, x:t()) end
        if x:dim() >= 1 and x:size(1) >= 2 then sc("Tensor.copy", T.copy, x:narrow(1, 1, 1), x:narrow(1, 2, 1)) end
        local e = sc("Tensor.expand", T.expand, bn.zeros(1), 5)
        if e then sc("Tensor.copy", T.copy, e, bn.arange(5)); sc("Tensor.fill", T.fill, e, 2) end
      end)
      sc("op.newindex", function() x.grad = x end)
      sc("op.newindex", function() x.grad = x end)
    end,
    function() -- optimizer with aliased parameters and buffers
      local p = leaf { 3, 2 }
      sc("op.newindex", function() p.grad = bn.ones(1, 2):expand(3, 2) end)
      local b = R.chance(0.5) and p or nil
      sc("bn.sgd_step", bn.sgd_step, { p, p, R.chance(0.5) and p:detach() or p }, { b, b }, { lr = 0.1, momentum = 0.9 })
      sc("bn.sgd_step", bn.sgd_step, { p }, { p.grad }, { lr = 0.1, momentum = 0.5, nesterov = R.chance(0.5) })
      pool_add(p)
    end,
    function() -- batch_norm whose running stats alias its input or each other
      local x = shaped { 3, 2 }
      local rm = R.chance(0.5) and x:select(1, 1) or bn.zeros(2)
      local rv = R.chance(0.5) and rm or bn.ones(2)
      local w = R.chance(0.5) and rm or nil
      local y = sc("bn.batch_norm", bn.batch_norm, x, rm, rv, w, nil, { training = R.chance(0.7), momentum = 1 })
      local l = y and sc("Tensor.sum", T.sum, y)
      if l then sc("Tensor.backward", T.backward, l) end
    end,
    function() -- closing inputs and intermediates of a graph before backward
      local x = leaf()
      local y = sc("Tensor.exp", T.exp, x)
      local z = y and sc("Tensor.mul", T.mul, y, y)
      local l = z and sc("Tensor.sum", T.sum, z)
      if R.chance(0.5) then close(y) end
      if R.chance(0.5) then close(x) end
      if R.chance(0.3) then bn.no_grad(function() if live(x) then sc("Tensor.fill", T.fill, x, NAN) end end) end
      if l then
        sc("Tensor.backward", T.backward, l, nil, true)
        if R.chance(0.5) then close(z) end
        sc("Tensor.backward", T.backward, l)
      end
      if live(x) then local _ = x.grad end
    end,
    function() -- a tensor closed inside no_grad and returned
      local t = sc("bn.no_grad", bn.no_grad, function() local u = bn.zeros(3); close(u); return u end)
      if t then sc("Tensor.sum", T.sum, t); sc("op.add", function() return t + 1 end) end
    end,
    function() -- backward in a coroutine with hooks that yield or re-enter
      local w = leaf { 2, 2 }
      sc("Tensor.register_hook", T.register_hook, w, R.pick { FNS[8], FNS[6], FNS[10] })
      local co = coroutine.wrap(function()
        local l = sc("Tensor.sum", T.sum, w * w)
        if l then sc("Tensor.backward", T.backward, l) end
        return true
      end)
      co()
    end,
    function() -- cat/stack of one tensor many times, a closed one in the middle
      local x = live_tensor()
      local list = {}
      for i = 1, R.range(1, 6) do list[i] = x end
      if R.chance(0.3) then list[#list + 1] = R.pick(specials) end
      pool_add(sc("bn.cat", bn.cat, list, R.chance(0.5) and 1 or nil))
      pool_add(sc("bn.stack", bn.stack, list, R.chance(0.5) and -1 or nil))
    end,
    function() -- a long chain (iterative release), backward, close everything
      local x = leaf { 2 }
      local y = x
      for _ = 1, R.range(100, 3000) do y = y * 1.0001 end
      local l = sc("Tensor.sum", T.sum, y)
      if l then sc("Tensor.backward", T.backward, l) end
      close(y); close(x)
    end,
    function() -- dropout extremes, in and out of training, under no_grad
      local x = live_tensor()
      local p = R.pick { 0, 1, 0.5, 1 - 1e-12, 1e-12 }
      pool_add(sc("bn.dropout", bn.dropout, x, p, R.chance(0.7)))
      pool_add(sc("bn.dropout", bn.no_grad, bn.dropout, x, p)) -- no_grad passes errors through
    end,
  }

  -- ------------------------------------------------------------ harness actions
  local function refresh()
    make_specials()
    for _ = 1, 12 do pool_add(fresh()) end
  end
  refresh()

  local t_start = bn.clock()
  local next_report = opts.report_every or 10000
  while stats.calls < calls_wanted do
    local before = stats.calls
    local a = R.float()
    if a < 0.01 then
      -- close a pool tensor with <close> (the next uses see a closed tensor)
      local t = any_tensor()
      if bn.is_tensor(t) then do local c <close> = t end end
      stats.calls = stats.calls + 1; stats.successes = stats.successes + 1
    elseif a < 0.015 then
      -- set the grad mode back on (the fuzzed set_grad_enabled may have turned it off)
      bn.set_grad_enabled(R.chance(0.8))
    elseif a < 0.016 then
      refresh()
    elseif a < 0.04 then
      if not pcall(R.pick(SCENARIOS)) then stats.harness_errors = stats.harness_errors + 1 end
    else
      one_call()
    end
    if stats.calls >= next_report and before < next_report then
      if not opts.quiet then
        out:write(("  ... %d calls, %d errors, %d violations, %.0f s\n"):format(stats.calls, stats.errors,
          stats.violations, bn.clock() - t_start))
        out:flush()
      end
      next_report = next_report + (opts.report_every or 10000)
    end
  end
  local elapsed = bn.clock() - t_start

  -- ------------------------------------------------------------ clean up
  for _, id in ipairs(hook_ids) do pcall(bn.hooks_remove, id) end
  for _, t in ipairs(pool) do close(t) end
  for _, t in ipairs(specials) do close(t) end
  for _, c in ipairs(canvases) do if CM then pcall(CM.close, c) end end
  pool, specials, canvases = {}, {}, {}
  bn.set_grad_enabled(saved_grad)
  bn.mem_set_limit(0)
  bn.num_threads(saved_threads)
  bn.set_rng_state(saved_rng)
  for _ = 1, 3 do collectgarbage("collect"); bn.zeros(1) end -- bn.zeros drains queued hook references
  collectgarbage("collect")
  local leak_mem, leak_nodes = bn.mem_in_use() - base_mem, bn.nodes_alive() - base_nodes
  if leak_mem ~= 0 or leak_nodes ~= 0 then
    violation({ key = "cleanup" }, "leak after the run", ("tensor bytes %+d, autograd nodes %+d"):format(leak_mem,
      leak_nodes), "(after closing every tensor and a full collection)")
  end
  os.execute("rm -rf '" .. tmpdir .. "'")

  local never = {}
  for _, e in ipairs(entries) do if per_fn[e.key].ok == 0 then never[#never + 1] = e.key end end
  return {
    seed = seed, calls = stats.calls, errors = stats.errors, successes = stats.successes,
    violations = stats.violations, violation_list = violations, elapsed = elapsed,
    digest = ("%08x"):format(digest), entries = #entries, skipped = skipped, nospec = nospec,
    never_succeeded = never, samples = samples, soft = soft, slowest = slowest, per_fn = per_fn,
    harness_errors = stats.harness_errors,
  }
end

-- ---------------------------------------------------------------------------
function M.summary_line(s)
  return ("api_fuzz: seed %d, calls %d, errors raised %d, successes %d, violations %d, digest %s, %.1f s")
    :format(s.seed, s.calls, s.errors, s.successes, s.violations, s.digest, s.elapsed)
end

function M.report(s, out)
  out = out or io.stdout
  out:write(("entries fuzzed: %d (skipped: %d)\n"):format(s.entries, #s.skipped))
  if #s.nospec > 0 then out:write("without a signature (random arguments): ", table.concat(s.nospec, " "), "\n") end
  if #s.never_succeeded > 0 then out:write("never succeeded: ", table.concat(s.never_succeeded, " "), "\n") end
  out:write(("slowest call: %.3f s wall, %.3f s CPU  %s\n"):format(s.slowest.t or 0, s.slowest.cpu or 0,
    s.slowest.call or ""))
  if s.harness_errors > 0 then
    out:write(("harness: %d argument builds or scenarios met a tensor closed under them (retried with random arguments)\n")
      :format(s.harness_errors))
  end
  for i, v in ipairs(s.violation_list) do
    if i > 100 then out:write("... (more kinds)\n") break end
    out:write(("VIOLATION %s: %s (x%d)\n    call: %s\n    message: %s\n"):format(v.key, v.reason, v.count, v.call,
      v.msg))
  end
  out:write(M.summary_line(s), "\n")
end

local function main(argv)
  local o = { calls = 100000, seed = 1 }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--calls" then o.calls = assert(math.tointeger(tonumber(argv[i + 1])), "--calls N"); i = i + 1
    elseif a == "--seed" then o.seed = assert(math.tointeger(tonumber(argv[i + 1])), "--seed S"); i = i + 1
    elseif a == "--samples" then o.samples = argv[i + 1]; i = i + 1
    elseif a == "--trace" then o.trace = true
    elseif a == "--hang" then o.hang = assert(tonumber(argv[i + 1]), "--hang SECONDS"); i = i + 1
    elseif a == "--show" then -- print every error of these entries (comma-separated keys)
      o.show = {}
      for k in argv[i + 1]:gmatch("[^,]+") do o.show[k] = true end
      i = i + 1
    elseif a == "--quiet" then o.quiet = true
    elseif a == "--list" then o.list = true
    elseif a == "--help" or a == "-h" then
      print("usage: bnlab tests/fuzz/api_fuzz.lua [--calls N] [--seed S] [--trace] [--quiet] [--samples FILE] [--list]"
        .. " [--show KEY,KEY] [--hang SECONDS]")
      os.exit(0)
    else
      io.stderr:write("api_fuzz: unknown option ", a, "\n"); os.exit(2)
    end
    i = i + 1
  end
  local bn = rawget(_G, "bn") or require("bnlab")
  local s = M.run(bn, o)
  M.report(s)
  if o.samples then
    local f = assert(io.open(o.samples, "w"))
    local keys = {}
    for k in pairs(s.samples) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do f:write(k, "\t", s.samples[k].call, "\t", s.samples[k].msg:gsub("\n", "\\n"), "\n") end
    local sk = {}
    for k in pairs(s.soft) do sk[#sk + 1] = k end
    table.sort(sk)
    for _, k in ipairs(sk) do f:write(k, "\t(nil, message)\t", s.soft[k], "\n") end
    f:close()
  end
  io.stdout:flush()
  os.exit(s.violations == 0 and 0 or 1, true)
end

-- Run as a script (bnlab tests/fuzz/api_fuzz.lua ...) or load as a module
-- (loadfile(...)() returns M, as tests/lua/test_fuzz_short.lua does).
local script = arg and arg[0] and arg[0]:match("api_fuzz%.lua$")
if script and select("#", ...) > 0 then
  main({ ... })
elseif script and (... == nil) and not rawget(_G, "BN_FUZZ_AS_MODULE") then
  main({})
end
return M
