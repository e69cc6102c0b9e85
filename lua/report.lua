-- lua/report.lua (require "fileserv.report"): the chart of a matrix's
-- results (the results table of results.json, see lua/matrix.lua) as SVG,
-- drawn by fileserv.html as the charts of results.html are.
local report = {}

-- The throughput charts of every operation as one SVG document.
function report.svg(results)
  return require("fileserv.html").svg(results)
end

return report
