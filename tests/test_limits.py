"""Limits and hostile clients: endless heads, oversized uploads,
idle, stalled and slow clients, slowloris, descriptor exhaustion, a
saturated pool, --max-conns, and the loopback-only listener.
"""
import base64, os, re, shutil, socket, subprocess, threading, time

from harness import *  # noqa: F401,F403  (tests/harness.py)


@case(2, timeout=90)
def endless_head(ctx, mode):
    """100 MB of 'A' with no terminator: ERROR, close, little read, little
    memory; and the head cap holds when data is queued before the read."""
    srv = ctx.server(mode)
    fds = warm(srv)
    base = {pid: vm_hwm_kb(pid) for pid in srv.pids()}
    s = connect(srv.port)
    state = {"sent": 0, "error": None, "t_fail": None}

    def sender():
        t0 = time.monotonic()
        try:
            while state["sent"] < 100 * 1000 * 1000 and \
                    time.monotonic() - t0 < 15:
                state["sent"] += s.send(b"A" * 65536)
        except OSError as e:
            state["error"] = e
            state["t_fail"] = time.monotonic() - t0
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    got = recv_all(s, 15, allow_reset=True)
    t.join(20)
    s.close()
    check(got, "no ERROR reply before the close (RST ate it?)")
    r = parse_reply(got)
    check(r["status"] == "ERROR", "endless head answered %r", r)
    check(state["error"] is not None, "sent %d bytes and the server never "
          "closed (send did not fail within 15 s)", state["sent"])
    check(state["t_fail"] < 5 * SLOW, "send failed only after %.1fs",
          state["t_fail"])
    check(state["sent"] < 32 * MiB, "client sent %d bytes before failing",
          state["sent"])
    info("endless head: client sent %d bytes, send failed after %.2fs (%s)",
         state["sent"], state["t_fail"], state["error"])
    for pid in srv.pids():
        grew = vm_hwm_kb(pid) - base.get(pid, 0)
        check(grew < 5 * 1024 * MEM, "server process %d: VmHWM grew %d KiB",
              pid, grew)
    # How much of a flood does the server read? Queue it before the read:
    # hold every worker with a stalled head, flood, then free them. (A
    # server that reads heads in an event loop reads the flood at once.)
    n = ctx.nworkers(mode)
    s0 = expect_ok(srv.port, b"STATS" + TERM)["data"]["wire_bytes_in"]
    holders = [connect(srv.port) for _ in range(n)]
    for hs in holders:
        hs.sendall(b"LI")
    time.sleep(0.3)
    flood = connect(srv.port)
    flood.setblocking(False)
    queued = 0
    try:
        while queued < 8 * MiB:
            queued += flood.send(b"A" * 65536)
    except BlockingIOError:
        pass
    except OSError as e:  # refused and closed already
        info("flood: %r after %d bytes", e, queued)
    for hs in holders:
        hs.close()
    flood.setblocking(True)
    got = recv_all(flood, 10, allow_reset=True)
    flood.close()
    check(got and parse_reply(got)["status"] == "ERROR",
          "queued flood answered %r", got[:100])
    time.sleep(0.2)
    s1 = expect_ok(srv.port, b"STATS" + TERM)["data"]["wire_bytes_in"]
    # wire_bytes_in also holds the first STATS and perhaps the holders' bytes
    read = s1 - s0 - len(b"STATS" + TERM)
    info("queued flood: %d bytes queued, server read %d", queued, read)
    check(read <= 64 * 1024 + 2 * n, "the server read %d bytes of a head "
          "that is capped at 4 KiB (catalogue: <= 64 KiB; %d bytes were "
          "queued)",
          read, queued)
    ctx.finish(srv, {}, fd_base=fds)


