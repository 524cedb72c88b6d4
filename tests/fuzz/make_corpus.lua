-- Writes the seed corpora of the file fuzzers: small valid files of each
-- format (and a few near-misses), as tests/fuzz/corpus/<reader>/seed-<name>.
-- Run through tests/fuzz/make_corpus.sh (which also gzips the IDX seeds):
--   bnlab tests/fuzz/make_corpus.lua tests/fuzz/corpus
-- Files named otherwise (regression inputs from findings) are left alone.
local bn = rawget(_G, "bn") or require("bnlab")
local root = assert(arg[1], "usage: make_corpus.lua CORPUS_DIR")

local function put(reader, name, bytes)
  local f = assert(io.open(root .. "/" .. reader .. "/seed-" .. name, "wb"))
  f:write(bytes)
  f:close()
end
local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function bytes(n, start)
  local t = {}
  for i = 1, n do t[i] = string.char(((start or 0) + i * 37) % 256) end
  return table.concat(t)
end

-- ---- IDX: magic 00 00 08 <ndim>, big-endian sizes, bytes --------------------------
local function idx(ndim, sizes, data)
  local h = "\0\0\8" .. string.char(ndim)
  for _, s in ipairs(sizes) do h = h .. string.pack(">I4", s) end
  return h .. data
end
local idx_seeds = {
  images_2x3x3 = idx(3, { 2, 3, 3 }, bytes(18)),
  images_1x1x1 = idx(3, { 1, 1, 1 }, "\255"),
  images_0x28x28 = idx(3, { 0, 28, 28 }, ""),
  labels_5 = idx(1, { 5 }, "\0\1\2\9\3"),
  labels_0 = idx(1, { 0 }, ""),
}
for name, b in pairs(idx_seeds) do
  put("idx", name, b)
  put("idx_gz", name, "\0" .. b) -- fuzz_idx_gz: first byte = how much of the gzip stream survives
end
put("idx_gz", "images_2x3x3_cut", "\250" .. idx_seeds.images_2x3x3)

-- ---- CIFAR: records of label byte(s) + 3072 pixel bytes ------------------------------
put("cifar", "cifar10_1", "\3" .. bytes(3072))
put("cifar", "cifar100_1", "\5\42" .. bytes(3072, 7))
put("cifar", "cifar10_2", "\0" .. bytes(3072) .. "\9" .. bytes(3072, 3))

-- ---- .npy --------------------------------------------------------------------------------
local function npy(major, dict, data)
  local pre = 6 + 2 + (major == 1 and 2 or 4)
  local len = #dict + 1
  local pad = (64 - (pre + len) % 64) % 64
  local header = dict .. string.rep(" ", pad) .. "\n"
  local hl = major == 1 and string.pack("<I2", #header) or string.pack("<I4", #header)
  return "\147NUMPY" .. string.char(major, 0) .. hl .. header .. data
end
local tmp = os.tmpname()
bn.save(bn.arange(6):view(2, 3), tmp)
put("npy", "f4_2x3_bnlab", slurp(tmp))
put("npy", "f8_fortran", npy(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }",
  string.pack("<dddd", 1, 2, 3, 4)))
put("npy", "i2_big", npy(1, "{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }", string.pack(">i2i2i2", -1, 2, 300)))
put("npy", "u1", npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", "\0\1\127\255"))
put("npy", "b1", npy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", "\0\1\1"))
put("npy", "i8_scalar", npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }", string.pack("<i8", 42)))
put("npy", "f2", npy(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", "\0\60\0\188"))
put("npy", "u4_empty", npy(1, "{'descr': '<u4', 'fortran_order': False, 'shape': (0, 5), }", ""))
put("npy", "i1_v2", npy(2, "{'descr': '|i1', 'fortran_order': False, 'shape': (4,), }", "\1\2\3\255"))
put("npy", "f4_v3", npy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1), }", string.pack("<f", 0.5)))

-- ---- safetensors ---------------------------------------------------------------------------
local function st(entries, meta)
  -- entries: list of {name, dtype, shape, data}; offsets tile the buffer in order
  local parts, off, buf = {}, 0, {}
  if meta then
    local m = {}
    for _, kv in ipairs(meta) do m[#m + 1] = ('"%s":"%s"'):format(kv[1], kv[2]) end
    parts[#parts + 1] = '"__metadata__":{' .. table.concat(m, ",") .. "}"
  end
  for _, e in ipairs(entries) do
    local shape = {}
    for i, s in ipairs(e[3]) do shape[i] = tostring(s) end
    parts[#parts + 1] = ('"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}'):format(e[1], e[2],
      table.concat(shape, ","), off, off + #e[4])
    off = off + #e[4]
    buf[#buf + 1] = e[4]
  end
  local h = "{" .. table.concat(parts, ",") .. "}"
  h = h .. string.rep(" ", (8 - #h % 8) % 8)
  return string.pack("<I8", #h) .. h .. table.concat(buf)
end
bn.save_safetensors(tmp, { w = bn.arange(6):view(2, 3), b = bn.zeros(2) }, { epoch = 3 })
put("safetensors", "f32_bnlab", slurp(tmp))
put("safetensors", "dtypes", st {
  { "h", "F16", { 2 }, "\0\60\0\188" }, { "bf", "BF16", { 1 }, "\128\63" },
  { "d", "F64", { 1 }, string.pack("<d", 2.5) }, { "i8", "I8", { 2 }, "\255\1" },
  { "l", "I64", { 1 }, string.pack("<i8", -7) }, { "u", "U8", { 3 }, "\0\128\255" },
  { "q", "BOOL", { 2 }, "\0\1" }, { "s", "U16", { 1 }, "\1\2" }, { "i32", "I32", { 1 }, string.pack("<i4", 9) },
})
put("safetensors", "empty_and_scalar", st { { "e", "F32", { 0, 3 }, "" }, { "s", "F32", {}, string.pack("<f", 1) } })
put("safetensors", "no_tensors", st({}, { { "k", "v" } }))

-- ---- checkpoints: safetensors with training metadata ----------------------------------------
local ok = pcall(function()
  bn.train.save_checkpoint(tmp, { epoch = 2, model = { w = bn.ones(2, 2) }, rng = bn.rng_state(),
    history = { { loss = 1.5, acc = 0.25 } } })
end)
if ok then put("checkpoint", "bnlab_train", slurp(tmp)) end
put("checkpoint", "meta_numbers", st({ { "p", "F32", { 2 }, string.pack("<ff", 1, 2) } }, {
  { "epoch", "12" }, { "step", "3400" }, { "lr", "0.1" }, { "rng_seed", "42" },
  { "rng_offset", "18446744073709551615" }, { "neg", "-5" }, { "big", "1e309" }, { "nan", "nan" },
  { "hex", "0x10" }, { "space", " 7" }, { "format", "bnlab-checkpoint-1" } }))
put("checkpoint", "meta_escapes", st({}, { { "q\\\"uote", "a\\\\b\\n\\u00e9\\ud83d\\ude00" }, { "", "" } }))
os.remove(tmp)
