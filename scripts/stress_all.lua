-- scripts/stress_all.lua: the Python original's whole stress matrix,
-- unattended: upload and download x 10/50/100 MB x 1/5/50 client workers
-- x 1/5/50 server workers, for the thread pool and the process pool (the
-- server mode and the client pool alike): 108 rows, numbered as the
-- original (1-54 thread, 55-108 process). It makes the test files, starts
-- a server on loopback for each mode and server worker count, uploads
-- what downloads need, verifies every download against the local file,
-- and writes results.csv, results.json and results.svg.
--
--   fileserv run scripts/stress_all.lua [--ops upload,download]
--     [--sizes 10MB,50MB,100MB] [--clients 1,5,50] [--servers 1,5,50]
--     [--modes thread,process] [--out results] [--server HOST:PORT]
--     [--sync] [--timeout 600]
local fileserv = require "fileserv"
local report = require "fileserv.report"

local usage = [[
usage: fileserv run scripts/stress_all.lua [options]
  --ops LIST       operations (default upload,download)
  --sizes LIST     file sizes (default 10MB,50MB,100MB)
  --clients LIST   client worker counts (default 1,5,50)
  --servers LIST   server worker counts (default 1,5,50)
  --modes LIST     thread and/or process (default thread,process)
  --out DIR        where results.csv/.json/.svg go (default results)
  --server H:P     use this running server; the server axis is only recorded
  --sync           servers fsync every upload (default: --no-sync)
  --timeout S      per-operation idle timeout in seconds (default 600)]]

local ok, opts = pcall(fileserv.options, arg, {
  ops = "upload,download", sizes = "10MB,50MB,100MB", clients = "1,5,50",
  servers = "1,5,50", modes = "thread,process", out = "results",
  server = "", sync = false, timeout = "600", help = false,
})
if not ok or opts.help then
  io.stderr:write(ok and "" or ("stress_all: " .. opts .. "\n"), usage, "\n")
  os.exit(ok and 0 or 2)
end

local axes = {
  ops = fileserv.list(opts.ops), sizes = fileserv.list(opts.sizes),
  clients = fileserv.list(opts.clients), servers = fileserv.list(opts.servers),
  modes = fileserv.list(opts.modes),
}
for _, m in ipairs(axes.modes) do
  assert(m == "thread" or m == "process", "--modes: thread or process, not " .. m)
end
for _, op in ipairs(axes.ops) do
  assert(op == "upload" or op == "download", "--ops: upload or download, not " .. op)
end

-- Row numbers follow the original: mode, then operation, size, client
-- workers and server workers, the last varying fastest.
local per_mode = #axes.ops * #axes.sizes * #axes.clients * #axes.servers
local function row_number(mi, oi, si, ci, vi)
  return (mi - 1) * per_mode
    + (((oi - 1) * #axes.sizes + (si - 1)) * #axes.clients + (ci - 1)) * #axes.servers
    + vi
end

local work = os.tmpname()
os.remove(work)
assert(os.execute("mkdir -p '" .. work .. "/storage' '" .. opts.out .. "'"))

local files = {}
for i, size in ipairs(axes.sizes) do
  local bytes = fileserv.size(size)
  files[i] = { path = work .. "/stress-" .. size, name = "stress-" .. size,
               bytes = bytes, mb = bytes / 1e6 }
  assert(fileserv.mkfile(files[i].path, bytes, i))
end

local total, done, started = per_mode * #axes.modes, 0, fileserv.now()
local rows = {}

local function progress(row)
  done = done + 1
  local elapsed = fileserv.now() - started
  local eta = elapsed / done * (total - done)
  io.stderr:write(string.format(
    "[%3d/%d] %s elapsed, ETA %s  #%-3d %-7s %-8s %6s  clients %-3d servers %-3d  %s\n",
    done, total, fileserv.format_seconds(elapsed), fileserv.format_seconds(eta),
    row.number, row.mode, row.operation, row.volume, row.client_workers,
    row.server_workers, report.row_summary(row)))
end

local function run_row(target, mode, oi, si, ci, vi, mi)
  local op, file = axes.ops[oi], files[si]
  local clients = math.tointeger(tonumber(axes.clients[ci]))
  local result, err = fileserv.stress {
    server = target, op = op, file = file.path, name = file.name,
    clients = clients, pool = mode, verify = true,
    timeout = tonumber(opts.timeout),
  }
  local row = report.make_row(result, err, {
    number = row_number(mi, oi, si, ci, vi), mode = mode, operation = op,
    volume = axes.sizes[si], volume_MB = file.mb, client_workers = clients,
    server_workers = math.tointeger(tonumber(axes.servers[vi])),
  })
  rows[#rows + 1] = row
  progress(row)
end

-- Downloads need the file on the server first.
local function upload_sources(target)
  local c = fileserv.client { host = target.host, port = target.port,
                              timeout = tonumber(opts.timeout) }
  for _, f in ipairs(files) do assert(c:put(f.path, f.name)) end
end

local function run_server(mode, mi, vi)
  local target, srv = opts.server, nil
  if target == "" then
    srv = assert(fileserv.serve {
      mode = mode, workers = axes.servers[vi], port = 0,
      storage = work .. "/storage", sync = opts.sync,
      idle_timeout = opts.timeout .. "s",
    })
    target = srv
  else
    target = fileserv.client(target)
  end
  upload_sources(target)
  for oi = 1, #axes.ops do
    for si = 1, #axes.sizes do
      for ci = 1, #axes.clients do
        run_row(target, mode, oi, si, ci, vi, mi)
      end
    end
  end
  if srv then srv:stop() end
end

for mi, mode in ipairs(axes.modes) do
  for vi = 1, #axes.servers do run_server(mode, mi, vi) end
end
table.sort(rows, function(a, b) return a.number < b.number end)

local wall = fileserv.now() - started
local meta = {
  fileserv = fileserv.version, date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  wall_s = wall, sync = opts.sync, server = opts.server ~= "" and opts.server or "loopback, started by the script",
}
assert(fileserv.csv.write(opts.out .. "/results.csv", report.columns, rows))
local jf = assert(io.open(opts.out .. "/results.json", "w"))
jf:write(fileserv.json.encode({ meta = meta, rows = rows }, true), "\n")
jf:close()
local sf = assert(io.open(opts.out .. "/results.svg", "w"))
sf:write(report.svg(rows, axes, meta))
sf:close()
os.execute("rm -rf '" .. work .. "'")

local failed = report.print_table(rows)
io.stderr:write(string.format("%d rows in %s; %d failed. Wrote %s/results.csv, .json, .svg\n",
  #rows, fileserv.format_seconds(wall), failed, opts.out))
os.exit(failed == 0 and 0 or 1)
