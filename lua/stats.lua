-- lua/stats.lua (require "fileserv.stats"): the statistics behind the
-- matrix's cells and verdicts, in plain Lua so that scripts can use them.
--
-- A cell is a few repetitions (3 to 10) of one measurement. Its spread is
-- the coefficient of variation, and its interval is Student's t interval
-- of the mean. Two cells are compared on the ratio of their geometric
-- means, with Welch's t interval on the logarithms of the samples: the
-- ratio is what a reader acts on ("12% faster"), throughput spreads in
-- proportion to its level, and the two cells may have different spreads.
-- Why not the alternatives the literature offers for so few samples: a
-- percentile bootstrap resamples only a handful of distinct values and its
-- intervals are too narrow below about ten samples (too many false
-- verdicts), and a rank test cannot reach 95% at all with three against
-- three (its smallest two-sided p is 0.1). Welch's interval is exact for
-- log-normal samples and honest (wide) when they are few.
local stats = {}

-- log of the gamma function (Lanczos, g = 7, n = 9), for x > 0.
local LANCZOS = {
  0.99999999999980993, 676.5203681218851, -1259.1392167224028,
  771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
}
local function log_gamma(x)
  if x < 0.5 then
    return math.log(math.pi / math.abs(math.sin(math.pi * x))) - log_gamma(1 - x)
  end
  x = x - 1
  local a, t = LANCZOS[1], x + 7.5
  for i = 2, 9 do a = a + LANCZOS[i] / (x + i - 1) end
  return 0.5 * math.log(2 * math.pi) + (x + 0.5) * math.log(t) - t + math.log(a)
end

-- Continued fraction of the regularized incomplete beta function (the
-- modified Lentz method).
local function beta_fraction(a, b, x)
  local tiny, c, d = 1e-300, 1, 1 - (a + b) * x / (a + 1)
  if math.abs(d) < tiny then d = tiny end
  d = 1 / d
  local h = d
  for m = 1, 300 do
    local m2 = 2 * m
    local num = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
    d = 1 + num * d; if math.abs(d) < tiny then d = tiny end
    c = 1 + num / c; if math.abs(c) < tiny then c = tiny end
    d = 1 / d; h = h * d * c
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
    d = 1 + num * d; if math.abs(d) < tiny then d = tiny end
    c = 1 + num / c; if math.abs(c) < tiny then c = tiny end
    d = 1 / d
    local step = d * c
    h = h * step
    if math.abs(step - 1) < 1e-15 then break end
  end
  return h
end

-- I_x(a, b), the regularized incomplete beta function.
local function incomplete_beta(a, b, x)
  if x <= 0 then return 0 elseif x >= 1 then return 1 end
  local front = math.exp(log_gamma(a + b) - log_gamma(a) - log_gamma(b)
    + a * math.log(x) + b * math.log(1 - x))
  if x < (a + 1) / (a + b + 2) then
    return front * beta_fraction(a, b, x) / a
  end
  return 1 - front * beta_fraction(b, a, 1 - x) / b
end

-- P(T <= t) for Student's t with df degrees of freedom (df may be
-- fractional, as Welch's is).
function stats.t_cdf(t, df)
  -- Two forms of one identity, each used where it keeps its precision.
  local t2, tail = t * t, nil
  if t2 < df then
    tail = 0.5 * (1 - incomplete_beta(0.5, df / 2, t2 / (df + t2)))
  else
    tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t2))
  end
  return t >= 0 and 1 - tail or tail
end

-- The quantile of Student's t: the t with P(T <= t) = p, by bisection.
function stats.t_quantile(p, df)
  assert(p > 0 and p < 1 and df > 0, "t_quantile: p in (0,1), df > 0")
  local lo, hi = -1e4, 1e4
  for _ = 1, 200 do
    local mid = (lo + hi) / 2
    if stats.t_cdf(mid, df) < p then lo = mid else hi = mid end
    if hi - lo < 1e-12 then break end
  end
  return (lo + hi) / 2
end

local function sorted_copy(values)
  local s = {}
  for i, v in ipairs(values) do s[i] = v end
  table.sort(s)
  return s
end

function stats.median(values)
  local s, n = sorted_copy(values), #values
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

local function mean_var(values)
  local n, sum = #values, 0
  for _, v in ipairs(values) do sum = sum + v end
  local mean, ss = sum / n, 0
  for _, v in ipairs(values) do ss = ss + (v - mean) ^ 2 end
  return mean, n > 1 and ss / (n - 1) or 0
end

-- Summary of a cell's samples: n, median, mean, min, max, sd, cv (sd over
-- mean; nil below two samples) and the confidence interval of the mean
-- (ci_low, ci_high; nil below two samples). confidence defaults to 0.95.
function stats.summary(values, confidence)
  local n = #values
  if n == 0 then return { n = 0 } end
  local s = sorted_copy(values)
  local mean, var = mean_var(values)
  local r = { n = n, median = stats.median(values), mean = mean,
              min = s[1], max = s[n], sd = math.sqrt(var) }
  if n > 1 then
    r.cv = mean ~= 0 and r.sd / math.abs(mean) or nil
    local half = stats.t_quantile(1 - (1 - (confidence or 0.95)) / 2, n - 1)
      * r.sd / math.sqrt(n)
    r.ci_low, r.ci_high = mean - half, mean + half
  end
  return r
