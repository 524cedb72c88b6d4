-- The bnlab command itself: every command form, option, exit status and
-- error report, by running the program again as a user would.
local check = require "check"

local BNLAB = check.bnlab()
local HERE = (arg[0]:match("^(.*)/[^/]*$") or ".")

local quote, temp_file, temp_dir, write_file = check.quote, check.temp_file, check.temp_dir, check.write_file
local expect_exit = check.exit_status

-- run(WORDS, opts): `bnlab WORDS` (WORDS already shell-quoted) -> { out, err, code, how }.
local run = check.run_bnlab

local SHOW_ARGS = [[
local parts = {}
local lo = 0
while arg[lo - 1] ~= nil do lo = lo - 1 end
for i = lo, #arg do parts[#parts + 1] = i .. "=" .. arg[i] end
print(table.concat(parts, " "))
print("varargs", select("#", ...), ...)
]]

local T = {}

-- ---- running scripts ------------------------------------------------------

function T.run_command_passes_args_like_lua()
  local script = temp_file(SHOW_ARGS)
  local r = run("run " .. quote(script) .. " a 'b c' --x=1")
  expect_exit(r, 0)
  check.contains(r.out, ("-2=%s -1=run 0=%s 1=a 2=b c 3=--x=1\n"):format(BNLAB, script))
  check.contains(r.out, "varargs\t3\ta\tb c\t--x=1")
end

function T.bare_script_is_the_same_as_run()
  local script = temp_file(SHOW_ARGS)
  local r = run(quote(script) .. " one")
  expect_exit(r, 0)
  check.contains(r.out, ("-1=%s 0=%s 1=one\n"):format(BNLAB, script))
end

function T.interpreter_options_get_negative_indices()
  local script = temp_file(SHOW_ARGS)
  local r = run("-t 1 -e 'x=1' " .. quote(script) .. " z")
  expect_exit(r, 0)
  check.contains(r.out, ("-5=%s -4=-t -3=1 -2=-e -1=x=1 0=%s 1=z\n"):format(BNLAB, script))
end

