-- scripts/stress_all.lua: the Python original's stress matrix, measured
-- so that its verdict holds: upload and download x 10/50/100 MB x 1/5/50
-- client workers x 1/5/50 server workers, for each server mode. Every
-- cell runs for at least --min-time after a warm-up, and is repeated
-- --repeat times in rounds that visit every cell once in a shuffled order,
-- so that drift in the machine spreads over all cells. Cells that differ
-- in the server mode are compared with a confidence interval and a
-- verdict. Writes results.csv, results.json, results.svg and results.html
-- to a new directory under --out and points OUT/latest at it.
--
-- The default layout is the original's 108 rows, numbered as its table
-- (thread: 1-27 download, 28-54 upload; process: 55-81 download, 82-108
-- upload), where the server mode and the client worker pool change
-- together. --client-pool thread holds the client pool fixed, so that the
-- server mode is the only variable.
local fileserv = require "fileserv"
local matrix = require "fileserv.matrix"
local report = require "fileserv.report"
local html = require "fileserv.html"

local usage = [[
usage: fileserv run scripts/stress_all.lua [options]
  --ops LIST          operations, numbered in this order (default download,upload)
  --sizes LIST        file sizes (default 10MB,50MB,100MB)
  --clients LIST      client worker counts (default 1,5,50)
  --servers LIST      server worker counts (default 1,5,50)
  --modes LIST        server modes: single, thread, process (default thread,process)
  --client-pool P     hold the client's pool at thread or process; by default
                      it follows the server mode (the original's layout)
  --repeat N          rounds: samples per cell (default 3)
  --min-time T        each cell runs at least T (default 0.5s)
  --warmup T          discarded at the start of each cell (default 0.1s)
  --noisy-cv X        flag cells whose CV is above X (default 0.05)
  --confidence X      of the intervals and verdicts (default 0.95)
  --seed N            of the round order (default: the time)
  --server-cpus LIST  pin the servers to these CPUs (e.g. 1)
  --client-cpus LIST  pin the client workers to these CPUs (e.g. 0)
  --out DIR           results go to a new DIR/<date>/, DIR/latest points
                      at it (default results)
  --server H:P        measure this running server: its mode and workers come
                      from its STATS; the files the run uploads are removed
  --instances N       spread each cell's clients over N fileserv stress
                      processes (--segment I/N, released together), merged
                      with fileserv.merge (default 1: in this process)
  --sync              servers fsync every upload (default: --no-sync)
  --codec NAME        servers' base64 codec (default auto)
  --timeout S         per-operation idle timeout in seconds, and how long
                      a request may wait for a free server worker (default 600)
  --find-max EXPR     then, per server configuration (mode x server workers)
                      and op x size, search the highest rate that holds the
                      thresholds EXPR (e.g. 'p99<50ms', a list with commas),
                      with the largest --clients in flight and steps of
                      --min-time (at least 0.2s); reported in the text,
                      results.json's "capacity" and results.html
  --find-max-from R   the search's first rate, per second (default 1)
Exit status: 0 all cells measured, 1 some operations failed, 2 usage,
130/143 interrupted (the rows finished so far are written, marked
incomplete).]]

local opts, _, check = fileserv.script_options(arg, {
  ops = "download,upload", sizes = "10MB,50MB,100MB", clients = "1,5,50",
  servers = "1,5,50", modes = "thread,process", client_pool = "",
  ["repeat"] = "3", min_time = "0.5s", warmup = "0.1s", noisy_cv = "0.05",
  confidence = "0.95", seed = "", server_cpus = "", client_cpus = "",
  out = "results", server = "", sync = false, codec = "auto",
  timeout = "600", help = false, find_max = "", find_max_from = "1",
  instances = "1",
}, usage)
local usage_error, one_of, number, seconds =
  check.fail, check.one_of, check.number, check.seconds

local function counts(text, what)
  local out = {}
  for i, v in ipairs(fileserv.list(text)) do out[i] = check.count(v, what, 1, 10000) end
  if #out == 0 then usage_error("%s: empty list", what) end
  return out
end

local axes = {
  ops = one_of(fileserv.list(opts.ops), { upload = true, download = true }, "--ops"),
  sizes = fileserv.list(opts.sizes), clients = counts(opts.clients, "--clients"),
  servers = counts(opts.servers, "--servers"),
  modes = one_of(fileserv.list(opts.modes),
                 { single = true, thread = true, process = true }, "--modes"),
}
for _, s in ipairs(axes.sizes) do check.size(s, "--sizes") end
if opts.client_pool ~= "" then
  one_of({ opts.client_pool }, { thread = true, process = true }, "--client-pool")
end

local settings = {
  repeat_count = check.count(opts["repeat"], "--repeat", 1, 1000),
  min_time_s = seconds(opts.min_time, "--min-time"),
  warmup_s = seconds(opts.warmup, "--warmup"),
  noisy_cv = number(opts.noisy_cv, "--noisy-cv", 0, 10),
  confidence = number(opts.confidence, "--confidence", 0.5, 0.999),
  seed = opts.seed ~= "" and check.count(opts.seed, "--seed", 0, 2 ^ 53) or os.time(),
  layout = opts.client_pool == "" and "original" or "client-pool",
  client_pool = opts.client_pool ~= "" and opts.client_pool or nil,
  server_cpus = opts.server_cpus ~= "" and opts.server_cpus or nil,
  client_cpus = opts.client_cpus ~= "" and opts.client_cpus or nil,
  instances = check.count(opts.instances, "--instances", 1, 256),
}
settings.shared_cores = not (settings.server_cpus and settings.client_cpus)
settings["repeat"] = settings.repeat_count
local timeout = number(opts.timeout, "--timeout", 0.001, 86400)
settings.timeout_s = timeout
for _, t in ipairs(fileserv.list(opts.find_max)) do
  local ok_t, err = fileserv.threshold(t)
  if not ok_t then usage_error("--find-max: %s", err) end
end
local capacity = opts.find_max ~= "" and {
  thresholds = fileserv.list(opts.find_max),
  start_rate = number(opts.find_max_from, "--find-max-from", 0.001, 1e6),
  step_s = math.max(settings.min_time_s, 0.2),
  clients = math.max(table.unpack(axes.clients)),
  searches = {},
} or nil

-- ---- where things go ----

local sh_quote = fileserv.shell_quote

local function run_dir()
  assert(os.execute("mkdir -p " .. sh_quote(opts.out)))
  local base = opts.out .. "/" .. os.date("%Y-%m-%dT%H-%M-%S")
  local dir, n = base, 1
  while os.rename(dir, dir) do n = n + 1; dir = base .. "-" .. n end
  assert(os.execute("mkdir " .. sh_quote(dir)))
  os.execute("ln -sfn " .. sh_quote(dir:match("[^/]+$")) .. " " ..
             sh_quote(opts.out .. "/latest"))
  return dir
end

local function read_first(path, pattern)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text:match(pattern)
end

local function machine()
  local cores = 0
  local f = io.open("/proc/cpuinfo")
  if f then
    for line in f:lines() do if line:match("^processor%s*:") then cores = cores + 1 end end
    f:close()
  end
  local mem_kb = read_first("/proc/meminfo", "MemTotal:%s*(%d+)")
  return {
    host = read_first("/proc/sys/kernel/hostname", "[^\n]+"),
    kernel = read_first("/proc/sys/kernel/osrelease", "[^\n]+"),
    cpu_model = read_first("/proc/cpuinfo", "model name%s*:%s*([^\n]+)"),
    cores = cores > 0 and cores or nil,
    memory_bytes = mem_kb and tonumber(mem_kb) * 1024 or nil,
  }
end

local function command_line()
  local words = { "fileserv run", arg[0] }
  for _, a in ipairs(arg) do
    words[#words + 1] = a:find("[^%w%-%._,:/=]") and sh_quote(a) or a
  end
  return table.concat(words, " ")
end

-- ---- the cells ----

local function client_pool(mode)
  return matrix.client_pool_for(mode, settings.client_pool)
end

-- Cells numbered as the original: mode, then operation, size, client
-- workers and server workers, the last varying fastest.
local function make_cells(modes, servers, files)
  local cells = {}
  for _, mode in ipairs(modes) do
    for _, op in ipairs(axes.ops) do
      for _, file in ipairs(files) do
        for _, c in ipairs(axes.clients) do
          for _, s in ipairs(servers) do
            cells[#cells + 1] = {
              number = #cells + 1, operation = op, volume = file.size,
              volume_bytes = file.bytes, client_workers = c, server_workers = s,
              server_mode = mode, client_pool = client_pool(mode), runs = {},
              file = file,
            }
          end
        end
      end
    end
  end
  return cells
end

local function shuffled(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  for i = #out, 2, -1 do
    local j = math.random(i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

-- ---- the run ----

local state = { servers = {}, remote_names = {} }

-- Asking once takes charge of Ctrl-C and SIGTERM: a running stress
-- returns what it did, and the rounds stop with the cells finished so far.
local function interrupted() return fileserv.interrupted() end
interrupted()

local function start_servers(work)
  for _, mode in ipairs(axes.modes) do
    for _, n in ipairs(axes.servers) do
      local storage = string.format("%s/storage-%s-%d", work, mode, n)
      assert(os.execute("mkdir -p " .. sh_quote(storage)))
      local srv = assert(fileserv.serve {
        mode = mode, workers = n, port = 0, storage = storage, sync = opts.sync,
        idle_timeout = opts.timeout .. "s", codec = opts.codec,
        -- fifty 100 MB uploads queue for one worker longer than the
        -- server's default 10 s: a matrix waits as long as an operation may
        queue_timeout = opts.timeout .. "s",
        cpus = settings.server_cpus,
      })
      state.servers[mode .. "|" .. n] = srv
    end
  end
end

-- The remote server's real mode and worker count, from its STATS.
local function remote_axes()
  local c = fileserv.client(opts.server)
  local reply, err = c:stats()
  if not reply then
    io.stderr:write("stress_all: ", opts.server, ": ", tostring(err), "\n")
    os.exit(3)
  end
  state.remote = c
  local st = reply.data
  return { st.mode }, { math.tointeger(st.workers) or st.workers }
end

local function target_of(cell)
  return state.remote or state.servers[cell.server_mode .. "|" .. cell.server_workers]
end

local function client_of(target)
  return fileserv.client { host = target.host, port = target.port, timeout = timeout }
end

-- Puts the download sources on every server (and names the uploads).
local function upload_sources(files)
  local targets = {}
  if state.remote then targets = { state.remote } end
  for _, srv in pairs(state.servers) do targets[#targets + 1] = srv end
  for _, t in ipairs(targets) do
    local c = client_of(t)
    for _, f in ipairs(files) do assert(c:put(f.path, f.name)) end
  end
  if state.remote then
    for _, f in ipairs(files) do
      state.remote_names[#state.remote_names + 1] = f.name
      state.remote_names[#state.remote_names + 1] = f.upload_name
    end
  end
end

-- A cell's round as settings.instances processes of this fileserv
-- (/proc/$PPID/exe: the shell's parent), each a --segment of the run,
-- released at one --start-at, their summaries merged.
local function run_instances(cell, name)
  local target, n, file = target_of(cell), settings.instances, cell.file
  local dir = string.format("%s/instances-%d", state.work, cell.number)
  assert(os.execute("mkdir -p " .. sh_quote(dir)))
  local args = {
    "stress", "-s", target.host .. ":" .. target.port, "--op", cell.operation,
    "--file", file.path, "--name", name, "-c", cell.client_workers,
    "-P", cell.client_pool, "-t", timeout .. "s",
    "--duration", math.max(settings.min_time_s, 1e-3) .. "s", "--json",
    "--start-at", os.time() + 1,
  }
  if settings.warmup_s > 0 then table.insert(args, "--warmup=" .. settings.warmup_s .. "s") end
  if settings.client_cpus then table.insert(args, "--cpus=" .. settings.client_cpus) end
  for i, a in ipairs(args) do args[i] = sh_quote(a) end
  local cmd, files = {}, {}
  for i = 0, n - 1 do
    files[i + 1] = string.format("%s/r-%d.json", dir, i)
    cmd[#cmd + 1] = string.format('"/proc/$PPID/exe" %s --segment %d/%d > %s 2>/dev/null &',
      table.concat(args, " "), i, n, sh_quote(files[i + 1]))
  end
  os.execute(table.concat(cmd, " ") .. " wait")
  return fileserv.merge(files)
end

local function run_cell(cell, round)
  local options = matrix.stress_options(cell, target_of(cell), settings)
  return matrix.measure(cell, round, function()
    if settings.instances > 1 then return run_instances(cell, options.name) end
    return fileserv.stress(options)
  end)
end

local function progress(done, total, started, round, cell, run)
  local elapsed = fileserv.now() - started
  local eta = elapsed / done * (total - done)
  io.stderr:write(string.format(
    "[%4d/%d] round %d/%d %s, ETA %s  #%-3d %-7s %-7s %-8s %6s c%-3d s%-3d %s\n",
    done, total, round, settings.repeat_count, fileserv.format_seconds(elapsed),
    fileserv.format_seconds(eta), cell.number, cell.server_mode, cell.client_pool,
    cell.operation, cell.volume, cell.client_workers, cell.server_workers,
    matrix.run_line(cell, run)))
end

-- Runs the rounds; returns the signal's name if interrupted.
local function run_rounds(cells, started)
  math.randomseed(settings.seed)
  local total, done = #cells * settings.repeat_count, 0
  for round = 1, settings.repeat_count do
    for _, cell in ipairs(shuffled(cells)) do
      local run = run_cell(cell, round)
      done = done + 1
      local sig = run.interrupted or interrupted()
      if sig then
        table.remove(cell.runs) -- a cut run is not a sample
        return sig
      end
      progress(done, total, started, round, cell, run)
    end
  end
end

-- The capacity search of one server configuration, op and size.
local function search_capacity(mode, n, op, file)
  local c = { server_mode = mode, server_workers = n, operation = op, volume = file.size,
              volume_bytes = file.bytes, client_workers = capacity.clients,
              client_pool = client_pool(mode), thresholds = capacity.thresholds }
  local r, err = fileserv.find_max {
    server = state.remote or state.servers[mode .. "|" .. n], op = op, file = file.path,
    name = op == "upload" and file.upload_name or file.name, clients = c.client_workers,
    pool = c.client_pool, verify = true, timeout = timeout, rate = capacity.start_rate,
    duration = capacity.step_s, thresholds = capacity.thresholds, cpus = settings.client_cpus,
  }
  if r then
    c.max_rate, c.first_failing_rate, c.steps = r.max_rate, r.first_failing_rate, r.steps
  else
    c.error = err
  end
  c.text = matrix.capacity_text(c)
  capacity.searches[#capacity.searches + 1] = c
  return r and r.interrupted
end

-- Runs the capacity searches; returns the signal's name if interrupted.
local function run_searches(modes, servers, files)
  for _, mode in ipairs(modes) do
    for _, n in ipairs(servers) do
      for _, op in ipairs(axes.ops) do
        for _, file in ipairs(files) do
          local sig = search_capacity(mode, n, op, file) or interrupted()
          if sig then return sig end
          io.stderr:write("capacity: ", capacity.searches[#capacity.searches].text, "\n")
        end
      end
    end
  end
end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  assert(f:close())
end

local function results_table(cells, meta)
  local out_cells = {}
  for i, c in ipairs(cells) do
    matrix.summarize(c, settings)
    local copy = {}
    for k, v in pairs(c) do if k ~= "file" then copy[k] = v end end
    out_cells[i] = copy
  end
  local comparisons = matrix.comparisons(cells, axes.modes, settings.confidence)
  return {
    schema = matrix.SCHEMA, meta = meta, cells = out_cells,
    comparisons = comparisons, analysis = matrix.analysis(cells, comparisons, meta),
    probe = matrix.probe_summary(cells),
    capacity = capacity,
  }
end

local function write_outputs(dir, results)
  local rows = {}
  for i, c in ipairs(results.cells) do rows[i] = matrix.csv_row(c) end
  assert(fileserv.csv.write(dir .. "/results.csv", matrix.csv_columns, rows))
  write_file(dir .. "/results.json", fileserv.json.encode(results, true) .. "\n")
  write_file(dir .. "/results.svg", report.svg(results))
  write_file(dir .. "/results.html", html.render(results))
end

local function cleanup(work)
  for _, srv in pairs(state.servers) do srv:stop() end
  if state.remote then
    for _, name in ipairs(state.remote_names) do state.remote:rm(name) end
  end
  if work then fileserv.remove_tree(work) end
end

local function make_files(work)
  local files = {}
  for i, size in ipairs(axes.sizes) do
    local bytes = fileserv.size(size)
    local tag = string.format("fileserv-matrix-%d-%s", settings.seed, size)
    files[i] = { path = work .. "/stress-" .. size, size = size, bytes = bytes,
                 name = tag, upload_name = tag .. "-upload" }
    assert(fileserv.mkfile(files[i].path, bytes, i))
  end
  return files
end

local function main(work)
  local started = fileserv.now()
  state.work = work
  local modes, servers = axes.modes, axes.servers
  if opts.server ~= "" then
    modes, servers = remote_axes()
    axes.modes = modes
    if not settings.client_pool then settings.client_pool = "thread" end
    settings.layout = "client-pool"
  end
  local files = make_files(work)
  if opts.server == "" then start_servers(work) end
  upload_sources(files)
  local cells = make_cells(modes, servers, files)
  local sig = run_rounds(cells, started)
  if capacity and not sig then sig = run_searches(modes, servers, files) end
  local meta = machine()
  meta.fileserv, meta.command = fileserv.version, command_line()
  meta.date, meta.sync, meta.codec = os.date("!%Y-%m-%dT%H:%M:%SZ"), opts.sync, opts.codec
  meta.target = opts.server ~= "" and opts.server or "loopback"
  meta.complete, meta.interrupted = sig == nil, sig
  meta.wall_s, meta.settings = fileserv.now() - started, settings
  return cells, meta, sig
end

local dir = run_dir()
-- test files and server storage, under $TMPDIR (default /tmp)
local work = assert(fileserv.tempdir("fileserv-matrix"))
local ran, cells, meta, sig = xpcall(main, debug.traceback, work)
if not ran then
  cleanup(work)
  error(cells, 0)
end
local results = results_table(cells, meta)
write_outputs(dir, results)
cleanup(work)

local failed = matrix.print_table(results.cells, results.comparisons)
print(results.analysis.headline)
for _, p in ipairs(results.analysis.paragraphs) do print(p) end
if capacity then
  print(string.format("Capacity (%s; %d clients in flight, steps of %s from %g/s):",
    table.concat(capacity.thresholds, " and "), capacity.clients,
    fileserv.format_seconds(capacity.step_s), capacity.start_rate))
  for _, c in ipairs(capacity.searches) do print("  " .. c.text) end
end
io.stderr:write(string.format("%d cells x %d rounds in %s; %d with failures%s. Wrote %s/results.{csv,json,svg,html}\n",
  #cells, settings.repeat_count, fileserv.format_seconds(meta.wall_s), failed,
  sig and (", INCOMPLETE: interrupted by " .. sig) or "", dir))
if sig then os.exit(sig == "SIGTERM" and 143 or 130) end
os.exit(failed == 0 and 0 or 1)
