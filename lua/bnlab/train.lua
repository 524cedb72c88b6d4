-- bn.train: the training loop (fit), evaluation, checkpoints and resume.
--
-- Divergence is a result, not an error: a NaN/Inf loss, or a loss above
-- `diverge_factor` x the first loss, stops that run, marks the history
-- `diverged = true` with the step, and fit returns normally.
--
-- Determinism: epoch e draws its batches from (seed, e) alone, and the global
-- generator (dropout, ...) is saved in every checkpoint, so a resumed run
-- reproduces an uninterrupted one exactly.

local bn = require "bnlab"
local serialize = require "bnlab.serialize"
local progress = require "bnlab.progress"

local train = {}

local function is_finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

-- Number of rows of `logits` whose arg-max equals the (1-based) label.
local function count_correct(logits, labels)
  local pred = logits:argmax(2):totable()
  local y = bn.is_tensor(labels) and labels:totable() or labels
  local correct = 0
  for i = 1, #pred do
    if pred[i] == y[i] then correct = correct + 1 end
  end
  return correct
end
train.count_correct = count_correct

--- bn.train.evaluate(model, data[, opts]) -> loss, accuracy
-- Mean cross-entropy and accuracy over a dataset, in eval mode and without
-- recording a graph; restores the model's train/eval mode afterwards.
-- opts.batch_size (default 256).
function train.evaluate(model, data, opts)
  opts = opts or {}
  local was_training = model.training
  model:eval()
  local total_loss, correct, seen = 0, 0, 0
  bn.no_grad(function()
    for x, y in data:batches{ size = opts.batch_size or 256, shuffle = false } do
      local logits = model(x)
      local n = x:size(1)
      total_loss = total_loss + bn.cross_entropy(logits, y):item() * n
      correct = correct + count_correct(logits, y)
      seen = seen + n
    end
  end)
  if was_training then model:train() end
  if seen == 0 then return 0 / 0, 0 / 0 end
  return total_loss / seen, correct / seen
end

-- ---- checkpoints ----------------------------------------------------------

-- Splits a nested table into tensors (dotted names) and everything else.
local function split_state(prefix, value, tensors, rest)
  if bn.is_tensor(value) then
    tensors[prefix] = value
    return nil
  elseif type(value) == "table" then
    local out = {}
    for k, v in pairs(value) do
      local key = prefix == "" and tostring(k) or (prefix .. "." .. tostring(k))
      out[k] = split_state(key, v, tensors, rest)
      if bn.is_tensor(v) then out[k] = { __tensor = key } end
    end
    return out
  end
  return value
end

local function join_state(value, tensors)
  if type(value) ~= "table" then return value end
  if value.__tensor then return tensors[value.__tensor] end
  local out = {}
  for k, v in pairs(value) do out[k] = join_state(v, tensors) end
  return out
end

--- bn.train.save_checkpoint(path, state): any nested table of tensors and
-- plain values, written atomically as safetensors (tensors) + metadata.
function train.save_checkpoint(path, state)
  local tensors = {}
  local skeleton = split_state("", state, tensors)
  bn.save_safetensors(path, tensors, { bnlab_state = serialize.encode(skeleton), format = "bnlab-checkpoint-1" })
end

--- bn.train.load_checkpoint(path) -> state (as given to save_checkpoint)
function train.load_checkpoint(path)
  local tensors, meta = bn.load_safetensors(path)
  if meta.format ~= "bnlab-checkpoint-1" or not meta.bnlab_state then
    error("bn.train.load_checkpoint: " .. path .. " is a safetensors file but not a bnlab checkpoint", 2)
  end
  return join_state(serialize.decode(meta.bnlab_state, path), tensors)
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- ---- the log ----------------------------------------------------------------

