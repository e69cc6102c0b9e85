"""Volume and concurrency: 100 MB round trips in bounded memory,
many concurrent clients, the request ledger and the soak.
"""
import collections, json, os, random, signal, subprocess, threading, time

from harness import *  # noqa: F401,F403  (tests/harness.py)


def run_peak(cmd, timeout):
    """Runs cmd; returns (exit status, peak RSS in KiB as last seen in
    /proc, stderr). rusage would count the forked Python too."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, deadline = 0, time.monotonic() + timeout
    while p.poll() is None:
        try:
            peak = max(peak, vm_hwm_kb(p.pid))
        except (OSError, ValueError):
            pass
        check(time.monotonic() < deadline, "%s: timed out", cmd[1:3])
        time.sleep(0.005)
    return p.returncode, peak, p.stderr.read()


@test(modes=MODES, timeout=180, tags=("case 28",))
def roundtrip_100mb(ctx, mode):
    """Streaming both ways: bytes intact, memory independent of size."""
    size = (500 if ctx.long else 100) * 1000 * 1000 + 1
    srv = ctx.server(mode)
    listing(srv.port)
    base = {pid: vm_hwm_kb(pid) for pid in srv.pids()}
    src = ctx.path("big")
    digest = write_random(src, size)
    for cmd in (["put", src, "big"], ["get", "big", "-o", ctx.path("back")]):
        rc, rss, err = run_peak([ctx.bin] + cmd + ["-q", "-p",
                                                  str(srv.port)], 120)
        check(rc == 0, "%s: exit %d: %s", cmd[0], rc, err)
        check(rss < 64 * 1024, "client %s peak RSS %d KiB for %d MB",
              cmd[0], rss, size // 1000000)
    check(sha256(ctx.path("back")) == digest, "100 MB: bytes differ")
    check(sha256(os.path.join(srv.storage, "big")) == digest,
          "100 MB: stored bytes differ")
    for pid in srv.pids():
        grew = vm_hwm_kb(pid) - base.get(pid, 0)
        check(grew < 32 * 1024, "server process %d: peak RSS grew by %d KiB "
              "in a %d MB round trip", pid, grew, size // 1000000)
    os.unlink(src)


@test(modes=MODES, timeout=120)
def many_clients_one_worker(ctx, mode):
    """50 concurrent clients against one worker: all served, none refused."""
    srv = ctx.server(mode, workers=1)
    digest = write_random(ctx.path("src"), 1 << 20)
    ctx.cli_ok(srv.port, "put", ctx.path("src"), "big", "-q")
    procs = [subprocess.Popen([ctx.bin, "get", "big", "-q", "-o",
                               ctx.path("out%d" % i), "-p", str(srv.port)],
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for i in range(50)]
    ctx.procs.extend(procs)
    deadline = time.monotonic() + 90
    for i, p in enumerate(procs):
        try:
            p.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            raise Failure("client %d still running after 90 s" % i)
        check(p.returncode == 0, "client %d: exit %d: %s", i, p.returncode,
              p.stderr.read())
        check(sha256(ctx.path("out%d" % i)) == digest, "client %d: bytes", i)
    # 50 raw connections opened at once, then served one by one
    socks = [connect(srv.port, timeout=30) for _ in range(50)]
    for s in socks:
        s.sendall(b"LIST" + TERM)
    for i, s in enumerate(socks):
        r = parse_reply(recv_all(s, 30))
        check(r["status"] == "OK" and r["data"] == ["big"], "raw %d: %r", i,
              r)
        s.close()


@case(24, timeout=150)
def many_clients(ctx, mode):
    n = 1000 if ctx.long else 200
    srv = ctx.server(mode)
    fds = warm(srv)
    results, lat = [None] * n, []
    start = threading.Barrier(n, timeout=60)

    def client(i):
        content = random.Random(i).randbytes(64 * 1024)
        name = b"c%04d" % i
        try:
            start.wait()
        except threading.BrokenBarrierError:
            pass
        t0 = time.monotonic()
        try:
            r = request(srv.port, upload_req(name, content), timeout=60)
            if r["status"] != "OK":
                results[i] = ("busy" if "busy" in r["data"] else "error",
                              r["data"])
                return
            got = get_content(srv.port, name)
            lat.append(time.monotonic() - t0)
            results[i] = ("ok",) if got == content else ("mismatch",)
        except Exception as e:
            results[i] = ("exception", str(e)[:200])
    t0 = time.monotonic()
    threads = start_threads(client, n)
    for t in threads:
        t.join(max(90 - (time.monotonic() - t0), 1))
    kinds = collections.Counter(r[0] if r else "hung" for r in results)
    info("%d clients: %s in %.1fs; upload+get p50 %.3fs p99 %.3fs", n,
         dict(kinds), time.monotonic() - t0, percentile(lat, 50) or 0,
         percentile(lat, 99) or 0)
    bad = [r for r in results if not r or r[0] not in ("ok", "busy")]
    check(not bad, "%d clients not OK nor busy: %s", len(bad),
          collections.Counter(str(b)[:120] for b in bad).most_common(3))
    check(kinds["mismatch"] == 0, "mismatches")
    # the stress engine too: n uploads then n verified downloads of one file
    src = ctx.path("w-64k")
    put_file(src, os.urandom(64 * 1024))
    for op in ("upload", "download"):
        r = subprocess.run([ctx.bin, "stress", "--op", op, "--file", src,
                            "--name", "engine", "-c", str(n), "-i", "1",
                            "-p", str(srv.port), "-j", "-t", "30s"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        check(r.returncode == 0, "stress %s: exit %d: %s", op, r.returncode,
              r.stderr[-300:])
        rep = json.loads(r.stdout)
        check(rep["failed"] == 0 and rep["errors"]["mismatch"] == 0,
              "stress %s: %s", op, rep["errors"])
        info("stress engine %s x%d: p50 %.1f ms, p99 %.1f ms", op, n,
             rep["latency_ms"]["p50"], rep["latency_ms"]["p99"])
    files = {"c%04d" % i: h(random.Random(i).randbytes(64 * 1024))
             for i in range(n) if results[i][0] == "ok"}
    files["engine"] = sha256(src)
    ctx.finish(srv, files, fd_base=fds)


@case(28, timeout=240)
def big_roundtrip(ctx, mode):
    size = (500 if ctx.long else 100) * 1000 * 1000
    srv = ctx.server(mode, limits={"--max-upload": "1GB"})
    fds = warm(srv)
    base = {pid: vm_hwm_kb(pid) for pid in srv.pids()}
    t0 = time.monotonic()
    reply, digest = upload_stream(srv.port, b"big", size, timeout=180)
    check(reply["status"] == "OK", "UPLOAD %d MB: %r", size // 10**6, reply)
    t1 = time.monotonic()
    r, got, n = stream_get(srv.port, b"big", timeout=180)
    check(r["status"] == "OK" and got == digest and n == size,
          "GET: %r, %d bytes, sha %s", r, n, got == digest)
    info("%d MB: upload %.1fs, get %.1fs", size // 10**6, t1 - t0,
         time.monotonic() - t1)
    grew = sum(vm_hwm_kb(p) - base.get(p, 0) for p in srv.pids())
    check(grew < 64 * 1024 * MEM, "server VmHWM grew %d KiB in total", grew)
    ctx.finish(srv, {"big": digest}, fd_base=fds)
    os.unlink(os.path.join(ctx.storage, "big"))


@case(30, timeout=90)
def ledger(ctx, mode):
    srv = ctx.server(mode, port=restart_port())
    warm(srv)
    lock = threading.Lock()
    acked = {}       # name -> sha256 of the last acknowledged upload
    inflight = collections.defaultdict(set)  # name -> unacked since then
    sent = set()     # every payload sha256 ever sent in full
    stop = threading.Event()
    counts = collections.Counter()

    def client(k):
        rng = random.Random(k)
        for i in range(100000):
            if stop.is_set():
                return
            name = b"n%d-%d" % (k, rng.randrange(3))
            content = rng.randbytes(rng.choice((0, 10, 5000, 150000, 700000)))
            d = h(content)
            with lock:
                inflight[name].add(d)
                sent.add(d)
            try:
                r = request(srv.port, upload_req(name, content), timeout=10,
                            allow_reset=True)
            except (Failure, OSError):
                counts["cut"] += 1
                return  # the server is gone: this client's run ends
            with lock:
                if r["status"] == "OK":
                    acked[name] = d
                    inflight[name] = set()
                    counts["ok"] += 1
                elif not stop.is_set():
                    counts["error"] += 1
    threads = start_threads(client, 6)
    time.sleep(3)
    kids = list(srv.workers())
    srv.proc.kill()          # kill -9 mid-run
    srv.wait(5)
    for pid in kids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    stop.set()
    for t in threads:
        t.join(15)
    check(counts["ok"] > 20, "too few acknowledged uploads: %s", counts)
    check(counts["error"] == 0, "ERROR replies before the kill: %s", counts)
    again = ctx.server(mode, port=srv.port)
    lost = []
    for name, d in sorted(acked.items()):
        ok = {d} | inflight[name]
        r, got, _ = stream_get(again.port, name)
        if r["status"] != "OK" or got not in ok:
            lost.append((name, r.get("data"), got))
    info("ledger: %s, %d names acknowledged, %d in flight at the kill",
         dict(counts), len(acked), sum(bool(v) for v in inflight.values()))
    check(not lost, "acknowledged uploads lost: %s", lost[:3])
    files = {}
    for n in os.listdir(ctx.storage):
        d = sha256(os.path.join(ctx.storage, n))
        check(d in sent, "%s holds bytes that were never sent in full "
              "(a partial file)", n)
        files[n] = d
    ctx.finish(again, files)


def server_sample(srv):
    pids = srv.pids()
    return (sum(proc_status(p, "VmRSS") for p in pids), fd_count(pids),
            sum(proc_status(p, "Threads") for p in pids))


@case(31, timeout=250)
def soak(ctx, mode):
    duration = 600 if ctx.long else 20
    warmup = 30 if ctx.long else 5
    srv = ctx.server(mode)
    base_fds = warm(srv)
    base_threads = server_sample(srv)[2]
    stop = threading.Event()
    errors, counts = [], collections.Counter()

    def client(k):
        rng = random.Random(k)
        names = [b"s%d-%d" % (k, i) for i in range(4)]
        have = {}
        while not stop.is_set():
            op = rng.random()
            name = rng.choice(names)
            try:
                if op < 0.35:
                    content = rng.randbytes(rng.choice((0, 1, 999, 65536,
                                                        300000)))
                    r = request(srv.port, upload_req(name, content),
                                timeout=10)
                    if r["status"] != "OK":
                        errors.append(("upload", r))
                    have[name] = content
                elif op < 0.65 and name in have:
                    if get_content(srv.port, name) != have[name]:
                        errors.append(("get", name, "bytes differ"))
                elif op < 0.85:
                    listing(srv.port)
                elif op < 0.95 and name in have:
                    expect_ok(srv.port, b"DELETE " + name + TERM)
                    del have[name]
                else:
                    expect_error(srv.port, b"GET .bad" + TERM)
                counts["ops"] += 1
            except Exception as e:
                errors.append(("exception", str(e)[:200]))
    t0 = time.monotonic()
    threads = start_threads(client, 4)
    samples = []
    while time.monotonic() - t0 < duration and not errors:
        time.sleep(1)
        samples.append((time.monotonic() - t0,) + server_sample(srv))
    stop.set()
    for t in threads:
        t.join(15)
    after = [s for s in samples if s[0] > warmup]
    check(after, "no samples after the warm-up")
    # RSS at the end of the warm-up: the peak of its last 2 s (a single
    # sample of a 3 MB process is noisy); growth allowed: 10%, at least
    # 1 MiB (malloc trimming alone moves a few hundred KiB)
    rss0 = max([s[1] for s in samples if warmup - 2 <= s[0] <= warmup] or
               [after[0][1]])
    rss1 = max(s[1] for s in after)
    info("soak %ds: %d ops, RSS %d -> max %d KiB, fds %d..%d, threads "
         "%d..%d", duration, counts["ops"], rss0, rss1,
         min(s[2] for s in samples), max(s[2] for s in samples),
         min(s[3] for s in samples), max(s[3] for s in samples))
    check(not errors, "%d errors, first: %s", len(errors), errors[:2])
    # ASan's quarantine and TSan's shadow memory grow by design
    check(SANITIZED or rss1 < max(rss0 * 1.10, rss0 + 1024 * MEM),
          "RSS grew from %d to "
          "%d KiB after the warm-up", rss0, rss1)
    n = ctx.nworkers(mode)
    check(max(s[2] for s in samples) <= base_fds + 2 * n + 2,
          "fd count rose to %d (baseline %d)", max(s[2] for s in samples),
          base_fds)
    check(all(s[3] == base_threads for s in samples),
          "thread count changed: %s", sorted({s[3] for s in samples}))
    ctx.finish(srv, None, fd_base=base_fds)
