-- bn.probe.gradient_noise: the per-example gradient noise
-- C = E_i ||∇l_i - ∇l||^2 and the noise of mini-batch gradients
-- E_B ||∇_B - ∇l||^2 for several batch sizes, to check the C/|B| scaling
-- behind "the learning rate sets the SGD noise" (paper E9):
-- E||α∇l - α∇_SGD||^2 = α^2 E_B ||∇_B - ∇l||^2 ≈ α^2 C/|B|.
--
-- Per-example gradients and batch normalization. In training mode a BN
-- network's loss on example i depends on the other examples of its batch
-- (the batch statistics), so "the gradient of example i" is defined here as
-- the gradient of l_i computed *within its batch*: one forward pass of the
-- batch, then a backward pass of the per-example loss vector weighted by a
-- one-hot vector (retain_graph between them). The mean of these over a
-- batch is exactly that batch's gradient. In eval mode, or for a network
-- without BN, examples do not interact and each per-example gradient is
-- computed from a forward pass of that example alone (much cheaper).
local bn = require "bnlab"
local U = require "bnlab.probe.util"
local nutil = require "bnlab.nn.util"

local M = {}

local KNOWN = U.set { "mode", "per_example_loss", "n", "batch", "examples", "draws", "seed" }

local function population(data, opts, where, rng)
  if type(data) == "table" and bn.is_tensor(data.images) and data.labels ~= nil then -- a bn.data Dataset
    local total = data.images:size(1)
    local n = opts.n and nutil.integer(opts.n, where, "option 'n'", 1) or math.min(total, 256)
    if n > total then U.fail(where, ("option 'n' (%d) exceeds the dataset's %d items"):format(n, total), 3) end
    local idx = rng.sample(total, n)
    table.sort(idx)
    return U.take(data.images, idx), U.take(data.labels, idx)
  end
  local x = type(data) == "table" and (data.x or data[1]) or nil
  local y = type(data) == "table" and (data.y or data[2]) or nil
  if not bn.is_tensor(x) or y == nil then
    U.fail(where, ("argument #2 expected a dataset (with .images, .labels) or a batch {x, y}, got %s"):format(U.show(data)), 3)
  end
  if opts.n ~= nil then U.fail(where, "option 'n' applies to datasets only (a batch is used whole)", 3) end
  if U.count(y) ~= x:size(1) then
    U.fail(where, ("the batch has %d inputs but %d targets"):format(x:size(1), U.count(y)), 3)
  end
  return x, y
end

