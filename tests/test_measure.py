"""What fileserv measures: the server's own resource use in STATS (CPU
seconds, memory), and how it keeps the figures of replaced workers; the
stress summary (client CPU, server deltas, warm-up), CPU affinity and
interrupted runs. No
assertion depends on how fast this machine is: figures are checked for
presence, sign and consistency, never against a time.
"""
import json, os, re, signal, socket, subprocess, time

from harness import *  # noqa: F401,F403  (tests/harness.py)


def cpu(s):
    return s["cpu_user_s"] + s["cpu_system_s"]


def download_many(port, name, count):
    """GETs name count times: base64 encoding keeps the server busy."""
    for _ in range(count):
        raw(port, b"GET " + name + TERM, timeout=30)


# ---------------------------------------------------------------- STATS

@test(modes=MODES)
def stats_resource_use(ctx, mode):
    """STATS reports CPU seconds and memory; serving raises the CPU."""
    srv = ctx.server(mode, workers=2)
    expect_ok(srv.port, upload_req(b"big", os.urandom(4 * MiB)))
    before = stats_data(srv.port)
    for key in ("cpu_user_s", "cpu_system_s", "peak_rss_bytes",
                "peak_rss_sum_bytes", "rss_sum_bytes", "processes"):
        check(isinstance(before.get(key), (int, float)) and before[key] >= 0,
              "STATS %s: %r", key, before.get(key))
    check(before["processes"] == (3 if mode == "process" else 1),
          "processes: %r", before["processes"])
    check(before["peak_rss_bytes"] > 0, "peak_rss_bytes is 0")
    check(before["peak_rss_sum_bytes"] >= before["peak_rss_bytes"],
          "the sum of peaks is below the largest: %r", before)
    download_many(srv.port, b"big", 12)
    after = stats_data(srv.port)
    check(cpu(after) > cpu(before), "CPU did not rise over 12 GETs of "
          "4 MiB: %.4f s then %.4f s", cpu(before), cpu(after))
    check(after["peak_rss_bytes"] >= before["peak_rss_bytes"],
          "peak RSS fell: %r then %r", before["peak_rss_bytes"],
          after["peak_rss_bytes"])


@test(modes=("thread", "process"))
def stats_while_workers_busy(ctx, mode):
    """STATS is answered by the acceptor, not queued behind busy workers:
    with the only worker held by a client that does not read its GET, a
    queued request would get a busy ERROR after --queue-timeout."""
    srv = ctx.server(mode, "--queue-timeout", "1s", workers=1)
    expect_ok(srv.port, upload_req(b"big", os.urandom(16 * MiB)))
    hog = socket.create_connection(("127.0.0.1", srv.port))
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.sendall(b"GET big" + TERM)
    try:
        # the worker takes the GET at once; wait past --queue-timeout,
        # after which a STATS queued for a worker would be refused
        time.sleep(1.5)
        data = stats_data(srv.port)
        check(data["mode"] == mode and data["workers"] == 1,
              "STATS while the worker is busy: %r", data)
        # a STATS with bytes after it still goes to a worker, which
        # lingers for them: with the worker held it is refused busy
        reply = json.loads(raw(srv.port, b"STATS" + TERM + b"x", timeout=10)
                           .split(TERM)[0])
        check(reply["status"] == "ERROR" and "busy" in reply["data"],
              "STATS with more after it: %r", reply)
    finally:
        hog.close()


