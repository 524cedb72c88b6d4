-- bn.probe.watch: channel statistics of the forward passes training already
-- runs, every N steps, at the cost of one statistics pass over the watched
-- layers on those steps only (docs/probe.md).
--
--   local w = bn.probe.watch(net, { every = 50, layers = "stage*.block*", log = "acts.csv" })
--   bn.train.fit{ ..., on_step = w.on_step }
--   w:close()
--
-- Step s is recorded when (s - 1) % every == 0: steps 1, every + 1, ... (so
-- the network at initialization is always seen). The pattern hook is active
-- only while the forward of such a step runs: on_step (called by fit after
-- each update) removes it and arms it again just before a recorded step.
local bn = require "bnlab"
local U = require "bnlab.probe.util"
local nutil = require "bnlab.nn.util"

local M = {}

local KNOWN = U.set { "every", "layers", "types", "stats", "log", "chunk_rows", "keep" }
local STATS = U.set { "mean", "std", "var", "absmax" }

local function chunk_path(base, k)
  if k == 1 then return base end
  local stem, ext = base:match("^(.*)(%.[^./]*)$")
  if not stem then return base .. "." .. k end
  return stem .. "." .. k .. ext
end

local function fmt(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  return ("%.9g"):format(v)
end

--- bn.probe.watch(net, { every = 100, layers = nil, stats = {"mean", "std"},
-- log = nil, chunk_rows = 100000, keep = true }) -> watcher with
-- .on_step (a function for bn.train.fit), .records, .files, :close().
function M.watch(net, opts)
  local where = "bn.probe.watch"
  U.check_net(net, where)
  opts = U.options(opts, where, KNOWN)
  local every = nutil.integer(opts.every or 100, where, "option 'every'", 1)
  local select = U.selector(net, opts.layers, where, nil, opts.types)
  local stats = opts.stats or { "mean", "std" }
  if type(stats) ~= "table" or #stats == 0 then
    U.fail(where, ("option 'stats' expected a non-empty list of 'mean', 'std', 'var', 'absmax', got %s"):format(U.show(stats)), 2)
  end
  for i, s in ipairs(stats) do
    if not STATS[s] then
      U.fail(where, ("option 'stats'[%d] expected one of 'mean', 'std', 'var', 'absmax', got %s"):format(i, U.show(s)), 2)
    end
  end
  if opts.log ~= nil and type(opts.log) ~= "string" then
    U.fail(where, ("option 'log' expected a file name, got %s"):format(U.show(opts.log)), 2)
  end
  local chunk_rows = nutil.integer(opts.chunk_rows or 100000, where, "option 'chunk_rows'", 1)
  local keep = opts.keep
  if keep == nil then keep = true end
  nutil.boolean(keep, where, "option 'keep'")

  local weights = U.set(U.paths_of(net, U.WEIGHT_TYPES))
  local header = "step,layer,depth,channel," .. table.concat(stats, ",") .. "\n"
  local w = { every = every, records = {}, files = {}, rows_written = 0, last_step = 0, closed = false }
  local hook_id, pending
  local chunk, chunk_lines = 1, {}

  local function arm()
    if hook_id then return end
    local seen, done, nweight = {}, false, 0
    pending = {}
    hook_id = bn.hooks_add("*", function(name, t)
      -- Only the training forward (grad mode on, model training, not a
      -- probe's forward), once.
      if done or U.running > 0 or not (net.training and bn.is_grad_enabled()) then return end
      if seen[name] then done = true return end
      seen[name] = true
      if weights[name] then nweight = nweight + 1 end
      if not select(name) then return end
      local rec = bn.no_grad(U.channel_stats, t)
      rec.name, rec.depth, rec.shape = name, nweight, t:shape()
      pending[#pending + 1] = rec
    end)
  end

  local function disarm()
    if hook_id then bn.hooks_remove(hook_id) end
    hook_id = nil
    local p = pending
    pending = nil
    return p
  end

  local function on_schedule(step) return (step - 1) % every == 0 end

  local function commit(step, recs)
    if keep then w.records[#w.records + 1] = { step = step, layers = recs } end
    if not opts.log then return end
    local lines = {}
    for _, rec in ipairs(recs) do
      local cols = {}
      for k, s in ipairs(stats) do cols[k] = rec[s]:totable() end
      for c = 1, rec.mean:numel() do
        local row = { tostring(step), rec.name, tostring(rec.depth), tostring(c) }
        for k = 1, #stats do row[#row + 1] = fmt(cols[k][c]) end
        lines[#lines + 1] = table.concat(row, ",")
      end
    end
    if #chunk_lines > 0 and #chunk_lines + #lines > chunk_rows then
      chunk, chunk_lines = chunk + 1, {}
    end
    for _, l in ipairs(lines) do chunk_lines[#chunk_lines + 1] = l end
    local path = chunk_path(opts.log, chunk)
    bn.write_file(path, header .. table.concat(chunk_lines, "\n") .. "\n")
    w.files[chunk] = path
    w.rows_written = w.rows_written + #lines
  end

  --- fit's on_step: info.global_step (or info.step) is the step whose
  -- update just finished.
  w.on_step = function(info)
    if w.closed then return end
    local step = type(info) == "table" and (info.global_step or info.step) or info
    if math.type(step) ~= "integer" then
      U.fail(where .. ": on_step", ("expected {global_step = n} (as bn.train.fit passes) or a step number, got %s"):format(U.show(step)), 2)
    end
    local recs = disarm()
    if recs and #recs > 0 and on_schedule(step) then commit(step, recs) end
    w.last_step = step
    if on_schedule(step + 1) then arm() end
  end

  --- Removes the hook. A capture in progress (a recorded step whose
  -- on_step never came, e.g. the step where fit stopped on divergence) is
  -- committed as step last_step + 1. Returns the list of files written.
  function w.close(_)
    if w.closed then return w.files end
    local recs = disarm()
    if recs and #recs > 0 then commit(w.last_step + 1, recs) end
    w.closed = true
    return w.files
  end

  arm()
  return w
end

return M
