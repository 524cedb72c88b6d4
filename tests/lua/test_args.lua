-- bn.args: every form of option, every error, the help text.
local bn = require "bnlab"
local check = require "check"
local parse, help = bn.args.parse, bn.args.help

local SPEC = {
  lr = { 0.1, "initial learning rate" },
  depth = 20,
  norm = "bn",
  augment = true,
  widths = { 16, 32, 64 },
  batch_size = 128,
}

local T = {}

function T.defaults_when_no_arguments()
  local o = parse(SPEC, {})
  check.eq(o.lr, 0.1)
  check.eq(o.depth, 20)
  check.eq(o.norm, "bn")
  check.eq(o.augment, true)
  check.eq(o.widths, { 16, 32, 64 })
  check.eq(o.batch_size, 128)
end

function T.space_and_equals_forms()
  local o = parse(SPEC, { "--lr", "0.5", "--depth=56", "--norm", "none" })
  check.eq(o.lr, 0.5)
  check.eq(o.depth, 56)
  check.eq(o.norm, "none")
end

function T.types_follow_the_default()
  local o = parse(SPEC, { "--lr", "1", "--depth", "1e2" })
  check.eq(math.type(o.lr), "integer", "a number option keeps what tonumber gives")
  check.eq(o.depth, 100)
  check.eq(math.type(o.depth), "integer")
  local s = parse({ name = "x" }, { "--name", "42" })
  check.eq(s.name, "42", "a string option keeps digits as a string")
end

function T.float_options_accept_special_values()
  local o = parse({ eps = 1e-5 }, { "--eps", "inf" })
  check.eq(o.eps, math.huge)
  o = parse({ eps = 1e-5 }, { "--eps=-inf" })
  check.eq(o.eps, -math.huge)
  o = parse({ eps = 1e-5 }, { "--eps", "nan" })
  check.truthy(o.eps ~= o.eps, "nan")
  o = parse({ eps = 1e-5 }, { "--eps", "0x10" })
  check.eq(o.eps, 16)
end

function T.negative_numbers_are_values()
  local o = parse({ shift = 0.0, n = 1 }, { "--shift", "-0.5", "--n", "-3" })
  check.eq(o.shift, -0.5)
  check.eq(o.n, -3)
end

function T.boolean_flags()
  check.eq(parse(SPEC, { "--augment" }).augment, true)
  check.eq(parse(SPEC, { "--no-augment" }).augment, false)
  check.eq(parse(SPEC, { "--no_augment" }).augment, false)
  check.eq(parse(SPEC, { "--augment=false" }).augment, false)
  check.eq(parse(SPEC, { "--augment=no" }).augment, false)
  check.eq(parse(SPEC, { "--augment=1" }).augment, true)
  check.eq(parse({ plot = false }, { "--plot" }).plot, true)
end

function T.boolean_errors()
  check.raises(parse, "option --augment expects true or false, got 'maybe'", SPEC, { "--augment=maybe" })
  check.raises(parse, "option --no-augment takes no value, got 'true'", SPEC, { "--no-augment=true" })
  local err = check.raises(parse, "unexpected argument 'false'", SPEC, { "--augment", "false" })
  check.contains(err, "--augment=false")
  check.raises(parse, "unknown option --no-depth", SPEC, { "--no-depth" })
end

function T.lists_are_comma_separated()
  check.eq(parse(SPEC, { "--widths", "8,16" }).widths, { 8, 16 })
  check.eq(parse(SPEC, { "--widths= 8 , 16 ,32" }).widths, { 8, 16, 32 })
  check.eq(parse(SPEC, { "--widths=" }).widths, {})
  check.eq(parse({ layers = { "conv", "bn", "relu" } }, { "--layers", "a,b" }).layers, { "a", "b" })
  check.eq(parse({ rates = { 0.1, 1 } }, { "--rates", "0.5,2" }).rates, { 0.5, 2 })
  check.eq(parse({ tags = {} }, { "--tags", "x,y" }).tags, { "x", "y" }, "an empty default lists strings")
end

function T.list_errors_name_the_bad_element()
  check.raises(parse, "option --widths expects a comma-separated list of integer values, got 'x' in '8,x'",
    SPEC, { "--widths", "8,x" })
  check.raises(parse, "got '1.5' in '1.5'", SPEC, { "--widths", "1.5" })
