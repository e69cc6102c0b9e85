-- tests/t_report.lua: tests of the readable outputs of a results table
-- (fileserv.html's page and charts), run by the embedded
-- interpreter on a results table built here:
--   fileserv run tests/t_report.lua BINARY [DIR]
-- With DIR, also writes the fixture's results.html and results.svg there
-- (tests/test_report.py parses them as XML and renders them in Chromium).
-- Reports each test and ends with "t_report: N passed, N failed (N
-- checks)" (tests/check.lua).
local html = require "fileserv.html"
local report = require "fileserv.report"
local unit = dofile((arg[0]:match("^(.*/)") or "") .. "check.lua")
local check, test = unit.check, unit.test
local outdir = arg[2]

local HOSTILE = [[<script>alert("x")</script>"><img src=x onerror=alert(1)>&amp;']]

-- A results table as scripts/stress_all.lua writes it (schema 1): upload
-- and download x 10/50 MB x 1/5 client workers x 1/5 server workers, for
-- the thread and the process pool; cell 3 is noisy, cell 6 failed, cell
-- 7 has no resource figures, and hostile text sits in every free field.
local function fixture(shared_cores)
  local cells, comparisons, number = {}, {}, 0
  for _, pool in ipairs { "thread", "process" } do
    for _, op in ipairs { "download", "upload" } do
      for vi, volume in ipairs { "10MB", "50MB" } do
        for _, cw in ipairs { 1, 5 } do
          for _, sw in ipairs { 1, 5 } do
            number = number + 1
            local base = (pool == "thread" and 900e6 or 800e6) / vi + number * 1234567.891
            local stat = function(scale)
              return { median = base * scale, mean = base * scale * 1.001, min = base * scale * 0.95,
                       max = base * scale * 1.04, ci_low = base * scale * 0.97,
                       ci_high = base * scale * 1.03, cv = 0.0123 + number / 1000 }
            end
            local c = {
              number = number, operation = op, volume = volume, volume_bytes = vi == 1 and 10000000 or 50000000,
              client_workers = cw, server_workers = sw, server_mode = pool, client_pool = pool,
              samples = 3, throughput_Bps = stat(1), ops_per_s = stat(1 / (vi * 1e7)),
              latency_p50_ms = 11.111 * number, latency_p99_ms = 22.226 * number,
              time_per_client_s = 0.01234 * number, throughput_per_client_Bps = base / cw,
              ok = 3 * cw, failed = 0, verified_bytes = 3 * cw * (vi == 1 and 10000000 or 50000000),
              server_cpu_s = 0.456 * number, server_cpu_s_per_gb = 1.234 + number,
              server_peak_rss_bytes = 12345678 + number, client_cpu_s = 0.321 * number,
              server_succeeded = 3 * cw, server_failed = 0,
              noisy = false, errors = "", first_error = "",
              runs = {},
            }
            for round = 1, 3 do
              c.runs[round] = { round = round, throughput_Bps = base * (0.99 + round / 100),
                ops_per_s = 9.87 + round, wall_s = 0.5 + round / 7, ok = cw, failed = 0,
                latency_p50_ms = 10 + round, latency_p99_ms = 20 + round,
                server_cpu_s = 0.45 * round, client_cpu_s = 0.32 * round }
            end
            cells[#cells + 1] = c
          end
        end
      end
    end
  end
  local noisy, bad, bare = cells[3], cells[6], cells[7]
  noisy.noisy, noisy.throughput_Bps.cv = true, 0.21
  noisy.throughput_Bps.ci_low = -0.2 * noisy.throughput_Bps.median -- two wild samples
  bad.samples, bad.failed, bad.ok, bad.throughput_Bps, bad.ops_per_s = 0, 2, 0, {}, {}
  bad.errors, bad.runs = "timeout=1;" .. HOSTILE, {}
  bad.first_error = "GET stress-10MB: " .. HOSTILE .. " raw \xff\xfe\0\27[1m bytes"
  bad.server_succeeded, bad.server_failed = 1, 2
  bad.latency_p50_ms, bad.latency_p99_ms = nil, nil
  bare.server_cpu_s, bare.server_cpu_s_per_gb, bare.server_peak_rss_bytes, bare.client_cpu_s = nil, nil, nil, nil
  for i = 1, 16 do
    local a, b = cells[i], cells[i + 16]
    local ratio = 1 + (i - 8) / 50
    comparisons[i] = {
      axis = "pools", metric = "throughput_Bps", a = a.number, b = b.number,
      a_label = "thread", b_label = "process", operation = a.operation, volume = a.volume,
      client_workers = a.client_workers, server_workers = a.server_workers,
      ratio = ratio, ci_low = ratio - 0.0123, ci_high = ratio + 0.0234,
      verdict = i < 8 and "slower" or i > 9 and "faster" or "same",
      text = i == 5 and HOSTILE or string.format("thread faster by %.0f%%", (ratio - 1) * 100),
    }
  end
  return {
    schema = 1,
    meta = {
      fileserv = "0.2.0", command = "fileserv run scripts/stress_all.lua " .. HOSTILE,
      date = "2026-11-30T05:00:00Z", host = "host" .. HOSTILE, cpu_model = "AMD EPYC " .. HOSTILE,
      cores = 2, memory_bytes = 25769803776, kernel = "6.1.0-" .. HOSTILE, codec = "avx512",
      sync = false, target = "loopback", complete = true, wall_s = 250.3,
      settings = { ["repeat"] = 3, min_time_s = 0.5, warmup_s = 0.1, layout = "original",
                   confidence = 0.95, noisy_cv = 0.05, shared_cores = shared_cores, seed = 12345 },
    },
    cells = cells, comparisons = comparisons,
    analysis = { headline = "Thread and process are level " .. HOSTILE,
                 paragraphs = { "First paragraph " .. HOSTILE, "Second paragraph." },
                 wins = { thread = 7, process = 7, same = 2 } },
  }
end

-- The texts of a table row's cells, tags stripped, entities decoded.
local function row_texts(page, id)
  local row = page:match('<tr id="' .. id:gsub("%p", "%%%0") .. '"[^>]*>(.-)</tr>')
  if not row then return nil end
  local texts = {}
  for td in row:gmatch("<td[^>]*>(.-)</td>") do
    texts[#texts + 1] = td:gsub("<[^>]*>", ""):gsub("&lt;", "<"):gsub("&gt;", ">")
      :gsub("&quot;", '"'):gsub("&#39;", "'"):gsub("&amp;", "&")
  end
  return texts
end

local function same_list(got, want, what)
  if not got then return check(false, what .. ": row missing") end
  for i = 1, math.max(#got, #want) do
    if got[i] ~= want[i] then
      return check(false, string.format("%s: column %d is %q, want %q", what, i,
                                        tostring(got[i]), tostring(want[i])))
    end
  end
  check(true, what)
end

-- The numbers as the page must show them, computed here from the JSON
-- values: MB/s with one decimal, ms with two, seconds with three, CV as a
-- percentage, counts with thousands separators, n/a when absent.
local function f(fmt, v, scale) return v == nil and "n/a" or string.format(fmt, v / (scale or 1)) end
local function grouped(v)
  if v == nil then return "n/a" end
  local s = tostring(math.tointeger(v))
  return s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
end
local function range(fmt, lo, hi, scale)
  return (lo and hi) and f(fmt, lo, scale) .. "–" .. f(fmt, hi, scale) or "n/a"
end

local results = fixture(true)
local page = html.render(results)
local svg = html.svg(results)

test("self-contained page", function()
  for _, bad in ipairs { "http://", "https://", "@import", "url(" } do
    check(not page:lower():find(bad, 1, true), "page has no " .. bad)
  end
  local allowed, offenders, tags = {}, {}, 0
  for name in ([[!doctype html head meta title style body h1 h2 p b section div svg g path
                rect circle line text a table thead tbody tr th td span code details summary]]):gmatch("%S+") do
    allowed[name] = true
  end
  for tag in page:gmatch("<[^>]*>") do
    tags = tags + 1
    local href = tag:match('href="([^"]*)"')
    if not allowed[tag:match("^</?([%w!]+)"):lower()] or tag:lower():find("src=", 1, true)
       or href and not (href:find("^#cell%-%d+$") or href == "#cells") then
      offenders[#offenders + 1] = tag
    end
  end
  check(#offenders == 0, "only known elements, no sources, links within the page: "
        .. table.concat(offenders, " "))
  check(tags > 1000, "tags found: " .. tags)
  check(page:find("^<!DOCTYPE html>") and page:find("</html>\n$"), "one whole document")
  check(page:find('aria-label="legend"', 1, true) and
        select(2, page:gsub('aria%-label="%a+ throughput"', "")) == 2, "legend and a chart per operation inline")
end)

test("cell rows show the JSON's numbers", function()
  for _, c in ipairs(results.cells) do
    local t, o = c.throughput_Bps, c.ops_per_s
    local flags = (c.failed > 0 or c.samples == 0) and "FAILED" or c.noisy and "noisy" or ""
    same_list(row_texts(page, "cell-" .. c.number), {
      tostring(c.number), c.operation, c.volume, tostring(c.client_workers),
      tostring(c.server_workers), c.server_mode, tostring(c.samples),
      f("%.1f", t.median, 1e6), range("%.1f", t.ci_low, t.ci_high, 1e6),
      range("%.1f", t.min, t.max, 1e6), f("%.1f%%", t.cv, 0.01),
      f("%.1f", o.median), f("%.2f", c.latency_p50_ms), f("%.2f", c.latency_p99_ms),
      f("%.3f", c.time_per_client_s), f("%.1f", c.throughput_per_client_Bps, 1e6),
      grouped(c.ok), grouped(c.failed), grouped(c.server_succeeded) .. " / " .. grouped(c.server_failed),
      grouped(c.verified_bytes), flags, c.errors,
      (c.first_error:gsub("[\xfe\xff%c]", "\u{FFFD}")),
    }, "cell " .. c.number)
  end
end)

test("resource rows show the JSON's numbers", function()
  local section = page:match('id="resources".-</table>')
  local n = 0
  for row in section:gmatch("<tr[^>]*>(.-)</tr>") do
    local texts = {}
    for td in row:gmatch("<td[^>]*>(.-)</td>") do texts[#texts + 1] = td:gsub("<[^>]*>", "") end
    if #texts > 0 then
      n = n + 1
      local c = results.cells[n]
      same_list(texts, { tostring(c.number), c.operation, c.volume, tostring(c.client_workers),
        tostring(c.server_workers), c.client_pool, f("%.2f", c.server_cpu_s),
        f("%.2f", c.server_cpu_s_per_gb), f("%.1f", c.server_peak_rss_bytes, 1e6),
        f("%.2f", c.client_cpu_s) }, "resources of cell " .. c.number)
    end
  end
  check(n == #results.cells, "a resource row per cell: " .. n)
  check(row_texts(page, "cell-7") and section:find("<td class=\"n\">n/a</td>"), "absent figures are n/a")
end)

test("comparison rows", function()
  local section = page:match('id="comparisons".-</table>')
  local n = 0
  for row in section:gmatch("<tr>(.-)</tr>") do
    local texts = {}
    for td in row:gmatch("<td[^>]*>(.-)</td>") do texts[#texts + 1] = td:gsub("<[^>]*>", "") end
    if #texts > 0 then
      n = n + 1
      local k = results.comparisons[n]
      check(texts[7] == f("%.3f", k.ratio), "ratio of comparison " .. n .. ": " .. texts[7])
      check(texts[8] == range("%.3f", k.ci_low, k.ci_high), "CI of comparison " .. n)
      check(texts[10] == k.verdict, "verdict of comparison " .. n)
    end
  end
  check(n == #results.comparisons, "a row per comparison: " .. n)
  check(select(2, section:gsub('aria%-label="ratio"', "")) == n, "a ratio plot per comparison")
end)

test("hostile text is escaped", function()
  for name, doc in pairs { page = page, svg = svg } do
    check(not doc:find("<script", 1, true) and not doc:find("<img", 1, true), name .. ": no injected tags")
  end
  check(page:find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&quot;&gt;&lt;img src=x", 1, true),
        "hostile text shown escaped")
  check(page:find("&amp;amp;&#39;", 1, true), "ampersand and quote escaped")
  for _, where in ipairs { "GET stress-10MB: &lt;script", "host&lt;script", "AMD EPYC &lt;script",
                           "6.1.0-&lt;script", "level &lt;script", "First paragraph &lt;script" } do
    check(page:find(where, 1, true), "escaped: " .. where)
  end
end)

test("noisy and failed cells are flagged", function()
  check(page:find('<tr id="cell-3" class="noisy">', 1, true), "noisy row class")
  check(page:find('<tr id="cell-6" class="failed">', 1, true), "failed row class")
  check(page:find('<tr id="cell-1">', 1, true), "quiet row has no class")
  check(page:find("1 noisy cell", 1, true) and page:find("1 cell had failures", 1, true), "summaries")
  check(select(2, svg:gsub('fill="#ffffff" stroke=', "")) == 2, "the noisy cell's and the legend's hollow markers")
  check(select(2, svg:gsub("✕", "")) == 2, "the failed cell crossed, and the legend's cross")
end)

test("charts: both sides on one scale with error bars", function()
  local with_ci = 0
  for _, c in ipairs(results.cells) do
    if c.throughput_Bps.ci_low then with_ci = with_ci + 1 end
  end
  for name, doc in pairs { page = page, svg = svg } do
    check(select(2, doc:gsub('class="ci"', "")) == with_ci, name .. ": an error bar per cell with a CI")
    check(doc:find("throughput (MB/s)", 1, true), name .. ": y axis title with unit")
    check(doc:find("workers: server (upper row), client (lower row)", 1, true),
          name .. ": x axis title")
    local panel = doc:match(">download 10MB<.-download 50MB")
    check(panel and panel:find("10MB, 5 client workers, 5 server workers, thread:", 1, true)
          and panel:find("10MB, 5 client workers, 5 server workers, process:", 1, true),
          name .. ": both sides in one panel")
  end
  -- one y scale per operation: both download panels have the same ticks
  local chart = page:match('aria%-label="download throughput">(.-)</svg>')
  local ticks = {}
  for tick in chart:gmatch('text%-anchor="end" fill="#444444">([%d.e+]+)</text>') do
    ticks[#ticks + 1] = tonumber(tick)
  end
  local n = #ticks // 2
  check(n >= 3 and n <= 6 and #ticks == 2 * n, "3 to 6 ticks a panel: " .. #ticks)
  for i = 1, n do check(ticks[i] == ticks[n + i], "tick " .. i .. " on both panels") end
  local top = 0
  for _, c in ipairs(results.cells) do
    local t = c.throughput_Bps
    if c.operation == "download" and t.max then
      top = math.max(top, t.max / 1e6, math.min(t.ci_high, 1.5 * t.max) / 1e6)
    end
  end
  check(ticks[n] and ticks[n] >= top and ticks[n] < 1.5 * top, "scale fits every sample and interval: "
        .. tostring(ticks[n]) .. " for " .. top)
  -- an interval below zero is cut at the axis, without its lower cap
  local caps = {}
  for d in page:gmatch('class="ci" d="([^"]*)"') do
    local n_caps = select(2, d:gsub("h6", ""))
    caps[n_caps] = (caps[n_caps] or 0) + 1
  end
  check(caps[1] == 1 and caps[2] == with_ci - 1, "one interval cut")
  check(svg:find('^<svg xmlns="http://www.w3.org/2000/svg"') and not svg:find("https://", 1, true),
        "standalone SVG document")
  check(svg:find("thread vs process", 1, true), "title names the sides")
end)

test("report.svg is the same chart", function()
  check(report.svg(results) == svg, "report.svg draws with fileserv.html")
end)

test("text is made valid UTF-8 without control characters", function()
  check(page:find("raw \u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}[1m bytes", 1, true), "bad bytes replaced")
  check(utf8.len(page) and utf8.len(svg), "page and svg are valid UTF-8")
  check(html.escape("é ✕ \t\n") == "é ✕ \t\n", "valid text and white space kept")
end)

test("metadata and warnings", function()
  for _, want in ipairs { "settings.repeat</b></td>\n<td>3", "24.0 GiB (25,769,803,776 bytes)",
                          "settings.seed</b></td>\n<td>12345", "Client and server could run on the same cores",
                          "thread faster: 7; process faster: 7; no clear difference: 2" } do
    check(page:find(want, 1, true), "page shows " .. want)
  end
  local quiet = html.render(fixture(false))
  check(not quiet:find("same cores", 1, true), "no shared-cores warning when false")
  local cut = fixture(false)
  cut.meta.complete, cut.meta.interrupted = false, "SIGINT"
  check(html.render(cut):find("Incomplete run</b> (interrupted by SIGINT)", 1, true), "incomplete run")
end)

test("an empty table renders", function()
  local empty = html.render { schema = 1, meta = {}, cells = {}, comparisons = {} }
  check(empty:find("No analysis", 1, true) and empty:find("</html>", 1, true), "page")
  check(html.svg { cells = {} }:find("</svg>", 1, true), "svg")
end)

if outdir then
  for name, text in pairs { ["results.html"] = page, ["results.svg"] = svg } do
    local out = assert(io.open(outdir .. "/" .. name, "w"))
    out:write(text)
    out:close()
  end
end

test("verdicts that do not hold after the correction are marked", function()
  local r = fixture(true)
  r.comparisons[12].holds_corrected = false
  r.comparisons[13].holds_corrected = true
  r.analysis.holds_corrected = 1
  local p = html.render(r)
  local section = p:match('id="comparisons".-</p>')
  check(section:find('<td class="v%-same">faster%*</td>') and
        section:find('<td class="v%-faster">faster</td>'), "the weak verdict is muted and marked")
  check(section:find("%* not significant once corrected for 16 comparisons"), "the mark explained")
  check(p:find("corrected for 16 comparisons, 1 of the verdicts hold", 1, true), "the wins line")
  check(not page:find("faster*", 1, true), "no mark without the correction's figures")
end)

os.exit(unit.done("t_report"))
