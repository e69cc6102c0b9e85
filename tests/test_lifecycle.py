"""Lifecycle and signals: worker deaths and respawns, crash loops,
the master killed and restarted, SIGTERM drains, second signals, the
log, and dropping privileges.
"""
import hashlib, os, pwd, random, re, resource, signal, socket, subprocess
import threading, time

from harness import *  # noqa: F401,F403  (tests/harness.py)


@test(modes=("process",), tags=("case 14",))
def worker_respawn(ctx, mode):
    srv = ctx.server(mode, workers=3)
    check(wait_workers(srv, 3), "3 workers expected: %s", srv.workers())
    for _ in range(3):
        victim = sorted(srv.workers())[0]
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        check(wait_workers(srv, 3, exclude=[victim]),
              "not back to 3 workers 2 s after SIGKILL: %s", srv.workers())
        check(time.monotonic() - t0 < 2, "respawn took too long")
        check(listing(srv.port) == [], "LIST after a worker died")
    kids = list(srv.workers())
    for pid in kids:
        os.kill(pid, signal.SIGKILL)
    check(wait_workers(srv, 3, exclude=kids),
          "not back to 3 workers after killing all: %s", srv.workers())
    for _ in range(10):
        check(listing(srv.port) == [], "LIST after killing all workers")
    kids = list(srv.workers())
    check(srv.stop() == 0, "exit status after SIGTERM")
    check(wait_for(lambda: gone(kids), 2),
          "workers outlived the server")


def upload_owner(srv, sock):
    """The worker pid holding the server end of sock."""
    inode = socket_inode(srv.port, sock.getsockname()[1])
    check(inode, "no server-side socket for client port %d in /proc/net/tcp",
          sock.getsockname()[1])
    pid = owner_of_inode(list(srv.workers()), inode)
    check(pid, "no worker holds socket inode %d", inode)
    return pid


@case(14, modes=("process",), timeout=120)
def worker_sigkill(ctx, mode):
    srv = ctx.server(mode, limits={"--max-upload": "1GB"})
    old = put_file(os.path.join(ctx.storage, "x"), os.urandom(5000))
    warm(srv)
    check(wait_workers(srv, 4), "4 workers expected: %s", srv.workers())
    size = (100 if ctx.long else 30) * 1000 * 1000
    s, _, _ = start_upload(srv.port, b"x", 100 * 1000 * 1000,
                           stop_after=size)
    time.sleep(0.2)
    victim = upload_owner(srv, s)
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    reset = None
    try:
        s.settimeout(5)
        for _ in range(100):
            s.sendall(b"QUJD" * 16384)
    except OSError as e:
        reset = e
    got = b""
    if reset is None:
        got = recv_all(s, 5, allow_reset=True)
    s.close()
    check(reset is not None or got == b"",
          "the client of a killed worker got %r", got[:100])
    check(wait_workers(srv, 4, exclude=[victim], timeout=1),
          "not 4 workers again 1 s after the SIGKILL: %s", srv.workers())
    info("respawned in %.2fs; client saw %r", time.monotonic() - t0, reset)
    ctx.check_storage(srv, {"x": old})
    check(get_content(srv.port, b"x") == open(
        os.path.join(ctx.storage, "x"), "rb").read(), "old version")
    # 20 kills under load (spaced so that the crash-loop guard, 20 deaths
    # in 5 s, does not trip)
    stop = threading.Event()
    errors, done = [], [0]

    def load(k):
        i = 0
        while not stop.is_set() and i < 10000:
            i += 1
            try:
                name = b"load%d" % k
                r = request(srv.port, upload_req(name, b"v%d" % i),
                            timeout=10, allow_reset=True)
                if r["status"] == "OK":
                    done[0] += 1
                listing(srv.port)
            except (Failure, OSError):
                pass  # a killed worker resets its client
    threads = start_threads(load, 3)
    killed, planted = [], []
    for i in range(20):
        kids = [p for p, st in srv.workers().items() if st != "Z"]
        if kids:
            victim = random.Random(i).choice(sorted(kids))
            if i % 5 == 0:
                # what a worker killed between link and rename leaves: its
                # temporary under the server's own name scheme (storage.c)
                planted.append("%s%d-%d" % (TMP_PREFIX, victim, 99999))
                put_file(os.path.join(ctx.storage, planted[-1]), b"part")
            try:
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
            except OSError:
                pass
        time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(15)
    check(srv.alive(), "the server exited after %d kills: %s", len(killed),
          srv.stderr()[-300:])
    check(wait_workers(srv, 4, exclude=killed, timeout=2),
          "after 20 kills: workers %s", srv.workers())
    check(done[0] > 0, "no upload succeeded under load")
    info("%d uploads OK during 20 kills", done[0])
    left = [t for t in temps(ctx.storage)]
    check(wait_for(lambda: not temps(ctx.storage), 1),
          "stale temporaries of killed workers not swept while the server "
          "runs: %s (killed pids %s)", temps(ctx.storage) or left, killed)
    files = {"x": old}
    for k in range(3):
        p = os.path.join(ctx.storage, "load%d" % k)
        if os.path.exists(p):
            check(re.fullmatch(rb"v\d+", open(p, "rb").read()),
                  "load%d holds a partial file", k)
            files["load%d" % k] = sha256(p)
    ctx.finish(srv, files)


