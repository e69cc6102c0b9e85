-- lua/report.lua (require "fileserv.report"): turns stress results into
-- report rows, a terminal table and an SVG chart. The first nine columns
-- are the Python original's, in its order, with honest meanings: time per
-- client is the mean of each client's own duration, throughput per client
-- is bytes over that duration, and the server's successes and failures
-- come from its STATS counters, not from its configured worker count.
local report = {}

report.columns = {
  "No", "Operation", "Volume", "Client workers", "Server workers",
  "Time per client (s)", "Throughput per client (B/s)",
  "Client workers succeeded/failed", "Server workers succeeded/failed",
  "mode", "aggregate_throughput_Bps", "wall_s", "latency_p50_ms",
  "latency_p90_ms", "latency_p99_ms", "latency_max_ms", "bytes_verified",
  "errors", "first_error",
}

local function error_list(errors)
  local out = {}
  for class, n in pairs(errors or {}) do
    if n > 0 then out[#out + 1] = class .. "=" .. n end
  end
  table.sort(out)
  return table.concat(out, ";")
end

-- A report row from a stress summary (or its failure) and the row's axes.
function report.make_row(result, err, row)
  local r = result or { ok = 0, failed = row.client_workers, errors = {},
                        latency_ms = {}, first_error = err }
  local lat, srv = r.latency_ms, r.server
  row.ok, row.failed = r.ok, r.failed
  row.succeeded = err == nil and r.failed == 0 and r.ok >= row.client_workers
  row.aggregate_Bps = r.throughput_Bps or 0
  row["No"] = row.number
  row["Operation"] = row.operation
  row["Volume"] = row.volume
  row["Client workers"] = row.client_workers
  row["Server workers"] = row.server_workers
  row["Time per client (s)"] = string.format("%.4f", r.client_time_s or 0)
  row["Throughput per client (B/s)"] = string.format("%.0f", r.client_throughput_Bps or 0)
  row["Client workers succeeded/failed"] = r.ok .. "/" .. r.failed
  row["Server workers succeeded/failed"] = srv and (srv.succeeded .. "/" .. srv.failed) or "n/a"
  row["aggregate_throughput_Bps"] = string.format("%.0f", row.aggregate_Bps)
  row["wall_s"] = string.format("%.4f", r.wall_s or 0)
  for _, q in ipairs { "p50", "p90", "p99", "max" } do
    row["latency_" .. q .. "_ms"] = string.format("%.2f", lat[q] or 0)
  end
  row["bytes_verified"] = r.verified_bytes or 0
  row["errors"] = error_list(r.errors)
  row["first_error"] = r.first_error or err or ""
  return row
end

function report.row_summary(row)
  if not row.succeeded then
    return string.format("FAILED %d/%d: %s", row.ok, row.failed,
                         (row.first_error or ""):match("[^\n]*"))
  end
  return string.format("%d ok, %7.1f MB/s aggregate, %6.1f MB/s per client",
                       row.ok, row.aggregate_Bps / 1e6,
                       tonumber(row["Throughput per client (B/s)"]) / 1e6)
end

-- Prints the rows as a table on stdout; returns the number that failed.
function report.print_table(rows)
  print(string.format("%4s %-7s %-8s %6s %4s %4s %10s %12s %12s %9s %9s",
    "No", "mode", "op", "size", "cli", "srv", "t/client s", "MB/s/client",
    "MB/s total", "cli ok/f", "srv ok/f"))
  local failed = 0
  for _, r in ipairs(rows) do
    if not r.succeeded then failed = failed + 1 end
    print(string.format("%4d %-7s %-8s %6s %4d %4d %10s %12.1f %12.1f %9s %9s%s",
      r.number, r.mode, r.operation, r.volume, r.client_workers,
      r.server_workers, r["Time per client (s)"],
      tonumber(r["Throughput per client (B/s)"]) / 1e6, r.aggregate_Bps / 1e6,
      r["Client workers succeeded/failed"], r["Server workers succeeded/failed"],
      r.succeeded and "" or "  FAILED"))
  end
  return failed
end

-- ---- SVG chart: aggregate throughput against client workers ----

local W, H, PAD = 340, 210, 46
local COLORS = { "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b" }

local function esc(s)
  return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end

local function nice_max(v)
  if v <= 0 then return 1 end
  local p = 10 ^ math.floor(math.log(v, 10))
  for _, m in ipairs { 1, 2, 2.5, 5, 10 } do
    if m * p >= v then return m * p end
  end
  return 10 * p
end

local function panel(out, x0, y0, title, rows, axes, ymax)
  local pw, ph = W - PAD - 12, H - PAD - 28
  local function px(i) return x0 + PAD + (i - 1) * pw / math.max(#axes.clients - 1, 1) end
  local function py(v) return y0 + 24 + ph - v / ymax * ph end
  out[#out + 1] = string.format('<text x="%d" y="%d" class="t">%s</text>', x0 + PAD, y0 + 14, esc(title))
  for k = 0, 4 do
    local v = ymax * k / 4
    out[#out + 1] = string.format('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="g"/>' ..
      '<text x="%d" y="%.1f" class="a" text-anchor="end">%g</text>',
      x0 + PAD, x0 + PAD + pw, py(v), py(v), x0 + PAD - 4, py(v) + 4, v)
  end
  for i, c in ipairs(axes.clients) do
    out[#out + 1] = string.format('<text x="%.1f" y="%d" class="a" text-anchor="middle">%s</text>',
      px(i), y0 + 24 + ph + 14, esc(c))
  end
  for si, s in ipairs(axes.servers) do
    local pts = {}
    for ci, c in ipairs(axes.clients) do
      for _, r in ipairs(rows) do
        if tostring(r.client_workers) == c and tostring(r.server_workers) == s then
          pts[#pts + 1] = { px(ci), py(r.aggregate_Bps / 1e6), r.succeeded }
        end
      end
    end
    local color, path = COLORS[(si - 1) % #COLORS + 1], {}
    for _, p in ipairs(pts) do path[#path + 1] = string.format("%.1f,%.1f", p[1], p[2]) end
    out[#out + 1] = string.format('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>',
      table.concat(path, " "), color)
    for _, p in ipairs(pts) do
      out[#out + 1] = p[3] and
        string.format('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>', p[1], p[2], color) or
        string.format('<text x="%.1f" y="%.1f" class="x" text-anchor="middle">✕</text>', p[1], p[2] + 4)
    end
  end
end

-- The chart as SVG text: a panel per operation and size (rows of the
-- grid), thread and process side by side (columns), one line per server
-- worker count, y = aggregate MB/s, x = client workers.
function report.svg(rows, axes, meta)
  local cols, grid = #axes.modes, {}
  for _, op in ipairs(axes.ops) do
    for _, size in ipairs(axes.sizes) do grid[#grid + 1] = { op, size } end
  end
  local width, height = cols * W + 20, #grid * H + 100
  local out = {
    string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
      'font-family="sans-serif">', width, height),
    '<style>.t{font-size:13px;font-weight:bold}.a{font-size:10px;fill:#444}' ..
      '.g{stroke:#ddd}.x{fill:#d62728;font-size:12px}</style>',
    '<rect width="100%" height="100%" fill="white"/>',
    '<text x="10" y="20" class="t">Aggregate throughput (MB/s) against client workers</text>',
    string.format('<text x="10" y="36" class="a">fileserv %s, %s, uploads %s, %s</text>',
      esc(meta.fileserv), esc(meta.date), meta.sync and "fsynced" or "not fsynced (--no-sync)",
      esc(meta.server)),
  }
  for si, s in ipairs(axes.servers) do
    out[#out + 1] = string.format('<rect x="%d" y="46" width="12" height="12" fill="%s"/>' ..
      '<text x="%d" y="56" class="a">%s server worker%s</text>',
      10 + (si - 1) * 130, COLORS[(si - 1) % #COLORS + 1], 26 + (si - 1) * 130, esc(s),
      s == "1" and "" or "s")
  end
  for gi, cell in ipairs(grid) do
    local ymax = 0
    for _, r in ipairs(rows) do
      if r.operation == cell[1] and r.volume == cell[2] then
        ymax = math.max(ymax, r.aggregate_Bps / 1e6)
      end
    end
    for mi, mode in ipairs(axes.modes) do
      local sel = {}
      for _, r in ipairs(rows) do
        if r.operation == cell[1] and r.volume == cell[2] and r.mode == mode then
          sel[#sel + 1] = r
        end
      end
      panel(out, 10 + (mi - 1) * W, 70 + (gi - 1) * H,
        string.format("%s %s, %s pool (MB/s)", cell[1], cell[2], mode), sel, axes, nice_max(ymax))
    end
  end
  out[#out + 1] = "</svg>\n"
  return table.concat(out, "\n")
end

return report
