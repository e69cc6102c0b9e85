-- tests/t_verdict.lua: the statistics behind the matrix's figures and
-- verdicts (fileserv.stats, fileserv.matrix), on known inputs, run by the
-- embedded interpreter: fileserv run tests/t_verdict.lua BINARY
-- Reports each test and ends with "t_verdict: N passed, N failed (N
-- checks)" (tests/check.lua).
local stats = require "fileserv.stats"
local matrix = require "fileserv.matrix"
local unit = dofile((arg[0]:match("^(.*/)") or "") .. "check.lua")
local check, test = unit.check, unit.test

local function near(a, b, tol) return a and b and math.abs(a - b) <= tol end

test("t quantiles match the tables", function()
  -- two-sided 95% and 99% critical values, df 1 to infinity
  local table95 = { [1] = 12.706205, [2] = 4.302653, [3] = 3.182446, [4] = 2.776445,
                    [9] = 2.262157, [10] = 2.228139, [30] = 2.042272, [1000] = 1.962339 }
  for df, t in pairs(table95) do
    check(near(stats.t_quantile(0.975, df), t, 1e-5), "t(0.975, " .. df .. ")")
  end
  check(near(stats.t_quantile(0.995, 5), 4.032143, 1e-5), "t(0.995, 5)")
  check(near(stats.t_quantile(0.5, 3.7), 0, 1e-9), "median of t is 0")
  check(near(stats.t_cdf(-2.776445, 4), 0.025, 1e-6), "cdf at the lower quantile")
end)

test("summary of known samples", function()
  local s = stats.summary { 10, 12, 14 }
  check(s.n == 3 and s.mean == 12 and s.median == 12 and s.min == 10 and s.max == 14, "centre")
  check(near(s.sd, 2, 1e-12) and near(s.cv, 2 / 12, 1e-12), "spread")
  -- 12 +- 4.302653 * 2 / sqrt(3)
  check(near(s.ci_low, 7.031725, 1e-5) and near(s.ci_high, 16.968275, 1e-5), "95% interval")
  local one = stats.summary { 5 }
  check(one.n == 1 and one.median == 5 and one.ci_low == nil and one.cv == nil,
        "one sample: no interval, no cv")
  check(stats.summary({}).n == 0, "empty")
  check(stats.median { 4, 1, 3, 2 } == 2.5, "even median")
end)

test("verdicts on known samples", function()
  local c = stats.compare({ 200, 202, 198 }, { 100, 101, 99 })
  check(c.verdict == "faster" and near(c.ratio, 2, 1e-3), "2x faster")
  check(c.ci_low > 1.9 and c.ci_high < 2.1 and c.ci_low < c.ratio and c.ratio < c.ci_high,
        "interval around 2")
  check(stats.describe(c, "thread", "process"):find("^thread faster than process by 100%.0%%"),
        "described: " .. stats.describe(c, "thread", "process"))
  c = stats.compare({ 80, 81, 79 }, { 100, 101, 99 })
  check(c.verdict == "slower" and near(c.ratio, 0.8, 1e-3), "20% slower")
  check(stats.describe(c, "a", "b"):find("slower than b by 20%.0%%"), "slower described")
  c = stats.compare({ 100, 103, 98 }, { 101, 99, 100 })
  check(c.verdict == "same" and c.ci_low < 1 and c.ci_high > 1, "overlapping: same")
  check(stats.describe(c, "a", "b"):find("no significant difference"), "same described")
  c = stats.compare({ 100 }, { 50, 51 })
  check(c.verdict == "unknown" and near(c.ratio, 100 / math.sqrt(50 * 51), 1e-9),
        "one sample: no verdict, ratio still given")
  c = stats.compare({ 100, 100 }, { 50, 50 })
  check(c.verdict == "faster" and near(c.ratio, 2, 1e-12) and near(c.ci_low, 2, 1e-12), "no spread: exact")
  -- a wide spread on few samples must not give a verdict
  c = stats.compare({ 100, 200, 150 }, { 120, 90, 160 })
  check(c.verdict == "same", "noisy samples: no verdict")
end)

