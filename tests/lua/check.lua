-- Assertions for the Lua tests (tests/lua/run.lua). Each raises an error
-- whose message says what was expected and what came, at the caller's line.
local check = {}

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) ~= "table" or getmetatable(v) then return tostring(v) end
  local parts = {}
  for i, x in ipairs(v) do parts[i] = show(x) end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= #v) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. " = " .. show(v[k]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end
check.show = show

local function fail(message, level) error(message, (level or 1) + 2) end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then
    return a ~= a and b ~= b -- NaN equals NaN here
  end
  for k, v in pairs(a) do
    if not deep_equal(v, rawget(b, k)) then return false end
  end
  for k in pairs(b) do
    if rawget(a, k) == nil then return false end
  end
  return true
end

--- got == want, comparing tables by contents (raw fields) and types exactly
-- (1 and 1.0 differ: option types matter).
function check.eq(got, want, what)
  if not deep_equal(got, want) or math.type(got) ~= math.type(want) then
    fail(("%sexpected %s, got %s"):format(what and (what .. ": ") or "", show(want), show(got)))
  end
end

--- |got - want| <= tol (default 1e-6 relative to max(1, |want|)).
function check.near(got, want, tol, what)
  tol = tol or 1e-6
  if type(got) ~= "number" or math.abs(got - want) > tol * math.max(1, math.abs(want)) then
    fail(("%sexpected %s within %g, got %s"):format(what and (what .. ": ") or "", tostring(want), tol, show(got)))
  end
end

function check.truthy(v, what)
  if not v then fail((what or "expected a true value") .. ", got " .. show(v)) end
end

--- s contains the plain substring sub.
function check.contains(s, sub, what)
  if type(s) ~= "string" or not s:find(sub, 1, true) then
    fail(("%sexpected text containing %q, got %s"):format(what and (what .. ": ") or "", sub, show(s)))
  end
end

function check.not_contains(s, sub, what)
  if type(s) == "string" and s:find(sub, 1, true) then
    fail(("%sexpected text without %q, got %s"):format(what and (what .. ": ") or "", sub, show(s)))
  end
end

--- fn(...) raises an error whose message contains `sub` (when given);
-- returns the message.
function check.raises(fn, sub, ...)
  local ok, err = pcall(fn, ...)
  if ok then fail("expected an error" .. (sub and (" containing " .. ("%q"):format(sub)) or "") .. ", got none") end
  err = tostring(err)
  if sub and not err:find(sub, 1, true) then
    fail(("expected an error containing %q, got %q"):format(sub, err))
  end
  return err
end

--- The bnlab under test, for tests that run it again: $BNLAB (set by
-- tests/run.sh), else how this interpreter was started ("./bnlab", the word
-- at the lowest index of `arg`).
function check.bnlab()
  local from_env = os.getenv("BNLAB") -- tests/run.sh names the binary under test
  if from_env and from_env ~= "" then return from_env end
  local i = 0
  while arg[i - 1] ~= nil do i = i - 1 end
  return arg[i]
end

-- ---- files, temporaries and child processes ---------------------------------

--- s quoted for a POSIX shell (one word, whatever it holds).
function check.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local quote = check.quote

--- The whole file as a string, or nil when it cannot be opened.
function check.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

--- Writes text to path (replacing it); returns path.
function check.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- Paths made by temp_dir / temp_file, removed by check.cleanup().
local temporaries = {}

--- A fresh empty directory under /tmp; goes at check.cleanup().
function check.temp_dir()
  local path = os.tmpname()
  os.remove(path)
  require("bnlab").mkdir(path)
  temporaries[#temporaries + 1] = path
  return path
end

--- A fresh file holding text (default empty), its name ending in suffix
-- (default ".lua": most are scripts); goes at check.cleanup().
function check.temp_file(text, suffix)
  local base = os.tmpname() -- creates the file: it goes too
  local path = base .. (suffix or ".lua")
  temporaries[#temporaries + 1] = base
  temporaries[#temporaries + 1] = path
  return check.write_file(path, text or "")
end

--- Removes every temporary made so far.
function check.cleanup()
  if #temporaries == 0 then return end
  local words = {}
  for i, path in ipairs(temporaries) do words[i] = quote(path) end
  os.execute("rm -rf " .. table.concat(words, " "))
  temporaries = {}
end

--- Wraps every test of T so that its temporaries go when it ends, whatever
-- the outcome; returns T.
function check.cleanup_after(T)
  for name, test in pairs(T) do
    if type(test) == "function" then
      T[name] = function()
        local ok, err = pcall(test)
        check.cleanup()
        if not ok then error(err, 0) end
      end
    end
  end
  return T
end

--- Runs the bnlab under test (check.bnlab()) as a child process and returns
-- { out =, err =, code =, how = } (how, code: as os.execute gives them:
-- "exit", status or "signal", number). args: a list of arguments (each
-- quoted here) or a string of shell words already quoted. Options, in opts
-- or in the hash part of an args list:
--   stdin = text fed to it (default: /dev/null)
--   env = { NAME = value, ... } set for it
--   merge = true: stderr goes into out too (2>&1; err is "")
--   exe = another program to run (a path), cd = a directory to run it in
--   (give an absolute exe with it), prefix = shell words to run it under
--   (e.g. "timeout 10")
function check.run_bnlab(args, opts)
  opts = opts or (type(args) == "table" and args) or {}
  local words = args
  if type(args) == "table" then
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = quote(a) end
    words = table.concat(quoted, " ")
  end
  local env = {}
  for name, value in pairs(opts.env or {}) do env[#env + 1] = name .. "=" .. quote(value) end
  table.sort(env)
  local out, err = os.tmpname(), os.tmpname()
  local input = opts.stdin and check.write_file(os.tmpname(), opts.stdin)
  local cmd = ("%s %s %s %s <%s >%s %s"):format(table.concat(env, " "), opts.prefix or "",
    quote(opts.exe or check.bnlab()), words, input and quote(input) or "/dev/null", quote(out),
    opts.merge and "2>&1" or ("2>" .. quote(err)))
  if opts.cd then cmd = "cd " .. quote(opts.cd) .. " && " .. cmd end
  local _, how, code = os.execute(cmd)
  local r = { out = check.read_file(out) or "", err = check.read_file(err) or "", code = code, how = how }
  os.remove(out)
  os.remove(err)
  if input then os.remove(input) end
  return r
end

--- r (from check.run_bnlab) exited with status code; the message shows its
-- output otherwise.
function check.exit_status(r, code, what)
  if r.how ~= "exit" or r.code ~= code then
    fail(("%sexpected exit status %d, got %s %s\nstdout: %s\nstderr: %s"):format(what and (what .. ": ") or "",
      code, tostring(r.how), tostring(r.code), r.out, r.err))
  end
end

--- Marks the running test as skipped (counted apart, not as a failure).
function check.skip(reason)
  error(setmetatable({ reason = reason }, check.SKIP), 0)
end
check.SKIP = { __tostring = function(s) return "skipped: " .. s.reason end }

return check
