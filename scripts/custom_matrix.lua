-- scripts/custom_matrix.lua: a matrix of your own, thread mode only:
-- download of 1MB and 20MB x 1, 10 and 30 client workers against servers
-- of 2 and 8 worker threads, each download verified against the local
-- file, once each (no repetitions: see stress_all.lua --repeat for
-- figures with their spread). Writes a CSV with the same columns as
-- scripts/stress_all.lua (so scripts/summarize.lua reads it too) and
-- prints a table.
--
--   fileserv run scripts/custom_matrix.lua [--sizes 1MB,20MB]
--     [--clients 1,10,30] [--servers 2,8] [--out results/custom_matrix.csv]
--     [--server HOST:PORT]   (then the server axis is only recorded)
local fileserv = require "fileserv"
local matrix = require "fileserv.matrix"
local opts = fileserv.options(arg, { sizes = "1MB,20MB", clients = "1,10,30",
  servers = "2,8", out = "results/custom_matrix.csv", server = "" })

local work = os.tmpname()
os.remove(work)
local outdir = opts.out:match("^(.*)/[^/]*$") or "."
assert(os.execute("mkdir -p '" .. work .. "' '" .. outdir .. "'"))

local files = {}
for i, size in ipairs(fileserv.list(opts.sizes)) do
  files[i] = { size = size, name = "matrix-" .. size, path = work .. "/matrix-" .. size }
  fileserv.mkfile(files[i].path, fileserv.size(size), i)
end

local cells = {}
for _, workers in ipairs(fileserv.list(opts.servers)) do
  local srv, target = nil, opts.server
  if target == "" then
    srv = assert(fileserv.serve { mode = "thread", workers = workers, port = 0,
                                  storage = work .. "/storage", sync = false })
    target = srv
  end
  local c = srv and srv:client() or fileserv.client(target)
  for _, f in ipairs(files) do assert(c:put(f.path, f.name)) end  -- what downloads fetch
  for _, f in ipairs(files) do
    for _, n in ipairs(fileserv.list(opts.clients)) do
      local clients = math.tointeger(tonumber(n))
      local result, err = fileserv.stress { server = target, op = "download",
        file = f.path, name = f.name, clients = clients, pool = "thread" }
      cells[#cells + 1] = matrix.summarize({
        number = #cells + 1, server_mode = "thread", client_pool = "thread",
        operation = "download", volume = f.size, client_workers = clients,
        server_workers = math.tointeger(tonumber(workers)),
        runs = { matrix.run_record(result, err, 1) } },
        { confidence = 0.95, noisy_cv = 0.05 })
    end
  end
  if srv then srv:stop() end
end
os.execute("rm -rf '" .. work .. "'")

local rows = {}
for i, c in ipairs(cells) do rows[i] = matrix.csv_row(c) end
assert(fileserv.csv.write(opts.out, matrix.csv_columns, rows))
local failed = matrix.print_table(cells, {})
print(string.format("%d rows, %d failed; wrote %s", #rows, failed, opts.out))
os.exit(failed == 0 and 0 or 1)
