-- bnlab against PyTorch on identical work, in the same run (`make bench`,
-- `make bench-quick`; docs/performance.md).
--
--   bnlab bench/compare.lua [--quick] [--rounds 3] [--models resnet20,cnn] ...
--
-- For every case (model x norm x mode x threads) and every round, one bnlab
-- process (bench/step_bench.lua) and one PyTorch process (bench/step_bench.py,
-- /usr/bin/python3) run back to back on the same case, their order swapped
-- every round, so both see the same drift in whatever else the machine does.
-- Per case: the median step time over every timed step of every round, the
-- images/s, the ratio bnlab / PyTorch (> 1: bnlab is slower), the achieved
-- GFLOP/s (conv + linear FLOPs, counted by both scripts and checked to agree),
-- that as a fraction of the OpenBLAS sgemm peak (build/bench/core --peak,
-- measured before and after the cases, the better of the two) and each
-- process's peak RSS. Writes bench/results/compare-<date>.md and .csv (with
-- --quick: compare-quick-<date>.*) and a copy as latest-compare(-quick).md.
local bn = require "bnlab"
local json = require "bnlab.json"

local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
local root = here == "bench" and "." or here:match("^(.+)/bench$") or (here .. "/..")

local function default_bnlab()
  local i = 0
  while arg[i - 1] ~= nil do i = i - 1 end
  return arg[i]
end

local opts = bn.args({
  quick   = { false, "ResNet-20 only, few steps, 2 rounds (make bench-quick)" },
  rounds  = { 3, "rounds: each case runs once per impl per round" },
  models  = { "resnet20,resnet56,resnet110,cnn", "models: resnetD (D = 6n + 2) and/or cnn" },
  norms   = { "bn,none", "normalization: bn, none" },
  modes   = { "train,infer", "train and/or infer" },
  threads = { "1,2", "thread counts" },
  batch   = { 128, "batch size" },
  steps   = { 0, "timed steps per process (0: per model, see STEPS in the script)" },
  warmup  = { 2, "untimed steps per process" },
  bnlab   = { "", "the bnlab binary (default: the one running this script)" },
  core    = { "build/bench/core", "bench/core binary for the sgemm peak (empty: skip)" },
  python  = { "/usr/bin/python3", "the Python that has torch" },
  out     = { "bench/results", "output directory" },
  dry_run = { false, "print the commands and exit" },
}, "Benchmarks bnlab against PyTorch (training and inference steps), alternating processes.")

-- Timed steps per process, so that each process runs some seconds.
local STEPS = {
  train = { resnet20 = 10, resnet56 = 5, resnet110 = 3, cnn = 30 },
  infer = { resnet20 = 20, resnet56 = 10, resnet110 = 6, cnn = 60 },
}

