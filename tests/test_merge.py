"""`fileserv merge`: the results of several stress instances merged into
the result of one run: the same counts as one process running the whole
workload, interval streams aligned, thresholds on the merged figures,
and a missing, failed or foreign instance refused by name.
"""
import json, os

from harness import *  # noqa: F401,F403  (tests/harness.py)


def stress_to(ctx, port, out, *args):
    """fileserv stress --json ARGS, its summary written to out; returns
    the summary."""
    r = ctx.cli(port, "stress", "--json", *args, timeout=60)
    check(r.returncode == 0, "stress %s: exit %d: %s", args, r.returncode,
          r.stderr.decode(errors="replace"))
    with open(out, "wb") as f:
        f.write(r.stdout)
    return json.loads(r.stdout.decode())


def merge(ctx, *args):
    """fileserv merge ARGS; returns (exit status, stdout, stderr)."""
    r = ctx.cli(None, "merge", *args, timeout=60)
    return (r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace"))


def merged(ctx, *args):
    rc, out, err = merge(ctx, "--json", *args)
    check(rc == 0, "merge %s: exit %d: %s", args, rc, err)
    return json.loads(out)


EXACT = ("ok", "failed", "bytes", "verified_bytes", "clients", "errors")


@test(timeout=120)
def merge_equals_single(ctx, _):
    """4 instances of one client each, 6 downloads apiece, merge into
    what one process with 4 clients doing 6 downloads each reports:
    operations, bytes, verified bytes, clients, error classes and the
    histogram's count."""
    srv = ctx.server("thread", workers=4)
    write_random(ctx.path("f"), 20000)
    ctx.cli_ok(srv.port, "put", ctx.path("f"), "f", "-q")
    common = ("--op", "download", "--file", ctx.path("f"), "-i", "6")
    one = stress_to(ctx, srv.port, ctx.path("one.json"), "-c", "4", *common)
    files = [ctx.path("r-%d.json" % r) for r in range(4)]
    for f in files:
        stress_to(ctx, srv.port, f, "-c", "1", *common)
    m = merged(ctx, *files)
    for key in EXACT:
        check(m[key] == one[key], "%s: merged %s, single %s", key, m[key],
              one[key])
    check(m["latency_histogram"]["n"] == one["latency_histogram"]["n"] == 24,
          "histogram counts: %d vs %d", m["latency_histogram"]["n"],
          one["latency_histogram"]["n"])
    check(m["instances"] == 4 and [r["rank"] for r in m["ranks"]] ==
          [0, 1, 2, 3], "ranks: %s", m["ranks"])
    check(sum(m["latency_histogram"]["counts"].values()) == 24,
          "merged buckets add up")
    lat = m["latency_ms"]
    check(lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"],
          "latency figures in order: %s", lat)
    rc, out, err = merge(ctx, *files)
    check(rc == 0 and "merged 4 instances" in out and "96 ok" not in out
          and "24 ok, 0 failed" in out, "text output: %s %s", out, err)


@test(timeout=120)
def merge_streams(ctx, _):
    """Interval streams (--json-stream) merge by interval index; their
    intervals add up to the merged total."""
    srv = ctx.server("thread", workers=2)
    files = [ctx.path("s-%d.jsonl" % r) for r in range(2)]
    for f in files:
        ctx.cli_ok(srv.port, "stress", "--op", "list", "-c", "2",
                   "--duration", "0.6s", "--interval", "0.2s",
                   "--json-stream", f)
    m = merged(ctx, *files)
    iv = m.get("intervals") or []
    check(len(iv) >= 3, "intervals: %s", iv)
    check(sum(i["ok"] for i in iv) == m["ok"] > 0,
          "intervals add up to %d: %s", m["ok"], [i["ok"] for i in iv])
    check(all(i["instances"] >= 1 for i in iv), "instances per interval")
    summary = ctx.path("summary.json")
    with open(files[1]) as f, open(summary, "w") as out:
        out.write(f.read().splitlines()[-1][len('{"summary":'):-1])
    rc, out, err = merge(ctx, files[0], summary)
    check(rc == 0 and "intervals not merged" in err,
          "a summary among streams: exit %d, %s", rc, err)


@test(timeout=120)
def merge_refuses(ctx, _):
    """A missing file, a failed instance, another run or another
    histogram layout: exit 3, the message naming the file; --json stays
    valid JSON."""
    srv = ctx.server("thread", workers=2)
    good = ctx.path("good.json")
    s = stress_to(ctx, srv.port, good, "--op", "list", "-i", "2")
    rc, out, err = merge(ctx, good, ctx.path("nothere.json"))
    check(rc == 3 and "nothere.json" in err and "No such file" in err,
          "missing file: exit %d: %s", rc, err)
    rc, out, err = merge(ctx, "--expect", "2", good)
    check(rc == 3 and "rank 1 missing" in err, "--expect 2: %d %s", rc, err)
    bad = ctx.path("bad.json")
    r = ctx.cli(srv.port, "stress", "--json", "--op", "upload", "--file",
                ctx.path("none"))
    check(r.returncode != 0, "stress of a missing file must fail")
    with open(bad, "wb") as f:
        f.write(r.stdout)
    rc, out, err = merge(ctx, "--json", good, bad)
    check(rc == 3 and "rank 1 (%s) failed" % bad in err,
          "failed instance: exit %d: %s", rc, err)
    check("error" in json.loads(out), "--json on failure: %s", out)

    def variant(name, change):
        t = json.loads(json.dumps(s))
        change(t)
        path = ctx.path(name)
        with open(path, "w") as f:
            json.dump(t, f)
        return merge(ctx, good, path)
    rc, out, err = variant("op.json", lambda t: t.update(op="upload"))
    check(rc == 3 and "not of the same run" in err and '"op"' in err,
          "another run: %d %s", rc, err)
    rc, out, err = variant(
        "layout.json", lambda t: t["latency_histogram"].update(sub_bits=5))
    check(rc == 3 and "layout.json: latency_histogram layout (sub_bits 5"
          in err, "another layout: %d %s", rc, err)
    with open(ctx.path("junk.json"), "w") as f:
        f.write("not json\n")
    rc, out, err = merge(ctx, good, ctx.path("junk.json"))
    check(rc == 3 and "junk.json" in err, "junk: %d %s", rc, err)


@test(timeout=60)
def merge_thresholds(ctx, _):
    """Thresholds apply to the merged figures and set exit status 4."""
    srv = ctx.server("thread", workers=2)
    files = [ctx.path("r-%d.json" % r) for r in range(2)]
    for f in files:
        stress_to(ctx, srv.port, f, "--op", "list", "-i", "3")
    rc, out, err = merge(ctx, "--threshold", "failed<1%", *files)
    check(rc == 0 and "failed<1%" in out and "pass" in out,
          "passing threshold: %d %s %s", rc, out, err)
    rc, out, err = merge(ctx, "--threshold", "failed<1%", "--threshold",
                         "p99<1us", *files)
    check(rc == 4 and "FAIL" in out, "failing threshold: %d %s", rc, out)
    rc, out, err = merge(ctx, "--threshold", "p99", *files)
    check(rc == 2 and "invalid threshold" in err, "bad threshold: %d %s",
          rc, err)


@test(timeout=120)
def merge_open_model(ctx, _):
    """Open-model runs merge their schedule's counts and the service and
    lateness histograms; a service-time threshold is checked on the
    merged service histogram."""
    srv = ctx.server("thread", workers=2)
    files = [ctx.path("o-%d.json" % r) for r in range(2)]
    runs = [stress_to(ctx, srv.port, f, "--op", "list", "--rate", "40",
                      "--duration", "0.5s", "-c", "2") for f in files]
    rc, out, err = merge(ctx, "--json", "--threshold", "service_p99<1h",
                         *files)
    check(rc == 0, "merge: exit %d: %s", rc, err)
    m = json.loads(out)
    om = m["open_model"]
    check(om["started"] == sum(r["open_model"]["started"] for r in runs)
          == m["ok"] == 40, "started %s, ok %s", om["started"], m["ok"])
    check(om["target_rate"] == 80, "two whole runs' targets add up: %s",
          om["target_rate"])
    check(m["service_histogram"]["n"] == 40 and
          om["lateness_histogram"]["n"] == 40, "service and lateness "
          "histograms merged")
    value, p99 = m["thresholds"][0]["value"], m["service_ms"]["p99"] / 1e3
    check(abs(value - p99) <= 1e-9 * p99,
          "service threshold on the merged figures: %s, p99 %s",
          m["thresholds"], m["service_ms"])
    check("open model" in merge(ctx, *files)[1], "text shows the open model")
