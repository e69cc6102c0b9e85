"""The A/A test of the verdict (scripts/false_positives.lua) as a user runs
it: two identical servers, a few tiny trials, the figures and every trial
in the JSON, temporaries removed, and the same when interrupted; a bad
option is a usage error. Nothing
is asserted about how often the verdicts differ (that is what the script
measures), only that the figures add up.
"""
import json, os, re, signal, subprocess, time

from harness import *  # noqa: F401,F403  (tests/harness.py)

SCRIPT = os.path.join(os.path.dirname(HERE), "scripts", "false_positives.lua")


@test(timeout=120)
def false_positives_json(ctx, _):
    """Two tiny trials: the JSON holds the settings, the summary and both
    trials with their samples and verdicts, and the rate is the positives
    over the trials."""
    out, tmp = ctx.path("fp.json"), ctx.path("tmp")
    os.mkdir(tmp)
    r = subprocess.run([ctx.bin, "run", SCRIPT, "--trials", "2", "--repeat",
                        "2", "--size", "100kB", "--clients", "1",
                        "--min-time", "0.05s", "--json", out], cwd=ctx.root,
                       env=dict(os.environ, TMPDIR=tmp),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=100)
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 0, "exit %d: %s", r.returncode, err[-800:])
    with open(out) as f:
        results = json.load(f)
    s, settings = results["summary"], results["settings"]
    check(settings["trials"] == 2 and settings["repeat"] == 2 and
          settings["size_bytes"] == 100000 and settings["clients"] == 1 and
          settings["mode"] == "thread" and settings["confidence"] == 0.95,
          "settings %s", settings)
    check(s["trials"] == 2 and len(results["trials"]) == 2, "2 trials: %s", s)
    check(s["unknown"] == 0 and s["judged"] == 2, "every trial judged: %s", s)
    for t in results["trials"]:
        check(t["verdict"] in ("same", "faster", "slower") and
              len(t["a"]) == 2 and len(t["b"]) == 2 and
              t["ci_low"] <= t["ratio"] <= t["ci_high"] and
              t["order"] in ("AB,BA", "BA,AB"), "trial %s", t)
    positives = sum(t["verdict"] != "same" for t in results["trials"])
    check(s["positives"] == positives and s["rate"] == positives / 2,
          "rate %s of %s positives", s["rate"], positives)
    check(0 <= s["rate_ci_low"] <= s["rate"] <= s["rate_ci_high"] <= 1 and
          abs(s["nominal_rate"] - 0.05) < 1e-12 and s["median_cv"] >= 0 and
          s["interpretation"], "summary %s", s)
    check(results["meta"]["complete"] is True, "meta %s",
          results["meta"])
    # A trial's line names its verdict: "A vs B: no significant
    # difference", or "A faster/slower than B" when chance made one.
    check(err.count("trial ") >= 2 and
          re.search(r"trial 2/2: A (vs|faster than|slower than) B", err),
          "a progress line per trial: %r", err[-500:])
    check("False positives: %d of 2 trials" % positives in
          r.stdout.decode(), "the figures printed: %r", r.stdout[-500:])
    check(os.listdir(tmp) == [], "temporaries left: %s", os.listdir(tmp))


@test(timeout=30)
def false_positives_usage(ctx, _):
    """A bad option or value is a usage error (exit 2) that names it;
    --help prints the usage and exits 0."""
    for args, what in ((["--trials", "0"], b"--trials"),
                       (["--repeat", "1"], b"--repeat"),
                       (["--op", "list"], b"--op"),
                       (["--bogus"], b"--bogus")):
        r = ctx.cli(None, "run", SCRIPT, *args, timeout=20)
        check(r.returncode == 2 and what in r.stderr, "%s: exit %d: %s",
              args, r.returncode, r.stderr[-300:])
    r = ctx.cli(None, "run", SCRIPT, "--help", timeout=20)
    check(r.returncode == 0 and b"usage:" in r.stderr and
          b"--trials" in r.stderr, "--help: exit %d", r.returncode)


@test(timeout=120)
def false_positives_interrupted(ctx, _):
    """SIGINT after the first trial: the trials finished so far are
    reported (JSON marked incomplete), the servers stop, the temporaries
    go, and the exit status is 130."""
    out, tmp = ctx.path("fp.json"), ctx.path("tmp")
    os.mkdir(tmp)
    p = subprocess.Popen([ctx.bin, "run", SCRIPT, "--trials", "1000",
                          "--repeat", "2", "--size", "100kB", "--clients",
                          "1", "--min-time", "0.05s", "--json", out],
                         cwd=ctx.root, env=dict(os.environ, TMPDIR=tmp),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    ctx.procs.append(p)
    seen, deadline = b"", time.monotonic() + 60
    while b"trial 1/1000" not in seen and time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        seen += line
    check(b"trial 1/1000" in seen, "no progress: %r", seen[-500:])
    kids = children(p.pid)
    check(kids, "no server started")
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    check(p.returncode == 130, "exit %s: %s", p.returncode, stderr[-500:])
    with open(out) as f:
        results = json.load(f)
    check(results["meta"]["complete"] is False and
          results["meta"]["interrupted"] == "SIGINT" and
          results["summary"]["trials"] == len(results["trials"]) >= 1,
          "meta %s, summary %s", results["meta"], results["summary"])
    check(b"INCOMPLETE" in stdout, "says it is incomplete: %r", stdout)
    check(wait_for(lambda: gone(kids), 10), "servers left running: %s", kids)
    check(os.listdir(tmp) == [], "temporaries left: %s", os.listdir(tmp))
