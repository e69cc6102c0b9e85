"""One instance of a run spread over several hosts: `fileserv stress
--segment I/N` (or a launcher's environment) runs its exact share, so that
the instances together run what one process would; --start-at, and the
refusals of bad segments and start times.
"""
import json, os, signal, subprocess, time

from harness import *  # noqa: F401,F403  (tests/harness.py)

POOLS = ("thread", "process")

# A scenario that uploads one file per (worker, iteration), or in the open
# model per arrival: the names on the server show which instance ran what.
NAMES = r"""
local port, segment, pool, rate = arg[1], arg[2], arg[3], tonumber(arg[4])
local src = os.tmpname()
local f = assert(io.open(src, "w")) f:write("x") f:close()
local opts = {server = "127.0.0.1:" .. port, clients = 5, pool = pool,
  args = {src = src}, segment = segment ~= "-" and segment or nil,
  scenario = function(c, worker, iteration, args)
    assert(c:put(args.src, string.format("w%d-i%d", worker, iteration)))
  end}
if rate then
  opts.rate, opts.duration, opts.poisson, opts.seed = rate, 1, true, 7
else
  opts.iterations = 3
end
local s = fileserv.stress(opts)
os.remove(src)
print(fileserv.json.encode(s))
"""


def together(ctx, commands, env=None):
    """Runs the commands at once; returns [(exit status, stdout, stderr)]."""
    procs = [subprocess.Popen(c, stdin=subprocess.DEVNULL, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for c in commands]
    ctx.procs.extend(procs)
    out = []
    for p in procs:
        o, e = p.communicate(timeout=60)
        out.append((p.returncode, o.decode(), e.decode(errors="replace")))
    return out


def names(ctx, srv):
    return sorted(n for n in os.listdir(ctx.storage) if not n.startswith("."))


@test(modes=POOLS, timeout=90)
def closed_split_is_exact(ctx, pool):
    """10 clients x 7 iterations over 3 instances run at once: 4, 3 and 3
    clients numbered from 1, 5 and 8, 70 operations in all; an instance
    with no client (3/4 of 2) runs nothing and still reports."""
    srv = ctx.server("thread", workers=4)
    base = [ctx.bin, "stress", "--json", "--op", "list", "-c", "10", "-i",
            "7", "--pool", pool, "-p", str(srv.port)]
    runs = together(ctx, [base + ["--segment", "%d/3" % i]
                          for i in range(3)])
    got = []
    for rc, out, err in runs:
        check(rc == 0, "exit %d: %s", rc, err)
        check("segment" in err and "(from option)" in err, "note: %r", err)
        got.append(json.loads(out))
    check([s["clients"] for s in got] == [4, 3, 3], "clients %s",
          [s["clients"] for s in got])
    check([s["segment"]["first_worker"] for s in got] == [1, 5, 8],
          "first workers %s", [s["segment"] for s in got])
    check(sum(s["ok"] for s in got) == 70, "ops %s", [s["ok"] for s in got])
    check(all(s["options"]["clients"] == 10 and
              s["segment"]["count"] == 3 for s in got), "options %s", got[0])
    check(sum(s["latency_histogram"]["n"] for s in got) == 70, "histograms")
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "-c", "2",
                             "--segment", "3/4")
    check(rc == 0 and s and s["ok"] == 0 and s["clients"] == 0 and
          s["t_start"] is None, "empty instance: exit %d %s %s", rc, s, err)
    check("nothing to run" in err, "note: %r", err)
    r = ctx.cli_ok(srv.port, "stress", "--op", "list", "-c", "10",
                   "--segment", "1/3")
    check("segment 1 of 3 (from option): clients 5-7" in r.stdout.decode(),
          "summary: %s", r.stdout)


@test(modes=POOLS, timeout=90)
def scenario_workers_are_global(ctx, pool):
    """A scenario's worker numbers are global: three instances uploading
    per-worker names together write exactly the names of one process."""
    srv = ctx.server("thread", workers=4)
    script = ctx.path("names.lua")
    with open(script, "w") as f:
        f.write(NAMES)
    runs = together(ctx, [[ctx.bin, "run", script, str(srv.port),
                           "%d/3" % i, pool] for i in range(3)])
    for rc, out, err in runs:
        check(rc == 0, "exit %d: %s", rc, err)
    got = names(ctx, srv)
    want = sorted("w%d-i%d" % (w, i) for w in range(1, 6) for i in (1, 2, 3))
    check(got == want, "names %s", got)
    check(sum(json.loads(o)["ok"] for _, o, _ in runs) == 15, "ops")


