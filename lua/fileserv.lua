-- lua/fileserv.lua: the part of the fileserv library written in Lua.
-- It receives the C library table and completes it with CSV (RFC 4180),
-- command-line option parsing for scripts, and formatting helpers.
local fileserv = ...

local csv = {}

local function csv_field(v)
  local s = tostring(v == nil and "" or v)
  if s:find('[,"\r\n]') then
    s = '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

-- Writes header (a list of column names) and rows (lists, or tables keyed
-- by column name) to path. Returns true, or nil, message.
function csv.write(path, header, rows)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  local line = {}
  for i, name in ipairs(header) do line[i] = csv_field(name) end
  f:write(table.concat(line, ","), "\r\n")
  for _, row in ipairs(rows) do
    line = {}
    for i, name in ipairs(header) do
      local v = row[i]
      if v == nil then v = row[name] end
      line[i] = csv_field(v)
    end
    f:write(table.concat(line, ","), "\r\n")
  end
  return f:close()
end

-- Splits CSV text into records of fields, honouring quotes.
local function csv_parse(text)
  local records, fields, i, n = {}, {}, 1, #text
  while i <= n do
    local c = text:sub(i, i)
    if c == '"' then
      local buf = {}
      i = i + 1
      while true do
        local q = text:find('"', i, true)
        if not q then error("csv: unterminated quoted field") end
        buf[#buf + 1] = text:sub(i, q - 1)
        if text:sub(q + 1, q + 1) == '"' then
          buf[#buf + 1] = '"'
          i = q + 2
        else
          i = q + 1
          break
        end
      end
      fields[#fields + 1] = table.concat(buf)
    else
      local e = text:find('[,\r\n]', i) or n + 1
      fields[#fields + 1] = text:sub(i, e - 1)
      i = e
    end
    c = text:sub(i, i)
    if c == "," then
      i = i + 1
      if i > n then fields[#fields + 1] = "" end
    else
      if c == "\r" and text:sub(i + 1, i + 1) == "\n" then i = i + 1 end
      i = i + 1
      records[#records + 1] = fields
      fields = {}
    end
  end
  if #fields > 0 then records[#records + 1] = fields end
  return records
end

-- Reads path: returns rows (tables keyed by column name, numbers
-- converted) and the header, or nil, message.
function csv.read(path)
  local f, err = io.open(path, "r")
  if not f then return nil, err end
  local text, rerr = f:read("a")
  f:close()
  if not text then return nil, path .. ": " .. tostring(rerr) end
  local ok, records = pcall(csv_parse, text)
  if not ok then return nil, records end
  local header, rows = records[1] or {}, {}
  for r = 2, #records do
    local row = {}
    for i, name in ipairs(header) do
      local v = records[r][i]
      row[name] = tonumber(v) or v
    end
    rows[#rows + 1] = row
  end
  return rows, header
end

fileserv.csv = csv

-- Parses "--key value" and "--key=value" options from args against
-- defaults (a table of option names with default values; a boolean
-- default makes a flag). Returns the options and the other arguments, or
-- raises an error naming the unknown option.
function fileserv.options(args, defaults)
  local opts, rest, i = {}, {}, 1
  for k, v in pairs(defaults) do opts[k] = v end
  while i <= #args do
    local a = args[i]
    local key, value = a:match("^%-%-([%w-]+)=(.*)$")
    key = key or a:match("^%-%-([%w-]+)$")
    if key then
      local name = key:gsub("-", "_")
      if defaults[name] == nil then
        error("unknown option '--" .. key .. "'", 0)
      elseif type(defaults[name]) == "boolean" then
        opts[name] = true
      else
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then error("option '--" .. key .. "' needs a value", 0) end
        end
        opts[name] = value
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return opts, rest
end

-- A script's command line: fileserv.options against defaults (which
-- should have help = false), with the script's usage text. --help prints
-- the usage on stderr and exits 0; a bad option prints the error and the
-- usage and exits 2. Returns opts, rest and a checker whose methods
-- convert an option's text or end the script with exit status 2 and a
-- message naming the option and its value:
--   check.fail(fmt, ...), check.number(text, what, min, max),
--   check.count(text, what, min, max) (a whole number),
--   check.seconds(text, what), check.size(text, what),
--   check.one_of(list, allowed, what) (allowed: a set; the list non-empty).
function fileserv.script_options(args, defaults, usage)
  local program = tostring(args[0]):match("([^/]+)%.lua$") or tostring(args[0])
  local ok, opts, rest = pcall(fileserv.options, args, defaults)
  if not ok or opts.help then
    io.stderr:write(ok and "" or (program .. ": " .. opts .. "\n"), usage, "\n")
    os.exit(ok and 0 or 2)
  end
  local check = {}
  function check.fail(fmt, ...)
    io.stderr:write(program, ": ", string.format(fmt, ...), "\nsee 'fileserv run ",
                    tostring(args[0]), " --help'\n")
    os.exit(2)
  end
  function check.number(text, what, min, max)
    local v = tonumber(text)
    if not v or v ~= v or v < min or v > max then
      check.fail("%s: '%s' is not a number from %g to %g", what, text, min, max)
    end
    return v
  end
  function check.count(text, what, min, max)
    return math.tointeger(check.number(text, what, min, max)) or
      check.fail("%s: '%s' is not a whole number", what, text)
  end
  function check.seconds(text, what)
    local ok_s, v = pcall(fileserv.seconds, text)
    if not ok_s or v < 0 then check.fail("%s: '%s' is not a duration", what, text) end
    return v
  end
  function check.size(text, what)
    local ok_s, v = pcall(fileserv.size, text)
    if not ok_s then check.fail("%s: '%s' is not a size", what, text) end
    return v
  end
  function check.one_of(list, allowed, what)
    for _, v in ipairs(list) do
      if not allowed[v] then check.fail("%s: unknown value '%s'", what, v) end
    end
    if #list == 0 then check.fail("%s: empty list", what) end
    return list
  end
  return opts, rest, check
end

-- Quotes text for a POSIX shell command line.
function fileserv.shell_quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end

-- Makes a new directory under $TMPDIR (default /tmp) named TAG.XXXXXX
-- (mktemp -d). Returns its path, or nil, message.
function fileserv.tempdir(tag)
  local p = io.popen("mktemp -d -t " .. fileserv.shell_quote(tag .. ".XXXXXX"))
  local path = p and p:read("l")
  if p then p:close() end
  if not path or path == "" then return nil, "mktemp -d " .. tag .. ": failed" end
  return path
end

-- Removes a directory and everything in it (rm -rf). Returns true, or
-- nil, message.
function fileserv.remove_tree(path)
  if os.execute("rm -rf -- " .. fileserv.shell_quote(path)) then return true end
  return nil, "rm -rf " .. path .. ": failed"
end

-- Splits "a,b,c" into a list.
function fileserv.list(text)
  local out = {}
  for item in tostring(text):gmatch("[^,%s]+") do out[#out + 1] = item end
  return out
end

-- Parses a duration: "0.5", "500ms", "2s", "1.5m", "1h" into seconds;
-- raises an error naming the text when it is not one.
function fileserv.seconds(text)
  local n, unit = tostring(text):match("^%s*([%d%.]+)%s*(%a*)%s*$")
  local scale = ({ [""] = 1, ms = 1e-3, s = 1, m = 60, h = 3600 })[unit or ""]
  n = tonumber(n)
  if not n or not scale then error("not a duration: " .. tostring(text), 2) end
  return n * scale
end

-- A number that is not finite, as "n/a" (NaN), "inf" or "-inf"; nil
-- for a finite one.
local function not_finite(n)
  if n ~= n then return "n/a" end
  if n == math.huge then return "inf" end
  if n == -math.huge then return "-inf" end
end

-- "12.3 MB" (decimal units); NaN gives "n/a", infinity "inf B".
function fileserv.format_bytes(n)
  n = assert(tonumber(n), "format_bytes: a number expected")
  local odd = not_finite(n)
  if odd then return odd == "n/a" and odd or odd .. " B" end
  local units, i = { "B", "kB", "MB", "GB", "TB" }, 1
  while n >= 1000 and i < #units do
    n, i = n / 1000, i + 1
  end
  return string.format(i == 1 and "%.0f %s" or "%.1f %s", n, units[i])
end

-- "12.3s" below a minute, else "4m05s"; NaN gives "n/a", infinity "inf s".
function fileserv.format_seconds(s)
  s = assert(tonumber(s), "format_seconds: a number expected")
  local odd = not_finite(s)
  if odd then return odd == "n/a" and odd or odd .. " s" end
  if s < 60 then return string.format("%.1fs", s) end
  return string.format("%.0fm%02ds", s // 60, math.floor(s % 60))
end

return fileserv
