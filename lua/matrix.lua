-- lua/matrix.lua (require "fileserv.matrix"): what the stress matrix
-- makes of its measurements. A cell is one configuration (operation,
-- size, client workers, server workers, server mode, client pool)
-- measured in several rounds; this module turns a cell's runs into its
-- figures and spread, pairs cells that differ in one axis into verdicts,
-- writes the analysis from those verdicts, and gives the CSV columns. The
-- results table it builds is what results.json holds (docs/results.md);
-- `fileserv compare` reads two of them back.
local fileserv = require "fileserv"
local stats = require "fileserv.stats"

local matrix = { SCHEMA = 1 }

-- The machine's own steadiness. A fixed amount of interpreter work (no
-- I/O, no allocation) is timed just before each run, while the servers
-- sit idle: its spread over the whole matrix is the floor under the
-- cells' spread. A virtual machine sharing its host, or a CPU changing
-- its clock, varies this by 10% or more, and no cell can be steadier
-- than the machine that runs it.
matrix.PROBE_STEPS = 1500000

function matrix.probe()
  local t0, s = fileserv.now(), 0
  for i = 1, matrix.PROBE_STEPS do s = s + i % 7 end
  return (fileserv.now() - t0) * 1e3, s
end

-- The kernel's count of TCP SYN retransmissions on this machine
-- (TCPSynRetrans in /proc/net/netstat), or nil where it cannot be read.
-- A retransmitted SYN delays its connection by a second or more. On
-- loopback it happens when a client port is reused while the server
-- still holds the last connection on it in TIME_WAIT and refuses the new
-- SYN: a run with one has a second-long operation that its cell's spread
-- shows and the analysis names.
function matrix.syn_retransmits(path)
  local f = io.open(path or "/proc/net/netstat")
  if not f then return nil end
  local names
  for line in f:lines() do
    if line:match("^TcpExt:") then
      if not names then
        names = line
      else
        local i, values = 0, {}
        for v in line:gmatch("%S+") do values[#values + 1] = v end
        for name in names:gmatch("%S+") do
          i = i + 1
          if name == "TCPSynRetrans" then
            f:close()
            return math.tointeger(values[i])
          end
        end
      end
    end
  end
  f:close()
  return nil
end

-- One run of a cell as the matrix measures it: the probe, then
-- stress() (which returns what fileserv.stress returns), with the SYN
-- retransmissions during it. Appends the run record to cell.runs and
-- returns it.
function matrix.measure(cell, round, stress)
  local probe_ms = matrix.probe()
  local syn = matrix.syn_retransmits()
  local result, err = stress()
  local run = matrix.run_record(result, err, round)
  run.probe_ms = probe_ms
  local syn_after = matrix.syn_retransmits()
  run.syn_retransmits = syn and syn_after and syn_after - syn
  cell.runs[#cell.runs + 1] = run
  return run
end

-- The probe's figures over every run of the cells (nil without probes).
function matrix.probe_summary(cells)
  local ms = {}
  for _, c in ipairs(cells) do
    for _, r in ipairs(c.runs) do ms[#ms + 1] = r.probe_ms end
  end
  if #ms == 0 then return nil end
  local s = stats.summary(ms)
  return { steps = matrix.PROBE_STEPS, n = s.n, median_ms = s.median, min_ms = s.min,
           max_ms = s.max, cv = s.cv }
end

-- The fields that name a configuration, in the order that builds its key.
local KEY_FIELDS = { "operation", "volume", "client_workers", "server_workers",
                     "server_mode", "client_pool" }

function matrix.key(cell)
  local parts = {}
  for i, f in ipairs(KEY_FIELDS) do parts[i] = tostring(cell[f]) end
  return table.concat(parts, "|")
end

local function server_cpu(srv)
  if not srv or srv.cpu_user_s == nil then return nil end
  return srv.cpu_user_s + (srv.cpu_system_s or 0)
end

-- The fileserv.stress options of one run of a cell (its file: path,
-- name, upload_name) against target: every client worker repeats the
-- operation until settings.min_time_s has passed, after settings.warmup_s
-- that is not counted, every download verified.
function matrix.stress_options(cell, target, settings)
  local file = cell.file
  return {
    server = target, op = cell.operation, file = file.path,
    name = cell.operation == "upload" and file.upload_name or file.name,
    clients = cell.client_workers, pool = cell.client_pool, verify = true,
    timeout = settings.timeout_s, duration = math.max(settings.min_time_s, 1e-3),
    warmup = settings.warmup_s > 0 and settings.warmup_s or nil,
    cpus = settings.client_cpus,
  }
end

-- One round of a cell, from fileserv.stress's result (or its error).
function matrix.run_record(result, err, round)
  if not result then
    return { round = round, ok = 0, failed = 1, error = tostring(err) }
  end
  local lat, srv = result.latency_ms or {}, result.server
  local wall = result.wall_s or 0
  return {
    round = round, ok = result.ok, failed = result.failed, wall_s = wall,
    throughput_Bps = result.throughput_Bps,
    ops_per_s = result.ops_per_s or (wall > 0 and result.ok / wall or 0),
    latency_p50_ms = lat.p50, latency_p99_ms = lat.p99,
    time_per_client_s = result.client_time_s,
    throughput_per_client_Bps = result.client_throughput_Bps,
    bytes = result.bytes, verified_bytes = result.verified_bytes,
    server_cpu_s = server_cpu(srv),
    server_peak_rss_bytes = srv and srv.peak_rss_bytes,
    server_succeeded = srv and srv.succeeded, server_failed = srv and srv.failed,
    client_cpu_s = result.client_cpu_s,
    client_engine = result.engine, -- event, thread or process (stress --help)
    errors = result.errors, first_error = result.first_error,
    interrupted = result.interrupted,
    instances = result.instances, -- a merged run's (--instances)
  }
end

-- A run counts as a sample when every operation in it succeeded.
local function is_sample(run)
  return run.error == nil and run.failed == 0 and run.ok > 0
    and not run.interrupted
end

local function column(runs, field)
  local out = {}
  for _, r in ipairs(runs) do
    if r[field] ~= nil then out[#out + 1] = r[field] end
  end
  return out
end

local function spread(values, confidence)
  local s = stats.summary(values, confidence)
  if s.n == 0 then return nil end
  return { median = s.median, mean = s.mean, min = s.min, max = s.max,
           ci_low = s.ci_low, ci_high = s.ci_high, cv = s.cv }
end

local function error_list(runs)
  local counts, out = {}, {}
  for _, r in ipairs(runs) do
    for class, n in pairs(r.errors or {}) do
      if n > 0 then counts[class] = (counts[class] or 0) + n end
    end
    if r.error then counts.start = (counts.start or 0) + 1 end
  end
  for class, n in pairs(counts) do out[#out + 1] = class .. "=" .. n end
  table.sort(out)
  return table.concat(out, ";")
end

local function sum(runs, field)
  local total = 0
  for _, r in ipairs(runs) do total = total + (r[field] or 0) end
  return total
end

local function max_of(values)
  local m
  for _, v in ipairs(values) do if not m or v > m then m = v end end
  return m
end

-- Fills a cell's figures from its runs (cell.runs), as results.json has
-- them: medians and spreads over the samples, sums over every run.
function matrix.summarize(cell, settings)
  local conf = settings.confidence
  local samples = {}
  for _, r in ipairs(cell.runs) do
    if is_sample(r) then samples[#samples + 1] = r end
  end
  cell.samples = #samples
  cell.throughput_Bps = spread(column(samples, "throughput_Bps"), conf)
  cell.ops_per_s = spread(column(samples, "ops_per_s"), conf)
  for _, f in ipairs { "latency_p50_ms", "latency_p99_ms", "time_per_client_s",
                       "throughput_per_client_Bps", "server_cpu_s", "client_cpu_s" } do
    cell[f] = stats.median(column(samples, f))
  end
  cell.server_peak_rss_bytes = max_of(column(samples, "server_peak_rss_bytes"))
  local moved = stats.median(column(samples, "bytes"))
  cell.server_cpu_s_per_gb = cell.server_cpu_s and moved and moved > 0
    and cell.server_cpu_s / (moved / 1e9) or nil
  cell.ok, cell.failed = sum(cell.runs, "ok"), sum(cell.runs, "failed")
  cell.verified_bytes = sum(cell.runs, "verified_bytes")
  cell.server_succeeded = sum(cell.runs, "server_succeeded")
  cell.server_failed = sum(cell.runs, "server_failed")
  cell.syn_retransmits = sum(cell.runs, "syn_retransmits")
  local cv = cell.throughput_Bps and cell.throughput_Bps.cv
  cell.noisy = cv ~= nil and cv > settings.noisy_cv
  cell.errors = error_list(cell.runs)
  for _, r in ipairs(cell.runs) do
    if r.client_engine then cell.client_engine = r.client_engine break end
  end
  cell.first_error = ""
  for _, r in ipairs(cell.runs) do
    local e = r.error or r.first_error
    if e and e ~= "" then cell.first_error = e break end
  end
  return cell
end

-- The values of field over a cell's samples (its runs that succeeded).
function matrix.samples(cell, field)
  local out = {}
  for _, r in ipairs(cell.runs) do
    if is_sample(r) and r[field] then out[#out + 1] = r[field] end
  end
  return out
end

-- The comparison of cell a with cell b on throughput (ratio a/b).
function matrix.compare_pair(a, b, axis, a_label, b_label, confidence)
  local c = stats.compare(matrix.samples(a, "throughput_Bps"),
                          matrix.samples(b, "throughput_Bps"), confidence)
  return {
    axis = axis, metric = "throughput_Bps", a = a.number, b = b.number,
    a_label = a_label, b_label = b_label, operation = a.operation,
    volume = a.volume, client_workers = a.client_workers,
    server_workers = a.server_workers, ratio = c.ratio, ci_low = c.ci_low,
    ci_high = c.ci_high, verdict = c.verdict, p = c.p,
    text = stats.describe(c, a_label, b_label, confidence),
  }
end

-- Marks which verdicts hold for the whole family of comparisons (Holm,
-- at the same confidence): holds_corrected on each, and a note in the
-- text of a verdict that does not.
function matrix.correct(comparisons, confidence)
  local ps = {}
  for i, c in ipairs(comparisons) do ps[i] = c.p or false end
  local keep = stats.holm(ps, 1 - confidence)
  for i, c in ipairs(comparisons) do
    c.holds_corrected = keep[i]
    if (c.verdict == "faster" or c.verdict == "slower") and not keep[i] then
      c.text = string.format("%s; not significant once corrected for %d comparisons",
        c.text, #comparisons)
    end
  end
  return comparisons
end

-- Pairs the cells that differ in the server mode only (axis
-- "server_mode"), or in the server mode and the client pool together
-- (axis "pools", the original's layout): every pair of modes, in the
-- order given, for each operation, size, client and server workers.
function matrix.comparisons(cells, modes, confidence)
  local function config(c, mode)
    return table.concat({ c.operation, c.volume, c.client_workers,
                          c.server_workers, mode }, "|")
  end
  local by_config = {}
  for _, c in ipairs(cells) do by_config[config(c, c.server_mode)] = c end
  local out = {}
  for i = 1, #modes do
    for j = i + 1, #modes do
      for _, a in ipairs(cells) do
        local b = a.server_mode == modes[i] and by_config[config(a, modes[j])]
        if b then
          local axis = a.client_pool == b.client_pool and "server_mode" or "pools"
          out[#out + 1] = matrix.compare_pair(a, b, axis, modes[i], modes[j], confidence)
        end
      end
    end
  end
  return matrix.correct(out, confidence)
end

-- The client pool that goes with a server mode: the one held fixed, or
-- in the original's layout the mode's own (single's is thread).
function matrix.client_pool_for(mode, fixed)
  if fixed then return fixed end
  return mode == "process" and "process" or "thread"
end

local function pct(x) return string.format("%.0f%%", x * 100) end

-- Tallies verdicts by side: wins[a_label], wins[b_label], wins.same.
local function tally(comparisons)
  local wins, effects = { same = 0 }, {}
  for _, c in ipairs(comparisons) do
    if c.verdict == "faster" or c.verdict == "slower" then
      local winner = c.verdict == "faster" and c.a_label or c.b_label
      wins[winner] = (wins[winner] or 0) + 1
      effects[#effects + 1] = c.verdict == "faster" and c.ratio or 1 / c.ratio
    else
      wins.same = wins.same + 1
    end
  end
  return wins, effects
end

local function noise_paragraph(cells, settings)
  local cvs, noisy = {}, 0
  for _, c in ipairs(cells) do
    local cv = c.throughput_Bps and c.throughput_Bps.cv
    if cv then cvs[#cvs + 1] = cv end
    if c.noisy then noisy = noisy + 1 end
  end
  if #cvs == 0 then
    return "No cell has two samples, so the noise of this machine is unknown " ..
      "and no verdict can be given: run with --repeat 3 or more."
  end
  table.sort(cvs)
  return string.format("Noise: the coefficient of variation of a cell's throughput " ..
    "over its %d repetitions has median %.1f%% (worst %.1f%%); %d of %d cells " ..
    "vary by more than %s and are flagged noisy: treat their verdicts with care.",
    settings.repeat_count, stats.median(cvs) * 100, cvs[#cvs] * 100, noisy, #cells,
    pct(settings.noisy_cv))
end

local function machine_paragraph(probe, settings)
  if not probe or not probe.cv then return nil end
  local text = string.format("Machine: a fixed CPU loop (%g million interpreter steps, no I/O), " ..
    "timed before each of the %d runs with the servers idle, took %.1f ms at the median " ..
    "(%.1f to %.1f ms, CV %.1f%%). That is how much this machine's own speed varied " ..
    "while it measured.", probe.steps / 1e6, probe.n, probe.median_ms, probe.min_ms,
    probe.max_ms, probe.cv * 100)
  if probe.cv > settings.noisy_cv then
    return text .. string.format(" It is above the %s noise threshold: cells " ..
      "flagged noisy may owe their spread to the machine rather than to the server, " ..
      "and only differences well beyond it can reach a verdict.", pct(settings.noisy_cv))
  end
  return text .. string.format(" It is below the %s noise threshold, so a noisy " ..
    "cell is noisy in its own right.", pct(settings.noisy_cv))
end

local function syn_paragraph(cells)
  local runs, total, where = 0, 0, {}
  for _, c in ipairs(cells) do
    for _, r in ipairs(c.runs) do
      if (r.syn_retransmits or 0) > 0 then
        runs, total = runs + 1, total + r.syn_retransmits
        where[#where + 1] = string.format("#%d round %d", c.number, r.round)
      end
    end
  end
  if total == 0 then return nil end
  if #where > 8 then where = { table.concat(where, ", ", 1, 8) .. " and " .. (#where - 8) .. " more" } end
  return string.format("Connections: the kernel retransmitted %d TCP SYN%s during %d " ..
    "run%s (%s; counted machine-wide). Each delays a connection by a second or more, " ..
    "usually because a reused client port met the server's TIME_WAIT, and the cell's " ..
    "spread shows it.", total, total == 1 and "" or "s", runs, runs == 1 and "" or "s",
    table.concat(where, ", "))
end

-- Why a table of many verdicts needs a correction: the paragraph and how
-- many verdicts hold (nil with one pair or with no verdict to correct).
local function family_paragraph(comparisons, verdicts, confidence)
  if #comparisons < 2 or verdicts == 0 then return nil end
  local held = 0
  for _, c in ipairs(comparisons) do if c.holds_corrected then held = held + 1 end end
  local text = string.format("Many comparisons: each pair is judged at %s confidence, " ..
    "so among %d pairs about %.1f would be called faster or slower by chance alone if " ..
    "none differed. %d verdict%s reached; %d hold%s after Holm's correction, which keeps " ..
    "the chance of any false verdict in the whole table under %s.",
    pct(confidence), #comparisons, #comparisons * (1 - confidence), verdicts,
    verdicts == 1 and " was" or "s were", held, held == 1 and "s" or "",
    pct(1 - confidence))
  if held < verdicts then
    text = text .. " Treat the others as leads to measure again (more --repeat, " ..
      "longer --min-time), not findings."
  end
  return text, held
end

-- Whether the load generator was the heavier side: the client workers'
-- CPU seconds against the server's, per cell (medians over its runs).
local function load_paragraph(cells)
  local ratios, heavier, by_op = {}, 0, {}
  for _, c in ipairs(cells) do
    if c.client_cpu_s and c.server_cpu_s and c.server_cpu_s > 0 then
      local r = c.client_cpu_s / c.server_cpu_s
      ratios[#ratios + 1] = r
      if r > 1 then heavier = heavier + 1 end
      by_op[c.operation] = by_op[c.operation] or {}
      table.insert(by_op[c.operation], r)
    end
  end
  if #ratios == 0 then return nil end
  local ops = {}
  for op, rs in pairs(by_op) do
    ops[#ops + 1] = string.format("%s %.2f", op, stats.median(rs))
  end
  table.sort(ops)
  return string.format("Load generator: the client workers spent more CPU than the " ..
    "server in %d of %d cells (client over server CPU seconds, median %.2f; %s). " ..
    "Where the client is the heavier side, a cell measures the load generator as much " ..
    "as the server.", heavier, #ratios, stats.median(ratios), table.concat(ops, ", "))
end

local function held_paragraph(comparisons, settings)
  local pools = false
  for _, c in ipairs(comparisons) do if c.axis == "pools" then pools = true end end
  if pools then
    return "What changed: in this layout (the original's) the server's mode and the " ..
      "client's worker pool change together, so these verdicts compare two whole " ..
      "set-ups; they do not say which server mode is faster. Run with " ..
      "--client-pool thread to hold the client fixed and vary the server alone."
  end
  return string.format("What changed: only the server's mode; the client pool was " ..
    "held at %s, and the operation, size, client workers and server workers are " ..
    "the same within each pair.", tostring(settings.client_pool))
end

local function cores_paragraph(meta)
  local s = meta.settings
  if s.shared_cores then
    return string.format("Client and server ran on the same %s cores: a client that " ..
      "costs more CPU leaves less to its server, so part of any difference may be " ..
      "the load generator's. Give them disjoint CPUs with --server-cpus and " ..
      "--client-cpus to separate them.", tostring(meta.cores or "?"))
  end
  return string.format("Client and server ran on disjoint CPUs (server %s, client %s).",
    tostring(s.server_cpus), tostring(s.client_cpus))
end

-- The analysis: a headline and paragraphs written from the verdicts.
function matrix.analysis(cells, comparisons, meta)
  local wins, effects = tally(comparisons)
  local labels = {}
  for _, c in ipairs(comparisons) do
    if not labels[1] then labels = { c.a_label, c.b_label } end
  end
  local out = { wins = wins, paragraphs = {} }
  local conf = pct(meta.settings.confidence)
  if #comparisons == 0 then
    out.headline = "No pair of cells differs in the server mode alone: no verdict."
  else
    out.headline = string.format("%s vs %s over %d paired cells (%s confidence): " ..
      "%s faster in %d, %s faster in %d, no significant difference in %d.",
      labels[1], labels[2], #comparisons, conf, labels[1], wins[labels[1]] or 0,
      labels[2], wins[labels[2]] or 0, wins.same)
  end
  local p = out.paragraphs
  local family, held = family_paragraph(comparisons, #effects, meta.settings.confidence)
  if family then
    out.holds_corrected = held
    out.headline = string.format("%s Corrected for %d comparisons, %d of the %d " ..
      "verdicts hold.", out.headline, #comparisons, held, #effects)
  end
  if #effects > 0 then
    table.sort(effects)
    p[#p + 1] = string.format("Size of the effects: where a verdict was reached, " ..
      "the faster side was ahead by %.0f%% at the median (from %.0f%% to %.0f%%).",
      (stats.median(effects) - 1) * 100, (effects[1] - 1) * 100,
      (effects[#effects] - 1) * 100)
  end
  p[#p + 1] = family
  p[#p + 1] = held_paragraph(comparisons, meta.settings)
  p[#p + 1] = noise_paragraph(cells, meta.settings)
  p[#p + 1] = machine_paragraph(matrix.probe_summary(cells), meta.settings)
  p[#p + 1] = syn_paragraph(cells)
  p[#p + 1] = load_paragraph(cells)
  p[#p + 1] = cores_paragraph(meta)
  p[#p + 1] = matrix.scaling_paragraph(cells)
  return out
end

-- How throughput grows with client workers, per mode and operation: the
-- median over sizes and server workers of throughput at the most clients
-- over throughput at one client.
function matrix.scaling_paragraph(cells)
  local lo, hi, groups, order = {}, {}, {}, {}
  for _, c in ipairs(cells) do
    local g = c.server_mode .. " " .. c.operation
    if not groups[g] then groups[g], order[#order + 1] = {}, g end
    local t = c.throughput_Bps and c.throughput_Bps.median
    if t then
      local k = c.volume .. "|" .. c.server_workers
      groups[g][k] = groups[g][k] or {}
      groups[g][k][c.client_workers] = t
      lo[g] = math.min(lo[g] or math.huge, c.client_workers)
      hi[g] = math.max(hi[g] or 0, c.client_workers)
    end
  end
  local parts = {}
  for _, g in ipairs(order) do
    local ratios = {}
    for _, by_clients in pairs(groups[g]) do
      local a, b = by_clients[lo[g]], by_clients[hi[g]]
      if a and b and a > 0 and lo[g] ~= hi[g] then ratios[#ratios + 1] = b / a end
    end
    if #ratios > 0 then
      parts[#parts + 1] = string.format("%s: %.2fx from %d to %d client workers",
        g, stats.median(ratios), lo[g], hi[g])
    end
  end
  if #parts == 0 then return "Scaling: one client-worker count only; nothing to compare." end
  return "Scaling (median over sizes and server workers of aggregate throughput " ..
    "with the most client workers over one): " .. table.concat(parts, "; ") .. "."
end

-- ---- CSV: the original's nine columns first, then ours with units ----

matrix.csv_columns = {
  "No", "Operation", "Volume", "Client workers", "Server workers",
  "Time per client (s)", "Throughput per client (B/s)",
  "Client workers succeeded/failed", "Server workers succeeded/failed",
  "server_mode", "client_pool", "client_engine", "samples", "throughput_median_Bps",
  "throughput_ci_low_Bps", "throughput_ci_high_Bps", "throughput_cv",
  "ops_per_s_median", "latency_p50_ms", "latency_p99_ms", "noisy",
  "server_cpu_s", "server_cpu_s_per_GB", "server_peak_rss_bytes",
  "client_cpu_s", "bytes_verified", "errors", "first_error",
}

local function num(v, fmt)
  if v == nil then return "" end
  return string.format(fmt, v)
end

-- A CSV row (a table keyed by column name) for a summarized cell.
function matrix.csv_row(c)
  local t, o = c.throughput_Bps or {}, c.ops_per_s or {}
  local srv = c.server_succeeded and (c.server_succeeded .. "/" .. c.server_failed) or "n/a"
  return {
    ["No"] = c.number, ["Operation"] = c.operation, ["Volume"] = c.volume,
    ["Client workers"] = c.client_workers, ["Server workers"] = c.server_workers,
    ["Time per client (s)"] = num(c.time_per_client_s, "%.4f"),
    ["Throughput per client (B/s)"] = num(c.throughput_per_client_Bps, "%.0f"),
    ["Client workers succeeded/failed"] = c.ok .. "/" .. c.failed,
    ["Server workers succeeded/failed"] = srv,
    server_mode = c.server_mode, client_pool = c.client_pool,
    client_engine = c.client_engine or "", samples = c.samples,
    throughput_median_Bps = num(t.median, "%.0f"),
    throughput_ci_low_Bps = num(t.ci_low, "%.0f"),
    throughput_ci_high_Bps = num(t.ci_high, "%.0f"),
    throughput_cv = num(t.cv, "%.4f"), ops_per_s_median = num(o.median, "%.2f"),
    latency_p50_ms = num(c.latency_p50_ms, "%.2f"),
    latency_p99_ms = num(c.latency_p99_ms, "%.2f"),
    noisy = c.noisy and "yes" or "no", server_cpu_s = num(c.server_cpu_s, "%.3f"),
    server_cpu_s_per_GB = num(c.server_cpu_s_per_gb, "%.3f"),
    server_peak_rss_bytes = num(c.server_peak_rss_bytes, "%.0f"),
    client_cpu_s = num(c.client_cpu_s, "%.3f"), bytes_verified = c.verified_bytes,
    errors = c.errors, first_error = c.first_error,
  }
end

-- ---- capacity ----

local server_names = { thread = "the thread pool", process = "the process pool",
                       single = "the single-threaded server" }

-- The sentence of one capacity search: "the thread pool with 5 workers
-- sustains 40.0 downloads/s of 10MB within p99<50ms (held 40/s, failed
-- 44/s)". c: {server_mode, server_workers, operation, volume, thresholds,
-- max_rate, first_failing_rate, error}.
function matrix.capacity_text(c)
  local who = c.server_mode == "single" and server_names.single or
    string.format("%s with %s worker%s", server_names[c.server_mode] or tostring(c.server_mode),
      tostring(c.server_workers), c.server_workers == 1 and "" or "s")
  local what = string.format("%ss/s of %s within %s", c.operation, c.volume,
    table.concat(c.thresholds, " and "))
  if c.error then return string.format("%s: no search (%s)", who, c.error) end
  if not c.max_rate then
    return string.format("%s sustains no rate tried: not even %s %s", who,
      num(c.first_failing_rate, "%.1f"), what)
  end
  return string.format("%s sustains %s %s (%s)", who, num(c.max_rate, "%.1f"), what,
    c.first_failing_rate and string.format("%s/s failed", num(c.first_failing_rate, "%.1f"))
      or "the search stopped before a rate failed")
end

-- ---- terminal ----

-- One line for a finished run of a cell (progress output).
function matrix.run_line(cell, run)
  if not is_sample(run) then
    return string.format("FAILED %d ok %d failed: %s", run.ok, run.failed,
      ((run.error or run.first_error or ""):match("[^\n]*")))
  end
  return string.format("%8.1f MB/s %9.1f ops/s  p99 %8.2f ms", run.throughput_Bps / 1e6,
    run.ops_per_s, run.latency_p99_ms or 0)
end

-- Prints the cells and verdicts; returns the number of cells with failures.
function matrix.print_table(cells, comparisons)
  print(string.format("%4s %-7s %-7s %-8s %6s %4s %4s %3s %10s %17s %6s %9s",
    "No", "server", "client", "op", "size", "cli", "srv", "n", "MB/s med",
    "95% CI MB/s", "CV", "ok/fail"))
  local failed = 0
  for _, c in ipairs(cells) do
    local t = c.throughput_Bps or {}
    if c.failed > 0 or c.samples == 0 then failed = failed + 1 end
    print(string.format("%4d %-7s %-7s %-8s %6s %4d %4d %3d %10s %17s %6s %9s%s",
      c.number, c.server_mode, c.client_pool, c.operation, c.volume,
      c.client_workers, c.server_workers, c.samples,
      num(t.median and t.median / 1e6, "%.1f"),
      t.ci_low and string.format("%.1f-%.1f", t.ci_low / 1e6, t.ci_high / 1e6) or "",
      num(t.cv and t.cv * 100, "%.1f%%"), c.ok .. "/" .. c.failed,
      (c.noisy and "  noisy" or "") .. ((c.failed > 0 or c.samples == 0) and "  FAILED" or "")))
  end
  for _, cmp in ipairs(comparisons) do
    print(string.format("#%d vs #%d %s %s c%d s%d: %s", cmp.a, cmp.b, cmp.operation,
      cmp.volume, cmp.client_workers, cmp.server_workers, cmp.text))
  end
  return failed
end

return matrix