@test(modes=("process",), tags=("case 14",))
def dead_worker_sweep(ctx, mode):
    """A dead worker's named temporaries are swept, and only its own: a
    live worker may be committing one of its own at that moment."""
    srv = ctx.server(mode, workers=2)
    check(wait_workers(srv, 2), "2 workers expected: %s", srv.workers())
    victim, other = sorted(srv.workers())
    mine, theirs = ("%s%d-99999" % (TMP_PREFIX, pid) for pid in (victim,
                                                                  other))
    for name in (mine, theirs):
        with open(os.path.join(srv.storage, name), "wb") as f:
            f.write(b"part")
    os.kill(victim, signal.SIGKILL)
    check(wait_workers(srv, 2, exclude=[victim]), "no new worker")
    check(wait_for(lambda: mine not in temps(srv.storage), 2),
          "the dead worker's temporary was not swept: %s",
          temps(srv.storage))
    check(temps(srv.storage) == [theirs], "a live worker's temporary was "
          "swept too: %s", temps(srv.storage))
    os.unlink(os.path.join(srv.storage, theirs))


@case(15, modes=("process",))
def crash_loop(ctx, mode):
    log = ctx.path("w-server.log")
    env_vars = dict(os.environ, FILESERV_TEST_WORKER_EXIT="1")
    t0 = time.monotonic()
    srv = ctx.server(mode, "--log-file", log, proc_env=env_vars)
    status = srv.wait(15)
    took = time.monotonic() - t0
    check(status is not None, "still running 15 s into a crash loop")
    check(status != 0, "exit status 0 after a crash loop")
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    deaths = []
    for line in lines:
        m = re.match(r"(\S+ \S+),(\d+) - ERROR - main - worker-\d+ .*"
                     r"(exited|killed)", line)
        if m:
            t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
            deaths.append(t + int(m.group(2)) / 1000)
    check(deaths, "no worker deaths in the log: %s", lines[-5:])
    first3 = [d for d in deaths if d - deaths[0] <= 3]
    info("crash loop: exit %s after %.1fs, %d deaths, %d in the first 3 s",
         status, took, len(deaths), len(first3))
    check(len(first3) <= 60, "%d spawns in 3 s: a fork bomb",
          len(first3))
    check(any("ERROR" in l and ("giving up" in l or "fatal" in l.lower())
              for l in lines), "no fatal log line: %s", lines[-3:])
    check(wait_for(lambda: not children(srv.pid), 1), "workers left")
    ctx.check_logs(srv)