@test(modes=MODES, tags=("case 2",))
def head_too_long(ctx, mode):
    """A request head with no end is refused early; memory stays small."""
    srv = ctx.server(mode)
    listing(srv.port)
    base = {pid: vm_hwm_kb(pid) for pid in srv.pids()}
    for junk in (b"A" * 100000, b"GET " + b"a" * 100000,
                 b"UPLOADX" * 20000, b"LIST" + b" " * 10000 + TERM):
        t0 = time.monotonic()
        data = raw(srv.port, junk, timeout=5, allow_reset=True)
        check(time.monotonic() - t0 < 3, "took %.1fs", time.monotonic() - t0)
        check(not data or parse_reply(data)["status"] == "ERROR",
              "%r...: %r", junk[:10], data[:100])
    # 20 MB without a terminator: cut off long before the end
    s = connect(srv.port)
    sent, t0 = 0, time.monotonic()
    try:
        while sent < 20 << 20 and time.monotonic() - t0 < 10:
            sent += s.send(b"B" * 65536)
    except OSError:
        pass
    s.close()
    check(sent < 20 << 20, "the server read 20 MB of an endless head")
    check(listing(srv.port) == [], "LIST after long heads")
    for pid in srv.pids():
        grew = vm_hwm_kb(pid) - base.get(pid, 0)
        check(grew < 8 * 1024, "server process %d: peak RSS grew by %d KiB",
              pid, grew)


def check_quiet(srv, what, seconds=2.5, limit=0.3):
    """The server burns no CPU while nothing happens (no busy loop)."""
    limit *= SLOW
    pids = srv.pids()
    c0 = cpu_seconds(pids)
    time.sleep(seconds)
    used = cpu_seconds(pids) - c0
    check(used < limit, "%s: the server used %.2fs CPU in the next %gs "
          "with no client sending anything (a busy loop)", what, used,
          seconds)


@case(3)
def upload_too_large(ctx, mode):
    srv = ctx.server(mode)
    old = put_file(os.path.join(ctx.storage, "x"), b"old version")
    fds = warm(srv)
    for name, size in ((b"x", 12 * MiB), (b"new", 12 * MiB),
                       (b"x", MAX_UPLOAD + 1)):
        t0 = time.monotonic()
        s, _, _ = start_upload(srv.port, name, size, timeout=20)
        try:
            got = recv_all(s, 10)  # a reset here fails: no lingering drain
            if size == MAX_UPLOAD + 1:
                time.sleep(0.3)  # a client that reads, then dawdles
        finally:
            s.close()
        r = parse_reply(got)
        check(r["status"] == "ERROR" and "too large" in r["data"],
              "UPLOAD %r of %d bytes: %r", name, size, r)
        check(time.monotonic() - t0 < 8, "refusal took %.1fs",
              time.monotonic() - t0)
        ctx.check_storage(srv, {"x": old})
        if size == MAX_UPLOAD + 1:
            check_quiet(srv, "after a refused upload's client closed")
    # at the limit: stored
    reply, digest = upload_stream(srv.port, b"at-limit", MAX_UPLOAD)
    check(reply["status"] == "OK", "upload at the limit: %r", reply)
    ctx.finish(srv, {"x": old, "at-limit": digest}, fd_base=fds)


@test(modes=MODES, tags=("case 3",))
def max_upload(ctx, mode):
    srv = ctx.server(mode, "--max-upload", "1MB")
    expect_ok(srv.port, upload_req(b"x", b"old"))
    before = snapshot(srv.storage)
    write_random(ctx.path("big"), 3000000)
    r = ctx.cli(srv.port, "put", ctx.path("big"), "x")
    check(r.returncode == 1 and b"too large" in r.stderr,
          "over the limit: exit %d: %r (want the server's ERROR)",
          r.returncode, r.stderr)
    r = ctx.cli(srv.port, "put", ctx.path("big"), "y")
    check(r.returncode == 1, "over the limit, new name: exit %d",
          r.returncode)
    check_unchanged(srv.storage, before, "refused upload")
    write_random(ctx.path("over"), 1000001)
    r = ctx.cli(srv.port, "put", ctx.path("over"), "x")
    check(r.returncode == 1, "one byte over the limit: exit %d", r.returncode)
    check_unchanged(srv.storage, before, "upload one byte over the limit")
    digest = write_random(ctx.path("limit"), 1000000)
    ctx.cli_ok(srv.port, "put", ctx.path("limit"), "x", "-q")
    check(sha256(os.path.join(srv.storage, "x")) == digest, "at the limit")
    # a name refused before megabytes of data: the client still reads why
    for name in (".hidden", "a/b", "../x"):
        r = ctx.cli(srv.port, "put", ctx.path("big"), name)
        check(r.returncode == 1 and b"invalid name" in r.stderr,
              "put %r: exit %d: %r", name, r.returncode, r.stderr)


