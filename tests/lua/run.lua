-- Runs the Lua tests: every tests/lua/test_*.lua returns a table of
-- { test_name = function() ... end }, run in sorted order.
--   ./bnlab tests/lua/run.lua                  all tests
--   ./bnlab tests/lua/run.lua args cli:help     files / tests whose name contains a word
-- ("file:test" narrows both). Ends with the line `lua: N passed, M failed`
-- (tests/run.sh reads it) and exits 1 when anything failed.
local dir = (arg and arg[0] or "tests/lua/run.lua"):match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path
local check = require "check"

local function list_test_files()
  local files = {}
  local ls = io.popen('ls -1 "' .. dir .. '"')
  for name in ls:lines() do
    if name:match("^test_[%w_]+%.lua$") then files[#files + 1] = name end
  end
  ls:close()
  table.sort(files)
  return files
end

local filters = {}
for i = 1, #arg do filters[#filters + 1] = arg[i] end

local function wanted(file, test)
  if #filters == 0 then return true end
  local short = file:match("^test_(.*)%.lua$")
  for _, f in ipairs(filters) do
    local ffile, ftest = f:match("^([^:]*):(.*)$")
    if ffile then
      if short:find(ffile, 1, true) and (test == nil or test:find(ftest, 1, true)) then return true end
    elseif short:find(f, 1, true) then
      return true
    end
  end
  return false
end

local passed, failed, skipped = 0, 0, {}
local function report_failure(where, message)
  failed = failed + 1
  io.write("FAIL ", where, "\n", message, "\n\n")
end

local function traceback(err)
  if getmetatable(err) == check.SKIP then return err end
  return debug.traceback(tostring(err), 2)
end

for _, file in ipairs(list_test_files()) do
  if wanted(file) then
    local chunk, load_error = loadfile(dir .. "/" .. file)
    local ok, tests = false, load_error
    if chunk then ok, tests = xpcall(chunk, traceback) end
    if not ok or type(tests) ~= "table" then
      report_failure(file, ok and "the file did not return a table of tests" or tostring(tests))
    else
      local names = {}
      for name, fn in pairs(tests) do
        if type(fn) == "function" and wanted(file, name) then names[#names + 1] = name end
      end
      table.sort(names)
      for _, name in ipairs(names) do
        local test_ok, err = xpcall(tests[name], traceback)
        if test_ok then
          passed = passed + 1
        elseif getmetatable(err) == check.SKIP then
          skipped[#skipped + 1] = file .. ":" .. name .. " (" .. err.reason .. ")"
        else
          report_failure(file .. ":" .. name, tostring(err))
        end
      end
    end
  end
end

for _, s in ipairs(skipped) do io.write("skip ", s, "\n") end
io.write(("lua: %d passed, %d failed\n"):format(passed, failed))
io.stdout:flush()
os.exit(failed == 0 and 0 or 1, true)