@test(modes=("process",))
def stats_counts_replaced_worker(ctx, mode):
    """A worker killed and replaced keeps its CPU in the server's total
    (its final figures come from RUSAGE_CHILDREN once it is reaped)."""
    srv = ctx.server(mode, workers=1)
    check(wait_for(lambda: len(srv.workers()) == 1, 3), "no worker")
    expect_ok(srv.port, upload_req(b"big", os.urandom(4 * MiB)))
    download_many(srv.port, b"big", 12)
    before = stats_data(srv.port)
    victim = list(srv.workers())[0]
    os.kill(victim, signal.SIGKILL)
    check(wait_for(lambda: set(srv.workers()) - {victim} and
                   victim not in srv.workers(), 3), "no replacement")
    after = stats_data(srv.port)
    check(cpu(after) >= cpu(before), "the killed worker's CPU was lost: "
          "%.4f s before, %.4f s after", cpu(before), cpu(after))
    check(after["processes"] == 2, "processes: %r", after["processes"])
    check(after["peak_rss_bytes"] >= before["peak_rss_bytes"],
          "the killed worker's peak RSS was lost: %r then %r",
          before["peak_rss_bytes"], after["peak_rss_bytes"])


def bench_rows_parse(rows):
    """Every row has a number, or none and a note saying why it was
    skipped; the reference rows, the round trip and the nginx row are
    there, each median lies within its runs' range, and transfers are
    set against loopback, paired run by run, and the base64 ceiling."""
    by_what = {row["what"]: row for row in rows}
    for row in rows:
        value = row.get("value")
        check(isinstance(value, (int, float)) or
              (value is None and row.get("note")),
              "row without a value or a reason: %r", row)
    for what in ("loopback TCP, one stream, fileserv's own",
                 "loopback TCP, one stream, iperf3",
                 "put + get 200 kB, two processes, files",
                 "1 KB GETs, 50 clients, thread",
                 "1 KB GETs, 50 connections, nginx + wrk"):
        check(what in by_what, "no row %r in %s", what, list(by_what))
    check(by_what["put + get 200 kB, two processes, files"]["unit"] == "ms",
          "round trip: %r", by_what["put + get 200 kB, two processes, files"])
    refs = [r for r in rows if r["what"].startswith("loopback TCP") and
            "the reference" in r.get("note", "")]
    check(len(refs) == 1, "not exactly one reference: %r", refs)
    for what in ("put 2 MB, --no-sync", "get 2 MB", "put 2 MB, fsync"):
        check(re.search(r"of loopback \((iperf3|own stream), paired runs "
                        r"[0-9.]+-[0-9.]+\), [0-9.]+ of the base64 "
                        r"ceiling", by_what[what]["note"]),
              "%s: %r", what, by_what[what]["note"])
    for row in rows:
        if row.get("value") is not None:
            check(row.get("min", -1) <= row["value"] <= row.get("max", -1),
                  "the median is not within its runs' range: %r", row)
    # Each side's CPU per unit of work, where fileserv runs both sides.
    for what, per in (("put 2 MB, --no-sync", "GB"), ("get 2 MB", "GB"),
                      ("put + get 200 kB, two processes, files",
                       "round trip"),
                      ("50 x 200 kB downloads, 5 workers, thread", "GB"),
                      ("50 x 200 kB downloads, 5 workers, process", "GB"),
                      ("200 x 20 kB downloads, 5 workers, thread", "GB"),
                      ("1 KB GETs, 50 clients, thread", "GET"),
                      ("1 KB GETs, 50 clients, process", "GET")):
        cpu = by_what[what].get("cpu") or {}
        check(cpu.get("per") == per and cpu.get("client", 0) > 0 and
              cpu.get("server", 0) > 0, "%s: CPU per unit %r", what, cpu)


