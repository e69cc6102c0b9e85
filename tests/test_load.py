"""The open model of `fileserv stress`: arrivals on a schedule (--rate,
--stages, --poisson), latency from the intended start against a server
that stalls, and thresholds that set the exit status.
"""
import json, os, signal, subprocess, threading, time

from harness import *  # noqa: F401,F403  (tests/harness.py)

POOLS = ("thread", "process")


@test(modes=POOLS, timeout=60)
def rate_is_kept(ctx, pool):
    """With a fast server the achieved rate is within 1% of the target,
    in both client pools, and every arrival is started."""
    srv = ctx.server("thread", workers=4)
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--rate", "200",
                        "--duration", "2s", "--clients", "4", "--pool", pool)
    check(rc == 0 and s, "exit %d: %s", rc, err)
    m = s["open_model"]
    check(m["started"] == 400 and m["dropped"] == 0 and s["ok"] == 400,
          "400 arrivals in 2 s at 200/s: %s", m)
    # a sanitizer build runs several times slower: the schedule's
    # accuracy is the release build's to show
    check(SANITIZED or abs(m["achieved_rate"] / 200 - 1) < 0.01,
          "achieved %.2f/s for a target of 200/s", m["achieved_rate"])
    check(m["target_rate"] == 200 and m["arrivals"] == "uniform", "%s", m)
    check(s["options"]["rate"] == 200, "rate in the options")


@test(timeout=60)
def stall_shows_in_latency(ctx, _):
    """A server stopped for a second: the latency from the intended start
    shows the stall, the service time does not (coordinated omission)."""
    srv = ctx.server("thread", workers=4)
    p = subprocess.Popen([ctx.bin, "stress", "--json", "--op", "list",
                          "--rate", "100", "--duration", "3s", "--clients",
                          "2", "-p", str(srv.port)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    ctx.procs.append(p)
    time.sleep(1)
    for pid in srv.pids():
        os.kill(pid, signal.SIGSTOP)
    time.sleep(1)
    for pid in srv.pids():
        os.kill(pid, signal.SIGCONT)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 0, "exit %d: %s", p.returncode, err.decode())
    s = json.loads(out.decode())
    lat, svc = s["latency_ms"], s["service_ms"]
    check(lat["p99"] > 700, "corrected p99 %.1f ms misses a 1 s stall",
          lat["p99"])
    check(svc["p99"] < 300 or SANITIZED,
          "service p99 %.1f ms should not show it", svc["p99"])
    check(s["open_model"]["late"] >= 50, "arrivals late: %s",
          s["open_model"])


@test(timeout=60)
def stages_follow_the_plan(ctx, _):
    """0 -> 100/s over 0.5 s, then 100/s for 0.5 s: exactly 75 arrivals;
    Poisson arrivals with a seed run the same plan."""
    srv = ctx.server("thread", workers=4)
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--stages",
                        "0.5s:100,0.5s:100", "--clients", "2")
    check(rc == 0 and s, "exit %d: %s", rc, err)
    check(s["open_model"]["started"] == 75 and s["ok"] == 75,
          "ramp and plateau: %s", s["open_model"])
    check(s["open_model"]["stages"] is True, "stages recorded")
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--rate", "300",
                        "--duration", "1s", "--poisson", "--seed", "7")
    check(rc == 0 and s["open_model"]["arrivals"] == "poisson" and
          200 < s["ok"] < 400, "poisson: exit %d, %s", rc, s and s["ok"])


@test(timeout=60)
def thresholds_set_the_exit_status(ctx, _):
    srv = ctx.server("thread", workers=2)
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--rate", "100",
                        "--duration", "0.5s", "--threshold", "p99<10s",
                        "--threshold", "failed<1%", "--threshold",
                        "rate>=50")
    check(rc == 0 and s["thresholds_passed"] is True, "exit %d: %s", rc,
          s and s["thresholds"])
    check([t["threshold"] for t in s["thresholds"]] ==
          ["p99<10s", "failed<1%", "rate>=50"] and
          all(t["pass"] for t in s["thresholds"]), "%s", s["thresholds"])
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--iterations", "5",
                        "--threshold", "ops>1000000000", "--threshold",
                        "p99<10s", "--threshold", "rate>1")
    check(rc == 4 and s["thresholds_passed"] is False, "exit %d", rc)
    check([t["pass"] for t in s["thresholds"]] == [False, True, False],
          "%s", s["thresholds"])
    check(s["thresholds"][2]["value"] is None,
          "a rate threshold in a closed run has no value")
    r = ctx.cli(srv.port, "stress", "--op", "list", "--threshold",
                "ops>1000000000")
    out = r.stdout.decode()
    check(r.returncode == 4 and "threshold ops>1000000000" in out and
          "FAIL" in out, "text summary: %s", out)