@case(15, modes=("thread",))
def workers_cannot_start(ctx, mode):
    """A worker thread that cannot be created (the address space is capped
    below 1000 thread stacks) is an error serve reports and exits with, 3,
    after stopping and counting the workers that did start."""
    if SANITIZED or "asan" in ctx.bin or "tsan" in ctx.bin:
        raise Skip("release build only (sanitizers reserve more address "
                   "space than the cap)")
    log = ctx.path("w-server.log")

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if nofile != resource.RLIM_INFINITY and nofile < 4096:
        raise Skip("1000 thread workers need 4096 descriptors; the hard "
                   "limit is %d" % nofile)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (300 * MiB, 300 * MiB))
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, nofile))
    r = subprocess.run([ctx.bin, "serve", "--mode", mode, "--workers", "1000",
                        "--port", "0", "--storage", ctx.storage,
                        "--log-file", log, "-q"], preexec_fn=cap,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)
    with open(log, errors="replace") as f:
        text = f.read()
    check(r.returncode == 3, "exit status %d, want 3: %s", r.returncode,
          text[-300:])
    m = re.search(r"ERROR - main - cannot start worker thread (\d+) of "
                  r"1000: .+ \(the (\d+) started were stopped\)", text)
    check(m, "no error naming the worker that did not start: %s",
          text[-300:])
    started = text.count("worker started")
    exiting = text.count("worker exiting")
    info("%s workers started before thread %s failed", m.group(2),
         m.group(1))
    check(started == exiting == int(m.group(2)) == int(m.group(1)) - 1,
          "%d started, %d exited, message %r", started, exiting, m.group(0))


@case(16)
def master_sigkill(ctx, mode):
    srv = ctx.server(mode, port=restart_port())
    x = put_file(os.path.join(ctx.storage, "x"), b"kept")
    listing(srv.port)
    if mode == "process":
        check(wait_workers(srv, 4), "4 workers: %s", srv.workers())
    kids = list(srv.workers())
    idle = connect(srv.port)       # a connection in flight at the kill
    idle.sendall(b"LI")
    stale = os.path.join(ctx.storage, TMP_PREFIX + "999999-1")
    put_file(stale, b"stale partial upload")
    check(listing(srv.port) == ["x"], "a temporary is listed")
    expect_error(srv.port, b"GET " + os.path.basename(stale).encode() + TERM)
    srv.proc.kill()
    t0 = time.monotonic()
    srv.wait(5)
    check(wait_for(lambda: gone(kids), 1), "workers %s survived the "
          "master's SIGKILL by %.1fs", kids, time.monotonic() - t0)
    idle.close()
    again = ctx.server(mode, port=srv.port)
    check(again.port == srv.port, "restart got port %d", again.port)
    check(listing(again.port) == ["x"], "LIST after the restart")
    check(not os.path.exists(stale), "stale temporary kept after restart")
    ctx.finish(again, {"x": x})


@test(modes=MODES)
def sigterm_and_log(ctx, mode):
    log = ctx.path("server.log")
    srv = ctx.server(mode, "--log-file", log)
    listing(srv.port)
    with connect(srv.port) as s:  # its address must be the one logged
        peer = "connection from 127.0.0.1:%d" % s.getsockname()[1]
        s.sendall(b"GET missing" + TERM)
        check(parse_reply(recv_all(s, 5))["status"] == "ERROR", "GET")
    expect_ok(srv.port, upload_req(b"x", b"abc"))
    workers = list(srv.workers())
    t0 = time.monotonic()
    check(srv.stop(timeout=8) == 0, "exit status after SIGTERM: %s",
          srv.proc.returncode)
    check(time.monotonic() - t0 < 3, "idle server took %.1fs to stop",
          time.monotonic() - t0)
    check(wait_for(lambda: gone(workers), 2),
          "workers outlived the server")
    with open(log, encoding="utf-8") as f:
        lines = f.read().splitlines()
    check(len(lines) >= 3, "log has %d lines", len(lines))
    for line in lines:
        check(LOG_RE.match(line), "log line in the wrong format: %r", line)
    names = {LOG_RE.match(l).group(2) for l in lines}
    levels = {LOG_RE.match(l).group(1) for l in lines}
    check("INFO" in levels, "no INFO lines")
    check("main" in names, "no line from main: %s", names)
    if mode != "single":
        check(any(re.match(r"worker-\d+$", n) for n in names),
              "no line from a worker: %s", names)
    text = "\n".join(lines)
    check("GET" in text and "missing" in text, "requests are not logged")
    check(peer in text, "no %r in the log", peer)