local LOG_COLUMNS = { "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "time", "images_per_s" }

local function write_log(path, history)
  local lines = { table.concat(LOG_COLUMNS, ",") }
  for _, e in ipairs(history.epochs) do
    local row = {}
    for i, c in ipairs(LOG_COLUMNS) do
      local v = e[c]
      row[i] = v == nil and "" or (math.type(v) == "integer" and tostring(v) or string.format("%.6g", v))
    end
    lines[#lines + 1] = table.concat(row, ",")
  end
  bn.write_file(path, table.concat(lines, "\n") .. "\n")
end

-- ---- fit ----------------------------------------------------------------------

local FIT_OPTIONS = {
  model = true, data = true, test = true, optimizer = true, epochs = true, schedule = true,
  eval_every = true, batch_size = true, augment = true, seed = true, log = true, on_step = true,
  on_epoch = true, checkpoint = true, resume = true, diverge_factor = true, progress = true,
  shuffle = true, quiet = true,
}

local function check_options(o)
  if type(o) ~= "table" then error("bn.train.fit: argument #1 expected a table of options, got " .. type(o), 3) end
  for k in pairs(o) do
    if not FIT_OPTIONS[k] then error("bn.train.fit: unknown option '" .. tostring(k) .. "'", 3) end
  end
  local function need(name, what, ok)
    if not ok then
      error(("bn.train.fit: option '%s' expected %s, got %s"):format(name, what, type(o[name])), 4)
    end
  end
  need("model", "a module (callable with :train/:eval)", type(o.model) == "table")
  need("data", "a dataset with :batches, or {train = ds, test = ds}", type(o.data) == "table")
  need("optimizer", "an optimizer with :step and :zero_grad", type(o.optimizer) == "table")
  need("epochs", "a positive integer", math.type(o.epochs) == "integer" and o.epochs >= 1)
  if o.checkpoint ~= nil then need("checkpoint", "a file name", type(o.checkpoint) == "string") end
  if o.log ~= nil then need("log", "a file name", type(o.log) == "string") end
  if o.on_step ~= nil then need("on_step", "a function", type(o.on_step) == "function") end
end

--- bn.train.fit{ model, data, optimizer, epochs, ... } -> history
-- See docs/train.md for every option. history = {
--   epochs = { {epoch, train_loss, train_acc, test_loss, test_acc, lr, time, images_per_s}, ... },
--   step_loss = {...}, diverged = bool, diverged_step = n|nil, diverged_epoch = e|nil,
--   best_test_acc, final = <last epoch record> }
function train.fit(o)
  check_options(o)
  local model, opt, schedule = o.model, o.optimizer, o.schedule
  local train_set = o.data.train or o.data
  local test_set = o.test or o.data.test
  if type(train_set.batches) ~= "function" then
    error("bn.train.fit: option 'data' expected a dataset with :batches (or {train = ds}), got a table without it", 2)
  end
  local batch_size = o.batch_size or 128
  local seed = o.seed or 1
  local eval_every = o.eval_every or 1
  local diverge_factor = o.diverge_factor or 1e3

  local history = { epochs = {}, step_loss = {}, diverged = false }
  local start_epoch = 1
  if o.resume and o.checkpoint and file_exists(o.checkpoint) then
    local state = train.load_checkpoint(o.checkpoint)
    model:load_state(state.model)
    if opt.load_state and state.optimizer then opt:load_state(state.optimizer) end
    if schedule and schedule.load_state and state.schedule then schedule:load_state(state.schedule) end
    if state.rng then bn.set_rng_state(state.rng) end
    history = state.history
    start_epoch = state.epoch + 1
    if history.diverged then return history end
  end

  local bar = progress.new{ enabled = o.progress, quiet = o.quiet, total_epochs = o.epochs }
  local first_loss = history.first_loss
  local global_step = #history.step_loss
  for epoch = start_epoch, o.epochs do
    model:train()
    local t0 = bn.clock()
    local loss_sum, correct, seen, steps = 0, 0, 0, 0
    local n_batches = train_set:num_batches(batch_size)
    bar:start_epoch(epoch, n_batches)
    for x, y in train_set:batches{ size = batch_size, shuffle = o.shuffle ~= false, seed = seed, epoch = epoch,
                                   augment = o.augment } do
      opt:zero_grad()
      local logits = model(x)
      local loss = bn.cross_entropy(logits, y)
      local l = loss:item()
      global_step = global_step + 1
      history.step_loss[global_step] = l
      first_loss = first_loss or l
      history.first_loss = first_loss
      if not is_finite(l) or l > diverge_factor * first_loss then
        history.diverged, history.diverged_step, history.diverged_epoch = true, global_step, epoch
        history.diverged_loss = l
        break
      end
      loss:backward()
      opt:step()
      local n = x:size(1)
      steps, seen = steps + 1, seen + n
      loss_sum = loss_sum + l * n
      correct = correct + count_correct(logits, y)
      if o.on_step then
        o.on_step{ epoch = epoch, step = steps, global_step = global_step, loss = l, lr = opt.lr, model = model }
      end
      bar:update(steps, loss_sum / seen, correct / seen, seen / (bn.clock() - t0))
    end
    local elapsed = bn.clock() - t0
    local record = {
      epoch = epoch, lr = opt.lr, time = elapsed,
      train_loss = seen > 0 and loss_sum / seen or 0 / 0,
      train_acc = seen > 0 and correct / seen or 0 / 0,
      images_per_s = seen / math.max(elapsed, 1e-9),
    }
    if history.diverged then
      record.diverged = true
    elseif test_set and (epoch % eval_every == 0 or epoch == o.epochs) then
      record.test_loss, record.test_acc = train.evaluate(model, test_set)
      if not history.best_test_acc or record.test_acc > history.best_test_acc then
        history.best_test_acc = record.test_acc
      end
    end
    history.epochs[#history.epochs + 1] = record
    history.final = record
    bar:finish_epoch(record)
    if o.on_epoch then o.on_epoch(record, history) end
    if schedule and not history.diverged then schedule:step(record.test_loss or record.train_loss) end
    if o.log then write_log(o.log, history) end
    if o.checkpoint then
      train.save_checkpoint(o.checkpoint, {
        model = model:state(), optimizer = opt.state and opt:state() or nil,
        schedule = schedule and schedule.state and schedule:state() or nil,
        rng = bn.rng_state(), history = history, epoch = epoch,
      })
    end
    if history.diverged then break end
  end
  return history
end

return train
