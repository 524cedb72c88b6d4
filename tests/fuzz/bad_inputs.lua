-- Crafted bad files for every reader, and the message each produces, as the
-- markdown tables in docs/reliability.md ("Bad inputs"):
--   bnlab tests/fuzz/bad_inputs.lua          the readers
--   bnlab tests/fuzz/bad_inputs.lua api      one bad call per API family
-- Every case must fail cleanly (an error or nil + message, never a crash or
-- a giant allocation: tensor memory is limited to 64 MB here); the script
-- exits 1 if one succeeds or the message does not name the reader.
local bn = rawget(_G, "bn") or require("bnlab")

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
bn.mem_set_limit(64 << 20)

local function file(name, bytes)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end
local function gzip(name, bytes)
  local raw = file(name .. ".raw", bytes)
  assert(os.execute(("gzip -n -c '%s' > '%s/%s'"):format(raw, dir, name)))
  return dir .. "/" .. name
end
local function be32(n) return string.pack(">I4", n) end
local function idx(ndim, sizes, data)
  local h = "\0\0\8" .. string.char(ndim)
  for _, s in ipairs(sizes) do h = h .. be32(s) end
  return h .. data
end
local function npy(dict, data, major)
  major = major or 1
  local pre = major == 1 and 10 or 12
  local pad = (64 - (pre + #dict + 1) % 64) % 64
  local header = dict .. string.rep(" ", pad) .. "\n"
  local hl = major == 1 and string.pack("<I2", #header) or string.pack("<I4", #header)
  return "\147NUMPY" .. string.char(major, 0) .. hl .. header .. data
end
local function st(header, data)
  header = header .. string.rep(" ", (8 - #header % 8) % 8)
  return string.pack("<I8", #header) .. header .. (data or "")
end
local F = '{"dtype":"F32","shape":[%s],"data_offsets":[%d,%d]}'

-- ---- the API: one representative bad call per family ------------------------------
if arg and arg[1] == "api" then
  local calls = {
    { "creation", "bn.zeros(2, -3)" }, { "creation", "bn.full({2, 2})" }, { "creation", "bn.tensor{{1, 2}, {3}}" },
    { "creation", "bn.ones(2^20, 2^20)" }, { "creation", "bn.arange(0, 1, 0)" },
    { "views", "bn.randn(4, 6):t():view(24)" }, { "views", "bn.randn(2, 3):narrow(2, 3, 2)" },
    { "views", "bn.randn(2, 3):permute(1, 1)" }, { "views", "bn.randn(3):expand(2, 4)" },
    { "reductions", "bn.randn(2, 3):sum(3)" }, { "reductions", "bn.randn(2):var(1, true, -1)" },
    { "arithmetic", "bn.randn(2, 3) + bn.randn(4)" }, { "arithmetic", "bn.randn(2) ^ bn.randn(2)" },
    { "arithmetic", "bn.randn(2) + 'x'" }, { "arithmetic", "bn.clamp(bn.randn(2), 1, 0)" },
    { "nn ops", "bn.conv2d(bn.randn(1, 1, 28, 28), bn.randn(16, 3, 3, 3))" },
    { "nn ops", "bn.conv2d(bn.randn(1, 3, 8, 8), bn.randn(4, 3, 3, 3), nil, {strid = 2})" },
    { "nn ops", "bn.cross_entropy(bn.randn(2, 10), {1, 11})" },
    { "nn ops", "bn.batch_norm(bn.randn(4, 3), bn.zeros(2), bn.ones(2))" },
    { "nn ops", "bn.max_pool2d(bn.randn(1, 1, 4, 4), 0)" }, { "nn ops", "bn.cat({bn.randn(2), 'x'})" },
    { "nn ops", "bn.softmax(bn.randn(2, 3))" },
    { "autograd", "bn.randn(3):backward()" },
    { "autograd", "(function() local w = bn.randn(3):requires_grad(true); local y = (w * 2):sum(); y:backward(); y:backward() end)()" },
    { "autograd", "(function() local w = bn.randn(3):requires_grad(true); w:fill(0) end)()" },
    { "autograd", "bn.randn(3):register_hook(print)" },
    { "autograd", "(function() local w = bn.randn(2):requires_grad(true); w:register_hook(function() error('boom') end); (w * 1):sum():backward() end)()" },
    { "closed tensors", "(function() local t <close> = bn.zeros(2); return t end)():sum()" },
    { "closed tensors", "(function() local t = bn.zeros(2); getmetatable(t).__close(t); return t + 1 end)()" },
    { "tensor facts", "bn.randn(2, 3):item()" }, { "tensor facts", "bn.tensor(1)[1]" },
    { "tensor facts", "(function() local t = bn.zeros(2); t.foo = 1 end)()" },
    { "memory", "bn.mem_set_limit(-1)" }, { "files", "bn.load('/nonexistent/x.npy')" },
    { "files", "bn.save(bn.zeros(2), '')" }, { "files", "bn.save_safetensors('/tmp/x.safetensors', {w = 1})" },
    { "optimizer", "bn.sgd_step({bn.zeros(2)}, nil, {lr = -1})" },
    { "data", "bn._data.gather(bn.randn(4, 3), {5})" }, { "data", "bn._data.normalize(bn.rand(2, 3, 2):transpose(1, 3), 0, 1)" },
    { "render", "bn.render.canvas(0, 10)" }, { "render", "bn.render.canvas(4, 4):fill_rect(0, 0, 2, 2, 'red')" },
    { "probe/linalg", "bn._linalg.svdvals(bn.randn(2, 2, 2))" },
    { "Lua helpers", "bn.allclose(bn.randn(2), bn.randn(3))" }, { "Lua helpers", "bn.equal(bn.randn(2), 5)" },
    { "Lua helpers", "bn.Tensor.norm('x')" },
  }
  bn.mem_set_limit(256 << 20)
  print("| family | call | message |")
  print("| --- | --- | --- |")
  for _, c in ipairs(calls) do
    local f = assert(load("local bn = ... return " .. c[2], "=call", "t"))
    local ok, err = pcall(f, bn)
    local msg = ok and "(no error!)" or tostring(err):gsub("^[^ ]-:%d+: ", ""):gsub("|", "\\|"):gsub("\n", " ")
    print(("| %s | `%s` | `%s` |"):format(c[1], c[2]:gsub("|", "\\|"), msg))
  end
  bn.mem_set_limit(0)
  os.execute("rm -rf '" .. dir .. "'")
  return
end

local labels_ok = file("labels_ok", idx(1, { 2 }, "\1\2"))
local cases = {
  -- IDX (MNIST / Fashion-MNIST), raw and gzip
  { "IDX", "empty file", "idx", file("i0", "") },
  { "IDX", "header cut after 6 bytes", "idx", file("i1", "\0\0\8\3\0\0") },
  { "IDX", "wrong magic (a PNG)", "idx", file("i2", "\137PNG\r\n\26\n" .. string.rep("\0", 16)) },
  { "IDX", "float64 elements (0x0E)", "idx", file("i3", "\0\0\14\3" .. be32(1) .. be32(1) .. be32(1) .. "\0") },
  { "IDX", "labels file given as images", "idx", file("i4", idx(1, { 3 }, "\1\2\3")) },
  { "IDX", "header says 1000 images, 18 bytes follow", "idx", file("i5", idx(3, { 1000, 3, 3 }, string.rep("\1", 18))) },
  { "IDX", "4294967295 images declared", "idx", file("i6", idx(3, { 0xFFFFFFFF, 28, 28 }, "")) },
  { "IDX", "images of 0 x 28 pixels", "idx", file("i7", idx(3, { 1, 0, 28 }, "")) },
  { "IDX", "trailing bytes after the data", "idx", file("i8", idx(3, { 1, 2, 2 }, "\1\2\3\4\5")) },
  { "IDX", "gzip: cut in the middle", "idx", (function()
      local p = gzip("i9.gz", idx(3, { 50, 28, 28 }, string.rep("\7", 50 * 784)))
      local f = io.open(p, "rb"); local s = f:read("a"); f:close()
      return file("i9cut.gz", s:sub(1, #s // 2))
    end)() },
  { "IDX", "gzip: corrupt deflate data", "idx", file("i10.gz", "\31\139\8\0\0\0\0\0\0\3" .. string.rep("\255", 40)) },
  { "IDX", "gzip: header promises more than 1032:1", "idx",
    gzip("i11.gz", idx(3, { 100000, 28, 28 }, string.rep("\0", 100))) },
  -- CIFAR binary
  { "CIFAR", "empty file", "cifar", file("c0", "") },
  { "CIFAR", "3000 bytes (not a multiple of 3073)", "cifar", file("c1", string.rep("\1", 3000)) },
  { "CIFAR", "CIFAR-10 label 200", "cifar", file("c2", "\200" .. string.rep("\1", 3072)) },
  { "CIFAR", "CIFAR-100 fine label 150", "cifar100", file("c3", "\1\150" .. string.rep("\1", 3072)) },
  -- .npy
  { ".npy", "not a .npy (text)", "npy", file("n0", "hello, world\n") },
  { ".npy", "cut inside the magic", "npy", file("n1", "\147NUM") },
  { ".npy", "version 9.0", "npy", file("n2", "\147NUMPY\9\0" .. string.rep(" ", 60)) },
  { ".npy", "header length past the end", "npy", file("n3", "\147NUMPY\1\0\255\255{'descr'") },
  { ".npy", "complex64 dtype", "npy", file("n4", npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", string.rep("\0", 8))) },
  { ".npy", "object dtype", "npy", file("n5", npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "\0")) },
  { ".npy", "shape (2^62, 2^62): overflow", "npy", file("n6", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }", "")) },
  { ".npy", "shape (1000000,), 8 data bytes", "npy", file("n7", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000,), }", "\0\0\0\0\0\0\0\0")) },
  { ".npy", "negative size", "npy", file("n8", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "")) },
  { ".npy", "missing 'shape'", "npy", file("n9", npy("{'descr': '<f4', 'fortran_order': False, }", "")) },
  { ".npy", "fortran_order: 'maybe'", "npy", file("n10", npy("{'descr': '<f4', 'fortran_order': 'maybe', 'shape': (1,), }", "\0\0\0\0")) },
  { ".npy", "9 dims (more than 8)", "npy", file("n11", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", "\0\0\0\0")) },
  -- safetensors (and bnlab checkpoints)
  { "safetensors", "empty file", "st", file("s0", "") },
  { "safetensors", "header length 2^63", "st", file("s1", string.pack("<I8", 1 << 63) .. "{}") },
  { "safetensors", "header length past the end", "st", file("s2", string.pack("<I8", 1000) .. "{}") },
  { "safetensors", "header is not JSON", "st", file("s3", st("{not json")) },
  { "safetensors", "invalid UTF-8 in a name", "st", file("s4", st('{"\255":' .. F:format("1", 0, 4) .. "}", "\0\0\0\0")) },
  { "safetensors", "unknown dtype F8", "st", file("s5", st('{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', "\0")) },
  { "safetensors", "offsets past the buffer", "st", file("s6", st('{"a":' .. F:format("1", 0, 4) .. "}", "")) },
  { "safetensors", "shape [1000000] in 4 bytes", "st", file("s7", st('{"a":' .. F:format("1000000", 0, 4) .. "}", "\0\0\0\0")) },
  { "safetensors", "shape product overflows", "st", file("s8", st('{"a":' .. F:format("4294967296,4294967296,4294967296", 0, 4) .. "}", "\0\0\0\0")) },
  { "safetensors", "two tensors overlap", "st", file("s9", st('{"a":' .. F:format("1", 0, 4) .. ',"b":' .. F:format("1", 0, 4) .. "}", "\0\0\0\0")) },
  { "safetensors", "a gap between tensors", "st", file("s10", st('{"a":' .. F:format("1", 0, 4) .. ',"b":' .. F:format("1", 8, 12) .. "}", string.rep("\0", 12))) },
  { "safetensors", "duplicate name", "st", file("s11", st('{"a":' .. F:format("1", 0, 4) .. ',"a":' .. F:format("1", 4, 8) .. "}", string.rep("\0", 8))) },
  { "safetensors", "metadata value not a string", "st", file("s12", st('{"__metadata__":{"epoch":12}}')) },
  { "safetensors", "negative size in a shape", "st", file("s13", st('{"a":' .. F:format("-1", 0, 4) .. "}", "\0\0\0\0")) },
  { "checkpoint", "bnlab_state that runs code", "ckpt", (function()
      local p = dir .. "/k0"
      bn.save_safetensors(p, {}, { format = "bnlab-checkpoint-1", bnlab_state = "(function() while true do end end)()" })
      return p
    end)() },
}

local readers = {
  idx = function(p) return bn._data.load_idx(p, labels_ok) end,
  cifar = function(p) return bn._data.load_cifar({ p }, 1) end,
  cifar100 = function(p) return bn._data.load_cifar({ p }, 2) end,
  npy = function(p) return bn.load(p) end,
  st = function(p) return bn.load_safetensors(p) end,
}
local prefix = { idx = "idx:", cifar = "cifar:", cifar100 = "cifar:", npy = "bn.load: npy:", st = "bn.load_safetensors: safetensors:" }

local bad = 0
print("| format | bad input | message |")
print("| --- | --- | --- |")
for _, c in ipairs(cases) do
  local fmt, what, reader, path = c[1], c[2], c[3], c[4]
  local msg
  if reader == "ckpt" then
    -- Only with serialize.decode's check (tests/fuzz/patches/serialize_data_only.patch)
    -- does this fail: without it the load never returns, so it runs in a child with a timeout.
    local bnlab = arg and arg[-1] or "bnlab"
    local cmd = ("timeout 5 %q -e %q 2>&1"):format(bnlab,
      ("print(select(2, pcall(bn.train.load_checkpoint, %q)))"):format(path))
    local p = io.popen(cmd)
    msg = p:read("a"):gsub("%s+$", "")
    local ok, _, code = p:close()
    if code == 124 then msg = "(no message: the load never returns; killed after 5 s)"; bad = bad + 1 end
  else
    local r = table.pack(pcall(readers[reader], path))
    if r[1] and r[2] ~= nil then
      msg = "(loaded: no error!)"
      bad = bad + 1
    else
      msg = r[1] and r[3] or r[2]
      if not tostring(msg):find(prefix[reader], 1, true) then bad = bad + 1 end
    end
  end
  msg = tostring(msg):gsub("^[^ ]-:%d+: ", ""):gsub(dir, "$DIR"):gsub("|", "\\|"):gsub("\n", " ")
  print(("| %s | %s | `%s` |"):format(fmt, what, msg))
end
bn.mem_set_limit(0)
os.execute("rm -rf '" .. dir .. "'")
if bad > 0 then
  io.stderr:write(("bad_inputs: %d case(s) did not fail cleanly\n"):format(bad))
  os.exit(1)
end