@test(timeout=60)
def bad_load_options(ctx, _):
    """Refused before any load is sent, naming the value, exit 2."""
    srv = ctx.server("thread", workers=2)
    before = stats_data(srv.port)["requests"]
    cases = [
        (["--rate", "0", "--duration", "1s"], "'0'"),
        (["--rate", "-5", "--duration", "1s"], "'-5'"),
        (["--rate", "abc", "--duration", "1s"], "'abc'"),
        (["--rate", "100"], "--duration"),
        (["--rate", "100", "--duration", "1s", "--iterations", "5"],
         "--iterations"),
        (["--stages", "10s:x"], "10s:x"),
        (["--stages", "0s:10"], "0s:10"),
        (["--stages", "1s:0"], "no arrival"),
        (["--stages", "1s:10", "--duration", "1s"],
         "--stages set the duration; leave out --duration"),
        (["--stages", "0.2s:10", "--warmup", "0.5s"],
         "the stages last 0.2s, no more than --warmup"),
        (["--poisson"], "--rate"),
        (["--client-stages", "1s:2.5"], "1s:2.5"),
        (["--client-stages", "1s:3", "--clients", "2"], "--clients 2"),
        (["--client-stages", "1s:2", "--duration", "1s"], "--duration"),
        (["--client-stages", "1s:2", "--rate", "5"], "--client-stages"),
        (["--client-stages", "1s:0"], "never have a client"),
        (["--threshold", "p99<5"], "p99<5"),
        (["--threshold", "lag<1s"], "lag<1s"),
        (["--threshold", "failed<2"], "failed<2"),
    ]
    for args, named in cases:
        r = ctx.cli(srv.port, "stress", "--op", "list", *args)
        err = r.stderr.decode()
        check(r.returncode == 2 and named in err,
              "%s: exit %d, message %r should name %r", args, r.returncode,
              err, named)
    check(stats_data(srv.port)["requests"] == before,
          "a refused run sent requests")


@test(modes=POOLS, timeout=60)
def json_stream_adds_up(ctx, pool):
    """Every line is JSON; the intervals add up to the final summary,
    histogram bucket by bucket, warm-up left out of both."""
    srv = ctx.server("thread", workers=4)
    path = ctx.path("stream.jsonl")
    r = ctx.cli(srv.port, "stress", "--op", "list", "--rate", "300",
                "--duration", "1.5s", "--warmup", "0.3s", "--clients", "3",
                "--pool", pool, "--interval", "0.25s", "--json-stream", path)
    check(r.returncode == 0, "exit %d: %s", r.returncode, r.stderr.decode())
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    intervals, summary = lines[:-1], lines[-1]["summary"]
    check(len(intervals) >= 6 and
          [i["interval"] for i in intervals] == list(range(len(intervals))),
          "numbered intervals: %d", len(intervals))
    for key in ("ok", "failed", "bytes"):
        check(sum(i[key] for i in intervals) == summary[key],
              "%s: intervals %d, summary %d", key,
              sum(i[key] for i in intervals), summary[key])
    merged = {}
    for i in intervals:
        for b, n in i["histogram"]["counts"].items():
            merged[b] = merged.get(b, 0) + n
    check(merged == summary["latency_histogram"]["counts"],
          "histograms merge to the summary's")
    r = ctx.cli(srv.port, "stress", "--op", "list", "--iterations", "3",
                "--json-stream", "-")
    lines = r.stdout.decode().splitlines()
    check(r.returncode == 0 and json.loads(lines[-1])["summary"]["ok"] == 3
          and all(json.loads(x) for x in lines), "stream on stdout: %s",
          lines)


@test(timeout=60)
def live_line_on_a_terminal(ctx, _):
    """On a terminal the run shows a line every interval; -q hides it."""
    import pty
    srv = ctx.server("thread", workers=2)
    for quiet, want in ((False, True), (True, False)):
        master, slave = pty.openpty()
        args = [ctx.bin, "stress", "--op", "list", "--rate", "100",
                "--duration", "1s", "--interval", "0.2s", "-p",
                str(srv.port)] + (["-q"] if quiet else [])
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        p.wait(timeout=30)
        os.close(master)
        text = out.decode(errors="replace")
        check(p.returncode == 0, "exit %d: %s", p.returncode, text[-300:])
        check(("ops/s" in text and text.count("\r") >= 4) == want,
              "quiet=%s: %r", quiet, text[-300:])