@test(timeout=90)
def open_split_is_the_schedule(ctx, _):
    """Poisson arrivals (seed 7, 150/s for 1 s): three instances take
    every third arrival of the one schedule, so their arrival numbers are
    exactly those of a single process, and their counts add up to its."""
    srv = ctx.server("thread", workers=4)
    script = ctx.path("names.lua")
    with open(script, "w") as f:
        f.write(NAMES)
    rc, out, err = together(ctx, [[ctx.bin, "run", script, str(srv.port),
                                   "-", "thread", "150"]])[0]
    check(rc == 0, "exit %d: %s", rc, err)
    single = names(ctx, srv)
    started = json.loads(out)["open_model"]["started"]
    check(len(single) == started and started > 100, "single run: %d of %d",
          len(single), started)
    for n in single:
        os.unlink(os.path.join(ctx.storage, n))
    runs = together(ctx, [[ctx.bin, "run", script, str(srv.port),
                           "%d/3" % i, "thread", "150"] for i in range(3)])
    for rc, out, err in runs:
        check(rc == 0, "exit %d: %s", rc, err)
    got = [json.loads(o) for _, o, _ in runs]
    parts = [s["open_model"]["started"] for s in got]
    check(sum(parts) == started, "instances %s, single %d", parts, started)
    # arrival k runs as iteration k + 1, in instance k mod 3
    def arrivals(ns):
        return sorted(int(n.split("-i")[1]) - 1 for n in ns)
    check(arrivals(names(ctx, srv)) == arrivals(single),
          "the instances ran other arrivals than the single run")
    for i, s in enumerate(got):
        mine = range(s["segment"]["first_worker"],
                     s["segment"]["first_worker"] + s["clients"])
        ks = [int(n.split("-i")[1]) - 1 for n in names(ctx, srv)
              if int(n[1:].split("-")[0]) in mine]
        check(len(ks) == s["open_model"]["started"] and
              all(k % 3 == i for k in ks), "instance %d ran %s", i, ks)
    # the even schedule with stages: 75 arrivals, 25 each
    rc_counts = together(ctx, [[ctx.bin, "stress", "--json", "--op", "list",
                                "--stages", "0.5s:100,0.5s:100", "-c", "3",
                                "--segment", "%d/3" % i, "-p",
                                str(srv.port)] for i in range(3)])
    counts = [json.loads(o)["open_model"]["started"] for _, o, _ in rc_counts]
    check(counts == [25, 25, 25], "stages split %s", counts)


@test(timeout=60)
def launchers_environment(ctx, _):
    """The segment comes from Open MPI's, MPICH's, Slurm's or an Indexed
    Job's variables and is recorded with its source; bad or incomplete
    values are refused, naming the variable, before any load."""
    srv = ctx.server("thread", workers=4)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("OMPI_", "PMI_", "SLURM_", "JOB_COMP",
                                  "FILESERV_SEG"))}
    cases = [({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "3"},
              (), "OMPI", 1, 3),
             ({"PMI_RANK": "2", "PMI_SIZE": "4"}, (), "PMI", 2, 4),
             ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}, (), "SLURM", 0, 2),
             ({"JOB_COMPLETION_INDEX": "4", "FILESERV_SEGMENTS": "5"}, (),
              "K8S", 4, 5),
             ({"JOB_COMPLETION_INDEX": "1"}, ("--segments", "2"), "K8S", 1,
              2),
             ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"},
              ("--segment", "0/1"), "option", 0, 1)]
    for env, extra, source, index, count in cases:
        rc, s, err = ctx.stress_json(srv.port, "--op", "list", "-c", "6",
                                 *extra, env=dict(clean, **env))
        check(rc == 0 and s, "%s: exit %d: %s", env, rc, err)
        seg = s["segment"]
        check((seg["source"], seg["index"], seg["count"]) ==
              (source, index, count), "%s: %s", env, seg)
        check(s["ok"] == 6 // count + (index < 6 % count), "%s: ok %d",
              env, s["ok"])
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", env=clean)
    check(rc == 0 and s["segment"] == {"index": 0, "count": 1,
                                       "source": "none", "first_worker": 1,
                                       "clients": 1}, "no launcher: %s",
          s and s["segment"])
    bad = [({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "3"}, (),
            "segment 3 of 3"),
           ({"PMI_RANK": "x", "PMI_SIZE": "2"}, (), "PMI_RANK='x'"),
           ({"SLURM_PROCID": "1"}, (), "SLURM_NTASKS is not"),
           ({"SLURM_NTASKS": "0", "SLURM_PROCID": "0"}, (),
            "SLURM_NTASKS='0'"),
           ({"JOB_COMPLETION_INDEX": "1"}, (), "FILESERV_SEGMENTS"),
           ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "3"},
            ("--segments", "4"), "disagrees with --segments 4"),
           ({}, ("--segment", "2/2"), "segment 2 of 2"),
           ({}, ("--segment", "1/0"), "count='0'"),
           ({}, ("--segments", "3"), "without an index"),
           ({}, ("--segment", "0/2", "--rate", "10", "--duration", "1s"),
            "at least 2 clients")]
    before = json.loads(ctx.cli_ok(srv.port, "stats", "--json").stdout)
    for env, extra, word in bad:
        rc, s, err = ctx.stress_json(srv.port, "--op", "list", *extra,
                                 env=dict(clean, **env))
        check(rc == 2 and word in err, "%s %s: exit %d: %s", env, extra, rc,
              err)
    after = json.loads(ctx.cli_ok(srv.port, "stats", "--json").stdout)
    check(after["succeeded"] - before["succeeded"] <= 1,
          "a refused run sent requests: %s -> %s", before, after)


