"""The pool always answers: queue and transfer time limits, connection
caps that mean what they say, a streamed LIST of bounded memory, daemon
signals, uploads without /proc, names with C1 and bidirectional controls,
replies never lost to a reset, and busy replies when a drain is cut.
Servers run with the catalogue's test-sized limits.
"""
import os, select, signal, subprocess, threading, time

from harness import *  # noqa: F401,F403  (tests/harness.py)


def pool_test(modes=MODES, timeout=60):
    return test(timeout, modes, ("pool",), LIMITS)


BUSY_TIMEOUT = 10  # seconds a test waits for a reply that must come


class Trickler:
    """An upload that reaches a worker (its first 4 KiB of data at once)
    and then sends 4 base64 bytes every 0.1 s: above --min-rate 10, so
    nothing but a time limit ever ends it."""

    def __init__(self, port, name):
        self.sock = connect(port, BUSY_TIMEOUT)
        self.sock.sendall(b"UPLOAD " + name + b" " + b"QUFB" * 1100)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self):
        deadline = time.monotonic() + 60
        while not self.stop.wait(0.1) and time.monotonic() < deadline:
            try:
                self.sock.sendall(b"QUFB")
            except OSError:
                return

    def reply(self, timeout=BUSY_TIMEOUT):
        """What the server sent until it closed (it may reset)."""
        return recv_all(self.sock, timeout, allow_reset=True)

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def hold_workers(srv, n):
    """n tricklers, each held by a worker by the time this returns."""
    held = [Trickler(srv.port, b"held%d" % i) for i in range(n)]
    time.sleep(0.5 * SLOW)
    return held


def busy_reply(port, req=b"LIST" + TERM):
    """Sends req; returns (reply, seconds) of a reply that must come."""
    t0 = time.monotonic()
    got = raw(port, req, timeout=BUSY_TIMEOUT + 5, allow_reset=True)
    took = time.monotonic() - t0
    check(got, "no reply at all after %.1fs (closed silently)", took)
    return parse_reply(got), took


# ---------------------------------------------------------------- time

@pool_test()
def queue_wait_busy(ctx, mode):
    """Every worker held by a trickling upload: a request queued behind
    them gets a busy ERROR once --queue-timeout has passed, not silence."""
    srv = ctx.server(mode, "--min-rate", "10", "--queue-timeout", "1s",
                     workers=2, limits={"--idle-timeout": "5s"})
    warm(srv)
    held = hold_workers(srv, ctx.nworkers(mode, 2))
    try:
        r, took = busy_reply(srv.port)
        check(r["status"] == "ERROR" and "busy" in r["data"],
              "queued LIST answered %r", r)
        check(0.8 < took < 1 + 2 * SLOW, "busy reply after %.2fs "
              "(--queue-timeout 1s)", took)
    finally:
        for t in held:
            t.close()
    check(wait_for(lambda: request(srv.port, b"LIST" + TERM)["status"] ==
                   "OK", 5), "no LIST served once the uploads were gone")
    ctx.finish(srv, {})


@pool_test()
def trickle_cut_at_transfer_timeout(ctx, mode):
    """An upload trickling just above --min-rate is cut at
    --transfer-timeout with an ERROR naming the limit; nothing stored."""
    srv = ctx.server(mode, "--min-rate", "10", "--transfer-timeout", "2s",
                     limits={"--idle-timeout": "5s"})
    warm(srv)
    t0 = time.monotonic()
    t = Trickler(srv.port, b"slow")
    try:
        got = t.reply()
        took = time.monotonic() - t0
    finally:
        t.close()
    check(got, "trickling upload closed without a reply after %.1fs", took)
    r = parse_reply(got)
    check(r["status"] == "ERROR" and "--transfer-timeout" in r["data"],
          "trickling upload answered %r", r)
    check(1.8 < took < 2 + 3 * SLOW, "cut after %.2fs (limit 2s)", took)
    ctx.finish(srv, {})


