-- scripts/false_positives.lua: an A/A test of the matrix's verdict on this
-- machine. Two identical servers (same mode, workers and storage setup)
-- are measured as the matrix measures a cell, --repeat rounds per trial
-- in an order that alternates between rounds, and compared with the
-- matrix's own comparison (Welch's interval on log throughput,
-- matrix.compare_pair). Nothing differs between them, so a verdict of
-- "faster" or "slower" is a false positive. Over --trials trials this
-- gives the rate at which the verdict calls identical configurations
-- different, with its Wilson interval, to set beside the nominal rate
-- (1 - confidence): how far a "faster"/"slower" can be trusted here.
local fileserv = require "fileserv"
local matrix = require "fileserv.matrix"
local stats = require "fileserv.stats"

local usage = [[
usage: fileserv run scripts/false_positives.lua [options]
  --trials N        A/A comparisons (default 30)
  --repeat N        rounds per trial: samples per side, 2 or more (default 3)
  --mode M          both servers' mode: single, thread, process (default thread)
  --workers N       both servers' workers (default 5)
  --op OP           download or upload (default download)
  --size S          the test file (default 10MB)
  --clients N       client workers per cell (default 5)
  --min-time T      each cell runs at least T (default 0.5s)
  --warmup T        discarded at the start of each cell (default 0.1s)
  --confidence X    of the verdicts (default 0.95)
  --sync            servers fsync every upload (default: --no-sync)
  --json FILE       also write the figures, the settings and every trial
Exit status: 0 done, 1 some operations failed, 2 usage, 130/143
interrupted (the trials finished so far are reported).]]

local opts, _, check = fileserv.script_options(arg, {
  trials = "30", ["repeat"] = "3", mode = "thread", workers = "5", op = "download",
  size = "10MB", clients = "5", min_time = "0.5s", warmup = "0.1s",
  confidence = "0.95", sync = false, json = "", help = false,
}, usage)
local settings = {
  trials = check.count(opts.trials, "--trials", 1, 100000),
  repeat_count = check.count(opts["repeat"], "--repeat", 2, 1000),
  mode = check.one_of({ opts.mode }, { single = true, thread = true, process = true },
                      "--mode")[1],
  workers = check.count(opts.workers, "--workers", 1, 1024),
  op = check.one_of({ opts.op }, { download = true, upload = true }, "--op")[1],
  size = opts.size, size_bytes = check.size(opts.size, "--size"),
  clients = check.count(opts.clients, "--clients", 1, 10000),
  min_time_s = check.seconds(opts.min_time, "--min-time"),
  warmup_s = check.seconds(opts.warmup, "--warmup"),
  confidence = check.number(opts.confidence, "--confidence", 0.5, 0.999),
  sync = opts.sync, timeout_s = 600,
  noisy_cv = 0.05, -- the matrix's default, for matrix.summarize
}
settings["repeat"] = settings.repeat_count

fileserv.interrupted() -- asking once takes charge of Ctrl-C and SIGTERM

local function start_server(work, label)
  local storage = work .. "/storage-" .. label
  assert(os.execute("mkdir " .. fileserv.shell_quote(storage)))
  return assert(fileserv.serve {
    mode = settings.mode, workers = settings.workers, port = 0, storage = storage,
    sync = settings.sync, idle_timeout = settings.timeout_s .. "s",
    queue_timeout = settings.timeout_s .. "s",
  })
end

-- A fresh cell of the one configuration, for side A or B.
local function new_cell(side, file)
  return { number = side == "A" and 1 or 2, operation = settings.op, volume = settings.size,
           volume_bytes = settings.size_bytes, client_workers = settings.clients,
           server_workers = settings.workers, server_mode = settings.mode,
           client_pool = matrix.client_pool_for(settings.mode), runs = {}, file = file }
end

local function pct(x) return x and string.format("%.1f%%", x * 100) or "n/a" end

-- Runs one trial: settings.repeat_count rounds of A and B, the order
-- flipping every round (and so between trials), then the verdict.
-- Returns the trial, or nil and the signal's name if interrupted.
local function run_trial(k, servers, file, state)
  local started = fileserv.now()
  local cells, order = { A = new_cell("A", file), B = new_cell("B", file) }, {}
  for round = 1, settings.repeat_count do
    state.rounds = state.rounds + 1
    local sides = state.rounds % 2 == 1 and { "A", "B" } or { "B", "A" }
    order[round] = sides[1] .. sides[2]
    for _, side in ipairs(sides) do
      local options = matrix.stress_options(cells[side], servers[side], settings)
      local run = matrix.measure(cells[side], round, function()
        return fileserv.stress(options)
      end)
      local sig = run.interrupted or fileserv.interrupted()
      if sig then return nil, sig end
    end
  end
  for _, c in pairs(cells) do matrix.summarize(c, settings) end
  table.insert(state.cells, cells.A)
  table.insert(state.cells, cells.B)
  local c = matrix.compare_pair(cells.A, cells.B, "none", "A", "B", settings.confidence)
  return {
    trial = k, order = table.concat(order, ","), verdict = c.verdict, ratio = c.ratio,
    ci_low = c.ci_low, ci_high = c.ci_high, text = c.text,
    a = matrix.samples(cells.A, "throughput_Bps"), b = matrix.samples(cells.B, "throughput_Bps"),
    cv_a = cells.A.throughput_Bps and cells.A.throughput_Bps.cv,
    cv_b = cells.B.throughput_Bps and cells.B.throughput_Bps.cv,
    failed = cells.A.failed + cells.B.failed,
    first_error = cells.A.first_error ~= "" and cells.A.first_error or cells.B.first_error,
    wall_s = fileserv.now() - started,
  }
