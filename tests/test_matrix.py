"""The stress matrix script (scripts/stress_all.lua) as a user runs it:
interrupted half-way, it keeps what it measured and cleans up.
"""
import glob, json, os, signal, subprocess, time

from harness import *  # noqa: F401,F403  (tests/harness.py)

SCRIPT = os.path.join(os.path.dirname(HERE), "scripts", "stress_all.lua")


@test(modes=("SIGINT", "SIGTERM"), timeout=120)
def matrix_interrupted(ctx, sig):
    """A signal mid-run writes the cells finished so far, marked
    incomplete, stops the servers and exits 128 + the signal."""
    out = ctx.path("results")
    tmp = ctx.path("tmp")
    os.mkdir(tmp)
    p = subprocess.Popen([ctx.bin, "run", SCRIPT, "--sizes", "100kB",
                          "--clients", "1,2", "--servers", "1",
                          "--repeat", "40", "--min-time", "0.1s",
                          "--out", out], cwd=ctx.root,
                         env=dict(os.environ, TMPDIR=tmp),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    ctx.procs.append(p)
    seen, deadline = b"", time.monotonic() + 60
    while seen.count(b"round") < 6 and time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        seen += line
    check(seen.count(b"round") >= 6, "no progress: %r", seen[-500:])
    kids = children(p.pid)
    check(kids, "no server started")
    # a request queued behind a long cell waits as long as an operation
    # may take, not the server's default 10 s
    for k in kids:
        with open("/proc/%d/cmdline" % k, "rb") as f:
            argv = f.read().split(b"\0")
        check(b"--queue-timeout" in argv and
              argv[argv.index(b"--queue-timeout") + 1] == b"600s",
              "server %d: %r", k, argv)
    p.send_signal(getattr(signal, sig))
    stdout, stderr = p.communicate(timeout=60)
    want = 130 if sig == "SIGINT" else 143
    check(p.returncode == want, "exit %s, want %d: %s", p.returncode, want,
          stderr.decode()[-500:])
    with open(os.path.join(out, "latest", "results.json")) as f:
        results = json.load(f)
    meta = results["meta"]
    check(meta["complete"] is False and meta["interrupted"] == sig,
          "meta %s", meta)
    check(any(c["samples"] >= 1 for c in results["cells"]),
          "the finished rounds are kept")
    check(os.path.exists(os.path.join(out, "latest", "results.html")) and
          os.path.exists(os.path.join(out, "latest", "results.csv")),
          "every output written")
    check(b"INCOMPLETE" in stderr, "says it is incomplete")
    check(wait_for(lambda: all(not os.path.exists("/proc/%d" % k) or
                               open("/proc/%d/stat" % k).read().split()[2]
                               == "Z" for k in kids), 10),
          "servers left running: %s", kids)
    check(os.listdir(tmp) == [], "temporaries left: %s", os.listdir(tmp))


@test(timeout=120)
def matrix_find_max(ctx, _):
    """--find-max searches each server configuration's highest rate that
    holds the thresholds and reports it in the text, results.json and
    results.html. The threshold here is on the achieved rate, so that the
    answer does not depend on how fast this machine is: below 100/s."""
    out = ctx.path("results")
    r = subprocess.run([ctx.bin, "run", SCRIPT, "--ops", "download",
                        "--sizes", "10kB", "--clients", "1,2", "--servers",
                        "1", "--modes", "thread,process", "--repeat", "1",
                        "--min-time", "0.2s", "--warmup", "0",
                        "--find-max", "rate<100", "--find-max-from", "20",
                        "--out", out], cwd=ctx.root, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=100)
    text = r.stdout.decode()
    check(r.returncode == 0, "exit %d: %s", r.returncode,
          r.stderr.decode()[-500:])
    with open(os.path.join(out, "latest", "results.json")) as f:
        cap = json.load(f)["capacity"]
    check(cap["thresholds"] == ["rate<100"] and cap["clients"] == 2 and
          cap["start_rate"] == 20 and cap["step_s"] == 0.2, "%s",
          {k: v for k, v in cap.items() if k != "searches"})
    searches = cap["searches"]
    check([(s["server_mode"], s["server_workers"]) for s in searches] ==
          [("thread", 1), ("process", 1)], "one search per server: %s",
          [(s["server_mode"], s["server_workers"]) for s in searches])
    for s in searches:
        rates = [step["rate"] for step in s["steps"]]
        check(rates[:3] == [20, 40, 80] and
              80 <= s["max_rate"] <= 110 and
              s["max_rate"] < s["first_failing_rate"] <= 160,
              "%s: held %s, failed %s, steps %s", s["server_mode"],
              s["max_rate"], s["first_failing_rate"], rates)
        check(s["text"] in text and
              s["text"].startswith("the %s pool with 1 worker sustains "
                                   % s["server_mode"]) and
              "downloads/s of 10kB within rate<100" in s["text"],
              "the sentence: %r", s["text"])
    with open(os.path.join(out, "latest", "results.html")) as f:
        page = f.read()
    escaped = searches[0]["text"].replace("&", "&amp;").replace("<", "&lt;")
    check('id="capacity"' in page and escaped in page,
          "the HTML report's capacity section")


@test(timeout=60)
def matrix_find_max_bad_threshold(ctx, _):
    """A bad --find-max threshold is refused before anything runs."""
    out = ctx.path("results")
    r = subprocess.run([ctx.bin, "run", SCRIPT, "--find-max", "p99<5",
                        "--out", out], cwd=ctx.root, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    err = r.stderr.decode()
    check(r.returncode == 2 and "--find-max: invalid threshold 'p99<5'" in err
          and not os.path.exists(out), "exit %d: %s", r.returncode, err)


@test(timeout=120)
def matrix_instances(ctx, _):
    """--instances 2 against a running server: each cell's round runs as
    two fileserv stress processes, segments of one run, merged; the
    cells' operations and bytes are those of the whole run."""
    srv = ctx.server("thread", workers=2)
    out = ctx.path("results")
    r = ctx.cli(None, "run", SCRIPT, "--server", "127.0.0.1:%d" % srv.port,
                "--instances", "2", "--ops", "download", "--sizes", "100kB",
                "--clients", "3", "--repeat", "1", "--min-time", "0.2s",
                "--warmup", "0", "--out", out, timeout=90)
    check(r.returncode == 0, "exit %d: %s", r.returncode,
          r.stderr.decode(errors="replace")[-800:])
    with open(os.path.join(out, "latest", "results.json")) as f:
        results = json.load(f)
    run = results["cells"][0]["runs"][0]
    check(run.get("instances") == 2 and run["ok"] > 0 and run["failed"] == 0
          and run["bytes"] == run["ok"] * 100000,
          "a merged run of 2 instances: %s", run)
    r = ctx.cli(None, "run", SCRIPT, "--instances", "0", timeout=30)
    check(r.returncode == 2 and b"--instances" in r.stderr,
          "--instances 0: exit %d", r.returncode)