@pool_test()
def drain_cut_busy(ctx, mode):
    """Requests still queued when the drain times out get a busy ERROR,
    not an empty close."""
    srv = ctx.server(mode, "--min-rate", "10", "--queue-timeout", "60s",
                     workers=1, limits={"--drain-timeout": "1s",
                                        "--idle-timeout": "5s"})
    warm(srv)
    held = hold_workers(srv, 1)
    queued = [connect(srv.port, BUSY_TIMEOUT) for _ in range(3)]
    try:
        for s in queued:
            s.sendall(b"LIST" + TERM)
        time.sleep(0.3 * SLOW)
        srv.signal(signal.SIGTERM)
        for i, s in enumerate(queued):
            got = recv_all(s, BUSY_TIMEOUT, allow_reset=True)
            check(got, "queued client %d: closed without a reply", i)
            r = parse_reply(got)
            check(r["status"] == "ERROR" and "busy" in r["data"] and
                  "shutting down" in r["data"],
                  "queued client %d answered %r", i, r)
    finally:
        for s in queued:
            s.close()
        for t in held:
            t.close()
    check(srv.wait(10) == 0, "server did not exit 0 after the cut drain")


# ---------------------------------------------------------------- limits

def open_idle(port, n):
    """n connections that send nothing, each admitted (not answered)."""
    time.sleep(0.3 * SLOW)  # earlier connections are closed by now
    socks = [connect(port, BUSY_TIMEOUT) for _ in range(n)]
    time.sleep(0.3 * SLOW)
    answered = select.select(socks, [], [], 0)[0]
    check(not answered, "%d of %d connections under the cap answered "
          "at once", len(answered), n)
    return socks


@pool_test()
def max_conns_exact(ctx, mode):
    """--max-conns 5 with 2 workers admits exactly 5 connections, and a
    cap no larger than the worker count still serves."""
    srv = ctx.server(mode, "--max-conns", "5", workers=2)
    warm(srv)
    admitted = open_idle(srv.port, 5)
    try:
        r, took = busy_reply(srv.port)
        check(r["status"] == "ERROR" and "busy" in r["data"],
              "6th connection over --max-conns 5: %r", r)
        for i, s in enumerate(admitted):
            s.sendall(b"LIST" + TERM)
            r = parse_reply(recv_all(s, BUSY_TIMEOUT))
            check(r["status"] == "OK", "admitted connection %d: %r", i, r)
    finally:
        for s in admitted:
            s.close()
    srv.stop()
    for cap in ("1", "2"):
        srv = ctx.server(mode, "--max-conns", cap, workers=2)
        check(request(srv.port, b"LIST" + TERM)["status"] == "OK",
              "--max-conns %s with 2 workers does not serve", cap)
        held = open_idle(srv.port, int(cap))
        try:
            r, _ = busy_reply(srv.port)
            check(r["status"] == "ERROR" and "busy" in r["data"],
                  "connection %d over --max-conns %s: %r", int(cap) + 1,
                  cap, r)
        finally:
            for s in held:
                s.close()
        srv.stop()


def serve_under(ctx, nofile, *args):
    """fileserv serve ARGS under ulimit -n nofile: (exit status or None
    if it started and served LIST OK, its stderr)."""
    cmd = ["prlimit", "--nofile=%d" % nofile, ctx.bin, "serve", "--port",
           "0", "--storage", ctx.storage, "-q", "--ready-fd", "1"] + list(args)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    ctx.procs.append(p)
    port = p.stdout.readline().strip()
    if not port:
        p.wait(10)
        return p.returncode, p.stderr.read().decode(errors="replace")
    r = request(int(port), b"LIST" + TERM)
    check(r["status"] == "OK", "%s under nofile %d: LIST answered %r",
          " ".join(args), nofile, r)
    p.send_signal(signal.SIGTERM)
    check(p.wait(10) == 0, "%s: exit %s after SIGTERM", args, p.returncode)
    return None, ""


