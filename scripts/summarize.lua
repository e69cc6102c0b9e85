-- scripts/summarize.lua: summarizes a results CSV, as written by
-- scripts/stress_all.lua or scripts/custom_matrix.lua: the best and worst
-- aggregate throughput per operation and size, the mean aggregate
-- throughput per operation and server worker count, and the rows that
-- failed (left out of the best, worst and mean). Needs no server.
--
--   fileserv run scripts/summarize.lua [results/latest/results.csv]
local fileserv = require "fileserv"
local path = arg[1] or "results/latest/results.csv"
local rows, err = fileserv.csv.read(path)
if not rows then
  io.stderr:write("summarize: ", err, "\n")
  os.exit(2)
end

local function mbps(r) return r.throughput_median_Bps / 1e6 end
local function describe(r)
  return string.format("%8.1f MB/s  #%d %s, %d clients, %d server workers",
    mbps(r), r.No, r.server_mode, r["Client workers"], r["Server workers"])
end

local groups, order, by_server, failed = {}, {}, {}, {}
for _, r in ipairs(rows) do
  local ok, bad = tostring(r["Client workers succeeded/failed"]):match("^(%d+)/(%d+)$")
  if tonumber(bad) ~= 0 or tonumber(ok) == 0 or r.throughput_median_Bps == "" then
    failed[#failed + 1] = r
  else
    local key = r.Operation .. " " .. r.Volume
    if not groups[key] then groups[key], order[#order + 1] = {}, key end
    table.insert(groups[key], r)
    local skey = string.format("%-9s %4d", r.Operation, r["Server workers"])
    local s = by_server[skey] or { n = 0, sum = 0 }
    s.n, s.sum = s.n + 1, s.sum + mbps(r)
    by_server[skey] = s
  end
end

print(string.format("%s: %d rows, %d failed", path, #rows, #failed))
print("\nAggregate throughput per operation and size:")
for _, key in ipairs(order) do
  local g = groups[key]
  table.sort(g, function(a, b) return mbps(a) > mbps(b) end)
  print("  " .. key)
  print("    best  " .. describe(g[1]))
  print("    worst " .. describe(g[#g]))
end

print("\nMean aggregate throughput per operation by server worker count:")
local keys = {}
for k in pairs(by_server) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do
  print(string.format("  %s server workers: %8.1f MB/s over %d rows", k,
    by_server[k].sum / by_server[k].n, by_server[k].n))
end

print("\nFailed rows:" .. (#failed == 0 and " none" or ""))
for _, r in ipairs(failed) do
  print(string.format("  #%d %s %s %s, %d clients, %d server workers: %s", r.No, r.server_mode,
    r.Operation, r.Volume, r["Client workers"], r["Server workers"],
    (r.first_error ~= "" and r.first_error or r.errors):match("[^\n]*")))
end