end

function T.list_default_is_a_copy()
  local spec = { widths = { 1, 2 } }
  local o = parse(spec, {})
  o.widths[1] = 99
  check.eq(spec.widths[1], 1)
end

function T.underscores_and_dashes_are_the_same()
  check.eq(parse(SPEC, { "--batch-size", "64" }).batch_size, 64)
  check.eq(parse(SPEC, { "--batch_size=32" }).batch_size, 32)
  check.eq(parse({ ["warmup-epochs"] = 5 }, { "--warmup_epochs", "2" })["warmup-epochs"], 2)
end

function T.last_occurrence_wins()
  check.eq(parse(SPEC, { "--lr", "1", "--lr", "2" }).lr, 2)
end

function T.bad_numbers_name_option_expected_and_got()
  check.raises(parse, "option --lr expects a number, got 'fast'", SPEC, { "--lr", "fast" })
  check.raises(parse, "option --depth expects an integer, got '2.5'", SPEC, { "--depth=2.5" })
  check.raises(parse, "option --depth expects an integer, got ''", SPEC, { "--depth=" })
end

function T.missing_values()
  check.raises(parse, "option --lr needs a value (a number)", SPEC, { "--lr" })
  check.raises(parse, "option --depth needs a value (an integer)", SPEC, { "--depth", "--lr", "1" })
  check.raises(parse, "option --widths needs a value (a comma-separated list of integer values)", SPEC, { "--widths" })
end

function T.unknown_options_suggest_the_closest()
  check.raises(parse, "unknown option --lrr (did you mean --lr?)", SPEC, { "--lrr", "1" })
  check.raises(parse, "unknown option --batch (did you mean --batch-size?)", SPEC, { "--batch", "1" })
  local err = check.raises(parse, "unknown option --zzzzzz", SPEC, { "--zzzzzz" })
  check.not_contains(err, "did you mean")
  check.raises(parse, "unknown option '-x' (options are spelled --name)", SPEC, { "-x" })
end