@pool_test(modes=(None,))
def limits_add_up(ctx, _):
    """Options the descriptor limit cannot hold are refused at start
    (exit 2, a message naming the limit); what it can hold serves."""
    for args in (("--workers", "496"), ("--workers", "1024"),
                 ("--max-conns", "2000"),
                 ("--mode", "process", "--max-conns", "1000")):
        status, err = serve_under(ctx, 1024, *args)
        check(status == 2 and "ulimit -n" in err,
              "%s under nofile 1024: exit %s, %r", " ".join(args), status,
              err)
    for args in (("--mode", "process", "--workers", "496"),
                 ("--workers", "300"), ("--max-conns", "900"),
                 ("--mode", "single", "--max-conns", "990")):
        status, err = serve_under(ctx, 1024, *args)
        check(status is None, "%s under nofile 1024: exit %s, %r",
              " ".join(args), status, err)


# ---------------------------------------------------------------- LIST

@pool_test(timeout=180)
def list_bounded(ctx, mode):
    """LIST of 40,000 names of 200 bytes (an 8 MB reply), twice at once:
    complete and sorted, with the server's peak memory growing by less
    than the reply (it grew by 3.5 times the reply when LIST was built in
    memory)."""
    long_names = ["%05d-%s" % (i, "n" * 194) for i in range(40000)]
    special = ['q"uo\\te', "my file.txt", "\u00e9t\u00e9", "\u65e5"]
    for name in long_names + special:
        os.close(os.open(os.path.join(ctx.storage, name),
                         os.O_CREAT | os.O_WRONLY, 0o644))
    srv = ctx.server(mode, "--queue-timeout", "60s",
                     limits={"--idle-timeout": "30s"})
    warm(srv)
    pids = srv.pids()
    before = {pid: vm_hwm_kb(pid) for pid in pids}
    results = [None, None]

    def one(i):
        try:
            results[i] = expect_ok(srv.port, b"LIST" + TERM,
                                   timeout=60)["data"]
        except Failure as e:
            results[i] = e
    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    want = sorted(long_names + special)
    for r in results:
        check(not isinstance(r, Failure), "LIST: %s", r)
        check(r == want, "LIST: %d names, want %d sorted", len(r or []),
              len(want))
    growth = max(vm_hwm_kb(pid) - before[pid] for pid in pids
                 if pid in before)
    info("peak RSS growth over two 8 MB LISTs: %d kB", growth)
    check(growth < 12 * 1024 * MEM, "peak RSS grew by %d kB for two "
          "LISTs of an 8 MB reply (want < 12 MB)", growth)
    srv.stop()


# ---------------------------------------------------------------- signals

@pool_test()
def daemon_signals(ctx, mode):
    """SIGUSR1, SIGUSR2 and SIGALRM are logged and ignored; SIGHUP to
    the server's pid reopens the log file, in every worker."""
    log = ctx.path("w-server.log")
    srv = ctx.server(mode, "--log-file", log)
    warm(srv)
    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
        srv.signal(sig)
        time.sleep(0.2)
        check(srv.alive(), "server died of %s", sig.name)
        expect_ok(srv.port, b"LIST" + TERM)
    os.rename(log, log + ".1")
    srv.signal(signal.SIGHUP)
    check(wait_for(lambda: os.path.exists(log), 3),
          "SIGHUP did not reopen the log file")
    time.sleep(0.2)  # every worker has had the signal
    for _ in range(2 * ctx.nworkers(mode)):
        expect_ok(srv.port, b"LIST" + TERM)
    check(srv.alive(), "server died of SIGHUP")
    with open(log + ".1") as f:
        old = f.read()
    for sig in ("User defined signal 1", "User defined signal 2",
                "Alarm clock"):
        check(sig + ": ignored" in old, "no log line for %s: %s", sig,
              old[-500:])

    def served_lines():
        with open(log) as f:
            return f.read().count("LIST -: OK")
    check(wait_for(lambda: served_lines() >= 2 * ctx.nworkers(mode), 3),
          "requests after SIGHUP missing from the new log (%d lines)",
          served_lines())
    with open(log + ".1") as f:
        check(f.read().count("LIST -: OK") == 4,
              "requests after SIGHUP still went to the rotated log")
    ctx.finish(srv, {})


