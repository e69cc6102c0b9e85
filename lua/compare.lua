-- lua/compare.lua (require "fileserv.compare"): `fileserv compare BASE.json
-- NEW.json`, two matrix results side by side. Cells are matched by their
-- configuration; for each pair the change in throughput (new over base)
-- comes with its confidence interval (fileserv.stats.compare on the
-- runs), and a significant loss beyond --fail-above makes the exit status
-- 1, so that CI can gate on it.
local fileserv = require "fileserv"
local matrix = require "fileserv.matrix"
local stats = require "fileserv.stats"

local compare = {}

local usage = [[
usage: fileserv compare [options] BASE.json NEW.json
  Compares two results.json files of scripts/stress_all.lua cell by cell:
  the change in throughput of NEW over BASE with its confidence interval,
  significant regressions and improvements marked.
  --fail-above PCT   exit 1 when a cell is significantly slower by more
                     than PCT percent (default 0: any significant loss);
                     significant here means after Holm's correction for
                     the number of cells, so that chance alone fails a
                     comparison of identical code at most 1 - X of the time
  --confidence X     of the intervals (default 0.95)
  --json             print the comparison as JSON instead of a table
Exit status: 0 no regression beyond the limit, 1 regression, 2 usage,
3 a file cannot be read or is not a results file.]]

-- Compares two results tables (as in results.json). Returns a table with
-- `cells` (one entry per matched configuration: key, base and new cell
-- numbers and medians, ratio, ci_low, ci_high, verdict, regression),
-- `only_base`, `only_new` (keys), and the counts `improved`,
-- `regressed`, `same`, `unknown`, `failing` (regressions beyond the
-- limit). opts: fail_above (a fraction, default 0), confidence.
function compare.results(base, new, opts)
  opts = opts or {}
  local limit, conf = opts.fail_above or 0, opts.confidence or 0.95
  local by_key, seen = {}, {}
  for _, c in ipairs(base.cells) do by_key[matrix.key(c)] = c end
  local out = { cells = {}, only_base = {}, only_new = {}, improved = 0,
                regressed = 0, same = 0, unknown = 0, failing = 0 }
  for _, n in ipairs(new.cells) do
    local key = matrix.key(n)
    local b = by_key[key]
    if b then
      seen[key] = true
      local c = stats.compare(matrix.samples(n, "throughput_Bps"),
                              matrix.samples(b, "throughput_Bps"), conf)
      local entry = {
        key = key, base = b.number, new = n.number,
        base_median = b.throughput_Bps and b.throughput_Bps.median,
        new_median = n.throughput_Bps and n.throughput_Bps.median,
        ratio = c.ratio, ci_low = c.ci_low, ci_high = c.ci_high, p = c.p,
        verdict = c.verdict == "faster" and "improved" or
                  c.verdict == "slower" and "regressed" or c.verdict,
      }
      out[entry.verdict] = out[entry.verdict] + 1
      out.cells[#out.cells + 1] = entry
    else
      out.only_new[#out.only_new + 1] = key
    end
  end
  for _, b in ipairs(base.cells) do
    if not seen[matrix.key(b)] then out.only_base[#out.only_base + 1] = matrix.key(b) end
  end
  -- Among a hundred cells a few change "significantly" by chance alone,
  -- so a regression fails the comparison only if it holds after Holm's
  -- correction for the number of cells compared.
  local ps = {}
  for i, e in ipairs(out.cells) do ps[i] = e.p or false end
  local keep = stats.holm(ps, 1 - conf)
  for i, e in ipairs(out.cells) do
    e.holds_corrected = keep[i]
    e.regression = e.verdict == "regressed" and keep[i] and 1 - e.ratio > limit
    if e.regression then out.failing = out.failing + 1 end
  end
  return out
end

local function read_results(path)
  local f, err = io.open(path)
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  local ok, t = pcall(fileserv.json.decode, text)
  if not ok or type(t) ~= "table" or t.schema ~= matrix.SCHEMA or type(t.cells) ~= "table" then
    return nil, path .. ": not a results.json of schema " .. matrix.SCHEMA
  end
  return t
end

local function pct(x) return x and string.format("%+.1f%%", (x - 1) * 100) or "-" end
local function mbs(x) return x and string.format("%.1f", x / 1e6) or "-" end

local function print_table(r, base, new)
  print(string.format("base: %s (%s)", base.meta.command or "?", base.meta.date or "?"))
  print(string.format("new:  %s (%s)", new.meta.command or "?", new.meta.date or "?"))
  print(string.format("%-48s %10s %10s %8s %20s  %s", "cell (op|size|clients|servers|mode|pool)",
    "base MB/s", "new MB/s", "change", "95% CI", "verdict"))
  for _, e in ipairs(r.cells) do
    print(string.format("%-48s %10s %10s %8s %20s  %s%s", e.key, mbs(e.base_median),
      mbs(e.new_median), pct(e.ratio),
      e.ci_low and (pct(e.ci_low) .. " to " .. pct(e.ci_high)) or "",
      e.verdict == "same" and "no significant difference" or e.verdict,
      e.regression and "  REGRESSION" or
        (e.verdict == "improved" or e.verdict == "regressed") and not e.holds_corrected
        and " (chance level once corrected)" or ""))
  end
  for _, k in ipairs(r.only_base) do print(k .. ": only in base") end
  for _, k in ipairs(r.only_new) do print(k .. ": only in new") end
end

-- The command: returns the exit status.
function compare.main(args)
  local ok, opts, files = pcall(fileserv.options, args,
    { fail_above = "0", confidence = "0.95", json = false, help = false })
  if ok and opts.help then print(usage) return 0 end
  local limit = ok and tonumber((tostring(opts.fail_above):gsub("%%$", "")))
  local conf = ok and tonumber(opts.confidence)
  if not ok or #files ~= 2 or not limit or limit < 0 or not conf or conf <= 0.5 or conf >= 1 then
    io.stderr:write("fileserv compare: ",
      not ok and opts or #files ~= 2 and "needs two results files" or "bad --fail-above or --confidence",
      " (see 'fileserv compare --help')\n")
    return 2
  end
  local base, err = read_results(files[1])
  local new, err2 = read_results(files[2])
  if not base or not new then
    io.stderr:write("fileserv compare: ", base and err2 or err, "\n")
    return 3
  end
  local r = compare.results(base, new, { fail_above = limit / 100, confidence = conf })
  if opts.json then
    print(fileserv.json.encode(r, true))
  else
    print_table(r, base, new)
    print(string.format("%d cells compared: %d improved, %d regressed (%d beyond %g%% " ..
      "after correcting for %d cell%s), " ..
      "%d no significant difference, %d without enough samples; %d only in base, %d only in new.",
      #r.cells, r.improved, r.regressed, r.failing, limit, #r.cells,
      #r.cells == 1 and "" or "s", r.same, r.unknown,
      #r.only_base, #r.only_new))
  end
  return r.failing > 0 and 1 or 0
end

return compare
