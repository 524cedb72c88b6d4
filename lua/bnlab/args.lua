-- bn.args: command-line options for experiment scripts.
--
--   local opts = bn.args({
--     lr         = { 0.1, "initial learning rate" },  -- default + one-line help
--     depth      = 20,                                -- integer
--     norm       = "bn",                              -- string
--     augment    = true,                              -- --augment / --no-augment
--     widths     = { 16, 32, 64 },                    -- --widths 8,16,32
--     batch_size = 128,                               -- --batch-size or --batch_size
--   }, "Train a ResNet on CIFAR-10.")
--
-- Each option's type is its default's type; a value that does not fit, an
-- unknown option or a missing value stops the script with a message naming
-- the option, what it expected and what it got (exit status 2). --help
-- prints the options with their defaults and exits 0. Full reference:
-- docs/cli.md. args.parse(spec, argv [, info]) is the same without printing
-- or exiting, for tests and for scripts that parse other lists.

local args = {}

local RESERVED = { help = true }
local BOOLEAN_WORDS = {
  ["true"] = true, ["yes"] = true, ["on"] = true, ["1"] = true,
  ["false"] = false, ["no"] = false, ["off"] = false, ["0"] = false,
}
local TYPE_NAMES = { integer = "an integer", number = "a number", string = "a string", boolean = "a boolean" }
local PLACEHOLDERS = { integer = "INT", number = "NUM", string = "STR" }

local function value_type(v)
  local t = type(v)
  if t == "number" then return math.type(v) end -- "integer" or "float"
  return t
end

-- integer and float defaults: 20 accepts whole numbers only, 0.1 any number.
local function scalar_kind(v)
  local t = value_type(v)
  if t == "float" then return "number" end
  if t == "integer" or t == "string" or t == "boolean" then return t end
  return nil
end

-- A mistake in the spec is the script author's: raised as a marked error
-- that the public functions re-raise at their caller's line.
local SPEC_ERROR = {}
local function spec_error(message) error(setmetatable({ message = message }, SPEC_ERROR)) end

local function dashed(name) return (name:gsub("_", "-")) end
local function canonical(name) return (name:gsub("-", "_")) end