end

-- Compares samples a with samples b (all positive): the ratio of their
-- geometric means a/b with its confidence interval (Welch's t on the
-- logarithms) and a verdict for a: "faster" (the interval lies above 1),
-- "slower" (below 1), "same" (it contains 1) or "unknown" (fewer than
-- two positive samples on a side). Returns a table with ratio, ci_low,
-- ci_high, verdict, df.
function stats.compare(a, b, confidence)
  local la, lb = {}, {}
  for _, v in ipairs(a) do if v > 0 then la[#la + 1] = math.log(v) end end
  for _, v in ipairs(b) do if v > 0 then lb[#lb + 1] = math.log(v) end end
  if #la < 2 or #lb < 2 then
    local ratio
    if #la > 0 and #lb > 0 then
      local ma, mb = mean_var(la), mean_var(lb)
      ratio = math.exp(ma - mb)
    end
    return { ratio = ratio, verdict = "unknown" }
  end
  local ma, va = mean_var(la)
  local mb, vb = mean_var(lb)
  local qa, qb = va / #la, vb / #lb
  local se = math.sqrt(qa + qb)
  local r = { ratio = math.exp(ma - mb) }
  if se == 0 then
    r.ci_low, r.ci_high, r.df = r.ratio, r.ratio, math.huge
    r.p = ma == mb and 1 or 0
  else
    -- Welch–Satterthwaite degrees of freedom
    r.df = (qa + qb) ^ 2 / (qa ^ 2 / (#la - 1) + qb ^ 2 / (#lb - 1))
    local half = stats.t_quantile(1 - (1 - (confidence or 0.95)) / 2, r.df) * se
    r.ci_low, r.ci_high = math.exp(ma - mb - half), math.exp(ma - mb + half)
    -- the two-sided p-value of the same test: below 1 - confidence
    -- exactly when the interval excludes 1
    r.p = 2 * stats.t_cdf(-math.abs(ma - mb) / se, r.df)
  end
  r.verdict = r.ci_low > 1 and "faster" or r.ci_high < 1 and "slower" or "same"
  return r
end

-- Holm's step-down correction for many comparisons: which of the
-- p-values ps (false for a comparison without one) stay significant when
-- the chance of any false verdict among all of them is to stay under
-- alpha. Sorted ascending, the k-th smallest of m must be at most
-- alpha / (m - k + 1), and the first that is not stops the walk. Unlike
-- Bonferroni it never rejects less, and it needs no assumption about how
-- the comparisons depend on each other (cells of one run share a machine).
function stats.holm(ps, alpha)
  local order = {}
  for i = 1, #ps do
    if ps[i] then order[#order + 1] = i end
  end
  local m = #order
  table.sort(order, function(x, y) return ps[x] < ps[y] end)
  local keep = {}
  for i = 1, #ps do keep[i] = false end
  for k, i in ipairs(order) do
    if ps[i] > alpha / (m - k + 1) then break end
    keep[i] = true
  end
  return keep
end

-- The Wilson score interval of a proportion: k successes in n trials at
-- confidence (default 0.95). Returns low, high (0, 1 when n is 0). Unlike
-- the normal approximation it stays inside [0, 1] and is honest at k = 0
-- or k = n, which is where a false-positive rate usually lies.
function stats.wilson(k, n, confidence)
  assert(n >= 0 and k >= 0 and k <= n, "wilson: 0 <= k <= n")
  if n == 0 then return 0, 1 end
  -- the normal quantile, as Student's t with 1e8 degrees of freedom
  -- (within 1e-7 of it)
  local z = stats.t_quantile(1 - (1 - (confidence or 0.95)) / 2, 1e8)
  local p, z2 = k / n, z * z
  local centre = (p + z2 / (2 * n)) / (1 + z2 / n)
  local half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
  -- exact at the ends (the formula gives them up to rounding)
  return k == 0 and 0 or centre - half, k == n and 1 or centre + half
end

-- "faster by 12% (95% CI 5% to 19%)"-style text for a comparison of a
-- (named a_label) with b.
function stats.describe(c, a_label, b_label, confidence)
  local level = string.format("%g%%", (confidence or 0.95) * 100)
  local function pct(x) return string.format("%+.1f%%", (x - 1) * 100) end
  if c.verdict == "unknown" then
    return string.format("%s vs %s: too few samples for a verdict", a_label, b_label)
  end
  local ci = string.format("%s CI %s to %s", level, pct(c.ci_low), pct(c.ci_high))
  if c.verdict == "same" then
    return string.format("%s vs %s: no significant difference (%s, %s)",
      a_label, b_label, pct(c.ratio), ci)
  end
  local by = c.verdict == "faster" and (c.ratio - 1) or (1 - c.ratio)
  return string.format("%s %s than %s by %.1f%% (%s)", a_label, c.verdict, b_label,
    by * 100, ci)
end

return stats