@test(timeout=60)
def start_at_waits(ctx, _):
    """--start-at waits for a wall-clock time (epoch seconds or ISO 8601)
    and records when the run was to start and when it did; times in the
    past, too far ahead or of bad syntax are refused with exit 2."""
    srv = ctx.server("thread", workers=4)
    at = time.time() + 1.5
    t0 = time.time()
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--start-at",
                             "%.3f" % at)
    check(rc == 0 and s, "exit %d: %s", rc, err)
    check(time.time() - t0 >= 1.3, "did not wait")
    st = s["start"]
    check(abs(st["at"] - round(at, 3)) < 1e-6, "at %s", st)
    check(st["actual"] >= st["at"] and st["late_s"] >= 0 and
          abs(st["actual"] - st["at"] - st["late_s"]) < 1e-6, "start %s", st)
    check(s["t_start"] >= st["actual"] and s["t_end"] >= s["t_start"],
          "t_start %s t_end %s", s["t_start"], s["t_end"])
    when = int(time.time()) + 2
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--start-at",
                             iso)
    check(rc == 0 and s["start"]["at"] == when, "%s: exit %d %s %s", iso,
          rc, s and s["start"], err)
    check(s["start"]["late_s"] >= 0, "iso start %s", s["start"])
    # a signal while waiting ends the wait: nothing ran, exit 143
    p = subprocess.Popen([ctx.bin, "stress", "--json", "--op", "list",
                          "--start-at", "%d" % (time.time() + 30), "-p",
                          str(srv.port)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx.procs.append(p)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    s = json.loads(out.decode())
    check(p.returncode == 143 and s["interrupted"] == "SIGTERM" and
          s["ok"] == 0, "interrupted wait: exit %d %s", p.returncode, err)
    for bad, word in (("%d" % (time.time() - 30), "in the past"),
                      ("2020-01-01T00:00:00Z", "in the past"),
                      ("%d" % (time.time() * 1000), "ahead"),
                      ("2026-11-30T10:00:00", "invalid time"),
                      ("2026-02-30T10:00:00Z", "invalid time"),
                      ("tomorrow", "invalid time"), ("1.2.3", "invalid")):
        rc, s, err = ctx.stress_json(srv.port, "--op", "list",
                                 "--start-at", bad)
        check(rc == 2 and word in err, "%s: exit %d: %s", bad, rc, err)


def load(path):
    with open(path) as f:
        return json.load(f)


@test(modes=POOLS, timeout=90)
def out_json_per_instance(ctx, pool):
    """--out-json r-%r-of-%n.json: each instance writes the summary it
    prints with --json to its own file (and --json-stream s-%r.jsonl its
    stream), nothing else is left in the directory, and the files add up
    to the whole run."""
    srv = ctx.server("thread", workers=4)
    out = ctx.path("out")
    os.mkdir(out)
    runs = together(ctx, [[ctx.bin, "stress", "--json", "--op", "list",
                           "-c", "5", "-i", "4", "--pool", pool,
                           "--segment", "%d/3" % i, "-p", str(srv.port),
                           "--out-json", os.path.join(out, "r-%r-of-%n.json"),
                           "--json-stream", os.path.join(out, "s-%r.jsonl")]
                          for i in range(3)])
    check(sorted(os.listdir(out)) ==
          ["r-%d-of-3.json" % i for i in range(3)] +
          ["s-%d.jsonl" % i for i in range(3)], "files %s", os.listdir(out))
    total = 0
    for i, (rc, stdout, err) in enumerate(runs):
        check(rc == 0, "exit %d: %s", rc, err)
        saved = load(os.path.join(out, "r-%d-of-3.json" % i))
        check(saved == json.loads(stdout), "instance %d: the file differs "
              "from --json", i)
        check(saved["segment"]["index"] == i and "error" not in saved,
              "segment %s", saved["segment"])
        check(saved["latency_histogram"]["n"] == saved["ok"] and
              saved["t_end"] >= saved["t_start"], "histogram and times")
        with open(os.path.join(out, "s-%d.jsonl" % i)) as f:
            last = json.loads(f.read().splitlines()[-1])
        check(last["summary"]["ok"] == saved["ok"], "stream %d", i)
        total += saved["ok"]
    check(total == 20, "the files add up to %d operations, not 20", total)


@test(timeout=60)
def out_json_on_failure(ctx, _):
    """A run that fails still writes its file, with "error" and its
    segment, so that a merger tells a failed instance from a missing one;
    a file that cannot be written is an I/O error (exit 3) naming it; a
    bad escape in the name is refused before any load."""
    srv = ctx.server("thread", workers=4)
    r = ctx.cli(srv.port, "stress", "--op", "upload", "--file",
                ctx.path("missing.bin"), "-c", "2", "--segment", "1/2",
                "--out-json",
                ctx.path("r-%r.json"))
    check(r.returncode == 3, "exit %d: %s", r.returncode, r.stderr)
    saved = load(ctx.path("r-1.json"))
    check("missing.bin" in saved["error"] and
          saved["error_class"] == "local" and
          saved["segment"]["index"] == 1, "failed run: %s", saved)
    r = ctx.cli(srv.port, "stress", "--op", "list", "--segment", "0/2",
                "--start-at", "%d" % (time.time() - 60), "--out-json",
                ctx.path("late-%r.json"))
    check(r.returncode == 2, "exit %d", r.returncode)
    saved = load(ctx.path("late-0.json"))
    check("in the past" in saved["error"] and
          saved["error_class"] == "usage", "refused run: %s", saved)
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--out-json",
                             ctx.path("no", "such", "dir", "r.json"))
    check(rc == 3 and "no/such/dir/r.json" in err and s["ok"] == 1,
          "unwritable: exit %d: %s", rc, err)
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--out-json",
                             ctx.path("r-%x.json"))
    check(rc == 2 and "unknown escape '%x'" in err, "escape: exit %d: %s",
          rc, err)
    check(not [n for n in os.listdir(ctx.root) if ".tmp." in n],
          "temporary files left: %s", os.listdir(ctx.root))


