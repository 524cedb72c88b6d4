-- Tensor memory from Lua: the collector is driven by tensor bytes (no
-- collectgarbage() needed), <close> frees at once, and graphs die with the
-- tensors that own them.
local bn = require "bnlab"
local check = require "check"

local T = {}

local MB = 1 << 20

-- Runs `code` in a new bnlab process and returns what it printed.
local function run_fresh(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = io.popen(("%s %s"):format(check.bnlab(), path))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

-- These loops run in a fresh process: the collector's threshold follows the
-- bytes live after the last collection, so whatever earlier test files left
-- reachable in this process would raise the peak they measure.
function T.loop_of_1mb_tensors_stays_flat_without_collectgarbage()
  local code = [[
    local base = bn.mem_in_use()
    local peak = 0
    for _ = 1, 10000 do
      local t = bn.zeros(256 * 1024) -- 1 MB, garbage after each iteration
      local used = bn.mem_in_use() - base
      if used > peak then peak = used end
      t = nil
    end
    print(peak)
  ]]
  local peak = tonumber(run_fresh(code))
  check.truthy(peak, "the child printed its peak")
  check.truthy(peak < 200 * MB, ("peak %.1f MB stays under 200 MB"):format(peak / MB))
end

function T.loop_with_temporaries_of_ops_stays_flat()
  local peak = tonumber(run_fresh([[
    local base = bn.mem_in_use()
    local peak = 0
    local x = bn.ones(64 * 1024) -- 256 KB
    for _ = 1, 2000 do
      local y = (x * 2 + 1):relu():sum() -- several temporaries per iteration
      local used = bn.mem_in_use() - base
      if used > peak then peak = used end
      y = nil
    end
    print(peak)
  ]]))
  check.truthy(peak, "the child printed its peak")
  check.truthy(peak < 200 * MB, ("peak %.1f MB stays under 200 MB"):format(peak / MB))
end

function T.close_frees_immediately()
  collectgarbage()
  local before = bn.mem_in_use()
  do
    local t <close> = bn.zeros(1000)
    check.truthy(bn.mem_in_use() >= before + 4000, "allocated")
  end
  check.eq(bn.mem_in_use(), before)
end

function T.close_of_a_view_keeps_the_storage_for_others()
  collectgarbage()
  local before = bn.mem_in_use()
  local t = bn.zeros(1000)
  do
    local v <close> = t:view(10, 100)
  end
  check.truthy(bn.mem_in_use() >= before + 4000, "storage still held by t")
  t:fill(1)
  check.eq(t:sum():item(), 1000.0)
  do local c <close> = t end
  collectgarbage()
  check.eq(bn.mem_in_use(), before)
end

function T.collector_frees_everything_unreferenced()
  collectgarbage()
  local before = bn.mem_in_use()
  do
    local a = bn.randn(100, 100)
    local b = bn.matmul(a, a):relu()
    local _ = b:sum()
  end
  collectgarbage()
  collectgarbage()
  check.eq(bn.mem_in_use(), before)
end

function T.graphs_are_freed_with_their_tensors()
  collectgarbage()
  local nodes = bn.nodes_alive()
  local before = bn.mem_in_use()
  do
    local w = bn.randn(8, 4):requires_grad(true)
    local x = bn.randn(16, 4)
    local loss = bn.cross_entropy(bn.linear(x, w):relu(), {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8})
    check.truthy(bn.nodes_alive() > nodes, "forward recorded nodes")
    loss:backward()
    check.truthy(w.grad ~= nil, "gradient")
  end
  collectgarbage()
  collectgarbage()
  check.eq(bn.nodes_alive(), nodes)
  check.eq(bn.mem_in_use(), before)
end

function T.forward_without_backward_does_not_leak()
  collectgarbage()
  local nodes = bn.nodes_alive()
  local w = bn.randn(32, 32):requires_grad(true)
  for _ = 1, 200 do
    local h = bn.matmul(w, w):tanh():sum() -- a graph that is never backpropagated
    h = nil
  end
  collectgarbage()
  collectgarbage()
  check.eq(bn.nodes_alive(), nodes)
end

function T.hooks_release_their_functions()
  -- A hook's closure holds a big tensor; once the tensor owning the hook is
  -- gone, the closure (and the big tensor) must be collectable.
  collectgarbage()
  local before = bn.mem_in_use()
  do
    local big = bn.zeros(1 << 20)
    local x = bn.ones(2):requires_grad(true)
    x:register_hook(function() return big end)
    local id = bn.hooks_add("mem.*", function() return big end)
    bn.hooks_remove(id)
  end
  collectgarbage()
  bn.zeros(1) -- a binding call drops registry references the core released
  collectgarbage()
  collectgarbage()
  check.eq(bn.mem_in_use(), before)
end

function T.stopped_collector_is_respected()
  collectgarbage("stop")
  local ok, err = pcall(function()
    collectgarbage()
    local base = bn.mem_in_use()
    local kept = {}
    for i = 1, 20 do kept[i] = bn.zeros(1 << 20) end -- 80 MB: past the threshold
    check.truthy(bn.mem_in_use() - base >= 80 * MB, "nothing freed behind the script's back")
  end)
  collectgarbage("restart")
  if not ok then error(err, 0) end
end

function T.out_of_memory_is_an_error_not_a_crash()
  collectgarbage()
  bn.mem_set_limit(bn.mem_in_use() + 8 * MB)
  local ok, err = pcall(function()
    check.raises(function() return bn.zeros(4 * MB) end, "bn.zeros: tensor: out of memory")
    local a = bn.ones(1024, 1024) -- 4 MB of the 8
    check.raises(function() return a + a + a end, "bn.add: tensor: out of memory")
    check.eq((bn.ones(1000) + 1):sum():item(), 2000.0) -- small work still goes through
  end)
  bn.mem_set_limit(0)
  if not ok then error(err, 0) end
end

function T.freed_buffers_are_cached_for_reuse_within_the_limit()
  local limit = bn.mem_cache_limit()
  check.eq(bn.mem_cache_limit(0), limit) -- returns the previous limit; 0 empties it
  check.eq(bn.mem_cached(), 0)
  bn.mem_cache_limit(16 * MB)
  if bn.mem_cache_limit() == 0 then return end -- AddressSanitizer build: no cache
  check.truthy(limit > 0, "a cache by default")
  collectgarbage()
  local before = bn.mem_in_use()
  do local t <close> = bn.zeros(1024, 1024) end -- 4 MB, freed at once
  check.eq(bn.mem_in_use(), before)         -- cached bytes are not in use
  check.eq(bn.mem_cached(), 4 * MB)
  local again <close> = bn.ones(1024, 1024) -- the same size takes it back
  check.eq(bn.mem_cached(), 0)
  check.eq(again:sum():item(), 1024.0 * 1024)
  check.raises(function() bn.mem_cache_limit(-1) end, "bn.mem_cache_limit")
  bn.mem_cache_limit(limit)
end

function T.out_of_memory_collects_dead_tensors_and_retries()
  collectgarbage()
  bn.mem_set_limit(bn.mem_in_use() + 8 * MB)
  local ok, err = pcall(function()
    for _ = 1, 20 do
      local t = bn.ones(1024, 1024) * 2 -- 8 MB live per iteration: only fits once the last is collected
      t = nil
    end
    collectgarbage("stop") -- with the collector stopped, the garbage stays and the error is real
    local ok2 = pcall(function()
      for _ = 1, 4 do local t = bn.ones(1024, 1024) end
    end)
    collectgarbage("restart")
    check.eq(ok2, false)
  end)
  collectgarbage("restart")
  bn.mem_set_limit(0)
  if not ok then error(err, 0) end
end

return T