end

-- The figures of the trials: false positives are verdicts of "faster" or
-- "slower"; a trial with no verdict ("unknown": a side had fewer than two
-- successful runs) is counted apart and left out of the rate.
local function figures(trials, cells)
  local f = { trials = #trials, unknown = 0, positives = 0, failed = 0,
              nominal_rate = tonumber(string.format("%.10g", 1 - settings.confidence)) }
  local cvs = {}
  for _, t in ipairs(trials) do
    if t.verdict == "unknown" then f.unknown = f.unknown + 1
    elseif t.verdict ~= "same" then f.positives = f.positives + 1 end
    f.failed = f.failed + t.failed
    cvs[#cvs + 1] = t.cv_a
    cvs[#cvs + 1] = t.cv_b
  end
  f.judged = f.trials - f.unknown
  f.rate = f.judged > 0 and f.positives / f.judged or nil
  f.rate_ci_low, f.rate_ci_high = stats.wilson(f.positives, f.judged, 0.95)
  f.median_cv = stats.median(cvs)
  f.probe = matrix.probe_summary(cells) -- the machine's own steadiness
  if not f.rate then
    f.interpretation = "No trial gave a verdict, so there is no rate to state."
  elseif f.rate_ci_low > f.nominal_rate then
    f.interpretation = "Above the nominal rate: verdicts on this machine are too eager; " ..
      "treat a 'faster' or 'slower' with suspicion, or give cells more time and rounds."
  elseif f.rate_ci_high < f.nominal_rate then
    f.interpretation = "Below the nominal rate: verdicts on this machine are cautious; " ..
      "a 'faster' or 'slower' can be trusted at the stated confidence."
  else
    f.interpretation = string.format("Consistent with the nominal rate of %g%% (the " ..
      "interval contains it): no sign that verdicts on this machine are too eager; " ..
      "more --trials narrow the interval.", f.nominal_rate * 100)
  end
  return f
end

local function print_figures(f, sig)
  if f.rate then
    print(string.format("False positives: %d of %d trials (%s, 95%% CI %s to %s); " ..
      "nominal rate %s (confidence %g%%).", f.positives, f.judged, pct(f.rate),
      pct(f.rate_ci_low), pct(f.rate_ci_high), pct(f.nominal_rate), settings.confidence * 100))
  end
  if f.unknown > 0 then
    print(string.format("%d trials had no verdict (failed runs) and are left out.", f.unknown))
  end
  print(string.format("Median CV of the cells' throughput: %s (%d cells of %d runs).",
    pct(f.median_cv), 2 * f.trials, settings.repeat_count))
  if f.probe then
    print(string.format("The machine itself (a fixed CPU loop before every run): CV %s.",
                        pct(f.probe.cv)))
  end
  print(f.interpretation)
  if sig then print(string.format("INCOMPLETE: interrupted by %s after %d trials.", sig, f.trials)) end
end

local function write_json(path, results)
  local out = assert(io.open(path, "w"))
  out:write(fileserv.json.encode(results, true), "\n")
  assert(out:close())
end

-- Runs the trials into state.trials (their cells into state.cells), the
-- servers it starts in state.servers; returns the signal's name if
-- interrupted.
local function main(work, state)
  local file = { path = work .. "/aa-" .. settings.size, name = "fileserv-aa",
                 upload_name = "fileserv-aa-upload" }
  assert(fileserv.mkfile(file.path, settings.size_bytes, 1))
  local servers = state.servers
  servers.A, servers.B = start_server(work, "a"), start_server(work, "b")
  for _, srv in pairs(servers) do assert(srv:client():put(file.path, file.name)) end
  local started = fileserv.now()
  for k = 1, settings.trials do
    local t, sig = run_trial(k, servers, file, state)
    if not t then return sig end
    state.trials[k] = t
    io.stderr:write(string.format("trial %d/%d: %s; CV %s/%s; %s elapsed\n", k,
      settings.trials, t.text, pct(t.cv_a), pct(t.cv_b),
      fileserv.format_seconds(fileserv.now() - started)))
    if t.first_error and t.first_error ~= "" then
      io.stderr:write("  first error: ", t.first_error, "\n")
    end
  end
end

local work = assert(fileserv.tempdir("fileserv-aa"))
local started = fileserv.now()
local state = { trials = {}, cells = {}, servers = {}, rounds = 0 }
local ran, sig = xpcall(main, debug.traceback, work, state)
for _, srv in pairs(state.servers) do srv:stop() end
fileserv.remove_tree(work)
if not ran then error(sig, 0) end
local f = figures(state.trials, state.cells)
print_figures(f, sig)
if opts.json ~= "" then
  write_json(opts.json, {
    meta = { fileserv = fileserv.version, date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
             wall_s = fileserv.now() - started, complete = sig == nil, interrupted = sig },
    settings = settings, summary = f, trials = state.trials,
  })
end
if sig then os.exit(sig == "SIGTERM" and 143 or 130) end
os.exit(f.failed == 0 and 0 or 1)
