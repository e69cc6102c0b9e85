-- scripts/scenario.lua: a per-user scenario. Each virtual user (a client
-- worker) uploads its own file, lists the server, downloads the file back
-- and deletes it, pausing --think seconds between steps; it repeats this
-- --iterations times. The scenario runs once with the thread pool and once
-- with the process pool, and a summary of each run is printed. Latencies
-- are per iteration, so they include the think time.
--
--   fileserv run scripts/scenario.lua [--users 5] [--iterations 3]
--     [--size 256kB] [--think 0.05] [--server HOST:PORT]
local fileserv = require "fileserv"
local opts = fileserv.options(arg, { users = "5", iterations = "3",
  size = "256kB", think = "0.05", server = "" })

local work = os.tmpname()
os.remove(work)
assert(os.execute("mkdir -p '" .. work .. "'"))
local file = work .. "/upload.bin"
fileserv.mkfile(file, fileserv.size(opts.size))

local srv, target = nil, opts.server
if target == "" then   -- no --server: our own server on loopback
  srv = assert(fileserv.serve { port = 0, workers = 8, storage = work .. "/storage", sync = false })
  target = srv
end

-- Runs in each worker, in a Lua state of its own: it gets its data from
-- `args` and must not use this script's locals (they arrive as nil), hence
-- its own `require`.
local function user(client, worker, iteration, args)
  local fileserv = require "fileserv"
  local name = string.format("user%d-%d.bin", worker, iteration)
  local r, err, class = client:put(args.file, name)
  if not r then return nil, err, class end
  fileserv.sleep(args.think)
  r, err, class = client:ls()
  if not r then return nil, err, class end
  local found = false
  for _, n in ipairs(r.names) do found = found or n == name end
  if not found then return nil, name .. " missing from ls", "mismatch" end
  fileserv.sleep(args.think)
  r, err, class = client:get(name)
  if not r then return nil, err, class end
  if r.bytes ~= args.size then return nil, name .. ": wrong size", "mismatch" end
  fileserv.sleep(args.think)
  return client:rm(name)   -- a result table (ok) or nil, message, class
end

local failed = 0
for _, pool in ipairs { "thread", "process" } do
  local s = assert(fileserv.stress { server = target, pool = pool, scenario = user,
    clients = tonumber(opts.users), iterations = tonumber(opts.iterations),
    args = { file = file, size = fileserv.size(opts.size), think = tonumber(opts.think) } })
  local l = s.latency_ms
  print(string.format("%-7s %d users: %d ok, %d failed in %.2fs, %s moved",
    pool, s.clients, s.ok, s.failed, s.wall_s, fileserv.format_bytes(s.bytes)))
  print(string.format("        latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f",
    l.p50, l.p90, l.p99, l.max))
  if s.first_error then print("        first error: " .. s.first_error:match("[^\n]*")) end
  failed = failed + s.failed
end

if srv then srv:stop() end
os.execute("rm -rf '" .. work .. "'")
os.exit(failed == 0 and 0 or 1)
