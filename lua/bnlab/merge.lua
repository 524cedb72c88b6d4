-- `bnlab merge DIR... [--out FILE]`: one table from every summary.json below
-- some directories (docs/batch.md). Each summary.json is a row, joined with
-- the config.json (its `params`, or its top-level values) and status.json
-- beside it; nested values are flattened with dotted keys (`none.growth`),
-- lists are left out. Columns: dir, the config keys sorted, status and
-- seconds (when a status.json was found), then the summary keys sorted. With
-- one directory argument, dir is relative to it ("." for the directory
-- itself); with several, it starts with the argument.
--
-- Also the table helpers `bnlab sweep` uses for its final table:
-- merge.flatten, merge.table_text (aligned, for a terminal), merge.csv_text,
-- merge.write (CSV, or JSON when the name ends in .json; atomic).

local bn = require "bnlab"
local json = require "bnlab.json"

local merge = {}

local MAX_DEPTH = 64     -- directory levels walked below each argument
local SHOW_WIDTH = 40    -- strings longer than this are cut in the aligned table

local function is_list(t)
  return type(t) == "table" and t[1] ~= nil
end

--- merge.flatten(t) -> { ["a.b"] = scalar, ... }: the scalar values (numbers,
-- strings, booleans) of nested tables with string keys, keys joined with
-- dots. Lists (tables with a [1]) are left out.
function merge.flatten(t, prefix, out)
  out = out or {}
  if type(t) ~= "table" then return out end
  for k, v in pairs(t) do
    if type(k) == "string" then
      local key = prefix and (prefix .. "." .. k) or k
      local tv = type(v)
      if tv == "number" or tv == "string" or tv == "boolean" then
        out[key] = v
      elseif tv == "table" and not is_list(v) then
        merge.flatten(v, key, out)
      end
    end
  end
  return out
end