@test(modes=MODES, tags=("case 13",))
def idle_timeout(ctx, mode):
    """Idle and stalled clients are cut at --idle-timeout; nobody starves."""
    srv = ctx.server(mode, "--idle-timeout", "2s")
    old = b"old version"
    expect_ok(srv.port, upload_req(b"x", old))
    before = snapshot(srv.storage)
    for opening in (b"", b"LI", b"UPLOAD x " + base64.b64encode(
            os.urandom(100000))):
        s = connect(srv.port)
        s.sendall(opening)
        t0 = time.monotonic()
        # another client meanwhile: served at worst once the idle one is cut
        check(listing(srv.port) == ["x"], "LIST during an idle client")
        got = recv_all(s, 6, allow_reset=True)
        took = time.monotonic() - t0
        s.close()
        check(1.5 < took < 4.5, "%r: closed after %.1fs with idle timeout 2s",
              opening[:12], took)
        check(not got or parse_reply(got)["status"] == "ERROR",
              "idle client got %r", got[:100])
        check_unchanged(srv.storage, before, "stalled %r" % opening[:12])


@case(13)
def client_stall(ctx, mode):
    srv = ctx.server(mode, limits={"--max-upload": "64MiB"})
    old = put_file(os.path.join(ctx.storage, "x"), os.urandom(1000))
    fds = warm(srv)
    s, _, _ = start_upload(srv.port, b"x", 20 * 1000 * 1000,
                           stop_after=10 * 1000 * 1000)
    t0 = time.monotonic()
    got = recv_all(s, IDLE + 5, allow_reset=True)
    took = time.monotonic() - t0
    s.close()
    check(IDLE - 0.5 < took < IDLE + 1.5 * SLOW, "stalled upload closed after "
          "%.1fs (idle %gs)", took, IDLE)
    check(not got or parse_reply(got)["status"] == "ERROR",
          "stalled upload answered %r", got[:100])
    check_quiet(srv, "after a stalled upload was cut and its client closed")
    ctx.finish(srv, {"x": old}, fd_base=fds)


@case(22, timeout=90)
def slow_reader(ctx, mode):
    """A reader taking 1 KiB/s of a 100 MB GET. The server's cut shows as
    its end of the socket closing (no process holds it any more): the
    kernel may go on delivering what was already queued to the client."""
    srv = ctx.server(mode)
    big = ctx.path("storage", "big")
    with open(big, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(MiB))
    fds = warm(srv)
    base = {pid: vm_hwm_kb(pid) for pid in srv.pids()}
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(15)
    s.connect(("127.0.0.1", srv.port))
    client_port = s.getsockname()[1]
    s.sendall(b"GET big" + TERM)
    t0 = time.monotonic()
    check(wait_for(lambda: socket_inode(srv.port, client_port), 2, 0.01),
          "no server-side socket for the reader")
    result = {"bytes": 0, "cut": None, "how": None}
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set() and time.monotonic() - t0 < 14:
                chunk = s.recv(1024)
                if not chunk:
                    result["how"] = "EOF"
                    break
                result["bytes"] += len(chunk)
                stop.wait(1)
        except OSError as e:
            result["how"] = repr(e)

    def watcher():
        while not stop.is_set() and time.monotonic() - t0 < 14:
            if socket_inode(srv.port, client_port) in (None, 0):
                result["cut"] = time.monotonic() - t0
                return
            time.sleep(0.05)
    threads = [threading.Thread(target=f, daemon=True)
               for f in (reader, watcher)]
    for t in threads:
        t.start()
    lat = []
    while time.monotonic() - t0 < 12 and (
            result["cut"] is None or time.monotonic() - t0 <
            result["cut"] + 1):
        a = time.monotonic()
        try:
            r = request(srv.port, b"LIST" + TERM, timeout=14)
            ok = r["status"] == "OK"
        except Failure:
            ok = False
        lat.append((time.monotonic() - a, ok, a - t0))
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(3)
    s.close()
    info("slow reader: server closed its end after %s s; the client read "
         "%d bytes (%s); LIST latencies max %.3fs over %d", result["cut"],
         result["bytes"], result["how"], max(l for l, _, _ in lat), len(lat))
    check(result["cut"] is not None and result["cut"] < 10 * SLOW,
          "the server still held a reader taking 1 KiB/s of a 100 MB GET "
          "after 12 s (send timeout = idle %gs)", IDLE)
    check(all(ok for _, ok, _ in lat), "a LIST failed during the slow read")
    if mode == "single":
        check(lat[0][0] + lat[0][2] < result["cut"] + 1.5 * SLOW,
              "LIST waited %.1fs (reader cut at %.1fs)", lat[0][0],
              result["cut"])
    else:
        slow = [l for l, _, _ in lat if l >= 0.2 * SLOW]
        check(not slow, "LIST took >= 200 ms during a slow read: %s",
              ["%.3f" % l for l in slow[:5]])
    for pid in srv.pids():
        grew = vm_hwm_kb(pid) - base.get(pid, 0)
        check(grew < 32 * 1024 * MEM, "server %d: VmHWM grew %d KiB", pid,
              grew)
    ctx.finish(srv, None, fd_base=fds)