@test(modes=MODES, tags=("case 17",))
def sigterm_drain(ctx, mode):
    """SIGTERM: stop accepting, finish the connection in flight, exit 0."""
    srv = ctx.server(mode, "--drain-timeout", "3s")
    s = connect(srv.port)
    s.sendall(b"LI")
    time.sleep(0.3)  # the server has taken it
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    late_problem = None  # checked last, so the exit is checked too
    try:
        with connect(srv.port, timeout=2) as late:
            late.sendall(b"LIST" + TERM)
            late_problem = "accepted and answered %r" % recv_all(
                late, 1, allow_reset=True)[:60]
    except ConnectionRefusedError:
        pass
    except Failure:
        late_problem = "accepted and left waiting"
    s.sendall(b"ST" + TERM)
    r = parse_reply(recv_all(s, 5))
    check(r["status"] == "OK", "in-flight request after SIGTERM: %r", r)
    s.close()
    try:
        status = srv.proc.wait(6)  # no second signal: that one is urgent
    except subprocess.TimeoutExpired:
        raise Failure("still running 6 s after SIGTERM (drain 3 s)")
    check(status == 0, "exit status %s after SIGTERM", status)
    check(late_problem is None, "a connection made 0.5 s after SIGTERM was "
          "%s (the listener should be closed)", late_problem)


@case(17, timeout=90)
def sigterm_mid_upload(ctx, mode):
    size = 100 * 1000 * 1000
    # the default drain, not the test-sized one: the 80 MB still to come
    # after the signal take a loaded machine more than 3 s
    drain = 10.0
    srv = ctx.server(mode, limits={"--max-upload": "1GB",
                                   "--drain-timeout": "10s"})
    put_file(os.path.join(ctx.storage, "x"), b"old")
    warm(srv)
    s = connect(srv.port, 60)
    s.sendall(b"UPLOAD x ")
    digest, sent, signalled = hashlib.sha256(), 0, None
    refused_after = [None]

    def probe():
        t_sig = time.monotonic()
        while time.monotonic() - t_sig < 3:
            try:
                c = socket.create_connection(("127.0.0.1", srv.port), 0.5)
                c.close()
            except ConnectionRefusedError:
                refused_after[0] = time.monotonic() - t_sig
                return
            except OSError:
                pass
            time.sleep(0.01)
    prober = None
    for data, text in b64_chunks(size):
        digest.update(data)
        s.sendall(text)
        sent += len(data)
        if signalled is None and sent >= 20 * 1000 * 1000:
            srv.signal(signal.SIGTERM)
            signalled = time.monotonic()
            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
    s.sendall(TERM)
    r = parse_reply(recv_all(s, 30))
    s.close()
    check(r["status"] == "OK", "upload in flight at SIGTERM: %r", r)
    status = srv.wait(drain + 2 * SLOW)
    took = time.monotonic() - signalled
    prober.join(5)
    check(status is not None, "still running %.1fs after SIGTERM", took)
    check(status == 0, "exit status %s", status)
    check(took < drain + 1.5 * SLOW, "exited %.1fs after SIGTERM (drain %gs)",
          took, drain)
    check(refused_after[0] is not None and refused_after[0] < 0.2 * SLOW,
          "new connections refused only after %s s", refused_after[0])
    info("listener closed %.3fs after SIGTERM, exit after %.1fs",
         refused_after[0], took)
    ctx.check_storage(srv, {"x": digest.hexdigest()})
    ctx.check_canary()
    ctx.check_logs(srv)