local function split(s)
  local out = {}
  for w in s:gmatch("[^,%s]+") do out[#out + 1] = w end
  return out
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function fail(msg)
  io.stderr:write("compare.lua: ", msg, "\n")
  os.exit(2)
end

if opts.quick then
  opts.models = "resnet20"
  if opts.rounds == 3 then opts.rounds = 2 end
  if opts.steps == 0 then opts.steps = 3 end
  if opts.warmup == 2 then opts.warmup = 1 end
end
local bnlab = opts.bnlab ~= "" and opts.bnlab or default_bnlab()
local models, norms, modes, threads = split(opts.models), split(opts.norms), split(opts.modes), split(opts.threads)

-- ---- cases -------------------------------------------------------------------

local cases = {}
for _, m in ipairs(models) do
  local depth = m:match("^resnet(%d+)$")
  if not depth and m ~= "cnn" then fail("--models: unknown model '" .. m .. "' (resnetD or cnn)") end
  for _, norm in ipairs(norms) do
    if norm ~= "bn" and norm ~= "none" then fail("--norms: unknown norm '" .. norm .. "'") end
    for _, mode in ipairs(modes) do
      if mode ~= "train" and mode ~= "infer" then fail("--modes: unknown mode '" .. mode .. "'") end
      for _, th in ipairs(threads) do
        local t = math.tointeger(tonumber(th))
        if not t or t < 1 then fail("--threads: bad thread count '" .. th .. "'") end
        local steps = opts.steps > 0 and opts.steps or (STEPS[mode][m] or 5)
        cases[#cases + 1] = {
          label = m, model = depth and "resnet" or "cnn", depth = tonumber(depth) or 0, norm = norm,
          mode = mode, threads = t, steps = steps,
        }
      end
    end
  end
end

local function case_args(c)
  return ("--model %s --depth %d --norm %s --threads %d --mode %s --steps %d --warmup %d --batch %d"):format(
    c.model, c.depth, c.norm, c.threads, c.mode, c.steps, opts.warmup, opts.batch)
end

local function command(impl, c)
  if impl == "bnlab" then
    return ("%s %s %s"):format(quote(bnlab), quote(here .. "/step_bench.lua"), case_args(c))
  end
  return ("%s %s %s"):format(quote(opts.python), quote(here .. "/step_bench.py"), case_args(c))
end

if opts.dry_run then
  for _, c in ipairs(cases) do
    print(command("bnlab", c))
    print(command("pytorch", c))
  end
  print(("%d cases x 2 impls x %d rounds = %d processes"):format(#cases, opts.rounds, #cases * 2 * opts.rounds))
  os.exit(0)
end

-- ---- running -----------------------------------------------------------------

local function run_capture(cmd)
  local err = os.tmpname()
  local p = io.popen(cmd .. " 2>" .. quote(err), "r")
  local out = p:read("a")
  local ok, _, code = p:close()
  local f = io.open(err, "r")
  local errtext = f and f:read("a") or ""
  if f then f:close() end
  os.remove(err)
  return ok, out, errtext, code
end

local function first_line(cmd)
  local p = io.popen(cmd .. " 2>/dev/null", "r")
  if not p then return nil end
  local s = p:read("l")
  p:close()
  return s
end

local function loadavg()
  local f = io.open("/proc/loadavg", "r")
  if not f then return "unknown" end
  local s = f:read("l")
  f:close()
  return s:match("^(%S+ %S+ %S+)") or s
end

-- The sgemm peak per thread count, from bench/core --peak (nil: not measured).
local function sgemm_peak()
  if opts.core == "" then return nil end
  local path = opts.core
  if not path:match("^/") and not io.open(path, "r") then path = root .. "/" .. path end
  local ok, out, err = run_capture(quote(path) .. " --peak")
  if not ok then
    io.stderr:write("compare.lua: sgemm peak not measured (", path, "): ", err, "\n")
    return nil
  end
  local okj, v = pcall(json.decode, out)
  return okj and v.sgemm_peak_gflops or nil
end

local function median(v)
  local s = {}
  for i, x in ipairs(v) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return 0 / 0 end
  return n % 2 == 1 and s[(n + 1) // 2] or 0.5 * (s[n // 2] + s[n // 2 + 1])
end

local started = bn.clock()
local load_start = loadavg()
io.stderr:write(("compare: %d cases x 2 impls x %d rounds; load average %s\n"):format(#cases, opts.rounds, load_start))
local peak_before = sgemm_peak()

local results = {} -- results[case][impl] = { times = {...}, round_medians = {...}, runs = {...} }
for ci = 1, #cases do results[ci] = { bnlab = { times = {}, rounds = {}, runs = {} }, pytorch = { times = {}, rounds = {}, runs = {} } } end
local failures = {}
local done, total = 0, #cases * 2 * opts.rounds
for round = 1, opts.rounds do
  for ci, c in ipairs(cases) do
    local order = (round + ci) % 2 == 0 and { "bnlab", "pytorch" } or { "pytorch", "bnlab" }
    for _, impl in ipairs(order) do
      local ok, out, err, code = run_capture(command(impl, c))
      local okj, r = false, nil
      if ok then okj, r = pcall(json.decode, out:match("[^\n]*{[^\n]*}") or "") end
      done = done + 1
      if ok and okj and type(r) == "table" and r.times_ms then
        local res = results[ci][impl]
        for _, t in ipairs(r.times_ms) do res.times[#res.times + 1] = t end
        res.rounds[#res.rounds + 1] = median(r.times_ms)
        res.runs[#res.runs + 1] = r
      else
        failures[#failures + 1] = ("%s %s %s threads %d %s, round %d: exit %s: %s"):format(impl, c.label, c.norm,
          c.threads, c.mode, round, tostring(code), (err ~= "" and err or out):sub(1, 400))
        io.stderr:write("compare: FAILED ", failures[#failures], "\n")
      end
      local elapsed = bn.clock() - started
      io.stderr:write(("compare: [%d/%d] round %d %-9s %-4s %-5s %dt %-7s %s  (%.0f s elapsed, ~%.0f s left)\n"):format(
        done, total, round, c.label, c.norm, c.mode, c.threads, impl,
        (ok and okj and r and r.times_ms) and ("%.1f ms/step"):format(median(r.times_ms)) or "failed",
        elapsed, elapsed / done * (total - done)))
    end
  end
end
local peak_after = sgemm_peak()
local load_end = loadavg()
local wall = bn.clock() - started

-- ---- tables ------------------------------------------------------------------

local function best_peak(th)
  local k = tostring(th)
  local a = peak_before and tonumber(peak_before[k])
  local b = peak_after and tonumber(peak_after[k])
  if a and b then return math.max(a, b) end
  return a or b
end

local function fmt(x, f)
  if x == nil or x ~= x then return "" end
  return (f or "%.1f"):format(x)
end

local rows = {}
local flop_notes = {}
for ci, c in ipairs(cases) do
  local b, p = results[ci].bnlab, results[ci].pytorch
  local row = { case = c }
  for impl, res in pairs { bnlab = b, pytorch = p } do
    local r = {}
    if #res.times > 0 then
      r.ms = median(res.times)
      r.ips = opts.batch / (r.ms / 1e3)
      r.flops = res.runs[1].flops_per_step
      r.gflops = r.flops / (r.ms / 1e3) / 1e9
      local peak = best_peak(c.threads)
      r.peak_frac = peak and r.gflops / peak or nil
      local rss = 0
      for _, run in ipairs(res.runs) do rss = math.max(rss, run.peak_rss_mb or 0) end
      r.rss = rss
      r.lo, r.hi = math.huge, -math.huge
      for _, m in ipairs(res.rounds) do r.lo, r.hi = math.min(r.lo, m), math.max(r.hi, m) end
      r.version = res.runs[1].version
      r.blas = res.runs[1].blas
    end
    row[impl] = r
  end
  if row.bnlab.ms and row.pytorch.ms then
    row.ratio = row.bnlab.ms / row.pytorch.ms
    if row.bnlab.flops ~= row.pytorch.flops then
      flop_notes[#flop_notes + 1] = ("%s %s %s: bnlab counts %.0f FLOPs per step, PyTorch %.0f"):format(c.label,
        c.norm, c.mode, row.bnlab.flops, row.pytorch.flops)
    end
  end
  rows[ci] = row
end

local function machine()
  local model = first_line("lscpu | sed -n 's/^Model name: *//p'") or "unknown CPU"
  local cpus = first_line("nproc") or "?"
  local mem = first_line("awk '/MemTotal/ {printf \"%.1f GiB\", $2 / 1048576}' /proc/meminfo") or "?"
  return ("%s, %s CPUs, %s RAM"):format(model, cpus, mem)
end

local function commit()
  local c = first_line("git -C " .. quote(root) .. " rev-parse --short HEAD") or "unknown"
  local dirty = first_line("git -C " .. quote(root) .. " status --porcelain -- src lua bench | head -1")
  if dirty and dirty ~= "" then c = c .. " (with uncommitted changes in src/, lua/ or bench/)" end
  return c
end

local day = os.date("%Y-%m-%d")
local any_b, any_p
for _, row in ipairs(rows) do
  any_b = any_b or (row.bnlab.version and row.bnlab)
  any_p = any_p or (row.pytorch.version and row.pytorch)
end

local md = {}
local function w(s) md[#md + 1] = s end
w(("# bnlab vs PyTorch, %s%s"):format(day, opts.quick and " (quick)" or ""))
w("")
w("- Machine: " .. machine())
w("- Date: " .. os.date("%Y-%m-%d %H:%M:%S %Z") .. (" (the run took %.0f s)"):format(wall))
w("- Load average (1, 5, 15 min) at start: " .. load_start .. "; at end: " .. load_end ..
  ". Anything else running on the machine skews the numbers.")
w("- bnlab " .. (any_b and any_b.version or "?") .. ", commit " .. commit() .. ", " .. _VERSION .. ", " ..
  (any_b and any_b.blas or bn.blas_version()))
w("- PyTorch " .. (any_p and any_p.version or "?") .. " (" .. opts.python .. "; Debian's python3-torch): " ..
  (any_p and any_p.blas and any_p.blas:gsub("|", "/") or "?"))
w("- OpenBLAS sgemm peak (bench/core --peak, square 1024/2048, best of before and after): " ..
  (best_peak(1) and ("%.1f GFLOP/s at 1 thread, %.1f at 2"):format(best_peak(1), best_peak(2) or 0 / 0) or "not measured"))
w(("- OMP_WAIT_POLICY=%s, GOMP_SPINCOUNT=%s (both processes run with the same environment)"):format(
  os.getenv("OMP_WAIT_POLICY") or "(unset)", os.getenv("GOMP_SPINCOUNT") or "(unset)"))
w(("- Batch %d; %d round(s); warm-up %d steps per process; timed steps per process: %s."):format(opts.batch,
  opts.rounds, opts.warmup, opts.steps > 0 and tostring(opts.steps) or "ResNet-20 10/20, ResNet-56 5/10, ResNet-110 3/6, CNN 30/60 (train/infer)"))
w("- Command: `bnlab bench/compare.lua " .. table.concat(arg, " ") .. "`")
w("")
w("A training step: zero_grad + forward + cross-entropy + backward + SGD (momentum 0.9, weight decay 1e-4), on a")
w("fixed random batch. Inference: forward in eval mode without a graph. ms/step: median over every timed step of")
w("every round (range: the per-round medians). GFLOP/s: conv + linear FLOPs per step (2 per multiply-add; a")
w("training step counts forward, weight gradients and input gradients) over the median time. % peak: that over")
w("the sgemm peak at the same thread count. RSS: the largest peak resident set of the case's processes (the")
w("PyTorch process includes the ~200+ MB the torch libraries take at import).")
w("")
w("| model | norm | mode | threads | bnlab ms/step | PyTorch ms/step | bnlab / PyTorch | bnlab img/s | PyTorch img/s "
  .. "| GFLOP/step | bnlab GFLOP/s | PyTorch GFLOP/s | bnlab % peak | PyTorch % peak | bnlab RSS MB | PyTorch RSS MB |")
w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for _, row in ipairs(rows) do
  local c, b, p = row.case, row.bnlab, row.pytorch
  local function ms(r)
    if not r.ms then return "failed" end
    return ("%.1f (%.1f–%.1f)"):format(r.ms, r.lo, r.hi)
  end
  w(("| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(
    c.label, c.norm, c.mode, c.threads, ms(b), ms(p), fmt(row.ratio, "%.2f"), fmt(b.ips, "%.0f"), fmt(p.ips, "%.0f"),
    fmt((b.flops or p.flops or 0 / 0) / 1e9, "%.2f"), fmt(b.gflops), fmt(p.gflops),
    fmt(b.peak_frac and 100 * b.peak_frac, "%.0f%%"), fmt(p.peak_frac and 100 * p.peak_frac, "%.0f%%"),
    fmt(b.rss, "%.0f"), fmt(p.rss, "%.0f")))
end
if #flop_notes > 0 then
  w("")
  w("FLOP counts that differ between the two scripts (a model mismatch):")
  for _, n in ipairs(flop_notes) do w("- " .. n) end
end
if #failures > 0 then
  w("")
  w("Failed runs:")
  for _, f in ipairs(failures) do w("- " .. f:gsub("\n", " ")) end
end
w("")

local csv = { "model,norm,mode,threads,batch,impl,median_ms,round_median_min_ms,round_median_max_ms,images_per_s,"
  .. "flops_per_step,gflops,sgemm_peak_gflops,peak_fraction,peak_rss_mb,steps_timed,ratio_bnlab_over_pytorch" }
for ci, row in ipairs(rows) do
  local c = row.case
  for _, impl in ipairs { "bnlab", "pytorch" } do
    local r = row[impl]
    local n = #results[ci][impl].times
    csv[#csv + 1] = table.concat({ c.label, c.norm, c.mode, c.threads, opts.batch, impl, fmt(r.ms, "%.3f"),
      fmt(r.lo, "%.3f"), fmt(r.hi, "%.3f"), fmt(r.ips, "%.1f"), fmt(r.flops, "%.0f"), fmt(r.gflops, "%.2f"),
      fmt(best_peak(c.threads), "%.2f"), fmt(r.peak_frac, "%.4f"), fmt(r.rss, "%.1f"), n,
      fmt(row.ratio, "%.4f") }, ",")
  end
end

local out_dir = opts.out:match("^/") and opts.out or (root .. "/" .. opts.out)
bn.mkdir(out_dir)
local stem = out_dir .. "/compare-" .. (opts.quick and "quick-" or "") .. day
local text = table.concat(md, "\n")
bn.write_file(stem .. ".md", text)
bn.write_file(stem .. ".csv", table.concat(csv, "\n") .. "\n")
bn.write_file(out_dir .. "/latest-compare" .. (opts.quick and "-quick" or "") .. ".md", text)
io.write(text)
io.stderr:write(("compare: wrote %s.md and %s.csv (%.0f s)\n"):format(stem, stem, wall))
os.exit(#failures == 0 and 0 or 1)