--- A number as the shortest text that reads back to the same value.
local function number_text(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  for _, digits in ipairs { 15, 16, 17 } do
    local s = string.format("%." .. digits .. "g", v)
    if tonumber(s) == v then return s end
  end
  return string.format("%.17g", v)
end
merge.number_text = number_text

--- merge.cell(v [, short]) -> text of one value ("" for nil); short: floats
-- with 6 significant digits and long strings cut (the aligned table).
function merge.cell(v, short)
  if v == nil then return "" end
  if type(v) == "number" then
    if short and math.type(v) == "float" and v == v and v ~= math.huge and v ~= -math.huge then
      return string.format("%.6g", v)
    end
    return number_text(v)
  end
  local s = tostring(v)
  if short then
    s = s:gsub("[\r\n\t]", " ")
    if #s > SHOW_WIDTH then s = s:sub(1, SHOW_WIDTH - 3) .. "..." end
  end
  return s
end

--- merge.table_text(columns, rows) -> text: a header line and one line per
-- row, columns aligned (numbers to the right), two spaces apart; floats with
-- 6 digits, long strings cut except in the first column.
function merge.table_text(columns, rows)
  local widths, texts = {}, {}
  for c, name in ipairs(columns) do widths[c] = #name end
  for r, row in ipairs(rows) do
    texts[r] = {}
    for c, name in ipairs(columns) do
      -- the first column names the row: never cut
      local s = merge.cell(row[name], c > 1)
      texts[r][c] = s
      if #s > widths[c] then widths[c] = #s end
    end
  end
  local function line(cells, numeric)
    local parts = {}
    for c, s in ipairs(cells) do
      local pad = string.rep(" ", widths[c] - #s)
      parts[c] = (numeric and numeric[c]) and (pad .. s) or (c < #cells and (s .. pad) or s)
    end
    return (table.concat(parts, "  "):gsub("%s+$", ""))
  end
  local out = { line(columns) }
  for r, row in ipairs(rows) do
    local numeric = {}
    for c, name in ipairs(columns) do numeric[c] = type(row[name]) == "number" end
    out[#out + 1] = line(texts[r], numeric)
  end
  return table.concat(out, "\n") .. "\n"
end

local function csv_field(s)
  if s:find('[,"\r\n]') or s:match("^%s") or s:match("%s$") then
    return '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

--- merge.csv_text(columns, rows) -> CSV (RFC 4180 quoting, full precision).
function merge.csv_text(columns, rows)
  local out, header = {}, {}
  for c, name in ipairs(columns) do header[c] = csv_field(name) end
  out[1] = table.concat(header, ",")
  for _, row in ipairs(rows) do
    local cells = {}
    for c, name in ipairs(columns) do cells[c] = csv_field(merge.cell(row[name])) end
    out[#out + 1] = table.concat(cells, ",")
  end
  return table.concat(out, "\n") .. "\n"
end

--- merge.write(path, columns, rows): CSV, or JSON ({columns = [...], rows =
-- [{...}]}) when path ends in .json; atomic either way.
function merge.write(path, columns, rows)
  if path:lower():match("%.json$") then
    json.write(path, { columns = columns, rows = rows })
  else
    bn.write_file(path, merge.csv_text(columns, rows))
  end
end

local function read_json(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, value = pcall(json.decode, text)
  if not ok then return nil, value end
  return value
end
merge.read_json = read_json

local function same_value(a, b)
  if a == b then return true end
  local na, nb = tonumber(a), tonumber(b)
  if na and nb then return na == nb end
  return tostring(a) == tostring(b)
end
merge.same_value = same_value

--- Natural order: digit runs compare as numbers ("depth=8" before "depth=14").
local function natural_less(a, b)
  local pa, pb = 1, 1
  while pa <= #a and pb <= #b do
    local da, db = a:match("^%d+", pa), b:match("^%d+", pb)
    if da and db then
      local na, nb = tonumber(da), tonumber(db)
      if na ~= nb then return na < nb end
      pa, pb = pa + #da, pb + #db
    else
      local ca, cb = a:sub(pa, pa), b:sub(pb, pb)
      if ca ~= cb then return ca < cb end
      pa, pb = pa + 1, pb + 1
    end
  end
  if (#a - pa) ~= (#b - pb) then return (#a - pa) < (#b - pb) end
  return a < b
end
merge.natural_less = natural_less

--- The summary.json files below path (depth first, names in natural order).
-- Symbolic links below the arguments are not followed (no cycles, no
-- counting twice).
local function find_summaries(path, depth, found)
  if depth > MAX_DEPTH then return end
  local names = bn.listdir(path)
  table.sort(names, natural_less)
  for _, name in ipairs(names) do
    local child = path .. "/" .. name
    local kind = bn.file_type(child)
    if kind == "directory" then
      find_summaries(child, depth + 1, found)
    elseif kind == "file" and name == "summary.json" then
      found[#found + 1] = child
    end
  end
end

--- merge.collect(paths) -> columns, rows, problems: the table of every
-- summary.json below the paths (directories; a file is read as a summary).
function merge.collect(paths)
  local files, shown = {}, {}
  for _, p in ipairs(paths) do
    local clean = p:gsub("(.)/+$", "%1")
    local kind = bn.file_type(clean, true)
    local first = #files + 1
    if kind == "directory" then find_summaries(clean, 1, files)
    elseif kind then files[#files + 1] = clean end
    -- With one directory, dir is relative to it; with several, it keeps the argument.
    for i = first, #files do
      local dir = files[i]:match("^(.*)/[^/]*$") or "."
      if #paths == 1 and kind == "directory" then
        dir = dir == clean and "." or dir:sub(#clean + 2)
      end
      shown[i] = dir
    end
  end
  local rows, problems = {}, {}
  local config_keys, summary_keys, has_status = {}, {}, false
  for i, file in ipairs(files) do
    local dir = file:match("^(.*)/[^/]*$") or "."
    local summary, err = read_json(file)
    if type(summary) ~= "table" or is_list(summary) then
      problems[#problems + 1] = file .. ": " .. (err or "not a JSON object")
    else
      local row = { dir = shown[i] }
      local config = read_json(dir .. "/config.json")
      if type(config) == "table" then
        local params = type(config.params) == "table" and config.params or config
        for k, v in pairs(merge.flatten(params)) do
          row[k] = v
          config_keys[k] = true
        end
      end
      local status = read_json(dir .. "/status.json")
      if type(status) == "table" then
        row.status, row.seconds = status.status, status.seconds
        has_status = true
      end
      for k, v in pairs(merge.flatten(summary)) do
        local key = k
        if row[k] ~= nil or k == "dir" or k == "status" or k == "seconds" then
          if same_value(row[k], v) then key = nil else key = "summary." .. k end
        end
        if key then
          row[key] = v
          summary_keys[key] = true
        end
      end
      rows[#rows + 1] = row
    end
  end
  local function sorted(set, skip)
    local list = {}
    for k in pairs(set) do
      if not (skip and skip[k]) then list[#list + 1] = k end
    end
    table.sort(list)
    return list
  end
  local columns = { "dir" }
  for _, k in ipairs(sorted(config_keys)) do columns[#columns + 1] = k end
  if has_status then
    columns[#columns + 1] = "status"
    columns[#columns + 1] = "seconds"
  end
  for _, k in ipairs(sorted(summary_keys, config_keys)) do columns[#columns + 1] = k end
  return columns, rows, problems
end

merge.HELP = [[
usage: bnlab merge DIR... [--out FILE]

Finds every summary.json below the directories (recursively, in natural
order: depth=8 before depth=14; symbolic links inside them are not followed)
and prints one table: a row per summary.json,
joined with the config.json beside it (its "params", as `bnlab sweep` writes
it, or else its top-level values) and the status.json beside it.

Nested values become dotted columns (none.growth); lists are left out.
Columns: dir (relative to DIR when there is one DIR; with several, starting
with the DIR it was found in), the config keys (sorted), status and seconds (when a
status.json was found), then the summary keys (sorted; a summary key that
repeats a config key with another value is shown as summary.KEY).

options:
  --out FILE   also write the table to FILE: CSV, or JSON ({columns, rows})
               when FILE ends in .json; written atomically
  -h, --help   show this help

exit status: 0 table printed, 1 no summary.json found, 2 usage error
More: docs/batch.md
]]

local function usage(msg)
  io.stderr:write("bnlab merge: ", msg, "\nTry 'bnlab merge --help' for more information.\n")
  return 2
end

--- merge.main(argv) -> exit status (the `bnlab merge` command).
function merge.main(argv)
  local paths, out = {}, nil
  local i, only_paths = 1, false
  while i <= #argv do
    local a = argv[i]
    if only_paths or a == "-" or a:sub(1, 1) ~= "-" then
      paths[#paths + 1] = a
    elseif a == "--" then
      only_paths = true
    elseif a == "-h" or a == "--help" then
      io.stdout:write(merge.HELP)
      return 0
    elseif a == "--out" then
      out = argv[i + 1]
      if out == nil or out == "" then return usage("option " .. a .. " needs a file name") end
      i = i + 1
    elseif a:match("^%-%-out=") then
      out = a:sub(7)
      if out == "" then return usage("option --out needs a file name") end
    else
      return usage("unknown option '" .. a .. "'")
    end
    i = i + 1
  end
  if #paths == 0 then return usage("no directory given (bnlab merge DIR... [--out FILE])") end
  for _, p in ipairs(paths) do
    if not bn.file_type(p, true) then return usage("no such file or directory: " .. p) end
  end
  local columns, rows, problems = merge.collect(paths)
  for _, p in ipairs(problems) do io.stderr:write("bnlab merge: skipped ", p, "\n") end
  if #rows == 0 then
    io.stderr:write("bnlab merge: no summary.json found below ", table.concat(paths, " "), "\n")
    return 1
  end
  io.stdout:write(merge.table_text(columns, rows))
  io.stdout:flush()
  if out then
    merge.write(out, columns, rows)
    io.stderr:write(("bnlab merge: wrote %s (%d rows, %d columns)\n"):format(out, #rows, #columns))
  end
  return 0
end

return merge