@case(18)
def sigterm_stalled(ctx, mode):
    srv = ctx.server(mode, limits={"--idle-timeout": "30s"})
    old = put_file(os.path.join(ctx.storage, "x"), os.urandom(3000))
    warm(srv)
    kids = list(srv.workers())
    s, _, _ = start_upload(srv.port, b"x", 2 * MiB, stop_after=MiB)
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    status = srv.wait(DRAIN + 4 * SLOW)
    took = time.monotonic() - t0
    s.close()
    check(status is not None, "still running %gs after SIGTERM with a "
          "stalled upload (drain %gs)", DRAIN + 4 * SLOW, DRAIN)
    check(DRAIN - 0.5 < took < DRAIN + 2 * SLOW, "exited %.1fs after SIGTERM "
          "(drain %gs)", took, DRAIN)
    check(status == 0, "exit status %s at the drain deadline", status)
    check(wait_for(lambda: gone(kids), 1), "workers outlived the server")
    ctx.check_storage(srv, {"x": old})
    # a second signal exits at once
    for second in (signal.SIGTERM, signal.SIGINT):
        srv = ctx.server(mode, limits={"--idle-timeout": "30s",
                                       "--drain-timeout": "30s"})
        warm(srv)
        kids = list(srv.workers())
        s, _, _ = start_upload(srv.port, b"x", 2 * MiB, stop_after=MiB)
        time.sleep(0.3)
        srv.signal(signal.SIGTERM)
        time.sleep(0.5)
        check(srv.alive(), "exited before its drain with a transfer going")
        t0 = time.monotonic()
        srv.signal(second)
        status = srv.wait(2 * SLOW)
        check(status is not None, "still running %gs after a second signal",
              2 * SLOW)
        info("second %s: exit %s after %.2fs", second.name, status,
             time.monotonic() - t0)
        s.close()
        check(wait_for(lambda: gone(kids), 1), "workers outlived the server")
        ctx.check_storage(srv, {"x": old})
    ctx.check_canary()


@test()
def log_file_unwritable(ctx, mode):
    """A log file that cannot be opened stops serve at start with exit 3
    and a message naming the file and the cause."""
    path = ctx.path("no-such-dir", "server.log")
    r = subprocess.run([ctx.bin, "serve", "--port", "0", "--storage",
                        ctx.storage, "--log-file", path], timeout=10,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    want = ("fileserv serve: log file %s: No such file or directory"
            % path).encode()
    check(r.returncode == 3 and want in r.stderr, "exit %d, %r",
          r.returncode, r.stderr[-200:])


@case(38, modes=(None,))
def drop_privileges(ctx, mode):
    if "--user" not in serve_help(ctx.bin):
        raise Skip("not applicable: `fileserv serve` has no --user option")
    if os.geteuid() != 0:
        raise Skip("needs root")
    def refused(user, why):  # exit 2 at start, with a message
        r = subprocess.run([ctx.bin, "serve", "--port", "0", "--storage",
                            ctx.storage, "--user", user], timeout=10,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        check(r.returncode == 2 and why in r.stderr, "--user %s: exit %d, %r",
              user, r.returncode, r.stderr[-200:])
    refused("nobody", b"not writable")  # root's, not writable by others
    refused("no-such-user-x", b"no such user")
    os.chmod(ctx.storage, 0o777)
    kept = put_file(os.path.join(ctx.storage, "kept"), b"written by root")
    srv = ctx.server("process", "--user", "nobody")
    listing(srv.port)
    expect_ok(srv.port, upload_req(b"new", b"by nobody"))
    check(get_content(srv.port, b"kept") == b"written by root", "GET kept")
    st = os.stat(os.path.join(ctx.storage, "new"))
    check(st.st_uid == pwd.getpwnam("nobody").pw_uid,
          "the upload is owned by uid %d", st.st_uid)
    check(wait_workers(srv, 4), "workers: %s", srv.workers())
    for pid in [srv.pid] + list(srv.workers()):  # the acceptor too
        with open("/proc/%d/status" % pid) as f:
            st = f.read()
        uid = int(re.search(r"^Uid:\s+(\d+)", st, re.M).group(1))
        cap = re.search(r"^CapEff:\s+(\w+)", st, re.M).group(1)
        check(uid != 0 and int(cap, 16) == 0, "worker %d: uid %d CapEff %s",
              pid, uid, cap)
    ctx.finish(srv, {"kept": kept, "new": h(b"by nobody")})
