-- bn.optim: the optimizer and the learning-rate schedules (docs/optim.md).
--   bn.optim.SGD(params, {lr =, momentum =, dampening =, weight_decay =, nesterov =, maximize =})
--   bn.optim.schedule.step / multistep / cosine / warmup / plateau
-- The update itself runs in C (bn.sgd_step, src/optim.c).
return {
  SGD = require "bnlab.optim.sgd",
  schedule = require "bnlab.optim.schedule",
}
