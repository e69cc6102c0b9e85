-- lua/report.lua (require "fileserv.report"): the chart of a matrix's
-- results (the results table of results.json, see lua/matrix.lua) as SVG.
local report = {}

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

-- The chart as SVG text, from a results table (results.json): a panel
-- per operation and size (rows of the grid), one column per server mode,
-- one line per server worker count, y = median aggregate MB/s, x = client
-- workers.
function report.svg(results)
  local rows, axes, seen = {}, { ops = {}, sizes = {}, clients = {}, servers = {}, modes = {} }, {}
  local function add(list, v)
    if not seen[list] then seen[list] = {} end
    if not seen[list][v] then seen[list][v] = true; list[#list + 1] = v end
  end
  for _, c in ipairs(results.cells) do
    add(axes.ops, c.operation); add(axes.sizes, c.volume)
    add(axes.clients, tostring(c.client_workers)); add(axes.servers, tostring(c.server_workers))
    add(axes.modes, c.server_mode)
    rows[#rows + 1] = { operation = c.operation, volume = c.volume, mode = c.server_mode,
      client_workers = c.client_workers, server_workers = c.server_workers,
      aggregate_Bps = c.throughput_Bps and c.throughput_Bps.median or 0,
      succeeded = c.samples > 0 and c.failed == 0 }
  end
  local meta = { fileserv = results.meta.fileserv, date = results.meta.date,
                 sync = results.meta.sync, server = results.meta.target }
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