# ---------------------------------------------------------------- storage

def unshare_no_proc():
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh",
                        "-c", "umount -l /proc && ! test -e /proc/self"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=10)
    return r.returncode == 0, r.stdout.decode(errors="replace").strip()


@pool_test()
def upload_without_proc(ctx, mode):
    """With /proc unmounted (a private mount namespace), uploads, replaces
    and downloads work."""
    try:
        ok, why = unshare_no_proc()
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, why = False, str(e)
    if not ok:
        raise Skip("cannot unmount /proc in a private mount namespace: " +
                   why)
    srv = ctx.server(mode, wrap=["unshare", "-m", "--propagation",
                                 "private", "sh", "-c",
                                 'umount -l /proc && exec "$@"', "sh"])
    check(not os.path.exists("/proc/%d/root/proc/self" % srv.pid),
          "/proc is still mounted for the server")
    for content in (b"first version", b"second, replacing it"):
        expect_ok(srv.port, upload_req(b"doc", content))
        check(get_content(srv.port, b"doc") == content, "GET after UPLOAD")
    with open(os.path.join(ctx.storage, "doc"), "rb") as f:
        check(f.read() == b"second, replacing it", "storage content")
    check(not temps(ctx.storage), "temporaries left")
    srv.stop()


# ---------------------------------------------------------------- names

@pool_test()
def control_names(ctx, mode):
    """Names with C1 controls (U+0080..U+009F) or bidirectional controls
    are refused like control bytes, and never listed or served."""
    srv = ctx.server(mode)
    warm(srv)
    bad = ["a\u0080", "\u009b[2J", "x\u009f", "\u202etxt.exe",
           "a\u202a", "a\u2066", "b\u2069"]
    for name in bad:
        raw_name = name.encode()
        r = expect_error(srv.port, upload_req(raw_name, b"x"))
        check("control" in r["data"], "UPLOAD %r: %r", name, r)
        expect_error(srv.port, b"GET " + raw_name + TERM)
    planted = "planted\u0085name"
    with open(os.path.join(ctx.storage, planted), "w") as f:
        f.write("x")
    check(listing(srv.port) == [], "LIST shows a control name")
    expect_error(srv.port, b"GET " + planted.encode() + TERM)
    os.unlink(os.path.join(ctx.storage, planted))
    expect_ok(srv.port, upload_req("\u00a0nbsp\u2029".encode(), b"ok"))
    ctx.finish(srv, None)


# ---------------------------------------------------------------- close

@pool_test(timeout=90)
def extra_bytes_no_reset(ctx, mode):
    """Bytes sent right after a request's terminator never make the
    server reset the connection before its reply is read (bounded loop:
    a LIST reply larger than the socket buffers, and a small GET)."""
    for i in range(3000):
        os.close(os.open(os.path.join(ctx.storage, "f%04d-%s" % (i, "x" * 60)),
                         os.O_CREAT | os.O_WRONLY, 0o644))
    with open(os.path.join(ctx.storage, "small"), "wb") as f:
        f.write(b"small file")
    srv = ctx.server(mode)
    want = len(listing(srv.port))
    deadline, rounds = time.monotonic() + 20 * SLOW, 0
    while rounds < 150 and time.monotonic() < deadline:
        req = (b"LIST" if rounds % 2 else b"GET small") + TERM
        with connect(srv.port) as s:
            s.sendall(req + b"extra bytes " * 2000)
            try:
                s.sendall(b"more " * 200)
            except OSError:
                pass
            got = recv_all(s, BUSY_TIMEOUT, allow_reset=True)
        check(got, "round %d: reset or closed without a reply", rounds)
        r = parse_reply(got)
        check(r["status"] == "OK", "round %d: %r", rounds, str(r)[:200])
        if rounds % 2:
            check(len(r["data"]) == want, "round %d: LIST cut short",
                  rounds)
        rounds += 1
    info("%d rounds", rounds)
    check(rounds >= 20, "only %d rounds in the time bound", rounds)
    srv.stop()