test("p-values agree with the intervals; Holm's correction", function()
  local c = stats.compare({ 200, 202, 198 }, { 100, 101, 99 })
  check(c.p < 0.001, "2x apart: tiny p " .. c.p)
  c = stats.compare({ 100, 103, 98 }, { 101, 99, 100 })
  check(c.p > 0.05, "overlapping: large p " .. c.p)
  check(stats.compare({ 100, 100 }, { 100, 100 }).p == 1, "identical, no spread: p 1")
  math.randomseed(99)
  local agree = 0
  for _ = 1, 300 do
    local a, b = {}, {}
    for i = 1, 3 do a[i], b[i] = 100 + 10 * math.random(), 104 + 10 * math.random() end
    local r = stats.compare(a, b)
    if (r.p < 0.05) == (r.verdict ~= "same") then agree = agree + 1 end
  end
  check(agree == 300, "p < 0.05 exactly when the 95% interval excludes 1: " .. agree)
  local keep = stats.holm({ 0.01, 0.04, 0.03, 0.005 }, 0.05)
  check(keep[1] and not keep[2] and not keep[3] and keep[4],
        "0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2 stops")
  keep = stats.holm({ 0.001, false, 0.2 }, 0.05)
  check(keep[1] and keep[2] == false and keep[3] == false, "a comparison without p is skipped")
  keep = stats.holm({ 0.02 }, 0.05)
  check(keep[1], "one comparison: uncorrected")
end)