@test(timeout=180)
def bench_quick_labels(ctx, _):
    """bench --quick names the sizes it measured, not the full run's."""
    r = ctx.cli(None, "bench", "--quick", "--json", "-q", timeout=100)
    check(r.returncode == 0, "bench --quick: exit %d %r", r.returncode,
          r.stderr[-300:])
    rows = json.loads(r.stdout)
    labels = [row["what"] + " " + row.get("note", "") for row in rows]
    for label in labels:
        check(not re.search(r"\b(100|10|48) MB\b", label),
              "a --quick row claims a full-run size: %r", label)
    check(any(l.startswith("put 2 MB, fsync") for l in labels) and
          any(l.startswith("get 2 MB") for l in labels) and
          any(l.startswith("50 x 200 kB downloads") for l in labels) and
          any(re.match(r"200 x 20 kB downloads, 5 workers, thread .*"
                       r"client [0-9.]+ MB; all verified", l)
              for l in labels),
          "scaled rows not named by their sizes: %s", labels)
    bench_rows_parse(rows)
    r = ctx.cli(None, "bench", "--quick", "-q", timeout=100)
    check(r.returncode == 0 and b"--quick: smaller files" in r.stdout,
          "the table does not say it is a --quick run: %r", r.stdout[:300])
    check(re.search(rb"get 2 MB .* [0-9.]+/[0-9.]+ s/GB", r.stdout) and
          re.search(rb"1 KB GETs, 50 clients, thread .* [0-9]+/[0-9]+ "
                    rb"us/GET", r.stdout),
          "the table has no CPU column: %r", r.stdout[-1500:])
# ---------------------------------------------------------------- stress

def stress(ctx, port, *args, expect=0, timeout=60):
    """fileserv stress --json ARGS against port; returns the summary."""
    r = ctx.cli(port, "stress", "--json", *args, timeout=timeout)
    check(r.returncode == expect, "stress %s: exit %d, want %d: %s",
          " ".join(args), r.returncode, expect,
          r.stderr.decode(errors="replace").strip())
    return json.loads(r.stdout)


def number(obj, key):
    check(isinstance(obj.get(key), (int, float)) and
          not isinstance(obj.get(key), bool), "%s: %r", key, obj.get(key))
    return obj[key]


@test(modes=("thread", "process"))
def stress_summary(ctx, pool):
    """The summary names the target, the server's real mode and workers,
    the options and the time; it has ops/s, client CPU and the server's
    CPU and memory deltas; the text form says the same."""
    srv = ctx.server("process", workers=3)
    data = ctx.path("f")
    with open(data, "wb") as f:
        f.write(os.urandom(2 * MiB))
    ctx.cli_ok(srv.port, "put", data)
    args = ("--op", "download", "--file", data, "--clients", "2",
            "--iterations", "4", "--pool", pool)
    s = stress(ctx, srv.port, *args)
    check(s["target"] == "127.0.0.1:%d" % srv.port, "target %r", s["target"])
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", s["timestamp"]),
          "timestamp %r", s["timestamp"])
    check(s["ok"] == 8 and s["pool"] == pool, "ok %r pool %r", s["ok"],
          s["pool"])
    check(s["options"] == {"op": "download", "file": data, "name": "f",
                           "clients": 2, "pool": pool, "iterations": 4,
                           "duration_s": None, "rate": None,
                           "client_stages": None,
                           "warmup_s": 0, "verify": True, "timeout_s": 300,
                           "cpus": None},
          "options %r", s["options"])
    check(number(s, "ops_per_s") > 0, "ops_per_s %r", s["ops_per_s"])
    check(s["verified_bytes"] == 8 * 2 * MiB, "verified %r",
          s["verified_bytes"])
    check(number(s, "client_cpu_s") > 0, "client CPU of 16 MiB verified: "
          "%r", s["client_cpu_s"])
    check(abs(s["client_cpu_s"] - number(s, "client_cpu_user_s") -
              number(s, "client_cpu_system_s")) < 1e-6, "CPU split")
    srv_part = s["server"]
    check(srv_part["mode"] == "process" and srv_part["workers"] == 3,
          "server mode/workers from STATS: %r", srv_part)
    check(srv_part["succeeded"] == 8, "server succeeded %r",
          srv_part["succeeded"])
    check(number(srv_part, "cpu_s") > 0, "server CPU %r", srv_part)
    check(abs(srv_part["cpu_s_per_gb"] -
              srv_part["cpu_s"] / (s["bytes"] / 1e9)) < 1e-6, "per GB")
    check(number(srv_part, "peak_rss_bytes") > 0, "server peak RSS")
    number(srv_part, "peak_rss_growth_bytes")
    r = ctx.cli_ok(srv.port, "stress", *args)
    text = r.stdout.decode()
    for want in ("2 client workers (%s pool) on 127.0.0.1:%d" % (pool,
                                                             srv.port),
                 "(verified 16.8 MB)", "ops/s", "client CPU",
                 "server: process mode, 3 workers; 8 succeeded",
                 "server CPU", "s/GB", "peak RSS"):
        check(want in text, "summary lacks %r: %s", want, text)
    # A client that spent more CPU than the server is pointed out.
    client = float(re.search(r"client CPU ([0-9.]+) s", text).group(1))
    server = float(re.search(r"server CPU ([0-9.]+) s", text).group(1))
    note = re.search(r"note: the client workers spent ([0-9.]+)x the "
                     r"server's CPU", text)
    if abs(client - server) > 0.002:
        check(bool(note) == (client > server), "client %.3f s, server "
              "%.3f s, note %r", client, server, note and note.group(0))
    if note:  # the figures are printed rounded to 1 ms
        lo = (client - 0.0005) / (server + 0.0005) - 0.005
        hi = (client + 0.0005) / max(server - 0.0005, 1e-9) + 0.005
        check(lo <= float(note.group(1)) <= hi, "ratio %s for %.3f/%.3f",
              note.group(1), client, server)