local function copy_list(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  return out
end

-- One spec entry -> { name, kind, elem, default, help }. The forms:
--   default                        (number, string or boolean)
--   { default, "help" }            (a scalar and its one-line help)
--   { {list...}, "help" }          (a list default and its help)
--   { default = v, help = "..." }  (explicit; the only way to give a list of
--                                   exactly two strings, which reads as the form above)
--   { v1, v2, ... }                (a list default: comma-separated on the command line)
local function describe_option(name, entry)
  if type(name) ~= "string" or not name:match("^[%a_][%w_%-]*$") then
    spec_error(("bn.args: option names must be identifiers, got %s"):format(
      type(name) == "string" and ("'" .. name .. "'") or tostring(name)))
  end
  if RESERVED[canonical(name)] then
    spec_error(("bn.args: '%s' is reserved (--help prints the options)"):format(name))
  end
  local default, help = entry, nil
  if type(entry) == "table" then
    if entry.default ~= nil or entry.help ~= nil then
      default, help = entry.default, entry.help
    elseif #entry == 2 and type(entry[2]) == "string" and (type(entry[1]) == "table" or scalar_kind(entry[1])) then
      default, help = entry[1], entry[2]
    end
  end
  if help ~= nil and type(help) ~= "string" then
    spec_error(("bn.args: option '%s': help must be a string, got %s"):format(name, type(help)))
  end
  local option = { name = name, help = help }
  if type(default) == "table" then
    option.kind = "list"
    option.default = copy_list(default)
    -- Strings, or numbers: integers only if every element is whole.
    option.elem = "string"
    for i, v in ipairs(default) do
      local kind = scalar_kind(v)
      if i == 1 then
        option.elem = kind
      elseif option.elem ~= kind then
        local both_numbers = (option.elem == "integer" or option.elem == "number")
          and (kind == "integer" or kind == "number")
        option.elem = both_numbers and "number" or nil
      end
      if option.elem == nil or option.elem == "boolean" then
        spec_error(("bn.args: option '%s': a list default must hold only numbers or only strings, element %d is %s")
          :format(name, i, type(v)))
      end
    end
  else
    option.kind = scalar_kind(default)
    option.default = default
    if option.kind == nil then
      spec_error(("bn.args: option '%s': default must be a number, string, boolean or list, got %s")
        :format(name, type(default)))
    end
  end
  return option
end

local function read_info(info)
  if info == nil then return {} end
  if type(info) == "string" then return { description = info } end
  if type(info) ~= "table" then
    spec_error("bn.args: the second argument must be a description string or a table, got " .. type(info))
  end
  for _, field in ipairs({ "description", "usage", "positional", "program" }) do
    if info[field] ~= nil and type(info[field]) ~= "string" then
      spec_error(("bn.args: info.%s must be a string, got %s"):format(field, type(info[field])))
    end
  end
  if info.argv ~= nil and type(info.argv) ~= "table" then
    spec_error("bn.args: info.argv must be a table of strings, got " .. type(info.argv))
  end
  return info
end

-- The spec as a list sorted by name, and a lookup by canonical name.
local function compile_spec(spec)
  if type(spec) ~= "table" then
    spec_error("bn.args: expected a table of options, got " .. type(spec))
  end
  local options, by_name = {}, {}
  for name, entry in pairs(spec) do
    local option = describe_option(name, entry)
    local key = canonical(name)
    if by_name[key] then
      spec_error(("bn.args: options '%s' and '%s' are the same on the command line"):format(by_name[key].name, name))
    end
    by_name[key] = option
    options[#options + 1] = option
  end
  table.sort(options, function(a, b) return a.name < b.name end)
  return options, by_name
end

local function show_default(option)
  local v = option.default
  if option.kind == "list" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return #parts > 0 and table.concat(parts, ",") or "empty"
  elseif option.kind == "string" then
    return ('"%s"'):format(v)
  elseif option.kind == "number" and v ~= v then
    return "nan"
  end
  return tostring(v)
end

local function program_name(info)
  if info.program then return info.program end
  if type(arg) == "table" and type(arg[0]) == "string" then return arg[0] end
  return "script"
end

local function help_text(spec, info)
  info = read_info(info)
  local options = compile_spec(spec)
  local usage = info.usage or ("[options]" .. (info.positional and (" " .. info.positional) or ""))
  local lines = { ("usage: %s %s"):format(program_name(info), usage) }
  if info.description then
    lines[#lines + 1] = ""
    lines[#lines + 1] = info.description
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "options:"
  local rows = {}
  for _, option in ipairs(options) do
    local flag = "--" .. dashed(option.name)
    local left
    if option.kind == "boolean" then
      left = "--[no-]" .. dashed(option.name)
    elseif option.kind == "list" then
      local p = PLACEHOLDERS[option.elem]
      left = ("%s %s,%s,..."):format(flag, p, p)
    else
      left = flag .. " " .. PLACEHOLDERS[option.kind]
    end
    local right = (option.help and (option.help .. " ") or "") .. "(default " .. show_default(option) .. ")"
    rows[#rows + 1] = { left, right }
  end
  rows[#rows + 1] = { "-h, --help", "show this help and exit" }
  local width = 0
  for _, row in ipairs(rows) do width = math.max(width, #row[1]) end
  width = math.min(width, 30)
  for _, row in ipairs(rows) do
    if #row[1] > width then
      lines[#lines + 1] = "  " .. row[1]
      lines[#lines + 1] = "  " .. (" "):rep(width + 2) .. row[2]
    else
      lines[#lines + 1] = ("  %-" .. width .. "s  %s"):format(row[1], row[2])
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Levenshtein distance, for "did you mean --lr?".
local function distance(a, b)
  local previous = {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      current[j] = math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
    end
    previous = current
  end
  return previous[#b]
end

local function suggestion(name, options)
  local best, best_d
  for _, option in ipairs(options) do
    local candidate = dashed(option.name)
    local d = distance(dashed(name), candidate)
    if candidate:sub(1, #name) == dashed(name) then d = math.min(d, 1) end
    if d <= 2 and (best_d == nil or d < best_d) then best, best_d = candidate, d end
  end
  if not best then return "" end
  return (" (did you mean --%s?)"):format(best)
end

local function to_number(text)
  local lower = text:lower():match("^%s*(.-)%s*$")
  if lower == "inf" or lower == "+inf" then return math.huge end
  if lower == "-inf" then return -math.huge end
  if lower == "nan" then return 0 / 0 end
  return tonumber(text)
end

-- Converts one value; returns it or nil and what was expected.
local function convert(kind, text)
  if kind == "string" then return text end
  if kind == "number" then
    local n = to_number(text)
    if n == nil then return nil, "a number" end
    return n
  end
  if kind == "integer" then
    local n = tonumber(text)
    local i = n and math.tointeger(n)
    if i == nil then return nil, "an integer" end
    return i
  end
  if kind == "boolean" then
    local b = BOOLEAN_WORDS[text:lower()]
    if b == nil then return nil, "true or false" end
    return b
  end
end

local function convert_list(option, text)
  local list = {}
  if text:match("^%s*$") then return list end
  for item in (text .. ","):gmatch("([^,]*),") do
    item = item:match("^%s*(.-)%s*$")
    local v = convert(option.elem, item)
    if v == nil then
      return nil, ("option --%s expects a comma-separated list of %s values, got '%s' in '%s'")
        :format(dashed(option.name), option.elem, item, text)
    end
    list[#list + 1] = v
  end
  return list
end

local function value_of(option, text)
  if option.kind == "list" then return convert_list(option, text) end
  local v, expected = convert(option.kind, text)
  if v == nil then
    return nil, ("option --%s expects %s, got '%s'"):format(dashed(option.name), expected, text)
  end
  return v
end

-- Returns opts, or nil + "help", or nil + "usage" + message.
local function parse_list(spec, argv, info)
  info = read_info(info)
  local options, by_name = compile_spec(spec)
  local opts = {}
  for _, option in ipairs(options) do
    opts[option.name] = option.kind == "list" and copy_list(option.default) or option.default
  end
  local positional = {}
  local function usage(fmt, ...) return nil, "usage", fmt:format(...) end

  local i, n = 1, #argv
  local only_positional = false
  local last_boolean -- for the hint after `--flag false`
  while i <= n do
    local a = argv[i]
    if type(a) ~= "string" then
      return usage("argument %d is a %s, expected a string", i, type(a))
    end
    if only_positional or a == "-" or not a:match("^%-") or a:match("^%-%.?%d") then
      if not info.positional then
        local hint = ""
        if last_boolean and BOOLEAN_WORDS[a:lower()] ~= nil then
          hint = (" (a boolean takes --%s=%s, or --%s / --no-%s)"):format(last_boolean, a, last_boolean, last_boolean)
        end
        return usage("unexpected argument '%s'%s", a, hint)
      end
      positional[#positional + 1] = a
    elseif a == "--" then
      only_positional = true
    elseif a == "-h" or a == "--help" then
      return nil, "help"
    elseif not a:match("^%-%-") then
      return usage("unknown option '%s' (options are spelled --name)", a)
    else
      local body = a:sub(3)
      local name, value = body:match("^([^=]*)=(.*)$")
      name = name or body
      local option = by_name[canonical(name)]
      local negated = false
      if option == nil and name:match("^no[-_]") then
        local base = by_name[canonical(name:sub(4))]
        if base and base.kind == "boolean" then option, negated = base, true end
      end
      if option == nil then
        return usage("unknown option --%s%s", name, suggestion(name, options))
      end
      last_boolean = nil
      if option.kind == "boolean" then
        if negated then
          if value ~= nil then return usage("option --%s takes no value, got '%s'", name, value) end
          opts[option.name] = false
        elseif value == nil then
          opts[option.name] = true
        else
          local b, err = value_of(option, value)
          if b == nil then return usage("%s", err) end
          opts[option.name] = b
        end
        last_boolean = dashed(option.name)
      else
        if value == nil then
          local next_arg = argv[i + 1]
          if next_arg == nil or (type(next_arg) == "string" and next_arg:match("^%-%-")) then
            local what = option.kind == "list" and ("a comma-separated list of " .. option.elem .. " values")
              or TYPE_NAMES[option.kind]
            return usage("option --%s needs a value (%s)", dashed(option.name), what)
          end
          value = next_arg
          i = i + 1
        end
        local v, err = value_of(option, value)
        if v == nil then return usage("%s", err) end
        opts[option.name] = v
      end
    end
    i = i + 1
  end
  for k, v in ipairs(positional) do opts[k] = v end
  return opts
end

-- Re-raises a spec error at the line that called the public function (level
-- 3: 1 is here, 2 the public function, which must not tail-call this).
local function raise_spec_errors(ok, ...)
  if ok then return ... end
  local err = ...
  if getmetatable(err) == SPEC_ERROR then error(err.message, 3) end
  error(err, 0)
end

--- Parses argv (a list of strings, like the global `arg`) against spec.
-- Returns the options table; on --help returns nil and the help text;
-- raises an error naming the option for anything it cannot accept.
function args.parse(spec, argv, info)
  if type(argv) ~= "table" then
    error("bn.args.parse: argv must be a table of strings, got " .. type(argv), 2)
  end
  local opts, what, message = raise_spec_errors(pcall(parse_list, spec, argv, info))
  if opts then return opts end
  if what == "help" then
    local text = raise_spec_errors(pcall(help_text, spec, info))
    return nil, text
  end
  error(message, 0)
end

--- The --help text for a spec (what --help prints).
function args.help(spec, info)
  local text = raise_spec_errors(pcall(help_text, spec, info))
  return text
end

-- bn.args(spec [, info]): parses the script's own `arg`; prints the help and
-- exits 0 on --help, prints the problem and exits 2 on a bad command line.
-- info: a description string, or { description =, usage =, positional =,
-- program =, argv = } (positional: a name such as "FILE..." that allows
-- positional arguments, returned as opts[1..n]).
setmetatable(args, {
  __call = function(_, spec, info)
    local argv = type(info) == "table" and info.argv or nil
    if argv == nil then
      argv = {}
      -- Without a script (bnlab -e ...), arg[1..] are the interpreter's own
      -- words, and only then is arg[-1] absent.
      if type(arg) == "table" and arg[-1] ~= nil then
        for i = 1, #arg do argv[i] = arg[i] end
      end
    end
    local opts, what, message = raise_spec_errors(pcall(parse_list, spec, argv, info))
    if opts then return opts end
    local program = program_name(read_info(info))
    if what == "help" then
      local text = raise_spec_errors(pcall(help_text, spec, info))
      io.stdout:write(text)
      io.stdout:flush()
      os.exit(0, true)
    end
    io.stderr:write(("%s: %s\nTry '%s --help' for the list of options.\n"):format(program, message, program))
    io.stderr:flush()
    os.exit(2, true)
  end,
})

return args