def open_idle(port, n, deadline):
    """n connections from 127.0.0.2: so many client ports held open never
    block the 127.0.0.1 port of a server that another test restarts."""
    socks = []
    for _ in range(n):
        check(time.monotonic() < deadline, "opening %d connections: slow", n)
        socks.append(socket.create_connection(("127.0.0.1", port), 5,
                                              ("127.0.0.2", 0)))
    return socks


def closed_by_server(s):
    """True if the server closed s (EOF or reset), without blocking."""
    try:
        s.setblocking(False)
        data = s.recv(4096)
        return True if data == b"" else ("data", data)
    except BlockingIOError:
        return False
    except OSError:
        return True


@case(23, timeout=90)
def idle_connections(ctx, mode):
    n = 1000
    srv = ctx.server(mode)
    fds = warm(srv)
    t_open = time.monotonic()
    socks = open_idle(srv.port, n, t_open + 20)
    info("%d idle connections opened in %.2fs", n, time.monotonic() - t_open)
    t0 = time.monotonic()
    try:
        r = request(srv.port, b"LIST" + TERM, timeout=IDLE + 2)
        took = time.monotonic() - t0
    except Failure:
        r, took = None, None
    # the idle ones are closed at the limit
    wait_for(lambda: all(closed_by_server(s) for s in socks),
             max(t_open + IDLE + 2 - time.monotonic(), 0), 0.2)
    open_left = sum(not closed_by_server(s) for s in socks)
    for s in socks:
        s.close()
    info("LIST with %d idle connections: %s s; %d still open %.1fs after "
         "they were opened", n, took, open_left, time.monotonic() - t_open)
    check(took is not None and r["status"] == "OK",
          "LIST not answered within %gs with %d idle connections open "
          "(needs the epoll acceptor)", IDLE + 2, n)
    check(took < SLOW, "LIST took %.2fs with %d idle connections (want < 1 s)",
          took, n)
    check(open_left == 0, "%d of %d idle connections still open at idle "
          "limit + 2 s", open_left, n)
    ctx.finish(srv, {}, fd_base=fds)


@case(26, timeout=60)
def fd_exhaustion(ctx, mode):
    if not shutil.which("prlimit"):
        raise Skip("prlimit is not installed")
    srv = ctx.server(mode, wrap=["prlimit", "--nofile=128"])
    check(proc_status(srv.pid, "Pid") == srv.pid, "no server")
    with open("/proc/%d/limits" % srv.pid) as f:
        check(re.search(r"Max open files\s+128\s+128", f.read()),
              "prlimit did not apply")
    listing(srv.port)
    socks = open_idle(srv.port, 200, time.monotonic() + 20)
    time.sleep(0.5)
    cpu0 = cpu_seconds(srv.pids())
    time.sleep(2)
    cpu = cpu_seconds(srv.pids()) - cpu0
    info("server CPU over 2 s with 200 connections at nofile=128: %.2fs", cpu)
    check(cpu < 0.3 * SLOW, "server used %.2fs CPU in 2 s (EMFILE spin?)",
          cpu)
    # the excess: a busy ERROR or a prompt close; all closed by 2 x idle
    deadline = time.monotonic() + 2 * IDLE + 2
    wait_for(lambda: all(closed_by_server(s) is not False for s in socks),
             max(deadline - time.monotonic(), 0), 0.2)
    states = [closed_by_server(s) for s in socks]
    replies = [st[1] for st in states if isinstance(st, tuple)]
    for rep in replies:
        r = parse_reply(rep, exact=False)
        check(r["status"] == "ERROR", "an idle connection got %r", r)
    open_left = sum(st is False for st in states)
    for s in socks:
        s.close()
    check(wait_for(lambda: request(srv.port, b"LIST" + TERM,
                                   timeout=IDLE + 2)["status"] == "OK",
                   IDLE + 3), "no new client served once the idle ones closed")
    check(open_left == 0, "%d of 200 connections neither refused busy nor "
          "closed %gs after opening (nofile=128; excess should get a busy "
          "ERROR or a prompt close)", open_left, 2 * IDLE + 2.5)
    ctx.finish(srv, {})