local function range(a, b)
  local t = {}
  for i = a, b do t[#t + 1] = i end
  return t
end

--- Σ_p ||p.grad - gbar_p||^2 (in double over tensors), then p.grad = nil.
local function sq_dist_and_clear(params, gbar)
  local s = 0
  for i, e in ipairs(params) do
    local p = e[2]
    local g = p.grad
    local d = g and (g - gbar[i]) or gbar[i]
    s = s + (d * d):sum():item()
    p.grad = nil
  end
  return s
end

--- bn.probe.gradient_noise(net, data, batch_sizes [, opts]) -> res; see
-- docs/probe.md. data: a batch {x, y} (the whole population) or a Dataset
-- (opts.n items drawn from it, default 256).
function M.gradient_noise(net, data, batch_sizes, opts)
  local where = "bn.probe.gradient_noise"
  U.check_net(net, where)
  opts = U.options(opts, where, KNOWN)
  local mode = U.mode(opts.mode, where)
  local seed = opts.seed ~= nil and nutil.integer(opts.seed, where, "option 'seed'", 0) or 0
  local rng = U.rng(seed)
  local X, Y = population(data, opts, where, rng)
  local N = X:size(1)
  if batch_sizes == nil then
    batch_sizes = {}
    local b = 1
    while b <= N // 2 do batch_sizes[#batch_sizes + 1] = b; b = b * 2 end
    if #batch_sizes == 0 then batch_sizes = { N } end
  end
  if type(batch_sizes) ~= "table" or #batch_sizes == 0 then
    U.fail(where, ("argument #3 (batch_sizes) expected a list of batch sizes, got %s"):format(U.show(batch_sizes)), 2)
  end
  for i, b in ipairs(batch_sizes) do
    if math.tointeger(b) == nil or b < 1 or b > N then
      U.fail(where, ("argument #3 (batch_sizes)[%d] expected an integer in [1, %d] (the population), got %s"):format(i, N, U.show(b)), 2)
    end
  end
  local eff_mode = mode or (net.training and "train" or "eval")
  local coupled = eff_mode == "train" and #net:named_modules { "BatchNorm1d", "BatchNorm2d" } > 0
  local chunk = opts.batch and nutil.integer(opts.batch, where, "option 'batch'", 1) or (coupled and math.min(N, 128) or 1)
  chunk = math.min(chunk, N)
  local n_ex = opts.examples and nutil.integer(opts.examples, where, "option 'examples'", 1) or N
  n_ex = math.min(n_ex, N)
  local draws = nutil.integer(opts.draws or 20, where, "option 'draws'", 1)
  local per_ex = U.per_example_loss_fn(opts, where)

  local res = U.guard(net, mode, false, function(ctx)
    local params = ctx.params
    local was = bn.set_grad_enabled(true)
    local ok, out = pcall(function()
      -- Pass 1: the population gradient, in chunks (of `chunk` examples
      -- when they are coupled, else of up to 128): gradients accumulate in
      -- .grad across chunks.
      local big = coupled and chunk or math.min(N, 128)
      for s = 1, N, big do
        local idx = range(s, math.min(s + big - 1, N))
        local l = per_ex(net(U.take(X, idx)), U.take(Y, idx))
        l:sum():backward()
      end
      local gbar = {}
      for i, e in ipairs(params) do
        local g = e[2].grad
        gbar[i] = g and (g / N) or bn.zeros_like(e[2])
        e[2].grad = nil
      end

      -- Pass 2: per-example gradients of a sample of the population.
      local chosen = rng.sample(N, n_ex)
      local by_chunk = {}
      for _, i in ipairs(chosen) do
        local c = (i - 1) // chunk
        by_chunk[c] = by_chunk[c] or {}
        table.insert(by_chunk[c], i)
      end
      local sq = {}
      local chunks = {}
      for c in pairs(by_chunk) do chunks[#chunks + 1] = c end
      table.sort(chunks)
      for _, c in ipairs(chunks) do
        local first = c * chunk + 1
        local idx = range(first, math.min(first + chunk - 1, N))
        local l = per_ex(net(U.take(X, idx)), U.take(Y, idx))
        local members = by_chunk[c]
        table.sort(members)
        for k, i in ipairs(members) do
          local w = bn.zeros(#idx)
          w[i - first + 1] = 1
          l:backward(w, k < #members)
          sq[#sq + 1] = sq_dist_and_clear(params, gbar)
        end
      end
      local C = 0
      for _, v in ipairs(sq) do C = C + v end
      C = C / #sq

      -- Pass 3: mini-batch gradients (batches drawn without replacement).
      local sizes, noise, noise_sd, pred, pred_fpc = {}, {}, {}, {}, {}
      for k, b in ipairs(batch_sizes) do
        local vals, mean = {}, 0
        for d = 1, draws do
          local idx = rng.sample(N, b)
          local l = per_ex(net(U.take(X, idx)), U.take(Y, idx)):mean()
          l:backward()
          vals[d] = sq_dist_and_clear(params, gbar)
          mean = mean + vals[d] / draws
        end
        local var = 0
        for _, v in ipairs(vals) do var = var + (v - mean) ^ 2 end
        local sd = draws > 1 and math.sqrt(var / (draws - 1)) or 0
        local fpc = N > 1 and (N - b) / (N - 1) or 0
        noise[k], noise_sd[k], pred[k], pred_fpc[k] = mean, sd, C / b, C / b * fpc
        sizes[k] = {
          batch_size = b, noise = mean, noise_sd = sd, noise_se = sd / math.sqrt(draws),
          predicted = C / b, predicted_fpc = C / b * fpc, ratio = mean / (C / b * fpc),
        }
      end
      return {
        C = C, N = N, examples = #sq, batch = chunk, draws = draws, mode = eff_mode, coupled = coupled,
        grad_norm = U.norm(gbar), per_example = bn.tensor(sq), batch_sizes = batch_sizes, sizes = sizes,
        noise = bn.tensor(noise), noise_sd = bn.tensor(noise_sd), predicted = bn.tensor(pred),
        predicted_fpc = bn.tensor(pred_fpc),
      }
    end)
    bn.set_grad_enabled(was)
    if not ok then error(out, 0) end
    return out
  end)
  return res
end

return M