function T.arg_table_matches_stock_lua()
  local lua = io.popen("command -v lua5.4 2>/dev/null"):read("l")
  if not lua or lua == "" then check.skip("no lua5.4 to compare with") end
  local script = temp_file([[for i = 0, #arg do io.write(i, "=", arg[i], ";") end print(select("#", ...), ...)]])
  local ours = run(quote(script) .. " 1 '' -x --y=2")
  local theirs = run(quote(script) .. " 1 '' -x --y=2", { exe = lua })
  expect_exit(ours, 0)
  check.eq(ours.out, theirs.out)
end

function T.script_exit_codes_pass_through()
  expect_exit(run(quote(temp_file("os.exit(3)"))), 3)
  expect_exit(run(quote(temp_file("os.exit(true)"))), 0)
  expect_exit(run(quote(temp_file("os.exit(false)"))), 1)
end

function T.shebang_line_is_skipped()
  local r = run(quote(temp_file("#!/usr/bin/env bnlab\nprint('hi')\n")))
  expect_exit(r, 0)
  check.eq(r.out, "hi\n")
end

function T.e_runs_chunks_in_order_then_script()
  local script = temp_file("print('script', x)")
  local r = run("-e 'x = 1' -e 'x = x + 1; print(\"e\", x)' " .. quote(script))
  expect_exit(r, 0)
  check.eq(r.out, "e\t2\nscript\t2\n")
  r = run("-e'print(42)'")
  check.eq(r.out, "42\n", "glued -eCODE")
end

function T.e_error_reports_and_skips_the_script()
  local script = temp_file("print('should not run')")
  local r = run("-e 'error(\"bad\")' " .. quote(script))
  expect_exit(r, 1)
  check.contains(r.err, "(command line):1: bad")
  check.contains(r.err, "stack traceback:")
  check.eq(r.out, "")
end

function T.l_requires_a_module_into_a_global()
  local dir = temp_dir()
  write_file(dir .. "/mymod.lua", "return { answer = 42 }")
  local r = run("-l mymod -l alias=mymod -e 'print(mymod.answer, alias.answer)'",
    { env = { BNLAB_LUA_PATH = dir } })
  expect_exit(r, 0)
  check.eq(r.out, "42\t42\n")
  r = run("-l no_such_module_xyz -e 'print(1)'")
  expect_exit(r, 1)
  check.contains(r.err, "module 'no_such_module_xyz' not found")
end

function T.dash_reads_the_script_from_stdin()
  local r = run("- a b", { stdin = SHOW_ARGS })
  expect_exit(r, 0)
  check.contains(r.out, ("-1=%s 0=- 1=a 2=b\n"):format(BNLAB))
  check.contains(r.out, "varargs\t2\ta\tb")
  r = run("run -", { stdin = "print('from stdin')" })
  check.eq(r.out, "from stdin\n")
end

function T.no_arguments_and_no_terminal_reads_stdin()
  local r = run("", { stdin = "print(1 + 1)\nprint(arg[0])\n" })
  expect_exit(r, 0)
  check.eq(r.out, "2\n" .. BNLAB .. "\n")
  r = run("", { stdin = "error('x')" })
  expect_exit(r, 1)
  check.contains(r.err, "stdin:1: x")
end

function T.bn_is_preloaded_and_require_works()
  local r = run(quote(temp_file([[
local bn = require "bnlab"
assert(bn == _G.bn, "the global bn is the module")
assert(type(bn.args) == "table" and type(bn.args.parse) == "function")
assert(bn.version == bn.build.version)
assert(bn.no_such_thing == nil, "unknown names are nil, not errors")
print("ok")
]])))
  expect_exit(r, 0)
  check.eq(r.out, "ok\n")
end

function T.submodules_load_on_first_use()
  local dir = temp_dir()
  assert(os.execute("mkdir -p " .. quote(dir .. "/bnlab")))
  write_file(dir .. "/bnlab/zzlazy.lua", "io.write('loading ') return { answer = 42 }")
  local r = run([[-e 'print(package.loaded["bnlab.zzlazy"]); print(bn.zzlazy.answer, bn.zzlazy == require "bnlab.zzlazy")']],
    { env = { BNLAB_LUA_PATH = dir } })
  expect_exit(r, 0)
  check.eq(r.out, "nil\nloading 42\ttrue\n", "loaded once, on first access")
  r = run([[-e 'print(bn.core, bn.tensor == nil or type(bn.tensor) ~= "table", bn["no.such"], type(getmetatable(bn).__complete()))']])
  check.eq(r.out, "nil\ttrue\tnil\ttable\n", "only real submodules load")
  r = run([[-e 'print(bn.init == require "bnlab.initializers")']])
  if r.err:find("module 'bnlab.initializers' not found", 1, true) then return end
  check.eq(r.out, "true\n", "bn.init is an alias of bnlab.initializers")
end

function T.require_works_from_any_directory()
  local exe = io.popen("readlink -f " .. quote(BNLAB)):read("l")
  local r = run("-e 'print(require(\"bnlab.args\") == bn.args)'", { cd = "/", exe = exe })
  expect_exit(r, 0)
  check.eq(r.out, "true\n")
end

function T.lua_path_env_directories_and_templates()
  local dir = temp_dir()
  write_file(dir .. "/first.lua", "return 'first'")
  assert(os.execute("mkdir -p " .. quote(dir .. "/pkg")))
  write_file(dir .. "/pkg/init.lua", "return 'pkg'")
  write_file(dir .. "/tmpl_x.lua", "return 'template'")
  local r = run("-e 'print((require \"first\"), (require \"pkg\"), (require \"x\"))'",
    { env = { BNLAB_LUA_PATH = "/nonexistent;" .. dir .. ";" .. dir .. "/tmpl_?.lua" } })
  expect_exit(r, 0)
  check.eq(r.out, "first\tpkg\ttemplate\n")
end

function T.lua_path_env_comes_first()
  local dir = temp_dir()
  assert(os.execute("mkdir -p " .. quote(dir .. "/bnlab")))
  write_file(dir .. "/bnlab/args.lua", "return { shadowed = true }")
  local r = run("-e 'print(bn.args.shadowed)'", { env = { BNLAB_LUA_PATH = dir } })
  check.eq(r.out, "true\n")
end

function T.installed_layout_finds_share_lua()
  -- make install puts the program in PREFIX/bin and the library in PREFIX/share/bnlab/lua.
  local prefix = temp_dir()
  local exe = io.popen("readlink -f " .. quote(BNLAB)):read("l")
  local lua_dir = io.popen("readlink -f " .. quote(HERE .. "/../../lua")):read("l")
  assert(os.execute(("mkdir -p %s/bin %s/share/bnlab/lua && cp %s %s/bin/bnlab && cp -r %s/. %s/share/bnlab/lua/")
    :format(quote(prefix), quote(prefix), quote(exe), quote(prefix), quote(lua_dir), quote(prefix))))
  local r = run("-e 'print(package.searchpath(\"bnlab\", package.path))'", { exe = prefix .. "/bin/bnlab", cd = "/" })
  expect_exit(r, 0)
  check.contains(r.out, prefix .. "/bin/../share/bnlab/lua/bnlab/init.lua")
  check.eq(r.err, "")
end

-- ---- errors -----------------------------------------------------------------

function T.runtime_error_prints_file_line_and_traceback()
  local script = temp_file("local function f()\n  error('boom')\nend\nf()\n")
  local r = run(quote(script))
  expect_exit(r, 1)
  local first = r.err:match("^[^\n]*")
  check.eq(first, script .. ":2: boom", "first line is file:line: message")
  check.contains(r.err, "stack traceback:")
  check.contains(r.err, script .. ":4: in main chunk")
  check.contains(r.err, "in local 'f'")
end

function T.syntax_error_names_file_and_line()
  local script = temp_file("print('a')\nlocal x = = 1\n")
  local r = run(quote(script))
  expect_exit(r, 1)
  check.contains(r.err, script .. ":2: unexpected symbol near '='")
  check.eq(r.out, "", "nothing runs")
end

function T.error_objects_that_are_not_strings()
  local r = run("-e 'error({})'")
  expect_exit(r, 1)
  check.contains(r.err, "(error object is a table value)")
  r = run("-e 'error(setmetatable({}, {__tostring = function() return \"custom\" end}))'")
  expect_exit(r, 1)
  check.contains(r.err, "custom")
end

function T.missing_script_exits_1()
  local r = run("/nonexistent/script.lua")
  expect_exit(r, 1)
  check.contains(r.err, "cannot open /nonexistent/script.lua")
end

function T.tensor_errors_carry_the_script_line()
  local r = run("-e 'bn.zeros(2, 3)'")
  if r.err:find("attempt to call a nil value") then check.skip("bn.zeros not bound yet") end
  r = run(quote(temp_file("local x = 1\nlocal t = bn.zeros(-1)\n")))
  expect_exit(r, 1)
  check.contains(r.err, ":2: ")
end

-- ---- options ----------------------------------------------------------------

function T.help_lists_every_form()
  local r = run("--help")
  expect_exit(r, 0)
  for _, text in ipairs({ "usage:", "run SCRIPT", "repl", "-e CODE", "-l NAME", "-i", "-t, --threads N", "-v, --version",
    "BNLAB_THREADS", "BNLAB_LUA_PATH", "BNLAB_HISTORY", "exit status" }) do
    check.contains(r.out, text)
  end
  check.eq(run("-h").out, r.out)
end

function T.version_names_every_component()
  local r = run("--version")
  expect_exit(r, 0)
  check.truthy(r.out:match("^bnlab %d+%.%d+"), "starts with the bnlab version: " .. r.out)
  check.contains(r.out, "Lua 5.4")
  check.contains(r.out, "OpenBLAS")
  check.contains(r.out, "libpng 1.")
  check.truthy(r.out:match("threads %d+"), "thread count")
  check.eq(run("-v").out, r.out)
end

function T.threads_option_and_env()
  check.contains(run("-t 3 --version").out, "threads 3")
  check.contains(run("-t3 --version").out, "threads 3")
  check.contains(run("--threads=2 --version").out, "threads 2")
  check.contains(run("--threads 1 --version").out, "threads 1")
  check.contains(run("--version", { env = { BNLAB_THREADS = "2" } }).out, "threads 2")
  check.contains(run("-t 1 --version", { env = { BNLAB_THREADS = "2" } }).out, "threads 1", "-t wins over the env")
end

function T.threads_reach_the_library()
  local r = run("-e 'print(bn.num_threads and bn.num_threads())'", { env = { BNLAB_THREADS = "1" } })
  if r.out == "nil\n" then check.skip("bn.num_threads not bound") end
  check.eq(r.out, "1\n")
  check.eq(run("-t 2 -e 'print(bn.num_threads())'").out, "2\n")
end

function T.bad_thread_counts_are_usage_errors()
  for _, words in ipairs({ "-t 0", "-t -1", "-t x", "-t 1.5", "--threads=99999", "-t" }) do
    local r = run(words .. " -e 'print(1)'")
    expect_exit(r, 2, words)
    check.contains(r.err, "thread", words)
  end
  local r = run("-e 'print(1)'", { env = { BNLAB_THREADS = "lots" } })
  expect_exit(r, 2)
  check.contains(r.err, "BNLAB_THREADS expects a whole number from 1 to 4096, got 'lots'")
end

function T.unknown_option_is_a_usage_error()
  local r = run("--bogus")
  expect_exit(r, 2)
  check.contains(r.err, "unknown option '--bogus'")
  check.contains(r.err, "--help")
  expect_exit(run("-e"), 2, "-e without code")
  expect_exit(run("run"), 2, "run without a script")
  expect_exit(run("repl extra"), 2, "repl takes no script")
  expect_exit(run("--threadsX 2"), 2)
end

function T.options_after_the_script_belong_to_it()
  local script = temp_file(SHOW_ARGS)
  local r = run(quote(script) .. " --help -t 3")
  expect_exit(r, 0)
  check.contains(r.out, "1=--help 2=-t 3=3")
end

function T.double_dash_ends_options()
  local script = temp_file("print(arg[0], arg[1])")
  local r = run("-- " .. quote(script) .. " -x")
  expect_exit(r, 0)
  check.eq(r.out, script .. "\t-x\n")
end

function T.warnings_option()
  local r = run("-W -e 'warn(\"careful\")'")
  expect_exit(r, 0)
  check.contains(r.err, "Lua warning: careful")
  r = run("-e 'warn(\"careful\")'")
  check.eq(r.err, "", "warnings are off by default")
end

-- ---- REPL without a terminal ------------------------------------------------

function T.repl_command_without_terminal_prints_values()
  local r = run("repl", { stdin = "1 + 1\nx = 5\nx * 2\nfor i = 1, 2 do\nprint(i)\nend\n{1, 'a', k = true}\n=x\n" })
  expect_exit(r, 0)
  check.eq(r.out, "2\n10\n1\n2\n{1, \"a\", k = true}\n5\n")
end

function T.repl_without_terminal_reports_errors_and_goes_on()
  local r = run("repl", { stdin = "error('first')\nlocal x = = 2\nprint('still here')\nfor i = 1, 2 do\n" })
  expect_exit(r, 0)
  check.contains(r.err, "stdin:1: first")
  check.contains(r.err, "stdin:1: unexpected symbol near '='")
  check.contains(r.err, "'end' expected near <eof>", "an unfinished statement at EOF is reported")
  check.eq(r.out, "still here\n")
end

function T.dash_i_enters_the_repl_after_the_script()
  local script = temp_file("answer = 42")
  local r = run("-i " .. quote(script), { stdin = "answer\n" })
  expect_exit(r, 0)
  check.eq(r.out, "42\n")
  r = run("-i -e 'error(\"x\")'", { stdin = "1\n" })
  check.eq(r.out, "1\n", "the REPL runs even after the error, for a look around")
  expect_exit(r, 1, "but the status says the code failed")
end

function T.repl_sets_underscore_to_the_last_value()
  local r = run("repl", { stdin = "6 * 7\n_ + 1\n" })
  check.eq(r.out, "42\n43\n")
end

function T.repl_prints_nested_and_odd_tables_safely()
  local r = run("repl", { stdin = table.concat({
    "t = {}; t.self = t",
    "t",                                         -- a cycle is cut by the depth bound
    "big = {}; for i = 1, 100 do big[i] = i end",
    "big",
    "{[true] = 1, [2.5] = 'x', ['a b'] = 2}",
    "setmetatable({}, {__tostring = function() return 'custom' end})",
    "setmetatable({}, {__tostring = function() error('bad tostring') end})",
    "'after'",
  }, "\n") .. "\n" })
  expect_exit(r, 0)
  check.contains(r.out, "{self = {self = {self = {...}}}}")
  check.contains(r.out, "38, 39, 40, ... (60 more)}")
  check.contains(r.out, '{["a b"] = 2, [true] = 1, [2.5] = "x"}')
  check.contains(r.out, "custom\n")
  check.contains(r.err, "bad tostring")
  check.contains(r.out, "after\n")
end

-- ---- the README's first five minutes ----------------------------------------

local function readme_section()
  local text = check.read_file(HERE .. "/../../README.md") or ""
  return text:match("\n## First five minutes\n(.-)\n## ") or text:match("\n## First five minutes\n(.*)$")
end

function T.readme_script_runs_as_shown()
  local section = readme_section()
  if not section then check.skip("README.md has no First five minutes section") end
  local code = section:match("```lua\n(.-)```")
  check.truthy(code, "a ```lua block in the section")
  local script = temp_file(code)
  local r = run(quote(script) .. " --steps 50 --lr 0.3")
  expect_exit(r, 0)
  check.contains(r.out, "step  50  loss")
  check.truthy(r.out:match("\nw\t2%.99") or r.out:match("\nw\t3%.0"), "fits w = 3: " .. r.out)
  r = run(quote(script) .. " --help")
  expect_exit(r, 0)
  check.contains(r.out, "gradient steps (default 100)")
  r = run(quote(script) .. " --lr fast")
  expect_exit(r, 2)
  check.contains(r.err, "option --lr expects a number, got 'fast'")
end

function T.readme_repl_transcript_is_what_the_repl_prints()
  local section = readme_section()
  if not section then check.skip("README.md has no First five minutes section") end
  local transcript = section:match("```\n%$ %./bnlab\n(.-)```")
  check.truthy(transcript, "a transcript starting with $ ./bnlab")
  local input, expected = {}, {}
  for line in transcript:gmatch("[^\n]+") do
    local typed = line:match("^> (.*)$")
    if typed then input[#input + 1] = typed else expected[#expected + 1] = line end
  end
  local r = run("repl", { stdin = table.concat(input, "\n") .. "\n" })
  expect_exit(r, 0)
  check.eq(r.out, table.concat(expected, "\n") .. "\n")
end

-- ---- Ctrl-C -----------------------------------------------------------------

local function has_timeout()
  return os.execute("command -v timeout >/dev/null 2>&1")
end

function T.sigint_stops_a_looping_script_with_an_error()
  if not has_timeout() then check.skip("no timeout(1)") end
  local script = temp_file("local n = 0\nwhile true do\n  n = n + 1\nend\n")
  -- -k: should the interrupt not work, kill it instead of hanging the suite.
  -- The status alone cannot tell exit(130) from death by SIGINT: the message can.
  local r = run(quote(script), { prefix = "timeout --preserve-status -k 20 -s INT 2" })
  check.contains(r.err, "interrupted!", "the script was stopped by the error, not killed")
  check.truthy(r.err:match(script:gsub("%p", "%%%0") .. ":%d: interrupted!"), "file:line of the loop: " .. r.err)
  check.contains(r.err, "stack traceback:")
  expect_exit(r, 130)
end

function T.sigint_stops_an_e_chunk()
  if not has_timeout() then check.skip("no timeout(1)") end
  local r = run("-e 'while true do end'", { prefix = "timeout --preserve-status -k 20 -s INT 2" })
  check.contains(r.err, "(command line):1: interrupted!")
  expect_exit(r, 130)
end

function T.sigint_again_after_a_caught_interrupt()
  -- A script that catches the interrupt with pcall is interrupted again by
  -- the next Ctrl-C (lua.c would kill it). The shell waits for the script to
  -- say where it is before each signal, so slow (sanitizer) builds do not flake.
  local script = temp_file([[
io.stderr:write("ready\n")
local caught = 0
while true do
  local ok, err = pcall(function() while true do end end)
  caught = caught + 1
  io.stderr:write("caught ", caught, ": ", tostring(err), "\n")
  if caught == 2 then error("stopping after two") end
end
]])
  local out, err = os.tmpname(), os.tmpname()
  local wait_for = 'n=0; until grep -q "%s" %s; do n=$((n+1)); [ $n -gt 400 ] && break; sleep 0.05; done; '
  local cmd = ("%s %s >%s 2>%s & pid=$!; "):format(BNLAB, quote(script), quote(out), quote(err))
    .. wait_for:format("ready", quote(err)) .. "kill -INT $pid; "
    .. wait_for:format("caught 1", quote(err)) .. "sleep 0.3; kill -INT $pid; "
    .. "( sleep 20; kill -KILL $pid 2>/dev/null ) & guard=$!; wait $pid; status=$?; kill $guard 2>/dev/null; exit $status"
  local _, _, code = os.execute(cmd)
  local stderr = check.read_file(err) or ""
  os.remove(out)
  os.remove(err)
  check.contains(stderr, "caught 1: " .. script .. ":4: interrupted!")
  check.contains(stderr, "caught 2: " .. script .. ":4: interrupted!")
  check.contains(stderr, script .. ":7: stopping after two")
  check.eq(code, 1)
end

-- ---- the REPL on a terminal ---------------------------------------------------

function T.repl_on_a_pseudo_terminal()
  local python = "/usr/bin/python3"
  if not io.open(python) then check.skip("no " .. python) end
  local p = io.popen(("%s %s %s 2>&1"):format(python, quote(HERE .. "/../cli/repl_pty.py"), quote(BNLAB)))
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("tests/cli/repl_pty.py failed:\n" .. out, 0) end
  check.contains(out, "repl: ")
end

-- Each test's temporary files go when it ends, whatever the outcome.
return check.cleanup_after(T)