@case(27, timeout=120)
def slowloris(ctx, mode):
    need_flags(ctx, "--head-timeout", "--min-rate")
    n = 900 if ctx.long else 200
    duration = 30 if ctx.long else 12
    srv = ctx.server(mode, "--head-timeout", "3s", "--min-rate", "1kB")
    fds = warm(srv)
    payload = b"UPLOAD x " + b"A" * 100000
    socks = open_idle(srv.port, n, time.monotonic() + 20)
    pos = [0] * n
    for i, s in enumerate(socks):
        s.setblocking(False)
        if i % 2:  # half send the head at once, then trickle the body
            s.send(b"UPLOAD x ")
            pos[i] = 9
    cut = [None] * n
    t0 = time.monotonic()
    real, stop = [], threading.Event()

    def real_client():
        while not stop.is_set() and time.monotonic() - t0 < duration + 5:
            a = time.monotonic()
            try:
                ok = request(srv.port, b"LIST" + TERM, timeout=5)[
                    "status"] == "OK"
            except Failure:
                ok = False
            real.append((ok, time.monotonic() - a))
            stop.wait(max(0, (0.5 if not ctx.long else 1.0) -
                          (time.monotonic() - a)))
    rt = threading.Thread(target=real_client, daemon=True)
    rt.start()
    next_send = t0
    while time.monotonic() - t0 < duration:
        for i, s in enumerate(socks):
            if cut[i] is not None:
                continue
            try:
                s.send(payload[pos[i] % len(payload):][:1])
                pos[i] += 1
            except BlockingIOError:
                pass
            except OSError:
                cut[i] = time.monotonic() - t0
                continue
            st = closed_by_server(s)
            if st is not False:
                cut[i] = time.monotonic() - t0
        next_send += 1.5
        time.sleep(max(0, next_send - time.monotonic()))
    stop.set()
    rt.join(10)
    established = len(ss_lines("state", "established",
                               "( sport = :%d )" % srv.port))
    for s in socks:
        s.close()
    ok = sum(1 for o, l in real if o and l < SLOW)
    info("slowloris: %d tricklers, %d cut (median at %.1fs), %d still "
         "established; real LIST %d/%d under 1 s", n,
         sum(c is not None for c in cut),
         percentile([c for c in cut if c is not None], 50) or -1,
         established, ok, len(real))
    check(real and ok >= 0.99 * len(real), "only %d of %d real requests "
          "succeeded in < 1 s", ok, len(real))
    check(sum(c is not None for c in cut) >= 0.95 * n, "only %d of %d "
          "tricklers cut in %ds", sum(c is not None for c in cut), n,
          duration)
    ctx.finish(srv, {}, fd_base=fds)


def seconds_until_cut(s, chunks, pause):
    """Sends each chunk, pausing between them; returns the seconds until
    the server cut the connection, or None if it never did."""
    t0 = time.monotonic()
    for chunk in chunks:
        try:
            s.send(chunk)
        except OSError:
            return time.monotonic() - t0
        if closed_by_server(s) is not False:
            return time.monotonic() - t0
        s.setblocking(True)
        time.sleep(pause)
    return None