def list_server(delay, stop, concurrent=False, seen=None):
    """A server of known behaviour that answers each LIST after `delay`
    seconds (and nothing else): one request at a time (so at most 1/delay
    a second), or with `concurrent` any number at once, appending (seconds
    since its first request, requests in flight then) to `seen` for each.
    Returns its port."""
    import socket
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(512)
    ls.settimeout(0.2)
    lock, state = threading.Lock(), {"active": 0, "first": None}

    def answer(c):
        with c:
            c.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data and len(data) < 4096:
                    chunk = c.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                if not data.startswith(b"LIST"):
                    return  # the STATS samples before and after a run
                with lock:
                    now = time.monotonic()
                    state["first"] = state["first"] or now
                    state["active"] += 1
                    if seen is not None:
                        seen.append((now - state["first"], state["active"]))
                time.sleep(delay)
                with lock:
                    state["active"] -= 1
                c.sendall(b'{"status": "OK", "data": []}\r\n\r\n')
            except OSError:
                pass

    def serve():
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                c, _ = ls.accept()
            except OSError:
                continue
            if concurrent:
                threading.Thread(target=answer, args=(c,),
                                 daemon=True).start()
            else:
                answer(c)
        ls.close()

    threading.Thread(target=serve, daemon=True).start()
    return ls.getsockname()[1]


@test(modes=POOLS, timeout=60)
def client_stages_set_the_active_clients(ctx, pool):
    """--client-stages: one client for 2 s, then a ramp to 3 held for 1 s,
    with a pool of 4: the server sees 1 request at a time at first, then
    up to 3, never 4 (the workers beyond the stage wait)."""
    stop, seen = threading.Event(), []
    port = list_server(0.02, stop, concurrent=True, seen=seen)
    try:
        rc, s, err = ctx.stress_json(port, "--op", "list", "--client-stages",
                            "0.1s:1,2s:1,0.1s:3,1s:3", "--clients", "4",
                            "--pool", pool)
    finally:
        stop.set()
    check(rc == 0 and s, "exit %d: %s", rc, err)
    check(s["failed"] == 0 and s["ok"] == len(seen), "%d ok, %d seen",
          s["ok"], len(seen))
    early = [n for t, n in seen if t < 1.0]
    check(early and max(early) == 1,
          "one client in flight in the first second: %s", early[:20])
    check(max(n for _, n in seen) == 3,
          "up to 3 in flight, never 4: %s", sorted(set(n for _, n in seen)))
    check(s["options"]["client_stages"][1] == {"duration_s": 2,
                                                "clients": 1},
          "stages in the options: %s", s["options"]["client_stages"])
    check(abs(s["options"]["duration_s"] - 3.2) < 1e-9,
          "the stages set the duration: %s", s["options"]["duration_s"])


@test(timeout=120)
def find_max_finds_the_capacity(ctx, _):
    """Against a server that answers 100 requests a second at most, the
    capacity search finds a rate below that which keeps p99 < 100 ms."""
    stop = threading.Event()
    port = list_server(0.01, stop)
    try:
        r = ctx.cli(port, "stress", "--op", "list", "--find-max",
                    "--threshold", "p99<100ms", "--rate", "20",
                    "--duration", "1s", "--clients", "16", "--json",
                    timeout=100)
    finally:
        stop.set()
    check(r.returncode == 0, "exit %d: %s", r.returncode, r.stderr.decode())
    fm = json.loads(r.stdout.decode())["find_max"]
    rates = [s["rate"] for s in fm["steps"]]
    check(rates[:3] == [20, 40, 80], "doubling: %s", rates)
    check(fm["max_rate"] is not None and 30 <= fm["max_rate"] <= 110 and
          fm["first_failing_rate"] > fm["max_rate"],
          "capacity about 100/s: held %s, failed %s (steps %s)",
          fm["max_rate"], fm["first_failing_rate"], rates)
    check(all(s["passed"] == (s["rate"] <= fm["max_rate"])
              for s in fm["steps"]), "evidence per step: %s", fm["steps"])
    r = ctx.cli(port, "stress", "--op", "list", "--find-max",
                "--duration", "1s")
    check(r.returncode == 2 and b"--threshold" in r.stderr,
          "find-max without a threshold: %s", r.stderr)