-- A deterministic normal deviate (Box-Muller on Lua's seeded generator).
local function normal()
  return math.sqrt(-2 * math.log(1 - math.random())) * math.cos(2 * math.pi * math.random())
end

test("false positives on identical configurations stay near 5%", function()
  math.randomseed(20261130)
  local trials, positives = 4000, 0
  for _ = 1, trials do
    local a, b = {}, {}
    for i = 1, 3 do
      a[i] = 1000 * math.exp(0.1 * normal())
      b[i] = 1000 * math.exp(0.1 * normal())
    end
    if stats.compare(a, b).verdict ~= "same" then positives = positives + 1 end
  end
  local rate = positives / trials
  check(rate > 0.03 and rate < 0.07, string.format("false-positive rate %.3f", rate))
end)

test("a real difference is found", function()
  math.randomseed(7)
  local found, trials = 0, 500
  for _ = 1, trials do
    local a, b = {}, {}
    for i = 1, 3 do
      a[i] = 3000 * math.exp(0.1 * normal())
      b[i] = 1000 * math.exp(0.1 * normal())
    end
    if stats.compare(a, b).verdict == "faster" then found = found + 1 end
  end
  check(found / trials > 0.95, "3x with 10% noise found: " .. found .. "/" .. trials)
end)

test("Wilson interval of a proportion", function()
  local low, high = stats.wilson(2, 30)
  check(near(low, 0.018477, 1e-5) and near(high, 0.213235, 1e-5),
        string.format("2 of 30: %.6f to %.6f", low, high))
  low, high = stats.wilson(0, 10)
  check(low == 0 and near(high, 0.277533, 1e-5), "0 of 10: 0 to 0.2775")
  low, high = stats.wilson(10, 10)
  check(near(low, 0.722467, 1e-5) and high == 1, "10 of 10: 0.7225 to 1")
  low, high = stats.wilson(5, 100, 0.99)
  check(near(low, 0.016848, 1e-5) and near(high, 0.139150, 1e-5), "5 of 100 at 99%")
  low, high = stats.wilson(0, 0)
  check(low == 0 and high == 1, "no trials: nothing known")
  check(not pcall(stats.wilson, 3, 2), "k above n raises")
end)

local function cell(number, mode, pool, runs)
  local c = { number = number, operation = "download", volume = "10MB",
              client_workers = 5, server_workers = 5, server_mode = mode,
              client_pool = pool, runs = {} }
  for i, t in ipairs(runs) do
    c.runs[i] = { round = i, ok = 10, failed = 0, throughput_Bps = t, ops_per_s = t / 1e7,
                  bytes = 1e8, server_cpu_s = 0.5 }
  end
  return c
end

local settings = { confidence = 0.95, noisy_cv = 0.05, repeat_count = 3,
                   shared_cores = true, client_pool = "thread" }

test("a cell's figures", function()
  local c = matrix.summarize(cell(1, "thread", "thread", { 100e6, 110e6, 90e6 }), settings)
  check(c.samples == 3 and c.throughput_Bps.median == 100e6, "median")
  check(near(c.throughput_Bps.cv, 0.1, 1e-12) and c.noisy, "cv 10% is noisy")
  check(near(c.server_cpu_s_per_gb, 5, 1e-9), "cpu per GB")
  local bad = cell(2, "thread", "thread", { 100e6, 101e6 })
  bad.runs[3] = { round = 3, ok = 3, failed = 2, throughput_Bps = 5e6 }
  matrix.summarize(bad, settings)
  check(bad.samples == 2 and bad.failed == 2 and not bad.noisy, "a failed run is not a sample")
  local row = matrix.csv_row(c)
  check(row["No"] == 1 and row["Client workers succeeded/failed"] == "30/0" and
        row.noisy == "yes" and row.throughput_median_Bps == "100000000", "CSV row")
end)

test("pairs differ in one axis, or say both changed", function()
  local cells = {
    cell(1, "thread", "thread", { 100e6, 101e6, 99e6 }),
    cell(2, "process", "thread", { 50e6, 51e6, 49e6 }),
  }
  local cmp = matrix.comparisons(cells, { "thread", "process" }, 0.95)
  check(#cmp == 1 and cmp[1].axis == "server_mode" and cmp[1].verdict == "faster" and
        cmp[1].a == 1 and cmp[1].b == 2, "server mode alone")
  local meta = { cores = 2, settings = settings }
  local a = matrix.analysis(cells, cmp, meta)
  check(a.headline:find("thread faster in 1") and a.wins.thread == 1, "headline counts wins")
  check(table.concat(a.paragraphs, " "):find("only the server's mode"), "says what was held")
  cells[2].client_pool = "process"
  cmp = matrix.comparisons(cells, { "thread", "process" }, 0.95)
  check(cmp[1].axis == "pools", "both pools changed")
  a = matrix.analysis(cells, cmp, meta)
  local text = table.concat(a.paragraphs, " ")
  check(text:find("change together") and text:find("do not say which server mode"),
        "never credits the server mode when the client changed too")
  check(text:find("same 2 cores"), "warns about shared cores")
end)

test("the machine probe and its paragraph", function()
  local ms = matrix.probe()
  check(type(ms) == "number" and ms > 0, "the probe takes time")
  local function with_probes(values)
    local c = cell(1, "thread", "thread", { 100e6, 101e6, 99e6 })
    for i, v in ipairs(values) do c.runs[i].probe_ms = v end
    return { c }
  end
  local meta = { cores = 2, settings = settings }
  local p = matrix.probe_summary(with_probes { 10, 10.1, 9.9 })
  check(p.n == 3 and p.median_ms == 10 and p.min_ms == 9.9 and p.max_ms == 10.1, "summary")
  local text = table.concat(matrix.analysis(with_probes { 10, 10.1, 9.9 }, {}, meta).paragraphs, " ")
  check(text:find("took 10.0 ms at the median %(9.9 to 10.1 ms, CV 1.0%%%)") and
        text:find("below the 5%% noise threshold"), "steady machine: " .. text)
  text = table.concat(matrix.analysis(with_probes { 10, 13, 8 }, {}, meta).paragraphs, " ")
  check(text:find("above the 5%% noise threshold"), "unsteady machine: " .. text)
  text = table.concat(matrix.analysis({ cell(1, "thread", "thread", { 1, 2 }) }, {}, meta).paragraphs, " ")
  check(matrix.probe_summary({ cell(1, "thread", "thread", { 1, 2 }) }) == nil and
        not text:find("Machine:"), "no probes, no paragraph")
end)

test("SYN retransmissions: read from the kernel's counters and named", function()
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("TcpExt: SyncookiesSent PAWSTimewait TCPSynRetrans TWKilled\n",
          "TcpExt: 0 25 39 0\n",
          "IpExt: InNoRoutes\nIpExt: 0\n")
  f:close()
  check(matrix.syn_retransmits(path) == 39, "TCPSynRetrans from its column")
  f = assert(io.open(path, "w"))
  f:write("TcpExt: SyncookiesSent\nTcpExt: 0\n")
  f:close()
  check(matrix.syn_retransmits(path) == nil, "no such counter: nil")
  os.remove(path)
  check(matrix.syn_retransmits(path) == nil, "no file: nil")
  local live = matrix.syn_retransmits()
  check(live == nil or math.type(live) == "integer", "this machine's counter")
  local c = cell(7, "thread", "thread", { 100e6, 10e6, 99e6 })
  c.runs[2].syn_retransmits = 1
  local meta = { cores = 2, settings = settings }
  matrix.summarize(c, settings)
  check(c.syn_retransmits == 1, "a cell sums its runs'")
  local text = table.concat(matrix.analysis({ c }, {}, meta).paragraphs, " ")
  check(text:find("retransmitted 1 TCP SYN during 1 run %(#7 round 2"), "named: " .. text)
  c.runs[2].syn_retransmits = 0
  text = table.concat(matrix.analysis({ c }, {}, meta).paragraphs, " ")
  check(not text:find("SYN"), "none, not mentioned")
end)

test("a table of many pairs is corrected for their number", function()
  local cells, n = {}, 0
  local function add(mode, runs)
    n = n + 1
    local c = cell(n, mode, "thread", runs)
    c.volume = tostring(math.ceil(n / 2)) .. "MB"
    cells[n] = c
  end
  math.randomseed(5)
  for k = 1, 20 do
    local base = 100e6 * (1 + k / 10)
    add("thread", { base * 1.05, base * 0.95, base })
    -- pair 1 clearly apart, pair 2 barely, the others identical
    local f = k == 1 and 2 or k == 2 and 1.12 or 1
    add("process", { base * 1.02 / f, base * 0.98 / f, base / f })
  end
  for _, c in ipairs(cells) do matrix.summarize(c, settings) end
  local cmp = matrix.comparisons(cells, { "thread", "process" }, 0.95)
  check(#cmp == 20, "20 pairs")
  check(cmp[1].verdict == "faster" and cmp[1].holds_corrected, "a 2x difference holds")
  check(cmp[2].verdict == "faster" and not cmp[2].holds_corrected and
        cmp[2].text:find("not significant once corrected for 20 comparisons"),
        "a marginal one is marked: " .. cmp[2].text)
  local a = matrix.analysis(cells, cmp, { cores = 2, settings = settings })
  check(a.headline:find("Corrected for 20 comparisons, 1 of the 2 verdicts hold%."),
        "headline: " .. a.headline)
  local text = table.concat(a.paragraphs, " ")
  check(text:find("among 20 pairs about 1%.0 would be called") and text:find("leads to measure again"),
        "explained: " .. text)
end)

test("the analysis says when the load generator was the heavier side", function()
  local a = cell(1, "thread", "thread", { 100e6, 101e6, 99e6 })
  local b = cell(2, "process", "thread", { 100e6, 101e6, 99e6 })
  b.operation = "upload"
  for _, r in ipairs(a.runs) do r.client_cpu_s = 1.5 end -- server 0.5: 3x
  for _, r in ipairs(b.runs) do r.client_cpu_s = 0.25 end -- 0.5x
  matrix.summarize(a, settings)
  matrix.summarize(b, settings)
  local text = table.concat(matrix.analysis({ a, b }, {}, { cores = 2, settings = settings })
    .paragraphs, " ")
  check(text:find("more CPU than the server in 1 of 2 cells %(client over server CPU " ..
    "seconds, median 1%.75; download 3%.00, upload 0%.50%)"), "load generator: " .. text)
end)

local compare = require "fileserv.compare"

local function results(cells) return { schema = 1, meta = {}, cells = cells } end

test("compare against a baseline", function()
  local base = results { cell(1, "thread", "thread", { 100e6, 101e6, 99e6 }),
                         cell(2, "process", "process", { 100e6, 101e6, 99e6 }),
                         cell(3, "single", "thread", { 100e6, 101e6, 99e6 }) }
  local new = results { cell(1, "thread", "thread", { 80e6, 81e6, 79e6 }),
                        cell(2, "process", "process", { 120e6, 121e6, 119e6 }),
                        cell(4, "single", "process", { 100e6, 100e6, 100e6 }) }
  local r = compare.results(base, new)
  check(#r.cells == 2 and r.regressed == 1 and r.improved == 1 and r.failing == 1,
        "one regression, one improvement")
  check(r.cells[1].verdict == "regressed" and near(r.cells[1].ratio, 0.8, 1e-3) and
        r.cells[1].regression, "the regression")
  check(#r.only_base == 1 and #r.only_new == 1, "unmatched cells listed")
  r = compare.results(base, new, { fail_above = 0.25 })
  check(r.regressed == 1 and r.failing == 0, "a 20% loss is within a 25% limit")
  r = compare.results(base, base)
  check(r.same == 3 and r.failing == 0, "a result against itself: no difference")
  -- 20 cells: one 2x loss, one marginal loss, the rest unchanged
  local b20, n20 = {}, {}
  for k = 1, 20 do
    local v = 100e6 * (1 + k / 10)
    b20[k] = cell(k, "thread", "thread", { v * 1.05, v * 0.95, v })
    b20[k].volume = k .. "MB"
    local f = k == 1 and 2 or k == 2 and 1.12 or 1
    n20[k] = cell(k, "thread", "thread", { v * 1.02 / f, v * 0.98 / f, v / f })
    n20[k].volume = k .. "MB"
  end
  r = compare.results(results(b20), results(n20))
  check(r.regressed == 2 and r.failing == 1 and r.cells[1].regression and
        r.cells[2].verdict == "regressed" and not r.cells[2].holds_corrected and
        not r.cells[2].regression, "a marginal loss among 20 cells does not fail the gate")
end)

os.exit(unit.done("t_verdict"))
