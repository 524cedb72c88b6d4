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

--- Marks the running test as skipped (counted apart, not as a failure).
function check.skip(reason)
  error(setmetatable({ reason = reason }, check.SKIP), 0)
end
check.SKIP = { __tostring = function(s) return "skipped: " .. s.reason end }

return check
