#!/usr/bin/env python3
"""Black-box tests of what fileserv measures: the server's own resource
use in STATS, the stress engine's summary (client CPU, server deltas,
warm-up), CPU affinity and interrupted runs. Python 3 stdlib only.

Run by run.py like blackbox.py (`measure.py --bin B --tmp DIR --run NAME`;
one process group and one time limit per test). No assertion depends on
how fast this machine is: figures are checked for presence, sign and
consistency, never against a time.
"""
import argparse, json, os, shutil, signal, subprocess, sys, time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from blackbox import (  # noqa: E402  (the shared server and socket helpers)
    Ctx, Failure, check, wait_for, expect_ok, upload_req, raw, TERM, MODES)

TESTS = {}  # name -> (function, mode, timeout in seconds)
MiB = 1 << 20


def test(timeout=60, modes=(None,)):
    def register(fn):
        for mode in modes:
            name = fn.__name__ + ("[%s]" % mode if mode else "")
            TESTS[name] = (fn, mode, timeout)
        return fn
    return register


def stats(port):
    return expect_ok(port, b"STATS" + TERM)["data"]


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
    before = stats(srv.port)
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
    after = stats(srv.port)
    check(cpu(after) > cpu(before), "CPU did not rise over 12 GETs of "
          "4 MiB: %.4f s then %.4f s", cpu(before), cpu(after))
    check(after["peak_rss_bytes"] >= before["peak_rss_bytes"],
          "peak RSS fell: %r then %r", before["peak_rss_bytes"],
          after["peak_rss_bytes"])


@test(modes=("process",))
def stats_counts_replaced_worker(ctx, mode):
    """A worker killed and replaced keeps its CPU in the server's total
    (its final figures come from RUSAGE_CHILDREN once it is reaped)."""
    srv = ctx.server(mode, workers=1)
    check(wait_for(lambda: len(srv.workers()) == 1, 3), "no worker")
    expect_ok(srv.port, upload_req(b"big", os.urandom(4 * MiB)))
    download_many(srv.port, b"big", 12)
    before = stats(srv.port)
    victim = list(srv.workers())[0]
    os.kill(victim, signal.SIGKILL)
    check(wait_for(lambda: set(srv.workers()) - {victim} and
                   victim not in srv.workers(), 3), "no replacement")
    after = stats(srv.port)
    check(cpu(after) >= cpu(before), "the killed worker's CPU was lost: "
          "%.4f s before, %.4f s after", cpu(before), cpu(after))
    check(after["processes"] == 2, "processes: %r", after["processes"])
    check(after["peak_rss_bytes"] >= before["peak_rss_bytes"],
          "the killed worker's peak RSS was lost: %r then %r",
          before["peak_rss_bytes"], after["peak_rss_bytes"])


# ================================================================ main

def run_one(name, binary, root, long_run):
    """Runs one test; returns (ok, reason)."""
    fn, mode, _ = TESTS[name]
    os.makedirs(root, exist_ok=True)
    ctx = Ctx(os.path.abspath(binary), root, long_run)
    try:
        fn(ctx, mode)
        return True, ""
    except Exception as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if f.filename == os.path.abspath(__file__)]
        mine = [f for f in frames if f.name == fn.__name__] or frames
        where = "line %d: " % mine[-1].lineno if mine else ""
        kind = "" if isinstance(e, Failure) else type(e).__name__ + ": "
        traceback.print_exc()
        return False, where + kind + str(e)
    finally:
        ctx.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True)
    p.add_argument("--tmp", required=True, help="a fresh directory per test")
    p.add_argument("--run", required=True, help="test name")
    p.add_argument("--long", action="store_true")
    args = p.parse_args()
    ok, reason = run_one(args.run, args.bin, args.tmp, args.long)
    if ok:
        shutil.rmtree(args.tmp, ignore_errors=True)
    print("RESULT " + ("ok" if ok else "FAIL " + reason.replace("\n", " ")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