@case(27, timeout=40)
def head_timeout(ctx, mode):
    need_flags(ctx, "--head-timeout")
    srv = ctx.server(mode, "--head-timeout", "1s",
                     limits={"--idle-timeout": "5s"})
    fds = warm(srv)
    s = connect(srv.port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cut = seconds_until_cut(s, (bytes([ch]) for ch in b"GET " + b"a" * 40),
                            0.3)
    s.close()
    check(cut is not None and cut < 2.5 * SLOW, "a head trickled 1 byte / "
          "0.3 s was not cut by --head-timeout 1s (cut: %s)", cut)
    check(listing(srv.port) == [], "LIST after a head timeout")
    ctx.finish(srv, {}, fd_base=fds)


@case(27, timeout=40)
def min_rate(ctx, mode):
    need_flags(ctx, "--min-rate")
    srv = ctx.server(mode, "--min-rate", "1kB")
    old = put_file(os.path.join(ctx.storage, "x"), b"old")
    fds = warm(srv)
    s = connect(srv.port)
    s.sendall(b"UPLOAD x ")
    # 200 B/s for up to 10 s: never idle, far below 1 kB/s
    cut = seconds_until_cut(s, (b"QUJD" * 25 for _ in range(20)), 0.5)
    s.close()
    check(cut is not None and cut < 2 * IDLE + 1, "an upload at 200 B/s was "
          "not cut by --min-rate 1kB (cut: %s)", cut)
    reply, digest = upload_stream(srv.port, b"fast", 4 * MiB)
    check(reply["status"] == "OK", "a fast upload: %r", reply)
    ctx.finish(srv, {"x": old, "fast": digest}, fd_base=fds)


@case(29, timeout=40)
def pool_saturation(ctx, mode):
    srv = ctx.server(mode)
    old = put_file(os.path.join(ctx.storage, "x"), b"old")
    fds = warm(srv)
    n = ctx.nworkers(mode)
    slow = [start_upload(srv.port, b"x", MiB, stop_after=100000)[0]
            for _ in range(n)]
    time.sleep(0.3)
    t0 = time.monotonic()
    try:
        r = request(srv.port, b"LIST" + TERM, timeout=IDLE + 3)
    except Failure as e:
        raise Failure("client %d hung past the timeouts: %s" % (n + 1, e))
    took = time.monotonic() - t0
    info("client %d: %s after %.2fs", n + 1, r["status"], took)
    if r["status"] == "ERROR":
        check("busy" in r["data"] and took < SLOW, "client %d: %r after %.1fs",
              n + 1, r, took)
    else:
        check(took < IDLE + SLOW, "client %d served after %.1fs (idle %gs)",
              n + 1, took, IDLE)
    for s in slow:
        s.close()
    ctx.finish(srv, {"x": old}, fd_base=fds)


@case(29, timeout=40)
def max_conns(ctx, mode):
    need_flags(ctx, "--max-conns")
    srv = ctx.server(mode, "--max-conns", "6")
    fds = warm(srv)
    held = [connect(srv.port) for _ in range(6)]
    for s in held:
        s.sendall(b"LI")
    time.sleep(0.3)
    for i in range(4):
        t0 = time.monotonic()
        got = raw(srv.port, b"LIST" + TERM, timeout=IDLE + 3,
                  allow_reset=True)
        took = time.monotonic() - t0
        check(got, "connection %d over --max-conns 6: closed without a "
              "reply", 7 + i)
        r = parse_reply(got)
        check(r["status"] == "ERROR" and "busy" in r["data"].lower(),
              "connection %d over --max-conns 6: %r", 7 + i, r)
        check(took < SLOW, "busy reply after %.1fs", took)
    for s in held:
        s.close()
    check(wait_for(lambda: request(srv.port, b"LIST" + TERM)["status"] ==
                   "OK", 3), "no LIST served after the held ones closed")
    ctx.finish(srv, {}, fd_base=fds)


@case(37)
def loopback_only(ctx, mode):
    if not shutil.which("ss"):
        raise Skip("ss (iproute2) is not installed")
    srv = ctx.server(mode)
    listing(srv.port)
    lines = [l.split() for l in subprocess.run(
        ["ss", "-ltnH"], stdout=subprocess.PIPE, timeout=10).stdout.decode()
        .splitlines() if l.strip()]
    mine = [f[3] for f in lines if f[3].rsplit(":", 1)[-1] == str(srv.port)]
    check(mine == ["127.0.0.1:%d" % srv.port], "listening on %s, want only "
          "127.0.0.1:%d", mine, srv.port)
    ctx.finish(srv, {})
