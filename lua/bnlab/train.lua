-- bn.train: the training loop (fit), evaluation, checkpoints and resume.
--
-- Divergence is a result, not an error: a NaN/Inf loss, or a loss above
-- `diverge_factor` x the first loss, stops that run, marks the history
-- `diverged = true` with the step, and fit returns normally.
--
-- Determinism: epoch e draws its batches from (seed, e) alone, and the global
-- generator (dropout, ...) is saved in every checkpoint, so a resumed run
-- reproduces an uninterrupted one exactly.
--
-- Interrupts: fit defers SIGINT/SIGTERM (bn.defer_interrupts). One that
-- arrives mid-step lets the step finish; then fit writes a mid-epoch
-- checkpoint (epoch, steps done, the epoch's partial sums, the generator),
-- rewrites the log and raises bn.raise_interrupt's error (exit 130/143).
-- Resuming skips the batches already done (their order is a function of
-- (seed, epoch)), so nothing of the partial epoch is lost or repeated.

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
  shuffle = true, quiet = true, checkpoint_every = true,
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
  if o.checkpoint_every ~= nil then
    need("checkpoint_every", "a positive integer (steps)", math.type(o.checkpoint_every) == "integer" and
      o.checkpoint_every >= 1)
  end
end

-- The whole state of a run: `epoch` epochs are complete; `partial`, when
-- set, describes the steps done in epoch + 1 ({epoch, steps, loss_sum,
-- correct, seen, time}, and the batch_size, seed and batches that resuming
-- inside that epoch must match).
local function save_run(path, model, opt, schedule, history, epoch, partial)
  train.save_checkpoint(path, {
    model = model:state(), optimizer = opt.state and opt:state() or nil,
    schedule = schedule and schedule.state and schedule:state() or nil,
    rng = bn.rng_state(), history = history, epoch = epoch, partial = partial,
  })
end

-- Ends fit after an interrupt (the checkpoint, if any, is written): one
-- line saying where the run can be resumed from; exit status 128 + signal.
local function stop_interrupted(o, where, resume_at)
  io.stdout:flush()
  local signal = bn.interrupted()
  local saved = o.checkpoint
    and ("checkpoint saved to %s (resume = true continues %s)"):format(o.checkpoint, resume_at)
    or "no checkpoint was written (option 'checkpoint' not set): the run cannot be resumed"
  bn.raise_interrupt(("bn.train.fit: interrupted by %s %s; %s"):format(signal, where, saved))
end

--- bn.train.fit{ model, data, optimizer, epochs, ... } -> history
-- See docs/train.md for every option. history = {
--   epochs = { {epoch, train_loss, train_acc, test_loss, test_acc, lr, time, images_per_s}, ... },
--   step_loss = {...}, diverged = bool, diverged_step = n|nil, diverged_epoch = e|nil,
--   best_test_acc, final = <last epoch record>, collapsed = bool (the last epoch's test accuracy,
--   or train accuracy without a test set, is at most 1.5 / classes: the run failed to train) }
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

  -- SIGINT/SIGTERM are polled after every step from here on (see the top).
  local deferral <close> = bn.defer_interrupts()
  local history = { epochs = {}, step_loss = {}, diverged = false }
  local start_epoch, partial = 1, nil
  if o.resume and o.checkpoint and file_exists(o.checkpoint) then
    local state = train.load_checkpoint(o.checkpoint)
    model:load_state(state.model)
    if opt.load_state and state.optimizer then opt:load_state(state.optimizer) end
    if schedule and schedule.load_state and state.schedule then schedule:load_state(state.schedule) end
    if state.rng then bn.set_rng_state(state.rng) end
    history = state.history
    start_epoch = state.epoch + 1
    partial = state.partial
    if partial and partial.epoch ~= start_epoch then
      error(("bn.train.fit: checkpoint %s is inconsistent: epoch %s complete, partial epoch %s"):format(
        o.checkpoint, tostring(state.epoch), tostring(partial.epoch)), 2)
    end
    if history.diverged then return history end
  end

  local bar = progress.new{ enabled = o.progress, quiet = o.quiet, total_epochs = o.epochs }
  local first_loss = history.first_loss
  local global_step = #history.step_loss
  for epoch = start_epoch, o.epochs do
    model:train()
    local t0 = bn.clock()
    local loss_sum, correct, seen, steps, time_before = 0, 0, 0, 0, 0
    if partial then -- resuming inside this epoch: its first partial.steps batches are done
      if partial.batch_size ~= batch_size or partial.seed ~= seed or
        partial.batches ~= train_set:num_batches(batch_size) then
        error(("bn.train.fit: checkpoint %s was written in the middle of epoch %d with batch_size %s, seed %s and "
          .. "%s batches; this run has batch_size %d, seed %d and %d batches, so its batches are not the ones "
          .. "already done"):format(o.checkpoint, epoch, tostring(partial.batch_size), tostring(partial.seed),
          tostring(partial.batches), batch_size, seed, train_set:num_batches(batch_size)), 2)
      end
      loss_sum, correct, seen, steps, time_before = partial.loss_sum, partial.correct, partial.seen, partial.steps,
        partial.time
      partial = nil
    end
    local skip, seen_before = steps, seen
    local n_batches = train_set:num_batches(batch_size)
    local function partial_state()
      return { epoch = epoch, steps = steps, loss_sum = loss_sum, correct = correct, seen = seen,
               time = time_before + (bn.clock() - t0), batches = n_batches, batch_size = batch_size, seed = seed }
    end
    bar:start_epoch(epoch, n_batches)
    for x, y, i in train_set:batches{ size = batch_size, shuffle = o.shuffle ~= false, seed = seed, epoch = epoch,
                                      augment = o.augment } do
      if i <= skip then goto next_batch end
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
      bar:update(steps, loss_sum / seen, correct / seen, (seen - seen_before) / (bn.clock() - t0))
      -- After the epoch's last step, the epoch end below saves and then stops.
      if i < n_batches then
        if bn.interrupted() then
          if o.checkpoint then save_run(o.checkpoint, model, opt, schedule, history, epoch - 1, partial_state()) end
          if o.log then write_log(o.log, history) end
          stop_interrupted(o, ("in epoch %d after step %d of %d"):format(epoch, steps, n_batches),
            ("with step %d of epoch %d"):format(steps + 1, epoch))
        end
        if o.checkpoint and o.checkpoint_every and steps % o.checkpoint_every == 0 then
          save_run(o.checkpoint, model, opt, schedule, history, epoch - 1, partial_state())
        end
      end
      ::next_batch::
    end
    local elapsed = time_before + (bn.clock() - t0)
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
    -- At chance: a network that answers (nearly) one class for everything — how an
    -- unnormalized ResNet often fails at a large lr without ever producing a NaN.
    local classes = train_set.classes
    local acc = record.test_acc or record.train_acc
    if not history.diverged and classes and classes > 1 and acc == acc then
      record.at_chance = acc <= 1.5 / classes
      history.collapsed = record.at_chance
    end
    history.epochs[#history.epochs + 1] = record
    history.final = record
    bar:finish_epoch(record)
    if o.on_epoch then o.on_epoch(record, history) end
    if schedule and not history.diverged then schedule:step(record.test_loss or record.train_loss) end
    if o.log then write_log(o.log, history) end
    if o.checkpoint then save_run(o.checkpoint, model, opt, schedule, history, epoch) end
    if history.diverged then break end
    if bn.interrupted() then
      stop_interrupted(o, ("after epoch %d of %d"):format(epoch, o.epochs),
        epoch < o.epochs and ("with epoch %d"):format(epoch + 1) or "and returns at once: the run is complete")
    end
  end
  return history
end

return train