function T.positional_arguments_are_refused_unless_declared()
  check.raises(parse, "unexpected argument 'data.bin'", SPEC, { "data.bin" })
  local o = parse(SPEC, { "a.bin", "--lr", "1", "b.bin", "--", "--c" }, { positional = "FILE..." })
  check.eq({ o[1], o[2], o[3] }, { "a.bin", "b.bin", "--c" })
  check.eq(o.lr, 1)
  check.eq(#o, 3)
end

function T.options_table_is_plain()
  -- Scripts pass it on to functions that read optional fields (opts.x or 1).
  local o = parse(SPEC, {})
  check.eq(getmetatable(o), nil)
  check.eq(o.momentum, nil)
  for _ in ipairs(o) do error("no positional arguments expected") end
end

function T.callable_form_takes_argv_from_info()
  local o = bn.args({ n = 1, tags = { "a", "b", "c" } }, { argv = { "--n", "4", "--tags=x" } })
  check.eq(o.n, 4)
  check.eq(o.tags, { "x" })
end

function T.help_returns_text_instead_of_options()
  local o, text = parse(SPEC, { "--lr", "1", "--help" }, "Train a ResNet.")
  check.eq(o, nil)
  check.contains(text, "usage: ")
  check.contains(text, "Train a ResNet.")
  check.contains(text, "--lr NUM")
  check.contains(text, "initial learning rate (default 0.1)")
  check.contains(text, "--depth INT")
  check.contains(text, "(default 20)")
  check.contains(text, '--norm STR')
  check.contains(text, '(default "bn")')
  check.contains(text, "--[no-]augment")
  check.contains(text, "--widths INT,INT,...")
  check.contains(text, "(default 16,32,64)")
  check.contains(text, "--batch-size INT", "underscores shown as dashes")
  check.contains(text, "-h, --help")
  check.eq(select(2, parse(SPEC, { "-h" })), (text:gsub("\nTrain a ResNet.\n", "")), "-h is --help")
end

function T.help_lists_options_sorted()
  local text = help({ zeta = 1, alpha = 2, mid = 3 })
  local a, m, z = text:find("--alpha"), text:find("--mid"), text:find("--zeta")
  check.truthy(a < m and m < z, "sorted by name")
end

function T.help_info_table()
  local text = help({ n = 1 }, { description = "Sweep.", usage = "[options] RUN...", program = "sweep.lua" })
  check.contains(text, "usage: sweep.lua [options] RUN...")
  check.contains(text, "Sweep.")
  text = help({ n = 1 }, { positional = "FILE...", program = "p" })
  check.contains(text, "usage: p [options] FILE...")
end

function T.two_strings_read_as_default_and_help()
  -- Documented: { "sgd", "optimizer" } is a described string option.
  local spec = { optim = { "sgd", "optimizer: sgd or adam" } }
  check.eq(parse(spec, {}).optim, "sgd")
  check.contains(help(spec), 'optimizer: sgd or adam (default "sgd")')
end

function T.explicit_default_and_help_fields()
  local spec = { pair = { default = { "a", "b" }, help = "two names" } }
  check.eq(parse(spec, {}).pair, { "a", "b" })
  check.contains(help(spec), "two names (default a,b)")
  local described_list = { sizes = { { 1, 2 }, "sizes to try" } }
  check.eq(parse(described_list, {}).sizes, { 1, 2 })
  check.contains(help(described_list), "sizes to try (default 1,2)")
end

function T.spec_mistakes_are_reported_at_the_caller()
  local err = check.raises(function() parse({ f = print }, {}) end,
    "bn.args: option 'f': default must be a number, string, boolean or list, got function")
  check.contains(err, "test_args.lua:", "the error points at the calling line")
  check.raises(parse, "bn.args: 'help' is reserved", { help = true }, {})
  check.raises(parse, "bn.args: option 'x': a list default must hold only numbers or only strings", { x = { 1, 2, "a" } }, {})
  check.raises(parse, "bn.args: option 'x': a list default must hold only numbers or only strings", { x = { true } }, {})
  check.raises(parse, "bn.args: option names must be identifiers", { [1] = 5 }, {})
  check.raises(parse, "are the same on the command line", { a_b = 1, ["a-b"] = 2 }, {})
  check.raises(parse, "bn.args: expected a table of options, got string", "lr", {})
  check.raises(parse, "bn.args.parse: argv must be a table of strings, got nil", SPEC, nil)
  check.raises(parse, "argument 1 is a number, expected a string", SPEC, { 5 })
  check.raises(parse, "bn.args: option 'x': help must be a string", { x = { default = 1, help = 2 } }, {})
  check.raises(parse, "bn.args: info.description must be a string, got number", { x = 1 }, {}, { description = 5 })
  check.raises(parse, "bn.args: the second argument must be a description string or a table", { x = 1 }, {}, 7)
  check.raises(function() bn.args({ x = 1 }, { argv = "--x" }) end, "bn.args: info.argv must be a table of strings")
end

function T.exit_codes_of_the_callable_form()
  local bnlab = check.bnlab()
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write('local o = bn.args({ lr = 0.1, depth = 20 }, "Demo.")\nprint("lr=" .. o.lr .. " depth=" .. o.depth)\n')
  f:close()
  local function run(args)
    local p = io.popen(("%s %s %s 2>&1"):format(bnlab, script, args))
    local out = p:read("a")
    local _, _, code = p:close()
    return out, code
  end
  local out, code = run("--lr 0.5")
  check.eq(code, 0)
  check.contains(out, "lr=0.5 depth=20")
  out, code = run("--help")
  check.eq(code, 0)
  check.contains(out, "Demo.")
  check.contains(out, "--depth INT")
  out, code = run("--depht 3")
  check.eq(code, 2)
  check.contains(out, "unknown option --depht (did you mean --depth?)")
  check.contains(out, "--help' for the list of options")
  check.not_contains(out, "traceback", "a usage error is not a crash")
  out, code = run("--lr abc")
  check.eq(code, 2)
  check.contains(out, "option --lr expects a number, got 'abc'")
  os.remove(script)
end

function T.ignores_interpreter_words_without_a_script()
  -- `bnlab -e 'bn.args{...}'`: arg[1..] are bnlab's own options then.
  local p = io.popen(check.bnlab() .. [[ -e 'print(bn.args({ n = 3 }).n)' 2>&1]])
  local out = p:read("a")
  p:close()
  check.eq(out, "3\n")
end

return T
