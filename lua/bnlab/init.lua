-- The bnlab library: `local bn = require "bnlab"`.
--
-- bn holds every C function of bnlab.core (tensors, ops: see src/bindings/),
-- bn.args (command-line options, lua/bnlab/args.lua) and bn.build (what this
-- binary was built with). Bigger parts (bn.nn, bn.optim, bn.data, bn.train,
-- bn.probe, bn.plot, ...) are submodules loaded on first use: accessing
-- bn.NAME requires "bnlab.NAME", so a script pays only for what it touches
-- and a new submodule needs no registration here, only a file
-- lua/bnlab/NAME.lua (or NAME/init.lua) returning its table.

local core = require "bnlab.core"

local bn = {}
for name, value in pairs(core) do bn[name] = value end

bn.args = require "bnlab.args"

local has_build, build = pcall(require, "bnlab.build")
if has_build then
  bn.build = build
  bn.version = build.version
end

-- Files that extend bn itself rather than hang under it: each returns a
-- function(bn) that adds its helpers. (lua/bnlab/tensor.lua belongs to the
-- tensor bindings: Lua-side methods and constructors.)
local extensions = { "tensor" }
local not_submodules = { core = true, build = true, tensor = true }
-- Short names whose module file has another name (bnlab.init would be this file).
local aliases = { init = "initializers" }

local function module_exists(name)
  return package.preload[name] ~= nil or package.searchpath(name, package.path) ~= nil
end

for _, name in ipairs(extensions) do
  local module = "bnlab." .. name
  -- Only a missing file is optional: an error inside one must surface.
  if module_exists(module) then
    local extend = require(module)
    if type(extend) == "function" then extend(bn) end
  end
end

-- Submodules the REPL's tab completion offers before they are loaded.
local known_submodules = { "nn", "models", "init", "optim", "data", "train", "probe", "plot", "linalg", "sweep" }

setmetatable(bn, {
  __index = function(t, name)
    if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") or not_submodules[name] then
      return nil
    end
    local module = "bnlab." .. (aliases[name] or name)
    if not module_exists(module) then return nil end
    local value = require(module)
    rawset(t, name, value)
    return value
  end,
  -- For tab completion (src/repl.c): the names that __index can load.
  __complete = function()
    local names = {}
    for _, name in ipairs(known_submodules) do
      if module_exists("bnlab." .. (aliases[name] or name)) then names[#names + 1] = name end
    end
    return names
  end,
})

return bn