@test(timeout=60)
def out_json_from_lua(ctx, _):
    """fileserv.stress{out_json = ...} writes the summary it returns."""
    srv = ctx.server("thread", workers=4)
    script = ctx.path("out.lua")
    with open(script, "w") as f:
        f.write("""
local s = assert(fileserv.stress { server = "127.0.0.1:" .. arg[1],
  op = "list", clients = 3, iterations = 2, segment = {index = 2, count = 3},
  out_json = arg[2] })
print(fileserv.json.encode(s))
print(pcall(fileserv.stress, { server = "127.0.0.1:" .. arg[1],
  op = "list", out_json = "x-%q" }))
""")
    rc, out, err = together(ctx, [[ctx.bin, "run", script, str(srv.port),
                                   ctx.path("lua-%r-%%.json")]])[0]
    check(rc == 0, "exit %d: %s", rc, err)
    lines = out.splitlines()
    saved = load(ctx.path("lua-2-%.json"))
    summary = json.loads(lines[0])  # Lua's nils are gone from it
    check(all(saved[k] == summary[k] for k in
              ("ok", "failed", "segment", "latency_histogram", "t_start",
               "t_end", "wall_s", "bytes", "errors")),
          "the file differs from the summary")
    check(saved["ok"] == 2 and saved["segment"]["first_worker"] == 3,
          "share %s", saved["segment"])
    check("false" in lines[1] and "unknown escape '%q'" in lines[1],
          "escape: %s", lines[1])
