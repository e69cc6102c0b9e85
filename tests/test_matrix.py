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
