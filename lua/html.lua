-- lua/html.lua (require "fileserv.html"): the readable forms of a results
-- table (results.json of scripts/stress_all.lua, decoded): one
-- self-contained HTML page and the throughput charts as SVG. The compared
-- sides share each chart's axes, with error bars from the confidence
-- intervals and one y scale per operation. Every text taken from the
-- table is escaped, and nothing refers to anything outside the page.
local html = {}

local ENTITIES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                   ['"'] = "&quot;", ["'"] = "&#39;" }

-- s with each byte that is not part of valid UTF-8, and each control
-- character XML forbids, replaced by U+FFFD.
local function clean_text(s)
  local out, i = {}, 1
  while true do
    local ok, bad = utf8.len(s, i)
    if ok then out[#out + 1] = s:sub(i); break end
    out[#out + 1] = s:sub(i, bad - 1) .. "\u{FFFD}"
    i = bad + 1
  end
  return (table.concat(out):gsub("[\0-\8\11\12\14-\31\127]", "\u{FFFD}"))
end

-- Text made safe for HTML and XML, in element content and in attributes.
function html.escape(s)
  return (clean_text(tostring(s)):gsub("[&<>\"']", ENTITIES))
end
local esc = html.escape

-- ---- numbers as the page shows them ----

-- v formatted with fmt after dividing by scale, or "n/a" when absent.
local function num(fmt, v, scale)
  v = tonumber(v)
  if v == nil then return "n/a" end
  return string.format(fmt, v / (scale or 1))
end

-- An integer with thousands separators (1,234,567), or "n/a".
local function int(v)
  v = tonumber(v)
  if v == nil then return "n/a" end
  local s, k = string.format("%.0f", v), 0
  repeat s, k = s:gsub("^(-?%d+)(%d%d%d)", "%1,%2") until k == 0
  return s
end

local function mbps(v) return num("%.1f", v, 1e6) end

local function percent(v) return num("%.1f%%", v, 0.01) end

local function ci_range(fmt, lo, hi, scale)
  if tonumber(lo) == nil or tonumber(hi) == nil then return "n/a" end
  return num(fmt, lo, scale) .. "–" .. num(fmt, hi, scale)
end

local function confidence(results)
  local s = (results.meta or {}).settings or {}
  return num("%.0f%%", s.confidence or 0.95, 0.01)
end

-- ---- the compared sides ----

local SIDE_ORDER = { thread = 1, process = 2, single = 3 }
local COLORS = { "#1f77b4", "#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e" }
local SHAPES = { "circle", "square", "diamond", "triangle" }

-- What a cell's side is: its client pool in the original layout (server
-- mode and client pool change together), its server mode when the client
-- pool is held fixed.
function html.side(results, cell)
  local s = (results.meta or {}).settings or {}
  return tostring((s.layout == "client-pool" and cell.server_mode or cell.client_pool) or "?")
end

-- The sides present, thread first, process second, others as they come.
function html.sides(results)
  local seen, list = {}, {}
  for _, c in ipairs(results.cells or {}) do
    local s = html.side(results, c)
    if not seen[s] then seen[s] = true; list[#list + 1] = s end
  end
  local first = {}
  for i, s in ipairs(list) do first[s] = i end
  table.sort(list, function(a, b)
    local ra, rb = SIDE_ORDER[a] or 99, SIDE_ORDER[b] or 99
    if ra ~= rb then return ra < rb end
    return first[a] < first[b]
  end)
  return list
end

local function side_style(sides)
  local style = {}
  for i, s in ipairs(sides) do
    style[s] = { color = COLORS[(i - 1) % #COLORS + 1], shape = SHAPES[(i - 1) % #SHAPES + 1] }
  end
  return style
end

local function side_label(results, side)
  local s = (results.meta or {}).settings or {}
  if s.layout == "client-pool" then return side .. " server" end
  return side
end

-- A cell failed when a repetition failed or none completed.
local function failed(cell)
  return (tonumber(cell.failed) or 0) > 0 or (tonumber(cell.samples) or 0) == 0
end

local function sorted_cells(results)
  local cells = {}
  for i, c in ipairs(results.cells or {}) do cells[i] = c end
  table.sort(cells, function(a, b) return (a.number or 0) < (b.number or 0) end)
  return cells
end

local function operations(cells)
  local seen, ops = {}, {}
  for _, c in ipairs(cells) do
    if c.operation and not seen[c.operation] then
      seen[c.operation] = true
      ops[#ops + 1] = c.operation
    end
  end
  return ops
end

-- ---- SVG charts ----

local PLOT_H, LEFT, RIGHT, TOP, BOTTOM = 220, 58, 12, 30, 62

-- A y scale reaching v: its top and a round tick step (five steps or
-- fewer).
local function y_scale(v)
  if not v or v <= 0 then return 1, 0.2 end
  local raw = v * 1.02 / 5
  local p = 10 ^ math.floor(math.log(raw, 10))
  for _, m in ipairs { 1, 2, 2.5, 5, 10 } do
    if m * p >= raw then return math.ceil(v * 1.02 / (m * p)) * m * p, m * p end
  end
end

local function marker(shape, x, y, color, hollow)
  local paint = string.format('fill="%s" stroke="%s" stroke-width="1.5"',
                              hollow and "#ffffff" or color, color)
  if shape == "circle" then
    return string.format('<circle cx="%.1f" cy="%.1f" r="4.5" %s/>', x, y, paint)
  elseif shape == "square" then
    return string.format('<rect x="%.1f" y="%.1f" width="8" height="8" %s/>', x - 4, y - 4, paint)
  elseif shape == "diamond" then
    return string.format('<path d="M%.1f %.1fl5 5l-5 5l-5 -5z" %s/>', x, y - 5, paint)
  end
  return string.format('<path d="M%.1f %.1fl5 9h-10z" %s/>', x, y - 5, paint)
end

local function text(x, y, s, attrs)
  return string.format('<text x="%.1f" y="%.1f"%s>%s</text>', x, y,
                       attrs and " " .. attrs or "", esc(s))
end

-- Unique values of key over cells, in numeric (or text) order.
local function axis_values(cells, key, order_key)
  local seen, list = {}, {}
  for _, c in ipairs(cells) do
    local v = c[key]
    if v ~= nil and not seen[v] then
      seen[v] = c[order_key or key] or 0
      list[#list + 1] = v
    end
  end
  table.sort(list, function(a, b)
    local x, y = tonumber(seen[a]) or 0, tonumber(seen[b]) or 0
    if x ~= y then return x < y end
    return tostring(a) < tostring(b)
  end)
  return list
end

local function tooltip(results, c)
  local t = c.throughput_Bps or {}
  return string.format("#%s %s %s, %s client workers, %s server workers, %s: %s MB/s (%s CI %s MB/s), CV %s, %s samples%s%s",
    tostring(c.number), tostring(c.operation), tostring(c.volume),
    tostring(c.client_workers), tostring(c.server_workers),
    side_label(results, html.side(results, c)), mbps(t.median), confidence(results),
    ci_range("%.1f", t.ci_low, t.ci_high, 1e6), percent(t.cv), tostring(c.samples),
    c.noisy and ", noisy" or "", failed(c) and ", failures: " .. tostring(c.failed) or "")
end

-- An error bar at x from lo to hi (MB/s), cut at the plot's edges: a cut
-- end has no cap.
local function error_bar(x, lo, hi, py, ymax, color)
  local d = { string.format("M%.1f %.1fV%.1f", x, py(math.max(lo, 0)), py(math.min(hi, ymax))) }
  if lo >= 0 then d[#d + 1] = string.format("M%.1f %.1fh6", x - 3, py(lo)) end
  if hi <= ymax then d[#d + 1] = string.format("M%.1f %.1fh6", x - 3, py(hi)) end
  return string.format('<path class="ci" d="%s" stroke="%s" stroke-width="1.3" fill="none"/>',
    table.concat(d), color)
end

-- One cell's error bar, marker and failure cross at x, its figures as
-- the tooltip; py maps MB/s to y.
local function cell_marks(results, c, x, py, ymax, st)
  local t = c.throughput_Bps or {}
  local out = { "<g><title>" .. esc(tooltip(results, c)) .. "</title>" }
  if tonumber(t.ci_low) and tonumber(t.ci_high) then
    out[#out + 1] = error_bar(x, t.ci_low / 1e6, t.ci_high / 1e6, py, ymax, st.color)
  end
  if tonumber(t.median) then
    out[#out + 1] = marker(st.shape, x, py(t.median / 1e6), st.color, c.noisy)
  end
  if failed(c) then
    out[#out + 1] = text(x, tonumber(t.median) and py(t.median / 1e6) - 8 or py(0) - 3, "✕",
      'font-size="13" font-weight="bold" text-anchor="middle" fill="#c00000"')
  end
  out[#out + 1] = "</g>"
  return table.concat(out, "\n")
end

-- A panel's title, y grid with ticks, y axis and its title.
local function panel_axes(add, x0, title, plot_w, ymax, step, py)
  add(text(x0, 18, title, 'font-size="13" font-weight="bold"'))
  for k = 0, math.floor(ymax / step + 0.5) do
    local v = k * step
    add(string.format('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s"/>',
      x0, x0 + plot_w, py(v), py(v), k == 0 and "#444444" or "#dddddd"))
    add(text(x0 - 5, py(v) + 4, string.format("%g", v), 'font-size="10" text-anchor="end" fill="#444444"'))
  end
  add(string.format('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#444444"/>',
    x0, x0, TOP, TOP + PLOT_H))
  add(string.format('<text transform="translate(%.1f %.1f) rotate(-90)" font-size="11" ' ..
    'text-anchor="middle">throughput (MB/s)</text>', x0 - 42, TOP + PLOT_H / 2))
  add(text(x0 + plot_w / 2, TOP + PLOT_H + 50, "workers: server (upper row), client (lower row)",
    'font-size="11" text-anchor="middle"'))
end

-- The cells of one operation, found by volume, worker counts and side,
-- and their y scale in MB/s (top, step): it holds every sample and each
-- interval up to 1.5 times the cell's largest sample, so that the wild
-- interval of a cell with two samples does not flatten the others.
local function index_cells(results, op)
  local cells, at, top = {}, {}, 0
  for _, c in ipairs(sorted_cells(results)) do
    if c.operation == op then
      cells[#cells + 1] = c
      at[table.concat({ tostring(c.volume), tostring(c.client_workers),
                        tostring(c.server_workers), html.side(results, c) }, "\0")] = c
      local t = c.throughput_Bps or {}
      local high = tonumber(t.max) or tonumber(t.median)
      if high then
        top = math.max(top, high, math.min(tonumber(t.ci_high) or 0, 1.5 * high))
      end
    end
  end
  return cells, at, y_scale(top / 1e6)
end

-- One operation's chart: a panel per volume, side by side on one y scale;
-- in a panel, a group per client and server worker count, a marker per
-- side at its median throughput with an error bar from ci_low to ci_high.
-- Returns the SVG elements (no enclosing <svg>), the width and the height.
function html.chart(results, op)
  local cells, at, ymax, step = index_cells(results, op)
  local sides = html.sides(results)
  local style = side_style(sides)
  local volumes = axis_values(cells, "volume", "volume_bytes")
  local clients = axis_values(cells, "client_workers")
  local servers = axis_values(cells, "server_workers")
  local groups = math.max(#clients * #servers, 1)
  local plot_w = math.max(groups * math.max(26, 13 * #sides + 12), 240)
  local group_w = plot_w / groups
  local panel_w = LEFT + plot_w + RIGHT
  local out = {}
  local function add(s) out[#out + 1] = s end
  local function py(v) return TOP + PLOT_H - v / ymax * PLOT_H end
  for vi, volume in ipairs(volumes) do
    local x0 = (vi - 1) * panel_w + LEFT
    panel_axes(add, x0, op .. " " .. volume, plot_w, ymax, step, py)
    for ci, cw in ipairs(clients) do
      local bx = x0 + (ci - 1) * #servers * group_w
      if ci > 1 then
        add(string.format('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#bbbbbb" ' ..
          'stroke-dasharray="3 3"/>', bx, bx, TOP, TOP + PLOT_H + 30))
      end
      add(text(bx + #servers * group_w / 2, TOP + PLOT_H + 30, tostring(cw),
        'font-size="11" font-weight="bold" text-anchor="middle"'))
      for si, sw in ipairs(servers) do
        local gx = bx + (si - 0.5) * group_w
        add(text(gx, TOP + PLOT_H + 14, tostring(sw), 'font-size="10" text-anchor="middle" fill="#444444"'))
        for k, side in ipairs(sides) do
          local c = at[table.concat({ tostring(volume), tostring(cw), tostring(sw), side }, "\0")]
          if c then add(cell_marks(results, c, gx + (k - (#sides + 1) / 2) * 12, py, ymax, style[side])) end
        end
      end
    end
  end
  return table.concat(out, "\n"), math.max(#volumes, 1) * panel_w, TOP + PLOT_H + BOTTOM
end

-- The legend: one entry per side, then what hollow markers, crosses and
-- bars mean. Returns the SVG elements and the width.
function html.legend(results)
  local s = (results.meta or {}).settings or {}
  local sides = html.sides(results)
  local style, out, x = side_style(sides), {}, 8
  local function item(symbol, label)
    out[#out + 1] = symbol
    out[#out + 1] = text(x + 9, 14, label, 'font-size="12"')
    x = x + 26 + 6.5 * #label
  end
  for _, side in ipairs(sides) do
    item(marker(style[side].shape, x, 10, style[side].color, false), side_label(results, side))
  end
  item(marker("circle", x, 10, "#555555", true),
    string.format("hollow: noisy (CV > %s)", percent(s.noisy_cv or 0.05)))
  item(text(x, 15, "✕", 'font-size="13" font-weight="bold" text-anchor="middle" fill="#c00000"'),
    "failures")
  item(string.format('<path d="M%.1f 3V17M%.1f 3h6M%.1f 17h6" stroke="#555555" stroke-width="1.3" fill="none"/>',
    x, x - 3, x - 3), confidence(results) .. " confidence interval (no cap: cut at the axis); marker: median")
  return table.concat(out, "\n"), math.ceil(x)
end

local function meta_line(results)
  local m = results.meta or {}
  local s = m.settings or {}
  return string.format("fileserv %s, %s, %s (%s cores), uploads %s, median of %s repetitions%s",
    tostring(m.fileserv or "?"), tostring(m.date or "?"), tostring(m.host or "?"),
    tostring(m.cores or "?"), m.sync and "fsynced" or "not fsynced",
    tostring(s["repeat"] or "?"),
    s.shared_cores and "; client and server shared cores" or "")
end

-- The charts of every operation as one standalone SVG document.
function html.svg(results)
  local cells = sorted_cells(results)
  local parts, width, y = {}, 600, 78
  for _, op in ipairs(operations(cells)) do
    local body, w, h = html.chart(results, op)
    parts[#parts + 1] = string.format('<g transform="translate(10 %d)">\n%s\n</g>', y, body)
    width, y = math.max(width, w + 20), y + h + 10
  end
  local legend, lw = html.legend(results)
  local subtitle = meta_line(results)
  width = math.ceil(math.max(width, lw + 20, 20 + 5.8 * #subtitle))
  return table.concat({
    string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
      'viewBox="0 0 %d %d" font-family="sans-serif">', width, y, width, y),
    '<rect width="100%" height="100%" fill="#ffffff"/>',
    text(10, 22, "Throughput per cell: " .. table.concat(html.sides(results), " vs ") ..
      " on the same axes", 'font-size="15" font-weight="bold"'),
    text(10, 40, subtitle, 'font-size="11" fill="#444444"'),
    '<g transform="translate(10 52)">', legend, "</g>",
    table.concat(parts, "\n"),
    "</svg>\n",
  }, "\n")
end

-- ---- the HTML page ----

local CSS = [[
body{font-family:sans-serif;font-size:14px;color:#222;margin:1.5em auto;max-width:1400px;padding:0 1em}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.6em 0 .5em;border-bottom:1px solid #ccc}
.sub{color:#555;margin:0 0 1em}
.verdict{border:2px solid #1f77b4;border-radius:6px;padding:.6em 1em;background:#f4f8fc}
.headline{font-size:1.25em;font-weight:bold;margin:.2em 0 .5em}
.warn{border:2px solid #c07000;background:#fff6e0;padding:.5em 1em;border-radius:6px;margin:.5em 0}
.bad{border-color:#c00000;background:#fde8e8}
table{border-collapse:collapse;font-size:12px;margin:.3em 0}.scroll{overflow-x:auto}
th,td{border:1px solid #ccc;padding:2px 4px;vertical-align:top}
th{background:#eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.nw{white-space:nowrap}
tr.noisy td{background:#fff4cc}tr.failed td{background:#fbdcdc}
.flag{font-weight:bold;font-size:11px;border-radius:3px;padding:0 3px;white-space:nowrap}
.f-noisy{background:#e0b000;color:#000}.f-failed{background:#c00000;color:#fff}
.v-faster{color:#1a7a1a;font-weight:bold}.v-slower{color:#b00000;font-weight:bold}.v-same{color:#555}
.err{font-family:monospace;font-size:11px;min-width:6em;max-width:24em;overflow-wrap:anywhere}.wide{min-width:12em}
.chart{margin:.5em 0 1em;break-inside:avoid}.chart svg{max-width:100%;height:auto}
table.meta th{width:12em}code{font-size:12px;overflow-wrap:anywhere}
@media print{body{font-size:10pt;max-width:none;margin:0}table{font-size:7pt}
details{display:none}.scroll{overflow:visible}.verdict,.warn{break-inside:avoid}h2{break-after:avoid}}
@page{size:A4 landscape;margin:1cm}
]]

local function svg_element(body, w, h, label)
  return string.format('<svg width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" ' ..
    'role="img" aria-label="%s">\n%s\n</svg>', w, h, w, h, esc(label), body)
end

-- A table: headers is a list of texts; each row is { class=, id=, cells }
-- where a cell is a text (escaped here) or { html = markup, class = }.
local function table_html(out, headers, rows, class)
  out[#out + 1] = string.format('<div class="scroll"><table%s><thead><tr>', class and ' class="' .. class .. '"' or "")
  for _, h in ipairs(headers) do out[#out + 1] = "<th>" .. esc(h) .. "</th>" end
  out[#out + 1] = "</tr></thead><tbody>"
  for _, r in ipairs(rows) do
    out[#out + 1] = string.format("<tr%s%s>", r.id and ' id="' .. esc(r.id) .. '"' or "",
      r.class and ' class="' .. r.class .. '"' or "")
    for _, c in ipairs(r) do
      if type(c) == "table" then
        out[#out + 1] = string.format("<td%s>%s</td>", c.class and ' class="' .. c.class .. '"' or "",
          c.html or esc(c.text))
      else
        out[#out + 1] = "<td>" .. esc(c) .. "</td>"
      end
    end
    out[#out + 1] = "</tr>"
  end
  out[#out + 1] = "</tbody></table></div>"
end

local function n(s) return { text = s, class = "n" } end

local function cell_link(number)
  return { html = string.format('<a href="#cell-%s">%s</a>', esc(number), esc(number)), class = "n" }
end

local function cell_class(c)
  local classes = {}
  if c.noisy then classes[#classes + 1] = "noisy" end
  if failed(c) then classes[#classes + 1] = "failed" end
  return #classes > 0 and table.concat(classes, " ") or nil
end

local function flags(c)
  local f = {}
  if failed(c) then f[#f + 1] = '<span class="flag f-failed">FAILED</span>' end
  if c.noisy then f[#f + 1] = '<span class="flag f-noisy">noisy</span>' end
  return { html = table.concat(f, " ") }
end

-- The cell's operation, volume and worker counts, then its side if asked.
local function cell_axes(results, c, with_side)
  return { c.operation or "", c.volume or "", n(tostring(c.client_workers)),
           n(tostring(c.server_workers)), with_side and html.side(results, c) or nil }
end

-- "thread" when the server mode and the client pool agree, else "A / B".
local function pools(c)
  local mode, pool = tostring(c.server_mode or "?"), tostring(c.client_pool or "?")
  return mode == pool and mode or mode .. " / " .. pool
end

local function cells_table(out, results, cells)
  local conf = confidence(results)
  local rows = {}
  for _, c in ipairs(cells) do
    local t, o = c.throughput_Bps or {}, c.ops_per_s or {}
    local row = { id = "cell-" .. tostring(c.number), class = cell_class(c), n(tostring(c.number)) }
    for _, v in ipairs(cell_axes(results, c, false)) do row[#row + 1] = v end
    for _, v in ipairs {
      pools(c), n(tostring(c.samples)),
      n(mbps(t.median)), n(ci_range("%.1f", t.ci_low, t.ci_high, 1e6)),
      n(ci_range("%.1f", t.min, t.max, 1e6)), n(percent(t.cv)),
      n(num("%.1f", o.median)), n(num("%.2f", c.latency_p50_ms)), n(num("%.2f", c.latency_p99_ms)),
      n(num("%.3f", c.time_per_client_s)), n(mbps(c.throughput_per_client_Bps)),
      n(int(c.ok)), n(int(c.failed)), n(int(c.server_succeeded) .. " / " .. int(c.server_failed)),
      n(int(c.verified_bytes)), flags(c),
      { text = c.errors or "", class = "err" }, { text = c.first_error or "", class = "err wide" },
    } do row[#row + 1] = v end
    rows[#rows + 1] = row
  end
  table_html(out, { "No", "operation", "volume", "client workers", "server workers",
    "server mode / client pool", "samples", "MB/s (median)", conf .. " CI (MB/s)",
    "min–max MB/s", "CV", "ops/s (median)", "p50 ms", "p99 ms", "time per client (s)",
    "MB/s per client", "ok", "failed", "server ok / failed", "verified bytes", "flags", "errors", "first error" }, rows)
end

local function resources_table(out, results, cells)
  local rows = {}
  for _, c in ipairs(cells) do
    local row = { class = cell_class(c), cell_link(c.number) }
    for _, v in ipairs(cell_axes(results, c, true)) do row[#row + 1] = v end
    for _, v in ipairs {
      n(num("%.2f", c.server_cpu_s)), n(num("%.2f", c.server_cpu_s_per_gb)),
      n(num("%.1f", c.server_peak_rss_bytes, 1e6)), n(num("%.2f", c.client_cpu_s)),
    } do row[#row + 1] = v end
    rows[#rows + 1] = row
  end
  table_html(out, { "No", "operation", "volume", "client workers", "server workers", "side",
    "server CPU (s)", "server CPU s per GB", "server peak RSS (MB)", "client CPU (s)" }, rows)
end

local VERDICT_COLORS = { faster = "#1a7a1a", slower = "#b00000" }

-- A comparison's ratio and interval on a log scale from 1/4 to 4, with
-- lines at 1/2, 1 and 2: an inline SVG for its row. An end of the
-- interval beyond the scale is cut and has no cap.
-- A verdict reached at the pair's own confidence that does not survive
-- the correction for the number of pairs: shown muted, with a mark.
local function weak(k)
  return (k.verdict == "faster" or k.verdict == "slower") and k.holds_corrected == false
end

local function forest(k)
  local w = 150
  local function px(r) return w / 2 + math.max(-1, math.min(1, math.log(r, 4))) * (w / 2 - 4) end
  local out = { string.format('<svg width="%d" height="14" viewBox="0 0 %d 14" role="img" aria-label="ratio">', w, w) }
  for _, r in ipairs { 0.5, 1, 2 } do
    out[#out + 1] = string.format('<line x1="%.1f" x2="%.1f" y1="0" y2="14" stroke="%s"/>',
      px(r), px(r), r == 1 and "#777777" or "#dddddd")
  end
  local lo, hi, ratio = tonumber(k.ci_low), tonumber(k.ci_high), tonumber(k.ratio)
  local color = not weak(k) and VERDICT_COLORS[k.verdict] or "#555555"
  if lo and hi and hi > 0 then
    lo = math.max(lo, 1e-9)
    local d = { string.format("M%.1f 7H%.1f", px(lo), px(hi)) }
    if lo >= 0.25 then d[#d + 1] = string.format("M%.1f 3V11", px(lo)) end
    if hi <= 4 then d[#d + 1] = string.format("M%.1f 3V11", px(hi)) end
    out[#out + 1] = string.format('<path d="%s" stroke="%s" stroke-width="1.5" fill="none"/>',
      table.concat(d), color)
  end
  if ratio and ratio > 0 then
    out[#out + 1] = string.format('<circle cx="%.1f" cy="7" r="3.5" fill="%s"/>', px(ratio), color)
  end
  out[#out + 1] = "</svg>"
  return { html = table.concat(out) }
end

local function comparisons_table(out, results)
  local rows, marked = {}, false
  for _, k in ipairs(results.comparisons or {}) do
    local verdict = tostring(k.verdict or "")
    local vclass = ({ faster = "v-faster", slower = "v-slower", same = "v-same", unknown = "v-same" })[verdict]
    if weak(k) then verdict, vclass, marked = verdict .. "*", "v-same", true end
    rows[#rows + 1] = {
      k.operation or "", k.volume or "", n(tostring(k.client_workers)), n(tostring(k.server_workers)),
      k.axis or "", { html = string.format('%s (<a href="#cell-%s">#%s</a>) / %s (<a href="#cell-%s">#%s</a>)',
        esc(k.a_label or "a"), esc(k.a), esc(k.a), esc(k.b_label or "b"), esc(k.b), esc(k.b)), class = "nw" },
      n(num("%.3f", k.ratio)), n(ci_range("%.3f", k.ci_low, k.ci_high)), forest(k),
      { text = verdict, class = vclass }, k.text or "",
    }
  end
  table_html(out, { "operation", "volume", "client workers", "server workers", "axis",
    "a / b (cells)", "ratio a/b", confidence(results) .. " CI", "ratio, log scale ¼–4",
    "verdict", "" }, rows)
  if marked then
    out[#out + 1] = string.format("<p>* not significant once corrected for %d comparisons " ..
      "(Holm): a verdict that chance alone could give among this many pairs.</p>",
      #results.comparisons)
  end
end

local function runs_table(out, cells)
  local rows = {}
  for _, c in ipairs(cells) do
    for _, r in ipairs(c.runs or {}) do
      rows[#rows + 1] = { cell_link(c.number), n(tostring(r.round)), n(mbps(r.throughput_Bps)),
        n(num("%.1f", r.ops_per_s)), n(num("%.3f", r.wall_s)), n(int(r.ok)), n(int(r.failed)),
        n(num("%.2f", r.latency_p50_ms)), n(num("%.2f", r.latency_p99_ms)),
        n(num("%.2f", r.server_cpu_s)), n(num("%.2f", r.client_cpu_s)) }
    end
  end
  table_html(out, { "No", "round", "MB/s", "ops/s", "wall (s)", "ok", "failed", "p50 ms",
    "p99 ms", "server CPU (s)", "client CPU (s)" }, rows)
end

local SETTINGS = { "repeat", "min_time_s", "warmup_s", "layout", "client_pool", "confidence",
                   "noisy_cv", "server_cpus", "client_cpus", "shared_cores", "seed" }

local function value(v)
  if v == nil then return "—" end
  if type(v) == "boolean" then return v and "yes" or "no" end
  return tostring(v)
end

local function meta_table(out, m)
  local s = m.settings or {}
  local rows = {
    { "command", { html = "<code>" .. esc(value(m.command)) .. "</code>" } },
    { "date", value(m.date) }, { "fileserv", value(m.fileserv) }, { "host", value(m.host) },
    { "CPU", value(m.cpu_model) }, { "cores", value(m.cores) },
    { "memory", tonumber(m.memory_bytes) and string.format("%.1f GiB (%s bytes)",
      m.memory_bytes / 2 ^ 30, int(m.memory_bytes)) or "—" },
    { "kernel", value(m.kernel) }, { "codec", value(m.codec) },
    { "sync", m.sync and "uploads fsynced" or "uploads not fsynced" },
    { "target", value(m.target) }, { "wall time (s)", num("%.1f", m.wall_s) },
    { "complete", value(m.complete) .. (m.interrupted and ", interrupted by " .. tostring(m.interrupted) or "") },
  }
  local known = {}
  for _, k in ipairs(SETTINGS) do
    known[k] = true
    rows[#rows + 1] = { "settings." .. k, value(s[k]) }
  end
  local extra = {}
  for k in pairs(s) do if not known[k] then extra[#extra + 1] = tostring(k) end end
  table.sort(extra)
  for _, k in ipairs(extra) do rows[#rows + 1] = { "settings." .. k, value(s[k]) } end
  for _, r in ipairs(rows) do r[1] = { html = "<b>" .. esc(r[1]) .. "</b>" } end
  table_html(out, { "", "" }, rows, "meta")
end

local function wins_line(results)
  local a = results.analysis or {}
  local wins = a.wins or {}
  local order, seen = {}, {}
  local first = (results.comparisons or {})[1] or {}
  for _, k in ipairs { first.a_label, first.b_label, "same" } do
    if not seen[k] then seen[k] = true; order[#order + 1] = k end
  end
  local rest = {}
  for k in pairs(wins) do if not seen[k] then rest[#rest + 1] = tostring(k) end end
  table.sort(rest)
  for _, k in ipairs(rest) do order[#order + 1] = k end
  local parts = {}
  for _, k in ipairs(order) do
    local what = ({ same = "no clear difference", unknown = "too few samples" })[k] or k .. " faster"
    parts[#parts + 1] = what .. ": " .. tostring(wins[k] or 0)
  end
  if #parts > 0 and a.holds_corrected then
    parts[#parts] = parts[#parts] .. string.format(" (corrected for %d comparisons, %d " ..
      "of the verdicts hold)", #(results.comparisons or {}), a.holds_corrected)
  end
  return #parts > 0 and "Comparisons won — " .. table.concat(parts, "; ") or nil
end

-- The capacity searches (stress_all.lua --find-max), if any.
local function capacity_section(out, results)
  local cap = results.capacity
  if not cap then return end
  out[#out + 1] = '<h2 id="capacity">Capacity</h2>'
  out[#out + 1] = string.format("<p>The highest arrival rate that held %s, %d clients in flight, " ..
    "steps of %s s from %s/s, doubling and then bisecting to 5%%.</p>",
    esc(table.concat(cap.thresholds or {}, " and ")), cap.clients or 0, num("%.2f", cap.step_s),
    num("%g", cap.start_rate))
  local rows = {}
  for _, c in ipairs(cap.searches or {}) do
    rows[#rows + 1] = { pools(c), n(tostring(c.server_workers)), c.operation or "", c.volume or "",
      n(num("%.1f", c.max_rate)), n(num("%.1f", c.first_failing_rate)), n(tostring(#(c.steps or {}))),
      { text = c.text or "", class = "wide" } }
  end
  table_html(out, { "server mode / client pool", "server workers", "operation", "volume",
    "held (/s)", "failed (/s)", "steps", "result" }, rows)
end

local function warnings(out, results, cells)
  local m = results.meta or {}
  local s = m.settings or {}
  local function warn(msg, bad)
    out[#out + 1] = string.format('<p class="warn%s">%s</p>', bad and " bad" or "", msg)
  end
  if m.complete == false then
    warn(string.format("<b>Incomplete run</b>%s: the tables hold the %d cells finished.",
      m.interrupted and " (interrupted by " .. esc(m.interrupted) .. ")" or "", #cells), true)
  end
  local nfailed, nnoisy = 0, 0
  for _, c in ipairs(cells) do
    if failed(c) then nfailed = nfailed + 1 end
    if c.noisy then nnoisy = nnoisy + 1 end
  end
  if nfailed > 0 then
    warn(string.format('<b>%d cell%s had failures</b> (marked FAILED in <a href="#cells">the table</a>).',
      nfailed, nfailed == 1 and "" or "s"), true)
  end
  if s.shared_cores then
    warn("<b>Client and server could run on the same cores</b> (shared_cores): the load " ..
      "generator competes with the server for CPU, so these figures are lower than a " ..
      "server with cores of its own would reach, and the two sides can differ by how they share them.")
  end
  if nnoisy > 0 then
    warn(string.format("<b>%d noisy cell%s</b>: the repetitions' coefficient of variation is above %s; " ..
      "read their medians with care.", nnoisy, nnoisy == 1 and "" or "s", percent(s.noisy_cv or 0.05)))
  end
end

-- The whole page as one string: verdict and analysis, warnings, charts,
-- comparisons, cells, resource use, repetitions and the run's metadata.
function html.render(results)
  local m = results.meta or {}
  local a = results.analysis or {}
  local cells = sorted_cells(results)
  local title = "fileserv stress results: " .. table.concat(html.sides(results), " vs ")
  local out = {
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8"/>',
    '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
    "<title>" .. esc(title .. " (" .. value(m.date) .. ")") .. "</title>",
    "<style>" .. CSS .. "</style></head><body>",
    "<h1>" .. esc(title) .. "</h1>",
    '<p class="sub">' .. esc(meta_line(results)) .. "</p>",
    '<section class="verdict">',
    '<p class="headline">' .. esc(a.headline or "No analysis in these results.") .. "</p>",
  }
  local wins = wins_line(results)
  if wins then out[#out + 1] = "<p><b>" .. esc(wins) .. "</b></p>" end
  for _, p in ipairs(a.paragraphs or {}) do out[#out + 1] = "<p>" .. esc(p) .. "</p>" end
  out[#out + 1] = "</section>"
  warnings(out, results, cells)
  out[#out + 1] = '<h2 id="charts">Throughput</h2>'
  local legend, lw = html.legend(results)
  out[#out + 1] = svg_element(legend, lw, 22, "legend")
  for _, op in ipairs(operations(cells)) do
    local body, w, h = html.chart(results, op)
    out[#out + 1] = '<div class="chart">' .. svg_element(body, w, h, op .. " throughput") .. "</div>"
  end
  out[#out + 1] = '<h2 id="comparisons">Comparisons</h2>'
  comparisons_table(out, results)
  capacity_section(out, results)
  out[#out + 1] = '<h2 id="cells">Cells</h2>'
  cells_table(out, results, cells)
  out[#out + 1] = '<h2 id="resources">Resource use</h2>'
  out[#out + 1] = "<p>Medians over the repetitions (peak RSS: the largest); n/a where not measured.</p>"
  resources_table(out, results, cells)
  out[#out + 1] = '<h2 id="runs">Repetitions</h2><details><summary>Every repetition of every cell</summary>'
  runs_table(out, cells)
  out[#out + 1] = '</details><h2 id="run">Run</h2>'
  meta_table(out, m)
  out[#out + 1] = "</body></html>\n"
  return table.concat(out, "\n")
end

return html