@test()
def stress_load_generator_note(ctx, _):
    """A client that costs more CPU than the server it loads says so: 32
    forked client processes for 32 GETs of 1 KB spend far more than the
    server's 32 replies."""
    srv = ctx.server("thread", workers=1)
    data = ctx.path("small")
    with open(data, "wb") as f:
        f.write(os.urandom(1000))
    ctx.cli_ok(srv.port, "put", data)
    r = ctx.cli_ok(srv.port, "stress", "--op", "download", "--file", data,
                   "--clients", "32", "--iterations", "1", "--pool",
                   "process")
    text = r.stdout.decode()
    client = float(re.search(r"client CPU ([0-9.]+) s", text).group(1))
    server = float(re.search(r"server CPU ([0-9.]+) s", text).group(1))
    check(client > server and re.search(
        r"note: the client workers spent [0-9.]+x the server's CPU", text),
          "client %.3f s, server %.3f s, no note: %s", client, server, text)


@test()
def stress_without_stats(ctx, _):
    """A server without STATS: the server part is null, not zeros."""
    storage = ctx.path("peer-storage")
    os.makedirs(storage)
    _, port = ctx.peer_server(storage)
    s = stress(ctx, port, "--op", "list", "--iterations", "2")
    check(s["ok"] == 2 and s["server"] is None, "server %r", s["server"])
    r = ctx.cli_ok(port, "stress", "--op", "list")
    check("server: STATS not available" in r.stdout.decode(),
          "text: %s", r.stdout.decode())


@test()
def stress_help_names_pools(ctx, _):
    out = ctx.cli_ok(None, "stress", "--help").stdout.decode()
    check("the CLIENT's worker pool" in out and "serve --mode" in out,
          "--help does not say whose pool --pool is: %s", out)
    check("--warmup" in out, "--help lacks --warmup")


@test()
def stress_warmup(ctx, _):
    """Operations that finish in the warm-up count nowhere: the summary
    has fewer GETs than the server served, each one whole and verified,
    and the server's deltas start after the warm-up too."""
    srv = ctx.server("thread", workers=2)
    data = ctx.path("w")
    with open(data, "wb") as f:
        f.write(os.urandom(64 << 10))
    ctx.cli_ok(srv.port, "put", data)
    before = stats_data(srv.port)["commands"]["GET"]["succeeded"]
    s = stress(ctx, srv.port, "--op", "download", "--file", data,
               "--clients", "2", "--duration", "0.5", "--warmup", "1")
    served = stats_data(srv.port)["commands"]["GET"]["succeeded"] - before
    check(s["warmup_s"] == 1 and s["options"]["warmup_s"] == 1, "warmup_s")
    check(0 < s["ok"] < served, "counted %d of the %d GETs served: the "
          "warm-up's were not left out", s["ok"], served)
    check(s["bytes"] == s["ok"] * (64 << 10) == s["verified_bytes"],
          "bytes %r for %d GETs", s["bytes"], s["ok"])
    check(s["server"]["succeeded"] <= s["ok"] + 2 and
          s["server"]["succeeded"] < served, "server delta %r, ok %d, "
          "served %d", s["server"]["succeeded"], s["ok"], served)
    r = ctx.cli(srv.port, "stress", "--op", "list", "--warmup", "1")
    check(r.returncode == 2 and b"--warmup needs --duration" in r.stderr,
          "warm-up without a duration: exit %d %r", r.returncode, r.stderr)


