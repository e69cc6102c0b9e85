"""What fileserv measures: the server's own resource use in STATS (CPU
seconds, memory), and how it keeps the figures of replaced workers. No
assertion depends on how fast this machine is: figures are checked for
presence, sign and consistency, never against a time.
"""
import json, os, re, signal

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


@test(timeout=120)
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
          any(l.startswith("50 x 200 kB downloads") for l in labels),
          "scaled rows not named by their sizes: %s", labels)
    r = ctx.cli(None, "bench", "--quick", "-q", timeout=100)
    check(r.returncode == 0 and b"--quick: smaller files" in r.stdout,
          "the table does not say it is a --quick run: %r", r.stdout[:300])
