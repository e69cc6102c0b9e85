-- tests/t_lua.lua: tests of the Lua bindings, run by the real embedded
-- interpreter: fileserv run tests/t_lua.lua BINARY
-- Reports each test and ends with "t_lua: N passed, N failed (N checks)"
-- (tests/check.lua).
local fileserv = require "fileserv"
local report = require "fileserv.report"
local bin = arg[1] or "./fileserv"
local unit = dofile((arg[0]:match("^(.*/)") or "") .. "check.lua")
local check, test = unit.check, unit.test

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("rc=(%d+)%s*$"))
end

test("require and global agree", function()
  check(require("fileserv") == fileserv and _G.fileserv == fileserv, "same table")
  check(type(fileserv.version) == "string", "version")
end)

test("now and sleep", function()
  local t0 = fileserv.now()
  fileserv.sleep(0.05)
  local dt = fileserv.now() - t0
  check(dt >= 0.045 and dt < 5, "sleep 0.05 took " .. dt)
  check(not pcall(fileserv.sleep, -1), "negative sleep raises")
end)

test("mkfile is deterministic", function()
  check(fileserv.mkfile(dir .. "/a", "10kB", 3) == 10000, "size from units")
  fileserv.mkfile(dir .. "/b", 10000, 3)
  fileserv.mkfile(dir .. "/c", 10000, 4)
  local function read(p) local f = io.open(p, "rb"); local s = f:read("a"); f:close(); return s end
  check(read(dir .. "/a") == read(dir .. "/b"), "same seed, same bytes")
  check(read(dir .. "/a") ~= read(dir .. "/c"), "other seed, other bytes")
  check(#read(dir .. "/a") == 10000, "length")
  check(fileserv.mkfile(dir .. "/z", 0) == 0 and #read(dir .. "/z") == 0, "empty file")
  local ok, msg = fileserv.mkfile(dir .. "/nodir/x", 10)
  check(ok == nil and msg:find("nodir"), "unwritable path: nil, message")
  check(not pcall(fileserv.mkfile, dir .. "/x", "lots"), "bad size raises")
end)

test("json round trip", function()
  local t = fileserv.json.decode(fileserv.json.encode({ a = 1, b = { 1, 2, 3 }, c = "x\"y", d = true }))
  check(t.a == 1 and t.b[3] == 3 and t.c == "x\"y" and t.d == true, "values")
  check(math.type(t.a) == "integer", "integers stay integers")
  local v, msg = fileserv.json.decode("{bad")
  check(v == nil and msg:find("invalid"), "invalid JSON: nil, message")
  check(not pcall(fileserv.json.encode, { f = print }), "functions raise")
end)

test("csv quoting round trip", function()
  local path = dir .. "/t.csv"
  assert(fileserv.csv.write(path, { "n", "text" }, { { 1, 'a,"b"' }, { n = 2, text = "line\nbreak" } }))
  local rows, header = assert(fileserv.csv.read(path))
  check(header[2] == "text" and #rows == 2, "header and rows")
  check(rows[1].text == 'a,"b"' and rows[1].n == 1, "quotes and commas")
  check(rows[2].text == "line\nbreak", "newline in a field")
  check(fileserv.csv.read(dir .. "/missing.csv") == nil, "missing file: nil")
end)

test("json refuses trailing characters", function()
  local v, msg = fileserv.json.decode("{} x")
  check(v == nil and msg:find("trailing"), "{} x: nil, message: " .. tostring(msg))
  check(fileserv.json.decode('"a" , 1') == nil, "a second value is refused")
  check(fileserv.json.decode("{}\0x") == nil, "bytes after a NUL are refused")
  check(type(fileserv.json.decode(" {} \r\n\t")) == "table", "white space is fine")
end)

test("json keeps integers exact", function()
  local json = fileserv.json
  local big = json.decode("9007199254740993")
  check(big == 9007199254740993 and math.type(big) == "integer", "2^53+1 decoded exactly")
  check(json.encode(math.maxinteger) == "9223372036854775807", "maxinteger encoded exactly")
  local t = json.decode(json.encode { a = math.mininteger, b = { (1 << 60) + 1 }, c = "12345678901234567" })
  check(t.a == math.mininteger and t.b[1] == (1 << 60) + 1 and t.c == "12345678901234567",
        "round trip in tables; digits in strings untouched")
  check(math.type(json.decode("18446744073709551616")) == "float", "beyond 64 bits: a float")
  check(json.decode("2.5") == 2.5 and math.type(json.decode("1e2")) == "integer", "floats as before")
  -- what crosses into stress workers (args, upvalues) is exact too
  local up = (1 << 53) + 1
  for _, pool in ipairs { "thread", "process" } do
    local s = assert(fileserv.stress { server = "127.0.0.1:1", pool = pool, args = { v = (1 << 62) + 1 },
      scenario = function(_, _, _, args)
        return args.v == (1 << 62) + 1 and math.type(args.v) == "integer" and up == (1 << 53) + 1
      end })
    check(s.ok == 1, pool .. ": args and upvalues exact in the worker: " .. tostring(s.first_error))
  end
end)

test("format helpers on NaN and infinity", function()
  check(fileserv.format_bytes(0 / 0) == "n/a" and fileserv.format_seconds(0 / 0) == "n/a", "NaN is n/a")
  check(fileserv.format_bytes(1 / 0) == "inf B" and fileserv.format_seconds(-1 / 0) == "-inf s", "infinity")
  check(fileserv.format_seconds(1e30):find("m") ~= nil, "huge seconds do not raise")
  check(fileserv.format_bytes(1234567) == "1.2 MB" and fileserv.format_seconds(125) == "2m05s", "as before")
end)

test("csv.read of a directory", function()
  local rows, msg = fileserv.csv.read(dir)
  check(rows == nil and type(msg) == "string" and msg:find("directory"), "nil, message: " .. tostring(msg))
end)

test("mkfile on a full disk leaves no file", function()
  local p, target = dir .. "/fsize.lua", dir .. "/big"
  local f = io.open(p, "w")
  f:write("local ok, msg = fileserv.mkfile(arg[1], '1MB')\n",
          "print(ok, msg, io.open(arg[1]) == nil and 'gone' or 'left')\n")
  f:close()
  local text = sh("trap '' XFSZ; ulimit -f 64; exec " .. bin .. " run " .. p .. " " .. target)
  check(text:find("^nil\t.*File too large.*\tgone"), "nil, message, no partial file: " .. text)
  local ok, msg = fileserv.mkfile("/dev/full", 100)
  check(ok == nil and msg:find("No space") and io.open("/dev/full") ~= nil, "a device is not removed")
end)

test("error objects with __tostring", function()
  local p = dir .. "/obj.lua"
  local f = io.open(p, "w")
  f:write("error(setmetatable({}, { __tostring = function() return 'custom error object' end }))\n")
  f:close()
  local text, rc = sh(bin .. " run " .. p)
  check(rc == 1 and text:find("fileserv: custom error object"), "shown through __tostring: " .. text)
end)

test("serve takes a bracketed IPv6 host", function()
  local plain = fileserv.serve { storage = dir .. "/st-v6", host = "::1" }
  if not plain then return end -- no IPv6 loopback here
  plain:stop()
  local srv, msg = fileserv.serve { storage = dir .. "/st-v6", host = "[::1]" }
  check(srv and srv.host == "::1", "[::1] serves: " .. tostring(msg))
  check(srv and srv:client():ls() ~= nil, "and answers")
  if srv then srv:stop() end
end)

test("timeouts must be positive", function()
  for _, t in ipairs { -1, 0, 0 / 0, 1 / 0, "soon", true } do
    check(not pcall(fileserv.stress, { server = "127.0.0.1:1", op = "list", timeout = t }),
          "stress timeout " .. tostring(t) .. " raises")
    check(not pcall(fileserv.client, { timeout = t }), "client timeout " .. tostring(t) .. " raises")
  end
  check(not pcall(fileserv.stress, { server = "127.0.0.1:1", op = "list", duration = -1 }), "negative duration")
  check(pcall(fileserv.client, { timeout = "2s" }) and pcall(fileserv.client, { timeout = 0.5 }), "2s and 0.5 work")
end)

test("put refuses what is not a regular file", function()
  local c = fileserv.client("127.0.0.1:1")
  for _, path in ipairs { dir, "/dev/zero" } do
    local ok, msg, class = c:put(path, "x")
    check(ok == nil and msg:find("not a regular file") and class == "local", path .. ": " .. tostring(msg))
  end
end)

test("options parser", function()
  local o, rest = fileserv.options({ "--sizes", "1MB", "--sync", "x", "--out=d" },
    { sizes = "10MB", sync = false, out = "r" })
  check(o.sizes == "1MB" and o.sync == true and o.out == "d" and rest[1] == "x", "parsed")
  check(not pcall(fileserv.options, { "--nope" }, {}), "unknown option raises")
end)

test("serve passes user= as --user", function()
  local srv, msg = fileserv.serve { storage = dir .. "/st-user", user = "no-such-user-x" }
  check(srv == nil and msg:find("did not start"), "an unknown user: the server does not start")
end)

for _, mode in ipairs { "thread", "process" } do
  test("server, client and stress in " .. mode .. " mode", function()
    local srv <close> = assert(fileserv.serve { mode = mode, workers = 3, storage = dir .. "/st-" .. mode, sync = false })
    check(srv.host == "127.0.0.1" and srv.port > 0 and srv.pid > 0, "handle fields")
    local c = fileserv.client(srv.host .. ":" .. srv.port)
    fileserv.mkfile(dir .. "/f", 300001, 9)
    local r = assert(c:put(dir .. "/f", "f"))
    check(r.status == "OK" and r.bytes == 300001 and r.seconds > 0, "put result")
    check(assert(c:ls()).names[1] == "f", "ls names")
    check(assert(c:ls(nil)).count == 1, "ls(nil) is ls()")
    local seen = {}
    local l = assert(c:ls(function(name) seen[#seen + 1] = name end))
    check(l.count == 1 and l.names == nil and seen[1] == "f", "ls(fn) streams the names")
    check(not pcall(c.ls, c, 1), "ls(non-function) raises")
    check(fileserv.visible("f\n\27[2J\xc2\x9b\\\xff") == "f\\n\\x1b[2J\\u009b\\\\\\xff",
          "visible escapes a name for the terminal")
    r = assert(c:get("f"))
    check(r.bytes == 300001, "get discards but counts")
    r = assert(c:get("f", dir .. "/f.copy"))
    local a, b = io.open(dir .. "/f", "rb"), io.open(dir .. "/f.copy", "rb")
    check(a:read("a") == b:read("a"), "get to a file: same bytes")
    a:close(); b:close()
    local v, msg, class = c:get("missing")
    check(v == nil and msg:find("no such file") and class == "server", "expected failure: nil, msg, class")
    v, msg, class = c:put(dir .. "/nothere", "x")
    check(v == nil and class == "local", "missing local file")
    check(not pcall(c.put, c), "misuse raises")

    local s = assert(fileserv.stress { server = srv, op = "download", file = dir .. "/f",
                                       clients = 4, iterations = 2, pool = mode })
    check(s.ok == 8 and s.failed == 0, "stress download ok")
    check(s.verified_bytes == 8 * 300001, "every byte verified")
    check(s.server.succeeded == 8 and s.server.failed == 0, "server STATS delta")
    check(s.latency_ms.p50 > 0 and s.latency_ms.max >= s.latency_ms.p99, "latency")
    check(s.ops_per_s > 0 and s.client_cpu_s >= 0, "ops_per_s and client CPU")
    check(s.target == "127.0.0.1:" .. srv.port and s.timestamp:find("^%d+%-%d+%-%d+T"), "target, timestamp")
    check(s.options.clients == 4 and s.options.pool == mode and s.options.duration_s == nil, "options")
    check(s.server.mode == mode and s.server.workers == 3 and s.server.cpu_s >= 0
          and s.server.peak_rss_bytes > 0, "server mode, workers and CPU from STATS")
    s = assert(fileserv.stress { server = srv, op = "download", file = dir .. "/f",
                                 clients = 2, duration = 0.3, warmup = 0.2, pool = mode })
    check(s.warmup_s == 0.2 and s.options.warmup_s == 0.2 and s.options.iterations == nil, "warmup fields")
    check(s.bytes == s.ok * 300001, "warm-up: whole operations only")
    check(not pcall(fileserv.stress, { server = srv, op = "list", warmup = 1 }), "warmup without duration raises")
    s = assert(fileserv.stress { server = srv, clients = 2, pool = mode, cpus = "0",
      scenario = function()
        local f = assert(io.open("/proc/thread-self/status"))
        local list = f:read("a"):match("Cpus_allowed_list:%s*(%S+)")
        f:close()
        if list ~= "0" then return nil, "worker runs on CPUs " .. list end
      end })
    check(s.ok == 2 and s.options.cpus == "0", "cpus pins the client workers: " .. tostring(s.first_error))
    check(not pcall(fileserv.stress, { server = srv, op = "list", cpus = "x" }), "bad cpus raises")

    fileserv.mkfile(dir .. "/other", 300001, 10)
    s = assert(fileserv.stress { server = srv, op = "download", file = dir .. "/other", name = "f",
                                 clients = 2, pool = mode })
    check(s.failed == 2 and s.errors.mismatch == 2, "verification catches wrong bytes")
    -- small references are compared from memory: same checks
    fileserv.mkfile(dir .. "/small", 1000, 1)
    fileserv.mkfile(dir .. "/small2", 1000, 2)
    assert(c:put(dir .. "/small", "small"))
    s = assert(fileserv.stress { server = srv, op = "download", file = dir .. "/small",
                                 clients = 2, iterations = 3, pool = mode })
    check(s.ok == 6 and s.verified_bytes == 6000, "small download verified")
    s = assert(fileserv.stress { server = srv, op = "download", file = dir .. "/small2",
                                 name = "small", clients = 2, pool = mode })
    check(s.failed == 2 and s.errors.mismatch == 2, "small reference: wrong bytes caught")
    local fh = assert(io.open(dir .. "/small", "rb"))
    local prefix = fh:read(500)
    fh:close()
    fh = assert(io.open(dir .. "/half", "wb"))
    fh:write(prefix)
    fh:close()
    assert(c:put(dir .. "/half", "half"))
    s = assert(fileserv.stress { server = srv, op = "download", file = dir .. "/small",
                                 name = "half", clients = 1, pool = mode })
    check(s.failed == 1 and s.errors.mismatch == 1, "a download that stops short is caught")

    s = assert(fileserv.stress { server = srv, clients = 3, iterations = 2, pool = mode,
      args = { name = "f", n = 7 },
      scenario = function(client, worker, iteration, args)
        assert(args.n == 7 and worker >= 1 and worker <= 3 and iteration <= 2)
        local r, err, class = client:get(args.name)
        if not r then return nil, err, class end
        if worker == 2 and iteration == 2 then error("planned failure") end
        if worker == 3 and iteration == 2 then return client:get("missing") end
        return true
      end })
    check(s.ok == 4 and s.failed == 2, "scenario ok/failed: " .. s.ok .. "/" .. s.failed)
    check(s.errors.script == 1 and s.errors.server == 1, "scenario error classes")
    check(s.bytes == 6 * 300001, "scenario bytes counted in workers")
    local plain, n, print = { size = 3, tags = { "a" } }, 0, print
    s = assert(fileserv.stress { server = srv, clients = 2, iterations = 2, pool = mode,
      scenario = function(client)
        n = n + 1 -- a copy per worker: counts that worker's iterations
        assert(plain.size == 3 and plain.tags[1] == "a", "plain upvalue copied")
        assert(fileserv.version and report.svg, "modules found again")
        assert(print == _G.print, "a local copy of a global is the global again")
        assert(n <= 2, "upvalue copies are per worker")
        return client:ls()
      end })
    check(s.ok == 4, "upvalues: " .. tostring(s.first_error))
    check(n == 0, "the script's own upvalue is untouched")
    s = assert(fileserv.stress { server = srv, clients = 1, pool = mode, scenario = function() end })
    check(s.ok == 1, "returning nothing is success")
    check(next(s.steps) == nil, "no client call, no timer: no steps")

    s = assert(fileserv.stress { server = srv, clients = 3, iterations = 4, pool = mode,
      scenario = function(client, worker, iteration)
        assert(client:ls())
        local r = fileserv.timer("fetch", function(name) return client:get(name) end, "f")
        assert(r.bytes == 300001, "timer returns the function's results")
        fileserv.timer("think", fileserv.sleep, 0.002)
        client:get("missing") -- a failed step, not a failed iteration
        if worker == 1 and iteration == 1 then fileserv.timer("boom", error, "planned") end
        return true
      end })
    local st = s.steps
    check(s.ok == 11 and s.failed == 1, "iterations: " .. s.ok .. "/" .. s.failed)
    check(st.ls.ok == 12 and st.ls.failed == 0, "each ls counted under its name")
    check(st.get.ok == 12 and st.get.failed == 12, "get: ok and failed calls")
    check(st.fetch.ok == 12 and st.think.ok == 12, "timers counted")
    check(st.boom.ok == 0 and st.boom.failed == 1, "a timer whose function raises is failed")
    check(st.think.latency_ms.p50 >= 2 and st.think.latency_ms.min >= 2, "timer latency: " .. st.think.latency_ms.p50)
    check(st.fetch.latency_ms.max >= st.fetch.latency_ms.p99 and st.fetch.latency_ms.p50 > 0, "step percentiles")
    check(st.put == nil and st.rm == nil, "steps not taken are absent")
    s = assert(fileserv.stress { server = srv, clients = 2, iterations = 1, pool = mode,
      scenario = function()
        for i = 1, 40 do fileserv.timer("t" .. i, function() end) end
      end })
    check(s.failed == 2 and s.first_error:find("at most 32 step names", 1, true),
          "too many step names: " .. tostring(s.first_error))
    local n = 0
    for _ in pairs(s.steps) do n = n + 1 end
    check(n == 32, "the first 32 names kept: " .. n)

    local stats = assert(srv:stats())
    check(stats.data.mode == mode and stats.data.workers == 3, "server stats")
    check(tostring(srv) == ("fileserv.server(127.0.0.1:%d, pid %d)"):format(srv.port, srv.pid),
          "a running server's tostring: " .. tostring(srv))
    srv:stop()
    check(srv.pid == 0, "stopped")
    v, msg, class = c:ls()
    check(v == nil and class == "refused", "refused after stop")
    check(tostring(srv) == ("fileserv.server(127.0.0.1:%d, stopped)"):format(srv.port),
          "a stopped server's tostring: " .. tostring(srv))
    for _, method in ipairs { "stats", "client" } do
      local ok, err = pcall(srv[method], srv)
      check(not ok and err:find("fileserv.server on 127.0.0.1:" .. srv.port .. " is stopped", 1, true),
            method .. " on a stopped server raises: " .. tostring(err))
    end
    local ok, err = pcall(fileserv.stress, { server = srv, op = "list" })
    check(not ok and err:find("is stopped", 1, true), "stress against a stopped server raises: " .. tostring(err))
    srv:stop() -- again: a no-op, as __close will be
  end)
end

test("serve{cpus=} pins the server", function()
  local srv <close> = assert(fileserv.serve { cpus = "0", storage = dir .. "/st-cpus", sync = false })
  local f = assert(io.open("/proc/" .. srv.pid .. "/status"))
  local list = f:read("a"):match("Cpus_allowed_list:%s*(%S+)")
  f:close()
  check(list == "0", "server runs on CPUs " .. tostring(list))
  check(assert(srv:stats()).data.cpus == "0", "STATS cpus")
end)

test("timer outside a stress worker", function()
  local a, b = fileserv.timer("x", function(p, q) return p + q, "y" end, 1, 2)
  check(a == 3 and b == "y", "results passed through")
  local ok, err = pcall(fileserv.timer, "x", error, "raised")
  check(not ok and err == "raised", "errors pass through")
  check(not pcall(fileserv.timer), "a missing name raises")
end)

-- Each {options, message}: fileserv.stress{op = "list", ...} raises it.
local function stress_refuses(srv, cases)
  for i, b in ipairs(cases) do
    b[1].server, b[1].op = srv, "list"
    local ok, err = pcall(fileserv.stress, b[1])
    check(not ok and err:find(b[2], 1, true), "bad input " .. i .. ": " .. tostring(err))
  end
end

test("the open model and thresholds from Lua", function()
  local srv <close> = assert(fileserv.serve { workers = 2, storage = dir .. "/st-open", sync = false })
  for _, pool in ipairs { "thread", "process" } do
    local s = assert(fileserv.stress { server = srv, op = "list", clients = 4, pool = pool,
                                       rate = 100, duration = 0.4, thresholds = { "failed<1%", "p99<60s" } })
    local m = s.open_model
    check(m and m.target_rate == 100 and m.arrivals == "uniform", pool .. ": open model reported")
    check(s.ok > 0 and s.failed == 0 and m.started == s.ok, pool .. ": every arrival ran: " .. s.ok)
    check(s.service_ms.p50 > 0 and s.latency_ms.p99 >= s.service_ms.p50, pool .. ": service time beside latency")
    check(s.thresholds_passed == true and #s.thresholds == 2 and s.thresholds[1].threshold == "failed<1%"
          and s.thresholds[1].pass == true, pool .. ": thresholds pass")
  end
  local s = assert(fileserv.stress { server = srv, op = "list", clients = 2,
    stages = { { duration = "0.2s", rate = 50 }, { duration = 0.2, rate = 0 } },
    poisson = true, seed = 7, max_late = "1s", thresholds = { "p99<1us" } })
  check(s.open_model.stages == true and s.open_model.arrivals == "poisson", "stages from a table, Poisson")
  check(s.thresholds_passed == false and s.thresholds[1].pass == false and s.thresholds[1].value > 0,
        "a failing threshold: thresholds_passed is false")
  s = assert(fileserv.stress { server = srv, op = "list", stages = "0.2s:50,0.1s:20" })
  check(s.open_model.stages == true and s.ok > 0 and s.thresholds_passed == true, "stages as the CLI's string")
  s = assert(fileserv.stress { server = srv, op = "list", stages = "0.2s:50,0.2s:50", warmup = 0.1 })
  check(s.warmup_s == 0.1 and math.abs(s.options.duration_s - 0.3) < 1e-9 and s.ok > 0,
        "stages with a warm-up, as the CLI allows: " .. s.options.duration_s)
  s = assert(fileserv.stress { server = srv, op = "list" })
  check(s.open_model == nil and s.thresholds_passed == true, "the closed loop has no open_model")
  local bad = {
    { { rate = -5, duration = 1 }, "invalid rate '-5'" },
    { { rate = "fast", duration = 1 }, "invalid rate 'fast'" },
    { { rate = 10 }, "rate needs duration" },
    { { rate = 10, duration = 1, iterations = 2 }, "iterations is for the closed loop" },
    { { stages = "10s:-5" }, "invalid stage '10s:-5'" },
    { { stages = { { duration = "1s" } } }, "stages[1] needs a duration and a rate" },
    { { stages = { { duration = "1s", rate = 1, ramp = 2 } } }, "unknown option 'ramp'" },
    { { stages = "1s:10", duration = 2 }, "stages set the duration; leave out duration" },
    { { stages = "0.2s:10", warmup = 0.5 }, "the stages last 0.2s, no more than warmup" },
    { { warmup = 1 }, "warmup needs a duration or stages" },
    { { poisson = true }, "need rate or stages" },
    { { rate = 10, duration = 1, max_late = "soon" }, "max_late: invalid duration 'soon'" },
    { { thresholds = { "bogus<1" } }, "thresholds[1]: invalid threshold 'bogus<1'" },
    { { thresholds = "p99<1ms" }, "thresholds must be a table of strings" },
  }
  stress_refuses(srv, bad)
end)

test("stages of clients: the closed model's active workers follow them", function()
  local srv <close> = assert(fileserv.serve { workers = 2, storage = dir .. "/st-ramp", sync = false })
  for _, pool in ipairs { "thread", "process" } do
    local s = assert(fileserv.stress { server = srv, clients = 4, pool = pool,
      stages = { { duration = 0.1, clients = 2 }, { duration = "0.3s", clients = 2 } },
      scenario = function(c, worker)
        fileserv.timer("worker" .. worker, function() fileserv.sleep(0.005) end)
      end })
    check(s.steps.worker1 and s.steps.worker2 and s.steps.worker1.ok > 0 and s.steps.worker2.ok > 0,
          pool .. ": workers 1 and 2 ran")
    check(s.steps.worker3 == nil and s.steps.worker4 == nil, pool .. ": workers 3 and 4 waited throughout")
    check(s.clients == 4 and #s.options.client_stages == 2 and s.options.client_stages[2].clients == 2
          and math.abs(s.options.duration_s - 0.4) < 1e-9, pool .. ": options")
  end
  local s = assert(fileserv.stress { server = srv, op = "list", stages = { { duration = 0.2, clients = 3 } } })
  check(s.clients == 3 and s.open_model == nil and s.ok > 0, "clients default to the largest stage")
  stress_refuses(srv, {
    { { stages = { { duration = 1, clients = 2 } }, rate = 5 }, "stages of clients are the closed model" },
    { { stages = { { duration = 1, clients = 2 } }, duration = 1 }, "client stages set the duration" },
    { { stages = { { duration = 1, clients = 5 } }, clients = 2 }, "asks for 5 clients, more than clients 2" },
    { { stages = { { duration = 1, clients = 1.5 } } }, "invalid client stage 1s:1.5" },
    { { stages = { { duration = 1, clients = 1 }, { duration = 1, rate = 5 } } }, "stages[2] needs a duration and a clients" },
  })
end)

test("the interval callback runs in the script's state and adds up", function()
  local srv <close> = assert(fileserv.serve { workers = 2, storage = dir .. "/st-interval", sync = false })
  local main = coroutine.running()
  for _, pool in ipairs { "thread", "process" } do
    local seen, ok, bytes, where = {}, 0, 0, {}
    local s = assert(fileserv.stress { server = srv, op = "list", clients = 2, pool = pool, rate = 200,
      duration = 0.6, interval_period = "100ms", interval = function(t)
        seen[#seen + 1] = t
        ok, bytes = ok + t.ok, bytes + t.bytes
        where[#where + 1] = coroutine.running()
      end })
    check(#seen >= 4 and seen[1].interval == 0 and seen[#seen].interval == #seen - 1,
          pool .. ": numbered intervals: " .. #seen)
    check(ok == s.ok and bytes == s.bytes and s.ok > 0, pool .. ": intervals add up: " .. ok .. " of " .. s.ok)
    local t = seen[2]
    check(t.latency_ms.p99 >= t.latency_ms.p50 and t.histogram.counts and t.end_s > t.start_s
          and t.ops_per_s >= 0 and t.failed == 0, pool .. ": the stream's figures")
    check(where[1] == main and where[#where] == main, pool .. ": called in the script's own thread")
  end
  local before = assert(srv:stats()).data.requests
  local ok, err = pcall(fileserv.stress, { server = srv, op = "list", rate = 100, duration = 30,
    interval_period = 0.05, interval = function(t) if t.interval == 1 then error("enough seen") end end })
  local sent = assert(srv:stats()).data.requests - before
  check(not ok and err:find("fileserv.stress: interval: ", 1, true) and err:find("enough seen", 1, true),
        "the callback's error is raised: " .. tostring(err))
  check(sent < 1000, "the run stopped at the error, not after 30 s: " .. sent .. " requests")
  local bad = {
    { { interval = 5 }, "interval must be a function" },
    { { interval_period = 1 }, "interval_period needs an interval function" },
    { { interval = print, interval_period = "1ms" }, "invalid interval_period" },
  }
  stress_refuses(srv, bad)
end)

test("fileserv.find_max: the capacity search from Lua", function()
  -- 2 workers, each iteration 20 ms: at most 100 a second
  local srv <close> = assert(fileserv.serve { workers = 1, storage = dir .. "/st-find", sync = false })
  local r = assert(fileserv.find_max { server = srv, clients = 2, rate = 20, duration = 0.5,
    thresholds = { "p99<100ms" }, scenario = function() fileserv.sleep(0.02) end })
  check(r.steps[1].rate == 20 and r.steps[2].rate == 40 and r.steps[3].rate == 80, "doubling")
  check(r.max_rate and r.max_rate >= 20 and r.max_rate < 160 and r.first_failing_rate > r.max_rate,
        "about 100/s: held " .. tostring(r.max_rate) .. ", failed " .. tostring(r.first_failing_rate))
  for _, step in ipairs(r.steps) do
    check(step.passed == (step.rate <= r.max_rate) and step.thresholds[1].threshold == "p99<100ms"
          and step.p99_ms > 0, "evidence of the step at " .. step.rate)
  end
  local matrix = require "fileserv.matrix"
  local c = { server_mode = "single", server_workers = 4, operation = "upload", volume = "10MB",
              thresholds = { "p99<50ms", "failed<1%" }, max_rate = 12.5, first_failing_rate = 13 }
  local text = matrix.capacity_text(c)
  check(text == "the single-threaded server sustains 12.5 uploads/s of 10MB within p99<50ms and failed<1% (13.0/s failed)",
        "capacity sentence: " .. text)
  c.server_mode, c.server_workers, c.max_rate = "process", 1, nil
  text = matrix.capacity_text(c)
  check(text == "the process pool with 1 worker sustains no rate tried: not even 13.0 uploads/s of 10MB within p99<50ms and failed<1%",
        "none held: " .. text)
  local t = assert(fileserv.threshold("p99<=50ms"))
  check(t.threshold == "p99<=50ms" and t.limit == 0.05 and t.unit == "s" and t.below and t.or_equal,
        "fileserv.threshold parses")
  local none, msg = fileserv.threshold("lag<1s")
  check(none == nil and msg:find("invalid threshold 'lag<1s'", 1, true), "a bad one: " .. tostring(msg))
  local bads = { { duration = 1, thresholds = { "p99<1s" } }, { rate = 5, duration = 1 },
                  { stages = "1s:5", thresholds = { "p99<1s" } } }
  for i, bad in ipairs(bads) do
    bad.server, bad.op = srv, "list"
    local ok, err = pcall(fileserv.find_max, bad)
    check(not ok and tostring(err):find("fileserv.find_max: give rate", 1, true), "bad " .. i .. ": " .. tostring(err))
  end
end)

test("stress argument errors", function()
  check(not pcall(fileserv.stress, { server = "127.0.0.1:1", op = "nope" }), "bad op raises")
  check(not pcall(fileserv.stress, { op = "list" }), "missing server raises")
  local s = assert(fileserv.stress { server = "127.0.0.1:1", op = "list", clients = 2 })
  check(s.failed == 2 and s.errors.refused == 2, "refused counted by class")
  check(s.server == nil, "no STATS: server is nil")
end)

test("an unknown option raises, naming the key", function()
  local cases = {
    { fileserv.stress, { server = "127.0.0.1:1", op = "list", clinets = 5 }, "fileserv.stress: unknown option 'clinets'" },
    { fileserv.stress, { server = "127.0.0.1:1", op = "list", retries = 2 }, "fileserv.stress: unknown option 'retries'" },
    { fileserv.serve, { storage = dir .. "/st-typo", wokers = 5 }, "fileserv.serve: unknown option 'wokers'" },
    { fileserv.client, { host = "127.0.0.1", prot = 1 }, "fileserv.client: unknown option 'prot'" },
    { fileserv.stress, { server = "127.0.0.1:1", op = "list", [1] = "x" }, "fileserv.stress: option keys are names" },
  }
  for i, c in ipairs(cases) do
    local ok, err = pcall(c[1], c[2])
    check(not ok and tostring(err):find(c[3], 1, true), "case " .. i .. ": " .. tostring(err))
  end
  local ok, err = pcall(fileserv.serve, { storage = dir .. "/st-typo", wokers = 5 })
  check(not ok and err:find("workers", 1, true), "the message lists the known options: " .. tostring(err))
end)

test("a scenario using a local that cannot cross is refused, naming it", function()
  local function helper() return true end
  local srv_like = fileserv.client("127.0.0.1:1")
  local mixed = { n = 1, f = helper }
  local cases = {
    { function() return helper() end, "'helper' (a function)" },
    { function(c) return srv_like:ls() end, "'srv_like' (a fileserv.client)" },
    { function() return mixed.n end, "'mixed' (a table that is not plain data)" },
  }
  for i, c in ipairs(cases) do
    local ok, err = pcall(fileserv.stress, { server = "127.0.0.1:1", clients = 1, scenario = c[1] })
    check(not ok and err:find("fileserv.stress: the scenario uses the local " .. c[2], 1, true)
          and err:find("args", 1, true), "case " .. i .. ": " .. tostring(err))
  end
end)

test("the verdict finds a real difference (libb64 vs the fast codec)", function()
  local matrix = require "fileserv.matrix"
  local file = dir .. "/codec-src"
  assert(fileserv.mkfile(file, 4000000, 3))
  local cells = {}
  for i, codec in ipairs { "auto", "libb64" } do
    local srv = assert(fileserv.serve { port = 0, workers = 1, codec = codec, sync = false,
                                        storage = dir .. "/st-codec-" .. codec })
    assert(srv:client():put(file, "src"))
    cells[i] = { number = i, srv = srv, runs = {}, server_mode = codec, client_pool = "thread",
                 operation = "download", volume = "4MB", client_workers = 1, server_workers = 1 }
  end
  for round = 1, 6 do -- interleaved, as the matrix does
    for _, c in ipairs(cells) do
      local r, err = fileserv.stress { server = c.srv, op = "download", file = file,
                                       name = "src", clients = 1, duration = 0.15 }
      c.runs[#c.runs + 1] = matrix.run_record(r, err, round)
    end
  end
  for _, c in ipairs(cells) do c.srv:stop() end
  local cmp = matrix.compare_pair(cells[1], cells[2], "codec", "auto", "libb64", 0.95)
  check(cmp.verdict == "faster", "auto beats libb64: " .. cmp.text)
end)

test("small matrix end to end", function()
  local out = dir .. "/matrix"
  local text, rc = sh(bin .. " run scripts/stress_all.lua --sizes 100kB --clients 1,3" ..
    " --servers 1,2 --repeat 2 --min-time 0.05s --warmup 0 --out " .. out)
  check(rc == 0, "stress_all exit status: " .. text)
  local rows = assert(fileserv.csv.read(out .. "/latest/results.csv"))
  check(#rows == 16, "2 ops x 1 size x 2 clients x 2 servers x 2 modes")
  for _, r in ipairs(rows) do
    check(r["Client workers succeeded/failed"]:match("^%d+/0$"), "row " .. r.No .. " clients ok")
    check(r["Server workers succeeded/failed"]:match("^%d+/0$"), "row " .. r.No .. " server ok")
    check(r.samples == 2, "row " .. r.No .. " has both rounds")
  end
  check(rows[1].No == 1 and rows[16].No == 16, "numbering")
  check(rows[1].Operation == "download" and rows[5].Operation == "upload", "downloads first")
  check(rows[8].server_mode == "thread" and rows[9].server_mode == "process" and
        rows[9].client_pool == "process", "thread rows, then process rows")
  check(rows[8].client_engine == "event" and rows[9].client_engine == "process",
        "each row names its client engine")
  local f = assert(io.open(out .. "/latest/results.svg"))
  check(f:read("a"):find("<svg") ~= nil, "chart written")
  f:close()
  f = assert(io.open(out .. "/latest/results.json"))
  local results = fileserv.json.decode(f:read("a"))
  f:close()
  check(results.schema == 1 and #results.cells == 16, "json cells")
  check(#results.comparisons == 8 and results.comparisons[1].axis == "pools",
        "thread vs process pairs, both pools changed")
  check(math.type(results.cells[1].client_workers) == "integer" and
        type(results.cells[1].throughput_Bps.median) == "number", "numbers are numbers")
  check(results.meta.settings["repeat"] == 2 and results.meta.complete == true, "meta")
  check(results.cells[1].runs[1].client_engine == results.cells[1].client_engine and
        results.cells[1].client_engine ~= nil, "runs and cells name the client engine")
  check(results.analysis.headline:find("thread vs process"), "analysis headline")
  local probes = 0
  for _, c in ipairs(results.cells) do
    for _, r in ipairs(c.runs) do
      if type(r.probe_ms) == "number" and r.probe_ms > 0 and
         math.type(r.syn_retransmits) == "integer" and r.syn_retransmits >= 0 then
        probes = probes + 1
      end
    end
  end
  check(probes == 32 and results.probe.n == 32 and results.probe.min_ms <= results.probe.median_ms,
        "every run timed the machine probe and counted SYN retransmissions: " .. probes)
  check(table.concat(results.analysis.paragraphs, " "):find("Machine: a fixed CPU loop"),
        "the analysis reports the machine's steadiness")
  f = assert(io.open(out .. "/latest/results.html"))
  local page = f:read("a")
  f:close()
  local c1 = results.cells[1]
  check(page:find(require("fileserv.html").escape(results.analysis.headline), 1, true) and
        page:find(string.format(">%.1f<", c1.throughput_Bps.median / 1e6), 1, true),
        "page with the headline and cell 1's median MB/s")
  text, rc = sh(bin .. " run scripts/stress_all.lua --sizes 100kB --clients 1 --servers 1" ..
    " --repeat 1 --min-time 0.01s --modes thread --out " .. out)
  local listing = sh("ls " .. out)
  local _, count = listing:gsub("%d%d%d%d%-%d%d%-%d%dT", "")
  check(rc == 0 and count == 2 and listing:find("latest"),
        "a second run writes a new directory: " .. listing)
  text, rc = sh(bin .. " run scripts/stress_all.lua --repeat 0 --out " .. out)
  check(rc == 2 and text:find("--repeat"), "bad option refused: " .. text)
end)

test("matrix against a running server", function()
  local srv <close> = assert(fileserv.serve { port = 0, mode = "process", workers = 3,
                                              storage = dir .. "/st-remote", sync = false })
  assert(srv:client():put(bin, "kept"))
  local out = dir .. "/remote"
  local text, rc = sh(bin .. " run scripts/stress_all.lua --sizes 100kB --clients 2" ..
    " --repeat 2 --min-time 0.05s --out " .. out .. " --server 127.0.0.1:" .. srv.port)
  check(rc == 0, "exit status: " .. text)
  local f = assert(io.open(out .. "/latest/results.json"))
  local results = fileserv.json.decode(f:read("a"))
  f:close()
  check(#results.cells == 2, "one cell per operation, no invented server axis")
  for _, c in ipairs(results.cells) do
    check(c.server_mode == "process" and c.server_workers == 3 and c.client_pool == "thread",
          "mode and workers from STATS, client pool fixed")
  end
  check(results.meta.target == "127.0.0.1:" .. srv.port, "target recorded")
  local names = assert(srv:client():ls()).names
  check(#names == 1 and names[1] == "kept", "the run's files are removed: " .. table.concat(names, ","))
end)

test("compare: exit status gates on regressions", function()
  local function write(path, rates)
    local runs = {}
    for i, t in ipairs(rates) do runs[i] = { round = i, ok = 5, failed = 0, throughput_Bps = t } end
    local f = assert(io.open(path, "w"))
    f:write(fileserv.json.encode({ schema = 1, meta = { command = "test" }, cells = { {
      number = 1, operation = "download", volume = "10MB", client_workers = 5,
      server_workers = 5, server_mode = "thread", client_pool = "thread",
      throughput_Bps = { median = rates[2] }, runs = runs } } }))
    f:close()
  end
  write(dir .. "/base.json", { 100e6, 101e6, 99e6 })
  write(dir .. "/slow.json", { 80e6, 81e6, 79e6 })
  local text, rc = sh(bin .. " compare " .. dir .. "/base.json " .. dir .. "/slow.json")
  check(rc == 1 and text:find("REGRESSION") and text:find("1 regressed"), "regression fails: " .. text)
  text, rc = sh(bin .. " compare --fail-above 25% " .. dir .. "/base.json " .. dir .. "/slow.json")
  check(rc == 0 and text:find("1 regressed %(0 beyond 25%% after correcting for 1 cell%)"), "within the limit: " .. text)
  text, rc = sh(bin .. " compare --json " .. dir .. "/base.json " .. dir .. "/base.json")
  check(rc == 0 and fileserv.json.decode(text:gsub("rc=%d+%s*$", "")).same == 1, "json output")
  text, rc = sh(bin .. " compare " .. dir .. "/base.json")
  check(rc == 2 and text:find("fileserv compare %-%-help"), "usage: " .. text)
  text, rc = sh(bin .. " compare " .. dir .. "/base.json " .. dir .. "/missing.json")
  check(rc == 3 and text:find("missing.json"), "unreadable file: " .. text)
  text, rc = sh(bin .. " compare " .. dir .. "/base.json /etc/hostname")
  check(rc == 3 and text:find("not a results.json"), "not a results file: " .. text)
end)

test("script errors and exit codes", function()
  local p = dir .. "/bad.lua"
  local f = io.open(p, "w")
  f:write("local x = 1\nerror('broken here')\n")
  f:close()
  local text, rc = sh(bin .. " run " .. p)
  check(rc == 1 and text:find("bad.lua:2: broken here") and text:find("traceback"), "error with line and traceback")
  f = io.open(p, "w")
  f:write("os.exit(7)\n")
  f:close()
  text, rc = sh(bin .. " run " .. p)
  check(rc == 7, "os.exit status")
  f = io.open(p, "w")
  f:write("local s = require('fileserv').serve{storage='" .. dir .. "/st-exit'}\nprint(s.pid)\nos.exit(0)\n")
  f:close()
  text, rc = sh(bin .. " run " .. p)
  local pid = text:match("(%d+)")
  local _, alive = sh("kill -0 " .. tostring(pid))
  check(rc == 0 and pid and alive ~= 0, "os.exit leaves no server behind")
  text, rc = sh(bin .. " run " .. dir .. "/nonexistent.lua")
  check(rc == 1 and text:find("nonexistent"), "missing script")
end)

test("a failed threshold sets fileserv run's exit status", function()
  local p = dir .. "/gate.lua"
  local run = "local srv <close> = assert(fileserv.serve { storage = '" .. dir .. "/st-gate', sync = false })\n" ..
    "local function run(t) return assert(fileserv.stress { server = srv, op = 'list', thresholds = { t } }) end\n"
  local cases = {
    { "run('p99<1h')", 0, "every threshold passed" },
    { "local s = run('ops>1e12')\nassert(not s.thresholds_passed)\nrun('p99<1h')", 4, "one failed, a later run passed" },
    { "run('ops>1e12')\nos.exit(0)", 0, "an explicit os.exit decides" },
    { "run('ops>1e12')\nerror('broken')", 1, "an error decides" },
  }
  for i, c in ipairs(cases) do
    local f = io.open(p, "w")
    f:write(run .. c[1] .. "\n")
    f:close()
    local text, rc = sh(bin .. " run " .. p)
    check(rc == c[2], "case " .. i .. ", " .. c[3] .. ": exit " .. tostring(rc) .. ": " .. text)
  end
end)

test("merge: instances' results into one", function()
  local srv <close> = fileserv.serve { storage = dir .. "/st-merge", workers = 2 }
  local a = assert(fileserv.stress { server = srv, op = "list", clients = 2, iterations = 3 })
  local b = assert(fileserv.stress { server = srv, op = "list", clients = 1, iterations = 4 })
  local m = assert(fileserv.merge({ a, b }, { thresholds = { "p99<1us", "failed<1%" } }))
  check(m.ok == 10 and m.clients == 3 and m.instances == 2, "counts added")
  check(m.latency_histogram.n == 10 and m.latency_ms.max == math.max(a.latency_ms.max, b.latency_ms.max),
        "histograms merged, max kept")
  check(m.ranks[1].file == "inputs[1]" and m.ranks[2].ok == 4, "ranks in order")
  check(m.thresholds_passed == false and m.thresholds[1].pass == false and m.thresholds[2].pass,
        "thresholds on the merged figures")
  local f = assert(io.open(dir .. "/b.json", "w"))
  f:write(fileserv.json.encode(b))
  f:close()
  check(fileserv.merge({ a, dir .. "/b.json" }).ok == 10, "a file name as input")
  local none, msg = fileserv.merge({ a }, { expect = 2 })
  check(none == nil and msg:find("rank 1 missing"), "a missing rank fails the merge: " .. tostring(msg))
  b.error = "could not connect"
  none, msg = fileserv.merge({ a, b })
  check(none == nil and msg:find("rank 1 %(inputs%[2%]%) failed: could not connect"), "a failed instance")
  check(not pcall(fileserv.merge, { 42 }), "an input neither a name nor a table raises")
  check(not pcall(fileserv.merge, { a }, { thresholds = { "p99" } }), "a bad threshold raises")
end)

os.execute("rm -rf " .. dir)
os.exit(unit.done("t_lua"))