# ---------------------------------------------------------------- affinity

def cpus_allowed(pid, task=None):
    path = "/proc/%d/task/%d/status" % (pid, task) if task else \
        "/proc/%d/status" % pid
    with open(path) as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split()[1]
    return None


@test(modes=MODES)
def serve_cpus(ctx, mode):
    """--cpus pins the whole server: every thread of the parent and of
    each worker process; STATS reports the set."""
    cpu = str(max(os.sched_getaffinity(0)))
    srv = ctx.server(mode, "--cpus", cpu, workers=2)
    check(wait_for(lambda: mode != "process" or len(srv.workers()) == 2, 3),
          "workers did not start")
    raw(srv.port, b"LIST" + TERM)
    seen = 0
    for pid in [srv.pid] + list(srv.workers()):
        for task in os.listdir("/proc/%d/task" % pid):
            got = cpus_allowed(pid, int(task))
            check(got == cpu, "pid %d thread %s runs on %s, want %s", pid,
                  task, got, cpu)
            seen += 1
    check(seen >= 2, "only %d threads seen", seen)
    check(stats_data(srv.port)["cpus"] == cpu, "STATS cpus %r",
          stats_data(srv.port)["cpus"])


@test()
def cpus_errors(ctx, _):
    """Bad lists and CPUs this process may not use are refused, naming
    the list; without --cpus STATS reports the CPUs the server may use."""
    storage = ctx.storage
    for bad, want in (("x", "invalid CPU list 'x'"),
                      ("1-0", "invalid CPU list '1-0'"),
                      ("0,", "invalid CPU list '0,'"),
                      ("4096", "invalid CPU list '4096'"),
                      ("1000", "CPU 1000 is not available")):
        for cmd in (["serve", "--port", "0", "--storage", storage, "-q"],
                    ["stress", "--op", "list"]):
            r = ctx.cli(None, *(cmd + ["--cpus", bad]), timeout=10)
            check(r.returncode == 2 and want.encode() in r.stderr,
                  "%s --cpus %s: exit %d, %r", cmd[0], bad, r.returncode,
                  r.stderr)
    srv = ctx.server("thread")
    mine = cpus_allowed(os.getpid())
    check(stats_data(srv.port)["cpus"] == mine, "STATS cpus %r, want %r",
          stats_data(srv.port)["cpus"], mine)
    s = stress(ctx, srv.port, "--op", "list", "--cpus", "0")
    check(s["options"]["cpus"] == "0" and s["server"]["cpus"] == mine,
          "summary cpus: %r %r", s["options"]["cpus"], s["server"]["cpus"])


# ---------------------------------------------------------------- signals

def wait_requests(port, timeout=10):
    """Waits until the server on port has served a request."""
    def served():
        try:
            return stats_data(port)["requests"] > 0
        except (OSError, Failure):
            return False
    check(wait_for(served, timeout), "no request reached the server")


def finish(proc, timeout=20):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Failure("still running %gs after the signal" % timeout)
    return proc.returncode, out.decode(), err.decode()


SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143)}


