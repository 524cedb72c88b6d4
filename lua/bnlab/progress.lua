-- Progress display for long work: on a terminal, one line redrawn in place
-- (epoch, step, loss, accuracy, images/s, ETA) at most 10 times a second;
-- otherwise (a log file, a pipe, a batch job) one plain line per epoch.

local bn = require "bnlab"

local progress = {}
progress.__index = progress

local function clock_text(seconds)
  if seconds ~= seconds or seconds == math.huge then return "--:--" end
  seconds = math.floor(seconds + 0.5)
  local h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, s) end
  return string.format("%d:%02d", m, s)
end
progress.clock_text = clock_text

--- progress.new{ enabled = true|false|nil (nil: only on a terminal), quiet = bool (no output at
-- all), total_epochs, out = io.stdout }
function progress.new(o)
  local out = o.out or io.stdout
  local enabled = o.enabled
  if enabled == nil then enabled = bn.isatty(out) end
  if o.quiet then enabled = false end
  return setmetatable({ out = out, bar = enabled, quiet = o.quiet, total_epochs = o.total_epochs or 1, last_draw = -1 }, progress)
end

function progress:start_epoch(epoch, n_steps)
  self.epoch, self.n_steps, self.t0 = epoch, n_steps, bn.clock()
end

function progress:update(step, loss, acc, images_per_s)
  if not self.bar then return end
  local now = bn.clock()
  if now - self.last_draw < 0.1 and step < self.n_steps then return end
  self.last_draw = now
  local width = 24
  local filled = math.floor(width * step / math.max(self.n_steps, 1))
  local eta = (now - self.t0) / step * (self.n_steps - step)
  self.out:write(string.format("\r\27[Kepoch %d/%d [%s%s] %d/%d  loss %.4f  acc %5.1f%%  %.0f img/s  ETA %s",
    self.epoch, self.total_epochs, string.rep("#", filled), string.rep(".", width - filled), step, self.n_steps,
    loss, 100 * acc, images_per_s, clock_text(eta)))
  self.out:flush()
end

local function fmt(v, pattern) return v and v == v and string.format(pattern, v) or "-" end

function progress:finish_epoch(r)
  if self.quiet then return end
  if self.bar then self.out:write("\r\27[K") end
  self.out:write(string.format("epoch %d/%d  train loss %s acc %s  test loss %s acc %s  lr %s  %s  %.0f img/s%s\n",
    r.epoch, self.total_epochs, fmt(r.train_loss, "%.4f"), fmt(r.train_acc and 100 * r.train_acc, "%.2f%%"),
    fmt(r.test_loss, "%.4f"), fmt(r.test_acc and 100 * r.test_acc, "%.2f%%"), fmt(r.lr, "%.3g"),
    clock_text(r.time), r.images_per_s or 0, r.diverged and "  DIVERGED" or ""))
  self.out:flush()
end

return progress
