-- Shared by the tests of experiments/*.lua (tests/lua/test_exp_*.lua): runs a
-- script as a user would (a child bnlab process, --scale tiny on synthetic
-- data) and checks what it wrote: PNGs that decode with provenance, CSVs with
-- the expected columns and numeric cells, summary.json with its keys.
local check = require "check"
local bn = require "bnlab"
local json = require "bnlab.json"

local M = {}

--- A fresh empty directory under /tmp (removed by M.cleanup()).
M.temp_dir = check.temp_dir

--- Removes the directories made by M.temp_dir (every check.temp_dir / temp_file).
M.cleanup = check.cleanup

--- Runs `bnlab run experiments/SCRIPT args...` with 2 threads; returns exit code and output
-- (stdout and stderr together).
function M.run(script, args)
  local r = check.run_bnlab({ "-t", "2", "run", "experiments/" .. script, table.unpack(args or {}) }, { merge = true })
  return r.code, r.out
end

--- Runs the script at --scale tiny into a fresh directory; fails the test (with the script's output)
-- unless it exits 0. Returns the output directory and the printed text.
function M.run_tiny(script, args)
  local out = M.temp_dir()
  local all = { "--scale", "tiny", "--out", out }
  for _, a in ipairs(args or {}) do all[#all + 1] = a end
  local code, text = M.run(script, all)
  if code ~= 0 then error(("%s exited %s:\n%s"):format(script, tostring(code), text), 2) end
  return out, text
end

local function read(path)
  return check.read_file(path) or error("missing output file " .. path, 3)
end

--- The PNG decodes, has a sensible size and records its provenance (script and seed).
function M.png(path)
  local img, text = bn.render.read_png(path)
  local w, h = img:size()
  check.truthy(w >= 200 and h >= 150, path .. " is at least 200x150")
  check.truthy(text["bnlab:script"] and text["bnlab:script"]:find("experiments/", 1, true), path .. " records its script")
  check.truthy(text["bnlab:seed"] ~= nil and text.Title ~= nil, path .. " records its seed and title")
  return img, text
end

--- Parses a CSV written by bn.experiment.csv (no quoted commas in numeric files); checks the header
-- holds `columns` (in any order) and returns rows as tables keyed by column name (numbers converted).
function M.csv(path, columns)
  local lines = {}
  for line in read(path):gmatch("[^\n]+") do lines[#lines + 1] = line end
  check.truthy(#lines >= 2, path .. " has a header and at least one row")
  local header = {}
  for h in lines[1]:gmatch("[^,]+") do header[#header + 1] = h end
  local have = {}
  for _, h in ipairs(header) do have[h] = true end
  for _, c in ipairs(columns or {}) do check.truthy(have[c], ("%s has column '%s' (header: %s)"):format(path, c, lines[1])) end
  local rows = {}
  for i = 2, #lines do
    local row, j = {}, 0
    for cell in (lines[i] .. ","):gmatch("([^,]*),") do
      j = j + 1
      local v = cell == "nan" and 0 / 0 or cell == "inf" and math.huge or cell == "-inf" and -math.huge or tonumber(cell)
      row[header[j] or j] = v == nil and cell or v
    end
    check.eq(j, #header, ("%s row %d has as many cells as the header"):format(path, i - 1))
    rows[#rows + 1] = row
  end
  return rows
end

--- summary.json in dir: decoded, with the keys every experiment writes plus `keys`.
function M.summary(dir, keys)
  local s = json.decode(read(dir .. "/summary.json"))
  for _, k in ipairs{ "experiment", "claim", "scale", "seconds", "options" } do
    check.truthy(s[k] ~= nil, "summary.json has '" .. k .. "'")
  end
  check.eq(type(s.holds), "boolean", "summary.json 'holds' is a boolean")
  for _, k in ipairs(keys or {}) do
    local v = s
    for part in k:gmatch("[^.]+") do
      if type(v) == "table" then v = v[part] else v = nil end
    end
    check.truthy(v ~= nil, "summary.json has '" .. k .. "'")
  end
  return s
end

--- --help exits 0 and lists the common options; a wrong option exits 2 naming it.
function M.help_and_usage(script)
  local code, text = M.run(script, { "--help" })
  check.eq(code, 0, script .. " --help exit status")
  for _, opt in ipairs{ "--scale", "--depth", "--norm", "--lr", "--seed", "--out", "--data" } do
    check.contains(text, opt, script .. " --help lists " .. opt)
  end
  code, text = M.run(script, { "--no-such-option", "1" })
  check.eq(code, 2, script .. " with an unknown option exits 2")
  check.contains(text, "no-such-option", "the message names the option")
end

return M