@test(modes=("thread", "process"))
def stress_interrupted(ctx, pool):
    """SIGINT/SIGTERM stop fileserv stress: the summary of what ran,
    marked interrupted, and exit 130/143."""
    srv = ctx.server("thread")
    for name, (sig, status) in SIGNALS.items():
        before = stats_data(srv.port)["requests"]
        p = subprocess.Popen([ctx.bin, "stress", "--op", "list", "-c", "2",
                              "--pool", pool, "--duration", "60", "--json",
                              "-p", str(srv.port)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ctx.procs.append(p)
        check(wait_for(lambda: stats_data(srv.port)["requests"] > before + 1,
                       10), "the stress run did not start")
        p.send_signal(sig)
        rc, out, err = finish(p)
        check(rc == status, "%s: exit %d, want %d: %s", name, rc, status,
              err)
        s = json.loads(out)
        check(s["interrupted"] == name and s["ok"] > 0 and
              s["server"]["succeeded"] >= s["ok"], "%s: summary %r", name,
              {k: s.get(k) for k in ("interrupted", "ok", "server")})
    s = stress(ctx, srv.port, "--op", "list")
    check(s["interrupted"] is None, "interrupted %r", s["interrupted"])


POLLING = """
local srv = assert(fileserv.serve { storage = arg[1], sync = false })
assert(fileserv.interrupted() == nil)
print("server " .. srv.pid .. " " .. srv.port) io.stdout:flush()
local s = assert(fileserv.stress { server = srv, op = "list", clients = 2,
                                   duration = 60, pool = arg[2] })
print("result " .. fileserv.json.encode { interrupted = s.interrupted,
      ok = s.ok, asked = fileserv.interrupted() })
"""

PLAIN = """
local srv = assert(fileserv.serve { storage = arg[1], sync = false })
print("server " .. srv.pid .. " " .. srv.port) io.stdout:flush()
if arg[2] == "loop" then while true do end end
fileserv.stress { server = srv, op = "list", duration = 60 }
print("not reached")
"""


def run_script(ctx, text, *args):
    """Starts fileserv run on text; returns (process, server pid, port)."""
    path = ctx.path("script.lua")
    with open(path, "w") as f:
        f.write(text)
    storage = ctx.storage
    p = subprocess.Popen([ctx.bin, "run", path, storage] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx.procs.append(p)
    line = p.stdout.readline().decode().split()
    check(len(line) == 3 and line[0] == "server", "script said %r", line)
    return p, int(line[1]), int(line[2])


@test(modes=("thread", "process"))
def run_interrupted_polling(ctx, pool):
    """A script that asks fileserv.interrupted() gets the partial summary
    (interrupted = the signal's name) and goes on; exit 130/143, servers
    stopped."""
    for name, (sig, status) in SIGNALS.items():
        p, server, port = run_script(ctx, POLLING, pool)
        wait_requests(port)
        p.send_signal(sig)
        rc, out, err = finish(p)
        check(rc == status, "%s: exit %d, want %d: %s", name, rc, status,
              err)
        m = re.search(r"^result (.*)$", out, re.M)
        check(m, "%s: no result line: %r %r", name, out, err)
        got = json.loads(m.group(1))
        check(got["interrupted"] == name and got["asked"] == name and
              got["ok"] > 0, "%s: %r", name, got)
        check(gone_pid(server), "%s: the script's server still runs", name)


@test()
def run_interrupted_plain(ctx, _):
    """A script that never asks is stopped by the error "interrupted
    (SIGINT)", whether in fileserv.stress or in a Lua loop; exit 130/143,
    servers stopped."""
    for how in ("stress", "loop"):
        for name, (sig, status) in SIGNALS.items():
            p, server, port = run_script(ctx, PLAIN, how)
            if how == "stress":
                wait_requests(port)
            else:
                time.sleep(0.3)
            p.send_signal(sig)
            rc, out, err = finish(p)
            check(rc == status, "%s in %s: exit %d, want %d: %s", name, how,
                  rc, status, err)
            check("interrupted (%s)" % name in err and
                  "not reached" not in out, "%s in %s: %r %r", name, how,
                  out, err)
            check(gone_pid(server), "%s in %s: the server still runs",
                  name, how)


def gone_pid(pid):
    """Whether pid has ended (a zombie counts as ended)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
