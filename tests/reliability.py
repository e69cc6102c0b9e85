#!/usr/bin/env python3
"""The reliability and security catalogue (../shared/RELIABILITY.md, cases
1-38) as black-box tests of fileserv. Python 3 stdlib only.

Run by run.py like blackbox.py (`reliability.py --bin B --tmp DIR --run
NAME [--long]`; one process group and one time limit per test), or by hand:

    python3 tests/reliability.py --bin ./fileserv --list
    python3 tests/reliability.py --bin ./fileserv --tmp /tmp/x --run NAME

Harness rules (RELIABILITY.md): every test gets a fresh mkdtemp root with
storage/ and a sibling canary/ of known files; servers listen on
127.0.0.1, port 0, with test-sized limits (idle 2 s, drain 3 s, max upload
8 MiB unless a case needs more); after the case, Env.finish() checks that
LIST still works, the storage holds what the case expects, the canary is
unchanged, no temporary file is left, no worker is a zombie, descriptors
are back at baseline (where the case says so), the stderr is clean, and
SIGTERM makes the server exit 0 with its workers.

Two deliberate departures: a server that a case kills and restarts on
the same port (16, 30) gets a free port below the ephemeral range, not
port 0, and the hundreds of idle connections of cases 23, 26 and 27 come
from 127.0.0.2; either way no client socket of a test running in parallel
can hold the port a restart needs.

A test ends with one line: "RESULT ok", "RESULT FAIL reason" or "RESULT
SKIP reason" (a tool or permission this machine lacks). A test of a server
feature that is not there yet fails with "pending feature: ...". The
--long variants use the catalogue's full sizes and durations. Every loop
is bounded by count and by time; all traffic stays on loopback.
"""
import argparse, base64, collections, hashlib, json, os, pwd, random, re
import resource, select, shutil, signal, socket, subprocess, sys
import tempfile, threading, time, traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from blackbox import (  # noqa: E402  (the shared socket and /proc helpers)
    Failure, check, wait_for, sha256, snapshot, temps, children, gone,
    fd_count, vm_hwm_kb, connect, recv_all, raw, parse_reply, request,
    expect_ok, expect_error, upload_req, get_content, listing, rst_close,
    TERM, TMP_PREFIX, MODES, restart_port, Server as BlackboxServer)

IDLE, DRAIN = 2.0, 3.0          # the test-sized limits
MAX_UPLOAD = 8 << 20
LIMITS = {"--idle-timeout": "2s", "--drain-timeout": "3s",
          "--max-upload": "8MiB"}
MiB = 1 << 20
# Sanitizer builds are slower and hold more memory (ASan's quarantine):
# RELIABILITY.md runs the suite there "with timeouts x4". SLOW scales the
# latency and CPU bounds of the checks (never the server's own limits),
# MEM the memory bounds. FILESERV_TEST_SLOW overrides SLOW.
_SAN = any(os.environ.get(v) for v in ("ASAN_OPTIONS", "TSAN_OPTIONS",
                                       "UBSAN_OPTIONS", "MSAN_OPTIONS"))
SLOW = float(os.environ.get("FILESERV_TEST_SLOW") or (4 if _SAN else 1))
MEM = 8 if _SAN else 1

TESTS = {}  # name -> (function, mode, timeout in seconds)


def case(num, modes=MODES, timeout=60):
    """Registers a catalogue case, one test per mode: relNN_name[mode]."""
    def register(fn):
        for mode in modes:
            name = "rel%02d_%s" % (num, fn.__name__) + (
                "[%s]" % mode if mode else "")
            TESTS[name] = (fn, mode, timeout)
        return fn
    return register


class Skip(Exception):
    """The case cannot run here; the message says why."""


class Pending(Failure):
    def __init__(self, what):
        Failure.__init__(self, "pending feature: " + what)


def info(fmt, *args):
    """Measurements go to stderr (run.py -v shows them for failed tests)."""
    sys.stderr.write("INFO " + (fmt % args if args else fmt) + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- files

def tree(d):
    """Recursive snapshot: relative path -> sha256 / 'dir' / link target."""
    out = {}
    for base, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(base, n)
            rel = os.path.relpath(p, d)
            if os.path.islink(p):
                out[rel] = "link:" + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            elif os.path.isfile(p):
                out[rel] = sha256(p)
            else:
                out[rel] = "other"
    return out


def put_file(path, content):
    with open(path, "wb") as f:
        f.write(content)
    return hashlib.sha256(content).hexdigest()


def h(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- processes

def descendants(pid):
    out, todo = [], [pid]
    while todo:
        kids = list(children(todo.pop()))
        out += kids
        todo += kids
    return out


def exe_of(pid):
    try:
        return os.path.realpath(os.readlink("/proc/%d/exe" % pid))
    except OSError:
        return None


def proc_status(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cpu_seconds(pids):
    """utime + stime of pids (and their reaped children) in seconds."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def socket_inode(local_port, remote_port):
    """Inode of the server-side socket 127.0.0.1:local -> :remote."""
    want = ("0100007F:%04X" % local_port, "0100007F:%04X" % remote_port)
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                return int(fields[9])
    return None


def owner_of_inode(pids, inode):
    target = "socket:[%d]" % inode
    for pid in pids:
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                        return pid
                except OSError:
                    pass
        except OSError:
            pass
    return None


def ss_lines(*filt):
    r = subprocess.run(["ss", "-tnH"] + list(filt), stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=10)
    return [l for l in r.stdout.decode(errors="replace").splitlines()
            if l.strip()]


_HELP = {}


def serve_help(binary):
    if binary not in _HELP:
        r = subprocess.run([binary, "serve", "--help"], timeout=10,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _HELP[binary] = r.stdout.decode(errors="replace")
    return _HELP[binary]


def need_flags(env, *flags):
    missing = [f for f in flags if f not in serve_help(env.bin)]
    if missing:
        raise Pending("%s (not in `fileserv serve --help` yet)"
                      % ", ".join(missing))


# ---------------------------------------------------------------- server

class Server(BlackboxServer):
    """fileserv serve on 127.0.0.1, optionally under a wrapper (strace,
    unshare, fiu-run, prlimit): self.pid is the fileserv process itself.
    Started its own way; stderr(), workers() and alive() are
    blackbox's."""

    stderr_tail = 3000

    def __init__(self, env, mode, workers, flags, wrap=(), proc_env=None,
                 preexec=None, keep_signals=False, port=0, ready=True,
                 ns_root=False):
        self.env, self.mode, self.storage = env, mode, env.storage
        self.errlog = env.path("server-%d.stderr" % len(env.servers))
        self.ns_root = ns_root
        cmd = list(wrap) + [env.bin, "serve", "--mode", mode, "--workers",
                            str(workers), "--port", str(port), "--storage",
                            env.storage, "-q"] + list(flags)
        r = w = None
        if ready:
            r, w = os.pipe()
            cmd += ["--ready-fd", str(w)]
        if "strace" in wrap[:1] and _SAN:
            # LeakSanitizer cannot run under ptrace; the other checks can
            proc_env = dict(proc_env or os.environ)
            proc_env["ASAN_OPTIONS"] = proc_env.get("ASAN_OPTIONS", "") + \
                ":detect_leaks=0"
        with open(self.errlog, "ab") as err:
            self.proc = subprocess.Popen(
                cmd, pass_fds=(w,) if ready else (), stdin=subprocess.DEVNULL,
                stdout=err, stderr=err, env=proc_env, preexec_fn=preexec,
                restore_signals=not keep_signals)
        env.servers.append(self)
        self.pid = self.proc.pid
        self.seen_pids = set()
        try:
            if ready:
                os.close(w)
                self.port = self._read_port(r, 15)
            else:
                self.port = port
                ok = wait_for(self._connects, 15)
                check(ok, "server (%s) never accepted a connection: %s",
                      mode, self.stderr())
        finally:
            if r is not None:
                os.close(r)
        if wrap:
            self.pid = self._find_server()

    def _connects(self):
        if self.proc.poll() is not None:
            raise Failure("server exited with %s at start: %s"
                          % (self.proc.returncode, self.stderr()))
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def _find_server(self):
        binary = os.path.realpath(self.env.bin)
        for _ in range(200):
            for pid in [self.proc.pid] + descendants(self.proc.pid):
                if exe_of(pid) == binary:
                    ppid_exe = None
                    try:
                        with open("/proc/%d/stat" % pid) as f:
                            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                        ppid_exe = exe_of(ppid)
                    except (OSError, ValueError):
                        pass
                    if ppid_exe != binary:  # the master, not a worker
                        return pid
            time.sleep(0.02)
        raise Failure("cannot find the fileserv process under %d"
                      % self.proc.pid)

    def _read_port(self, fd, timeout):
        data, deadline = b"", time.monotonic() + timeout
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(left, 0))[0]
            chunk = os.read(fd, 64) if ready else None
            if not chunk:
                self.proc.kill()
                self.proc.wait()
                serr = self.stderr()
                if "unrecognized option" in serr or "unknown option" in serr:
                    raise Pending("server refused its options: %s"
                                  % serr.strip()[-300:])
                raise Failure("server %s: no port on the ready fd (%s): %s"
                              % (self.mode, "timeout" if chunk is None
                                 else "closed", serr))
            data += chunk
        return int(data)

    @property
    def fs_storage(self):
        """The storage as the server sees it (its mount namespace)."""
        if self.ns_root:
            return "/proc/%d/root%s" % (self.pid, self.storage)
        return self.storage

    def pids(self):
        kids = list(children(self.pid))
        self.seen_pids.update(kids)
        return [self.pid] + kids

    def signal(self, sig):
        try:
            os.kill(self.pid, sig)
        except OSError:
            pass

    def wait(self, timeout):
        """Exit status, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=DRAIN + 3):
        kids = list(self.workers())
        if self.alive():
            self.signal(signal.SIGTERM)
        status = self.wait(timeout)
        if status is None:
            self.kill()
            raise Failure("server (%s) still running %gs after SIGTERM"
                          % (self.mode, timeout))
        check(wait_for(lambda: gone(kids), 1),
              "workers %s outlived the server", kids)
        return status

    def kill(self):
        for pid in descendants(self.proc.pid) + [self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.wait(5)


class Env:
    """One case's fresh root (storage/ + canary/) and its processes."""

    def __init__(self, binary, tmp, long_run):
        self.bin, self.long = binary, long_run
        os.makedirs(tmp, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="case-", dir=tmp)
        self.storage = self.path("storage")
        self.canary = self.path("canary")
        os.mkdir(self.storage)
        os.makedirs(os.path.join(self.canary, "sub"))
        put_file(os.path.join(self.canary, "keep"), b"canary bytes\n")
        put_file(os.path.join(self.canary, "x"), b"canary x\n")
        put_file(os.path.join(self.canary, "sub", "deep"), os.urandom(4096))
        self.canary_before = tree(self.canary)
        self.root_before = sorted(os.listdir(self.root))
        self.servers, self.procs = [], []

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def server(self, mode, *extra, workers=4, limits=None, **kw):
        lim = dict(LIMITS, **(limits or {}))
        flags = [x for k, v in lim.items() if v is not None for x in (k, v)]
        srv = Server(self, mode, workers, flags + list(extra), **kw)
        return srv

    def nworkers(self, mode, workers=4):
        return 1 if mode == "single" else workers

    def check_canary(self):
        now = tree(self.canary)
        check(now == self.canary_before, "canary changed: %s -> %s",
              sorted(self.canary_before.items()), sorted(now.items()))
        entries = sorted(os.listdir(self.root))
        extra = [e for e in entries if e not in self.root_before and
                 not e.startswith("server-") and not e.startswith("w-")]
        check(not extra, "new entries next to storage/: %s", extra)

    def check_storage(self, srv, files):
        """files: name -> sha256 / 'dir' / 'other' / 'link:target'."""
        d = srv.fs_storage
        check(not temps(d), "temporary files left: %s", temps(d))
        if files is not None:
            now = snapshot(d)
            check(now == files, "storage: want %s, have %s",
                  sorted(files.items()), sorted(now.items()))

    def finish(self, srv, files=None, fd_base=None, stop=True,
               expect_names=None):
        """The per-case postconditions, then SIGTERM -> exit 0."""
        names = listing(srv.port)
        if files is not None:
            want = sorted(n for n, v in files.items() if len(v) == 64
                          and not n.startswith("."))
            check(sorted(names) == want, "LIST %s, want %s", names, want)
        if expect_names is not None:
            check(sorted(names) == sorted(expect_names), "LIST %s, want %s",
                  names, expect_names)
        self.check_storage(srv, files)
        self.check_canary()
        check(wait_for(lambda: "Z" not in srv.workers().values(), 1.5),
              "zombie workers: %s", srv.workers())
        if fd_base is not None:
            check(wait_for(lambda: fd_count(srv.pids()) <= fd_base, 3),
                  "descriptors: %d at baseline, %d now", fd_base,
                  fd_count(srv.pids()))
        if stop:
            status = srv.stop()
            check(status == 0, "exit status %s after SIGTERM", status)
        self.check_logs(srv)

    def check_logs(self, srv):
        text = srv.stderr()
        for bad in ("Sanitizer", "runtime error", "LeakSanitizer"):
            check(bad not in text, "%r in the server's stderr: %s", bad,
                  text[-500:])
        # ASan's log_path=P writes P.PID for every process that reports
        m = re.search(r"log_path=([^:]+)", os.environ.get("ASAN_OPTIONS", ""))
        if m:
            d, base = os.path.split(m.group(1))
            pids = {str(srv.pid)} | {str(p) for p in srv.seen_pids}
            found = [n for n in os.listdir(d or ".") if n.startswith(base +
                     ".") and n.rsplit(".", 1)[-1] in pids]
            check(not found, "sanitizer reports: %s", found)

    def close(self):
        for srv in self.servers:
            if srv.proc.poll() is None:
                srv.kill()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass


def warm(srv):
    """First LIST, then the descriptor baseline."""
    listing(srv.port)
    time.sleep(0.2)
    return fd_count(srv.pids())


# ---------------------------------------------------------------- streaming

def b64_chunks(size, seed=None, chunk=3 * MiB):
    """(raw bytes, base64) pieces of size random bytes; chunk % 3 == 0."""
    rng = random.Random(seed) if seed is not None else None
    left = size
    while left:
        n = min(left, chunk)
        data = rng.randbytes(n) if rng else os.urandom(n)
        yield data, base64.b64encode(data)
        left -= n


def start_upload(port, name, size, stop_after=None, seed=None, timeout=60):
    """Sends UPLOAD name + the base64 of size random bytes (and the
    terminator unless stop_after stops it after that many raw bytes).
    Returns (socket, sha256 of the complete payload, raw bytes sent)."""
    s = connect(port, timeout)
    s.sendall(b"UPLOAD " + name + b" ")
    digest, sent = hashlib.sha256(), 0
    for data, text in b64_chunks(size, seed):
        digest.update(data)
        if stop_after is not None and sent >= stop_after:
            continue
        if stop_after is not None and sent + len(data) > stop_after:
            keep = (stop_after - sent) // 3 * 3
            s.sendall(text[:keep // 3 * 4])
            sent += keep
            continue
        s.sendall(text)
        sent += len(data)
    if stop_after is None:
        s.sendall(TERM)
    return s, digest.hexdigest(), sent


def upload_stream(port, name, size, timeout=120, seed=None):
    s, digest, _ = start_upload(port, name, size, seed=seed, timeout=timeout)
    with s:
        reply = parse_reply(recv_all(s, timeout))
    return reply, digest


DATA_FILE = re.compile(rb'"data_file"\s*:\s*"')


def stream_get(port, name, timeout=120):
    """GET with the data_file value decoded on the fly. Returns (reply
    without data_file, sha256 of the content, size); never holds the
    file in memory."""
    s = connect(port, timeout)
    deadline = time.monotonic() + timeout
    with s:
        s.sendall(b"GET " + name + TERM)
        pre, post, pending = b"", b"", b""
        digest, size, state = hashlib.sha256(), 0, 0
        while True:
            left = deadline - time.monotonic()
            check(left > 0, "GET %r: no end within %gs", name, timeout)
            s.settimeout(left)
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            if state == 0:
                pre += chunk
                m = DATA_FILE.search(pre)
                if not m:
                    check(len(pre) < 1 << 20, "GET: no data_file member")
                    continue
                chunk, pre = pre[m.end():], pre[:m.end()]
                state = 1
            if state == 1:
                q = chunk.find(b'"')
                body = chunk if q < 0 else chunk[:q]
                pending += body
                if q >= 0:
                    post = chunk[q:]
                    state = 2
                pending = pending.replace(b"\\/", b"/")
                if pending.endswith(b"\\") and state == 1:
                    cut = len(pending) - 1
                else:
                    cut = len(pending)
                cut = cut // 4 * 4 if state == 1 else cut
                data = base64.b64decode(pending[:cut], validate=True)
                pending = pending[cut:]
                digest.update(data)
                size += len(data)
            elif state == 2:
                post += chunk
    if state == 0:
        return parse_reply(pre), None, 0
    check(state == 2, "GET %r: reply ended inside data_file", name)
    check(post.endswith(TERM), "GET reply does not end with the terminator")
    obj = json.loads((pre + post[:-4]).decode())
    obj.pop("data_file", None)
    return obj, digest.hexdigest(), size


# ================================================================ bad input

@case(1)
def bad_commands(env, mode):
    srv = env.server(mode)
    x = put_file(os.path.join(env.storage, "x"), b"x version 1")
    fds = warm(srv)
    for req in (b"FOO x", b"\r\n\r\n", b"GET", b"GET a b", b"FOO",
                b"DELETE", b"UPLOAD", b"UPLOAD x", b"LIST x"):
        data = req if req.endswith(TERM) else req + TERM
        t0 = time.monotonic()
        r = expect_error(srv.port, data, timeout=5)
        check(time.monotonic() - t0 < 2 * SLOW, "%r took %.1fs", req,
              time.monotonic() - t0)
        check(r["data"], "%r: empty message", req)
        check(srv.alive(), "server died after %r", req)
        check(listing(srv.port) == ["x"], "LIST after %r", req)
    # `list`: PROTOCOL.md makes commands case-insensitive, so it is a LIST
    r = request(srv.port, b"list" + TERM)
    check(r["status"] == "OK" and r["data"] == ["x"], "list: %r", r)
    env.finish(srv, {"x": x}, fd_base=fds)


@case(2, timeout=90)
def endless_head(env, mode):
    """100 MB of 'A' with no terminator: ERROR, close, little read, little
    memory; and the head cap holds when data is queued before the read."""
    srv = env.server(mode)
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
    n = env.nworkers(mode)
    s0 = expect_ok(srv.port, b"STATS" + TERM)["data"]["bytes_in"]
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
    s1 = expect_ok(srv.port, b"STATS" + TERM)["data"]["bytes_in"]
    # bytes_in also holds the first STATS and perhaps the holders' bytes
    read = s1 - s0 - len(b"STATS" + TERM)
    info("queued flood: %d bytes queued, server read %d", queued, read)
    check(read <= 64 * 1024 + 2 * n, "the server read %d bytes of a head "
          "that is capped at 4 KiB (catalogue: <= 64 KiB; %d bytes were "
          "queued)",
          read, queued)
    env.finish(srv, {}, fd_base=fds)


@case(3)
def upload_too_large(env, mode):
    srv = env.server(mode)
    old = put_file(os.path.join(env.storage, "x"), b"old version")
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
        env.check_storage(srv, {"x": old})
        if size == MAX_UPLOAD + 1:
            check_quiet(srv, "after a refused upload's client closed")
    # at the limit: stored
    reply, digest = upload_stream(srv.port, b"at-limit", MAX_UPLOAD)
    check(reply["status"] == "OK", "upload at the limit: %r", reply)
    env.finish(srv, {"x": old, "at-limit": digest}, fd_base=fds)


@case(4)
def bad_base64(env, mode):
    srv = env.server(mode)
    old = put_file(os.path.join(env.storage, "x"), b"old version")
    fds = warm(srv)
    bad = [b"QUJD*QUJD", b"QUJD\xff", b"====", b"QUJDQ", b"QUJDQUI",
           b"QU\x00JD", b"QUJD\x00", b"QUJD\r\nQUJD", b"QUJD====",
           b"QQ==QUJD", b"A===", b"-_-_", b"QUJD\x7f", b"QR==", b"abd="]
    for data in bad:
        for name in (b"x", b"new"):
            r = expect_error(srv.port, b"UPLOAD " + name + b" " + data + TERM)
            check("base64" in r["data"] or "invalid" in r["data"],
                  "%r: message %r", data, r["data"])
            env.check_storage(srv, {"x": old})
            check(listing(srv.port) == ["x"], "LIST after %r", data)
    # 'abc=' is well-formed base64 (RFC 4648: two bytes, zero pad bits):
    # it must be stored exactly as Python decodes it, or refused
    r = request(srv.port, b"UPLOAD pad abc=" + TERM)
    files = {"x": old}
    if r["status"] == "OK":
        files["pad"] = h(base64.b64decode(b"abc=", validate=True))
    env.finish(srv, files, fd_base=fds)


@case(5)
def split_terminator(env, mode):
    srv = env.server(mode)
    content = os.urandom(100003)
    x = put_file(os.path.join(env.storage, "x"), content)
    fds = warm(srv)
    for req in (b"LIST" + TERM, b"GET x" + TERM, b"GET missing" + TERM,
                b"FOO" + TERM):
        whole = raw(srv.port, req)
        one = raw(srv.port, None, nodelay=True,
                  pieces=[(req[i:i + 1], 0.002) for i in range(len(req))])
        check(h(one) == h(whole), "%r one byte per send: %r vs %r", req,
              one[:80], whole[:80])
        split = raw(srv.port, None, nodelay=True,
                    pieces=[(req[:-1], 0.3), (req[-1:], 0)])
        check(h(split) == h(whole), "%r with \\r\\n\\r + 300 ms + \\n: "
              "%r vs %r", req, split[:80], whole[:80])
    up = upload_req(b"y", b"split upload")
    first = raw(srv.port, up)
    again = raw(srv.port, None, nodelay=True,
                pieces=[(up[i:i + 1], 0.001) for i in range(len(up))])
    check(h(again) == h(first), "UPLOAD byte by byte: %r vs %r", again, first)
    env.finish(srv, {"x": x, "y": h(b"split upload")}, fd_base=fds)


@case(6)
def not_a_terminator(env, mode):
    srv = env.server(mode)
    x = put_file(os.path.join(env.storage, "x"), b"keep me")
    fds = warm(srv)
    for junk in (b"LIST\n\n", b"LIST\r\n\n", b"LIST\r\r\r\r", b"LIST\n\r\n\r",
                 b"DELETE x\n\n", b"DELETE x\r\n\n", b"DELETE x\r\r",
                 b"GET x\n\nDELETE x\r\n\r\n", b"LIST\n\nDELETE x\r\n\r\n"):
        t0 = time.monotonic()
        got = raw(srv.port, junk, shut_wr=True, timeout=IDLE + 3,
                  allow_reset=True)
        check(time.monotonic() - t0 < IDLE + 2 * SLOW, "%r: %.1fs", junk,
              time.monotonic() - t0)
        check(not got or parse_reply(got)["status"] == "ERROR",
              "%r was taken as a request: %r", junk, got[:100])
        check(os.path.exists(os.path.join(env.storage, "x")),
              "%r deleted x", junk)
    # without a half-close: idle timeout (or an ERROR), never a reply
    for junk in (b"LIST\n\n", b"DELETE x\r\r\r\r"):
        t0 = time.monotonic()
        got = raw(srv.port, junk, timeout=IDLE + 3, allow_reset=True)
        took = time.monotonic() - t0
        check(not got or parse_reply(got)["status"] == "ERROR",
              "%r answered %r", junk, got[:100])
        check(took < IDLE + 1.5 * SLOW, "%r: closed after %.1fs (idle %gs)",
              junk, took, IDLE)
    env.finish(srv, {"x": x}, fd_base=fds)


@case(7)
def name_lengths(env, mode):
    srv = env.server(mode)
    fds = warm(srv)
    files = {}
    for name in (b"n" * 255, "\u00e9".encode() * 127 + b"a",
                 "\U0001f600".encode() * 63 + b"abc"):
        check(len(name) == 255, "test bug")
        expect_ok(srv.port, upload_req(name, b"long name"))
        check(get_content(srv.port, name) == b"long name", "%r", name[:9])
        files[name.decode()] = h(b"long name")
    for name in (b"n" * 256, "\u00e9".encode() * 128, b"n" * 4000):
        for req in (b"GET " + name + TERM, b"DELETE " + name + TERM,
                    upload_req(name, b"too long")):
            r = expect_error(srv.port, req)
            check("255" in r["data"] or "long" in r["data"],
                  "%d-byte name: %r", len(name), r["data"])
    for name in (b"\xff\xfe", b"a\xc3", b"\xc0\xaf", b"\xed\xa0\x80",
                 b"a\x01b", b"a\x1bb", b"a\x7fb", b"a\tb",
                 b"\xf5\x80\x80\x80"):
        for req in (b"GET " + name + TERM, b"DELETE " + name + TERM,
                    upload_req(name, b"bad name")):
            r = expect_error(srv.port, req)  # expect_error parses the JSON
            check("invalid name" in r["data"], "%r: %r", name, r["data"])
    env.finish(srv, files, fd_base=fds)


@case(8)
def nul_in_name(env, mode):
    """GET a\\0b: ERROR, and strace shows no open of "a"."""
    ensure_tool("strace", "strace")
    trace = env.path("w-strace.txt")
    a = put_file(os.path.join(env.storage, "a"), b"must not be served")
    srv = env.server(mode, wrap=["strace", "-f", "-qq", "-s", "300", "-o",
                                 trace, "-e",
                                 "trace=open,openat,openat2,newfstatat,"
                                 "statx,unlinkat,renameat,renameat2,linkat"])
    listing(srv.port)
    for req in (b"GET a\x00b", b"DELETE a\x00b", b"UPLOAD a\x00b QUJD",
                b"GET a\x00"):
        r = expect_error(srv.port, req + TERM)
        check("a\x00" not in json.dumps(r), "reply %r", r)
    expect_error(srv.port, b"GET fence-zz" + TERM)   # marks the trace
    r = expect_ok(srv.port, b"GET a" + TERM, exact=False)  # positive control
    env.finish(srv, {"a": a})
    with open(trace, errors="replace") as f:
        lines = f.read().splitlines()
    fence = [i for i, l in enumerate(lines) if '"fence-zz"' in l]
    check(fence, "strace did not record the openat of a GET: %s",
          lines[-5:])
    touched = [l for l in lines[:fence[0]] if re.search(r'"a(\\0.*)?"', l)]
    check(not touched, "the server touched \"a\" for a request naming "
          "a\\0b: %s", touched[:3])
    check(any('"a"' in l for l in lines[fence[0]:]),
          "positive control: GET a left no open of \"a\" in the trace")


@case(9)
def half_close(env, mode):
    srv = env.server(mode)
    content = os.urandom(MiB + 7)
    f = put_file(os.path.join(env.storage, "f"), content)
    fds = warm(srv)
    r = parse_reply(raw(srv.port, b"GET f" + TERM, shut_wr=True), exact=True)
    check(base64.b64decode(r["data_file"]) == content, "half-closed GET")
    r = parse_reply(raw(srv.port, b"LIST" + TERM, shut_wr=True))
    check(r["data"] == ["f"], "half-closed LIST: %r", r)
    r = parse_reply(raw(srv.port, upload_req(b"g", b"half"), shut_wr=True))
    check(r["status"] == "OK", "half-closed UPLOAD: %r", r)
    # partial requests, then close (FIN or RST): each connection is freed
    for i in range(30):
        s = connect(srv.port)
        s.sendall((b"GET f", b"UPLOAD f QUJ", b"LI", b"")[i % 4])
        if i % 2:
            rst_close(s)
        else:
            s.close()
    check(wait_for(lambda: fd_count(srv.pids()) <= fds, 3),
          "descriptors: %d at baseline, %d after 30 partial requests", fds,
          fd_count(srv.pids()))
    env.finish(srv, {"f": f, "g": h(b"half")}, fd_base=fds)


@case(10)
def missing_dir_fifo(env, mode):
    srv = env.server(mode)
    os.mkdir(os.path.join(env.storage, "d"))
    os.mkfifo(os.path.join(env.storage, "p"))
    x = put_file(os.path.join(env.storage, "x"), b"x")
    fds = warm(srv)
    for name in (b"missing", b"d", b"p"):
        for cmd in (b"GET ", b"DELETE "):
            t0 = time.monotonic()
            r = expect_error(srv.port, cmd + name + TERM, timeout=5)
            took = time.monotonic() - t0
            check(took < SLOW, "%r took %.2fs", cmd + name, took)
            check(listing(srv.port) == ["x"], "next request after %r",
                  cmd + name)
            info("%s%s -> %s", cmd.decode(), name.decode(), r["data"])
    # an upload may not replace a directory
    expect_error(srv.port, upload_req(b"d", b"not a directory"))
    env.finish(srv, {"x": x, "d": "dir", "p": "other"}, fd_base=fds)


def random_input(rng):
    tokens = [b"LIST", b"GET", b"UPLOAD", b"DELETE", b"STATS", b"list",
              b" ", b" ", b" ", b'"', b"\\", TERM, b"\r\n", b"\r", b"\n",
              b"z", b"..", b"/", b".", b"QUJD", b"====", b"=", b"\x00",
              b"\xff", b"\xc3\xa9", b"a" * 300, b"rnd"]
    if rng.random() < 0.3:
        data = rng.randbytes(rng.randrange(4097))
    else:
        data = b"".join(rng.choice(tokens) for _ in
                        range(rng.randrange(1, 40)))[:4096]
    if rng.random() < 0.5:
        data += TERM
    return data


@case(11, timeout=150)
def garbage_smoke(env, mode):
    srv = env.server(mode, "--log-file", env.path("w-server.log"))
    fds = warm(srv)
    rng = random.Random(20240611)
    count = 5000
    t_start = time.monotonic()
    slow = 0
    for i in range(count):
        data = random_input(rng)
        t0 = time.monotonic()
        got = raw(srv.port, data, shut_wr=True, timeout=4, allow_reset=True)
        took = time.monotonic() - t0
        check(took < 2 * SLOW, "input %d (%r) took %.1fs", i, data[:60], took)
        slow += took > 0.5
        if got:
            parse_reply(got, exact=False)
        check(time.monotonic() - t_start < 100 * SLOW, "5000 inputs: too slow "
              "(%d done)", i)
        if i % 500 == 0:
            check(srv.alive(), "server died at input %d", i)
    info("%d garbage inputs in %.1fs", count, time.monotonic() - t_start)
    check(srv.alive(), "server died")
    for size in (0, 1, 2, 3, 4, 5, 6, 300, 301, 302):
        content = os.urandom(size)
        expect_ok(srv.port, upload_req(b"rt%d" % size, content))
        check(get_content(srv.port, b"rt%d" % size) == content,
              "round trip of %d bytes", size)
    with open(env.path("w-server.log"), errors="replace") as f:
        log = f.read()
    for bad in ("Sanitizer", "runtime error", "assert"):
        check(bad not in log, "%r in the log", bad)
    env.finish(srv, None, fd_base=fds)


# ================================================================ faults

@case(12, timeout=90)
def client_abort(env, mode):
    srv = env.server(mode, limits={"--max-upload": "1GB"})
    old = put_file(os.path.join(env.storage, "x"), os.urandom(1000))
    fds = warm(srv)
    s, _, sent = start_upload(srv.port, b"x", 60 * 1000 * 1000,
                              stop_after=50 * 1000 * 1000)
    s2, _, _ = start_upload(srv.port, b"new", 60 * 1000 * 1000,
                            stop_after=1000 * 1000)
    time.sleep(0.2)
    rst_close(s)
    rst_close(s2)
    t0 = time.monotonic()
    ok = wait_for(lambda: not temps(env.storage) and
                  sorted(os.listdir(env.storage)) == ["x"] and
                  fd_count(srv.pids()) <= fds, 1)
    check(ok, "1 s after the abort: storage %s, descriptors %d (base %d)",
          os.listdir(env.storage), fd_count(srv.pids()), fds)
    info("abort cleaned up in %.2fs", time.monotonic() - t0)
    check(listing(srv.port) == ["x"], "still serving")
    env.finish(srv, {"x": old}, fd_base=fds)


@case(13)
def client_stall(env, mode):
    srv = env.server(mode, limits={"--max-upload": "64MiB"})
    old = put_file(os.path.join(env.storage, "x"), os.urandom(1000))
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
    env.finish(srv, {"x": old}, fd_base=fds)


def upload_owner(srv, sock):
    """The worker pid holding the server end of sock."""
    inode = socket_inode(srv.port, sock.getsockname()[1])
    check(inode, "no server-side socket for client port %d in /proc/net/tcp",
          sock.getsockname()[1])
    pid = owner_of_inode(list(srv.workers()), inode)
    check(pid, "no worker holds socket inode %d", inode)
    return pid


def wait_workers(srv, n, exclude=(), timeout=1.0):
    def ready():
        kids = srv.workers()
        return (len(kids) == n and not set(kids) & set(exclude)
                and "Z" not in kids.values())
    return wait_for(ready, timeout, 0.02)


@case(14, modes=("process",), timeout=120)
def worker_sigkill(env, mode):
    srv = env.server(mode, limits={"--max-upload": "1GB"})
    old = put_file(os.path.join(env.storage, "x"), os.urandom(5000))
    warm(srv)
    check(wait_workers(srv, 4), "4 workers expected: %s", srv.workers())
    size = (100 if env.long else 30) * 1000 * 1000
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
    env.check_storage(srv, {"x": old})
    check(get_content(srv.port, b"x") == open(
        os.path.join(env.storage, "x"), "rb").read(), "old version")
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
    threads = [threading.Thread(target=load, args=(k,), daemon=True)
               for k in range(3)]
    for t in threads:
        t.start()
    killed, planted = [], []
    for i in range(20):
        kids = [p for p, st in srv.workers().items() if st != "Z"]
        if kids:
            victim = random.Random(i).choice(sorted(kids))
            if i % 5 == 0:
                # what a worker killed between link and rename leaves: its
                # temporary under the server's own name scheme (storage.c)
                planted.append("%s%d-%d" % (TMP_PREFIX, victim, 99999))
                put_file(os.path.join(env.storage, planted[-1]), b"part")
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
    left = [t for t in temps(env.storage)]
    check(wait_for(lambda: not temps(env.storage), 1),
          "stale temporaries of killed workers not swept while the server "
          "runs: %s (killed pids %s)", temps(env.storage) or left, killed)
    files = {"x": old}
    for k in range(3):
        p = os.path.join(env.storage, "load%d" % k)
        if os.path.exists(p):
            check(re.fullmatch(rb"v\d+", open(p, "rb").read()),
                  "load%d holds a partial file", k)
            files["load%d" % k] = sha256(p)
    env.finish(srv, files)


@case(15, modes=("process",))
def crash_loop(env, mode):
    log = env.path("w-server.log")
    env_vars = dict(os.environ, FILESERV_TEST_WORKER_EXIT="1")
    t0 = time.monotonic()
    srv = env.server(mode, "--log-file", log, proc_env=env_vars)
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
    env.check_logs(srv)


@case(16)
def master_sigkill(env, mode):
    srv = env.server(mode, port=restart_port())
    x = put_file(os.path.join(env.storage, "x"), b"kept")
    listing(srv.port)
    if mode == "process":
        check(wait_workers(srv, 4), "4 workers: %s", srv.workers())
    kids = list(srv.workers())
    idle = connect(srv.port)       # a connection in flight at the kill
    idle.sendall(b"LI")
    stale = os.path.join(env.storage, TMP_PREFIX + "999999-1")
    put_file(stale, b"stale partial upload")
    check(listing(srv.port) == ["x"], "a temporary is listed")
    expect_error(srv.port, b"GET " + os.path.basename(stale).encode() + TERM)
    srv.proc.kill()
    t0 = time.monotonic()
    srv.wait(5)
    check(wait_for(lambda: gone(kids), 1), "workers %s survived the "
          "master's SIGKILL by %.1fs", kids, time.monotonic() - t0)
    idle.close()
    again = env.server(mode, port=srv.port)
    check(again.port == srv.port, "restart got port %d", again.port)
    check(listing(again.port) == ["x"], "LIST after the restart")
    check(not os.path.exists(stale), "stale temporary kept after restart")
    env.finish(again, {"x": x})


def send_body(s, size, chunk=3 * MiB):
    for data, text in b64_chunks(size, chunk=chunk):
        s.sendall(text)


@case(17, timeout=90)
def sigterm_mid_upload(env, mode):
    size = (100 if env.long else 100) * 1000 * 1000
    srv = env.server(mode, limits={"--max-upload": "1GB"})
    put_file(os.path.join(env.storage, "x"), b"old")
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
    for data, text in b64_chunks(size, chunk=MiB * 3 // 3 * 3):
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
    status = srv.wait(DRAIN + 2 * SLOW)
    took = time.monotonic() - signalled
    prober.join(5)
    check(status is not None, "still running %.1fs after SIGTERM", took)
    check(status == 0, "exit status %s", status)
    check(took < DRAIN + 1.5 * SLOW, "exited %.1fs after SIGTERM (drain %gs)",
          took, DRAIN)
    check(refused_after[0] is not None and refused_after[0] < 0.2 * SLOW,
          "new connections refused only after %s s", refused_after[0])
    info("listener closed %.3fs after SIGTERM, exit after %.1fs",
         refused_after[0], took)
    env.check_storage(srv, {"x": digest.hexdigest()})
    env.check_canary()
    env.check_logs(srv)


@case(18)
def sigterm_stalled(env, mode):
    srv = env.server(mode, limits={"--idle-timeout": "30s"})
    old = put_file(os.path.join(env.storage, "x"), os.urandom(3000))
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
    env.check_storage(srv, {"x": old})
    # a second signal exits at once
    for second in (signal.SIGTERM, signal.SIGINT):
        srv = env.server(mode, limits={"--idle-timeout": "30s",
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
        env.check_storage(srv, {"x": old})
    env.check_canary()


def unshare_works():
    d = tempfile.mkdtemp(prefix="fileserv-probe-")
    try:
        r = subprocess.run(["unshare", "-m", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs '%s' && "
                            "touch '%s/ok' && test -f '%s/ok'" % (d, d, d)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10)
        return r.returncode == 0, r.stdout.decode(errors="replace").strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case(19)
def disk_full(env, mode):
    if not shutil.which("unshare"):
        raise Skip("unshare is not installed")
    ok, why = unshare_works()
    if not ok:
        raise Skip("unshare -m + tmpfs mount not permitted here: " + why)
    srv = env.server(mode, limits={"--max-upload": "1GB"}, ns_root=True,
                     wrap=["unshare", "-m", "sh", "-c",
                           'mount -t tmpfs -o size=8m tmpfs "$0" && '
                           'exec "$@"', env.storage])
    listing(srv.port)
    with open("/proc/%d/mountinfo" % srv.pid) as f:
        mounts = [l.split() for l in f]
    check(any(m[4] == os.path.realpath(env.storage) and "tmpfs" in m
              for m in mounts), "storage is not a tmpfs for the server")
    reply, old = upload_stream(srv.port, b"x", MiB)
    check(reply["status"] == "OK", "small upload: %r", reply)
    reply, _ = upload_stream(srv.port, b"x", 20 * 1000 * 1000)
    check(reply["status"] == "ERROR", "20 MB into 8 MB: %r", reply)
    check("space" in reply["data"].lower(), "no-space message: %r",
          reply["data"])
    env.check_storage(srv, {"x": old})
    reply, _ = upload_stream(srv.port, b"new", 20 * 1000 * 1000)
    check(reply["status"] == "ERROR", "20 MB new name: %r", reply)
    env.check_storage(srv, {"x": old})
    # fill it, fail, free it, succeed
    reply, filler = upload_stream(srv.port, b"filler", 5 * MiB)
    check(reply["status"] == "OK", "5 MiB filler: %r", reply)
    reply, _ = upload_stream(srv.port, b"more", 3 * MiB)
    check(reply["status"] == "ERROR", "3 MiB over a full disk: %r", reply)
    env.check_storage(srv, {"x": old, "filler": filler})
    expect_ok(srv.port, b"DELETE filler" + TERM)
    reply, small = upload_stream(srv.port, b"small", 2 * MiB)
    check(reply["status"] == "OK", "upload after freeing space: %r", reply)
    env.finish(srv, {"x": old, "small": small})
    # variant without mounts: RLIMIT_FSIZE, SIGXFSZ ignored -> EFBIG
    fsize = 3 * MiB

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    srv = env.server(mode, preexec=limit, keep_signals=True,
                     limits={"--max-upload": "1GB"})
    before = snapshot(env.storage)
    reply, _ = upload_stream(srv.port, b"x", 5 * MiB)
    check(reply["status"] == "ERROR", "5 MiB over RLIMIT_FSIZE 3 MiB: %r",
          reply)
    check("large" in reply["data"].lower() or "fbig" in reply["data"].lower(),
          "EFBIG message: %r", reply["data"])
    env.check_storage(srv, before)
    reply, small2 = upload_stream(srv.port, b"y", MiB)
    check(reply["status"] == "OK", "1 MiB under the limit: %r", reply)
    before["y"] = small2
    env.finish(srv, before)


def strace_lines(path):
    with open(path, errors="replace") as f:
        return f.read().splitlines()


@case(20)
def durability_order(env, mode):
    ensure_tool("strace", "strace")
    trace = env.path("w-strace.txt")
    srv = env.server(mode, wrap=["strace", "-f", "-qq", "-y", "-s", "120",
                                 "-o", trace, "-e",
                                 "trace=fsync,fdatasync,renameat,renameat2,"
                                 "linkat,write,sendto,sendmsg,close"])
    old = put_file(os.path.join(env.storage, "x"), b"old")
    listing(srv.port)
    expect_ok(srv.port, upload_req(b"x", b"new version"))
    env.finish(srv, {"x": h(b"new version")})
    lines = strace_lines(trace)
    storage = os.path.realpath(env.storage)
    events = []
    # a call cut by another thread's is "fsync(5<path> <unfinished ...>"
    # at its start (the order that counts), "<... fsync resumed>" later
    for i, l in enumerate(lines):
        if re.search(r"\bf(data)?sync\(\d+<%s>(\)| <unfinished)"
                     % re.escape(storage), l):
            events.append(("fsync-dir", i))
        elif re.search(r"\bf(data)?sync\(\d+<", l):
            events.append(("fsync-file", i))
        elif re.search(r"\brenameat2?\(.*\"x\"", l):
            events.append(("rename", i))
        elif re.search(r"\b(sendto|write|sendmsg)\(\d+<(TCP|socket)", l) \
                and "uploaded" in l:
            events.append(("reply", i))
    kinds = [k for k, _ in events]
    info("durability trace: %s", kinds)
    for k in ("fsync-file", "rename", "fsync-dir", "reply"):
        check(k in kinds, "no %s in the trace (saw %s): %s", k, kinds,
              [l for l in lines if "sync" in l or "rename" in l][:6])
    order = [kinds.index("fsync-file"), kinds.index("rename"),
             kinds.index("fsync-dir"), kinds.index("reply")]
    check(order == sorted(order), "order %s, want fsync(temp) -> renameat "
          "-> fsync(dir) -> reply", [kinds[i] for i in sorted(order)])


# ---------------------------------------------------------------- libfiu

def ensure_tool(tool, package, path=None):
    """Installs a missing Debian package when we are root (serialised
    across parallel tests); raises Skip when the tool stays unavailable."""
    present = lambda: shutil.which(tool) and (not path or
                                              os.path.exists(path))
    if present():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Skip("%s is not installed (Debian package %s) and cannot be "
                   "installed here" % (tool, package))
    import fcntl
    with open(os.path.join(tempfile.gettempdir(),
                           "fileserv-tests-apt.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if present():
            return
        try:
            r = subprocess.run(
                ["apt-get", "install", "-y", "-qq", "-o",
                 "DPkg::Lock::Timeout=60", package],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, timeout=180,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            out = r.stdout.decode(errors="replace").strip()[-200:]
        except (OSError, subprocess.TimeoutExpired) as e:
            out = str(e)
    if not present():
        raise Skip("%s is not installed and `apt-get install %s` failed: %s"
                   % (tool, package, out))


def imported(binary):
    r = subprocess.run(["nm", "-D", binary], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=20)
    return set(re.findall(r"^\s+U (\w+)", r.stdout.decode(), re.M))


@case(21, timeout=120)
def libfiu(env, mode):
    if _SAN or "asan" in env.bin or "tsan" in env.bin:
        raise Skip("release build only (LD_PRELOAD clashes with sanitizers)")
    ensure_tool("fiu-run", "fiu-utils", "/usr/lib/fiu/fiu_posix_preload.so")
    syms = imported(env.bin)
    for sym in ("fsync", "write"):
        check(sym in syms, "fileserv does not import %s: fiu's %s failure "
              "point would not reach it (imports: %s)", sym, sym,
              sorted(s for s in syms if "sync" in s or "write" in s))
    fiu = lambda *cmds: ["fiu-run", "-x", "-f", ""] + [
        x for c in cmds for x in ("-c", c)]
    # 1. fsync fails: ERROR, no rename, old version intact
    old = put_file(os.path.join(env.storage, "x"), b"old version")
    srv = env.server(mode, wrap=fiu("enable name=posix/io/sync/fsync"))
    for name in (b"x", b"new"):
        r = request(srv.port, upload_req(name, b"never stored"))
        check(r["status"] == "ERROR", "UPLOAD %r with fsync failing: %r",
              name, r)
        env.check_storage(srv, {"x": old})
    env.finish(srv, {"x": old})
    # 2. short writes: every byte still stored
    srv = env.server(mode, wrap=fiu("enable name=posix/io/rw/write/reduce"))
    files = {"x": old}
    for i, size in enumerate((1, 1000, 300001, 2 * MiB + 1)):
        content = os.urandom(size)
        r = request(srv.port, upload_req(b"s%d" % i, content), timeout=30)
        check(r["status"] == "OK", "UPLOAD of %d bytes with short writes: "
              "%r", size, r)
        got = get_content(srv.port, b"s%d" % i)
        check(got == content, "%d bytes written in short writes came back "
              "different (%d bytes)", size, len(got))
        files["s%d" % i] = h(content)
    env.finish(srv, files)
    # 3. 5% of write() calls fail under load: OK with the right bytes, or
    # ERROR; never OK with wrong bytes
    srv = env.server(mode, wrap=fiu("enable_random name=posix/io/rw/write,"
                                    "probability=0.05"))
    results = collections.Counter()
    wrong = []

    def client(k):
        rng = random.Random(k)
        for i in range(25):
            name = b"w%d-%d" % (k, i % 5)
            content = rng.randbytes(rng.choice((0, 1, 100, 70000, 400000)))
            try:
                r = request(srv.port, upload_req(name, content), timeout=20)
            except Failure as e:
                wrong.append("upload %r: %s" % (name, e))
                continue
            results[r["status"]] += 1
            if r["status"] == "OK":
                try:
                    got = get_content(srv.port, name)
                except Failure as e:
                    wrong.append("GET %r: %s" % (name, e))
                    continue
                if got != content:
                    wrong.append("%r: OK but %d bytes differ from %d" %
                                 (name, len(got), len(content)))
    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    info("5%% write faults: %s", dict(results))
    check(not wrong, "%d wrong results: %s", len(wrong), wrong[:3])
    check(results["OK"] > 0, "nothing succeeded: %s", dict(results))
    env.finish(srv, None)


@case(22, timeout=90)
def slow_reader(env, mode):
    """A reader taking 1 KiB/s of a 100 MB GET. The server's cut shows as
    its end of the socket closing (no process holds it any more): the
    kernel may go on delivering what was already queued to the client."""
    srv = env.server(mode)
    big = env.path("storage", "big")
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
    env.finish(srv, None, fd_base=fds)


# ================================================================ load

def open_idle(port, n, deadline):
    """n connections from 127.0.0.2: so many client ports held open never
    block the 127.0.0.1 port of a server that another test restarts."""
    socks = []
    for _ in range(n):
        check(time.monotonic() < deadline, "opening %d connections: slow", n)
        socks.append(socket.create_connection(("127.0.0.1", port), 5,
                                              ("127.0.0.2", 0)))
    return socks


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
def idle_connections(env, mode):
    n = 1000
    srv = env.server(mode)
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
    env.finish(srv, {}, fd_base=fds)


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else None


@case(24, timeout=150)
def many_clients(env, mode):
    n = 1000 if env.long else 200
    srv = env.server(mode)
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
    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
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
    src = env.path("w-64k")
    put_file(src, os.urandom(64 * 1024))
    for op in ("upload", "download"):
        r = subprocess.run([env.bin, "stress", "--op", op, "--file", src,
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
    env.finish(srv, files, fd_base=fds)


@case(25)
def same_name_uploads(env, mode):
    srv = env.server(mode)
    fds = warm(srv)
    payloads = [os.urandom(100000 + 17 * i) for i in range(50)]
    results = [None] * 50
    barrier = threading.Barrier(50, timeout=30)

    def up(i):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        try:
            results[i] = request(srv.port, upload_req(b"same", payloads[i]),
                                 timeout=60)
        except Exception as e:
            results[i] = e
    threads = [threading.Thread(target=up, args=(i,), daemon=True)
               for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, r in enumerate(results):
        check(isinstance(r, dict) and (r["status"] == "OK" or
                                       "conflict" in r.get("data", "")),
              "upload %d: %r", i, r)
    final = open(os.path.join(env.storage, "same"), "rb").read()
    check(final in payloads, "the final file is none of the 50 payloads "
          "(%d bytes)", len(final))
    check(get_content(srv.port, b"same") == final, "GET differs from disk")
    env.finish(srv, {"same": h(final)}, fd_base=fds)


@case(26, timeout=60)
def fd_exhaustion(env, mode):
    if not shutil.which("prlimit"):
        raise Skip("prlimit is not installed")
    srv = env.server(mode, wrap=["prlimit", "--nofile=128"])
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
    env.finish(srv, {})


@case(27, timeout=120)
def slowloris(env, mode):
    need_flags(env, "--head-timeout", "--min-rate")
    n = 900 if env.long else 200
    duration = 30 if env.long else 12
    srv = env.server(mode, "--head-timeout", "3s", "--min-rate", "1kB")
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
            stop.wait(max(0, (0.5 if not env.long else 1.0) -
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
    env.finish(srv, {}, fd_base=fds)


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
def head_timeout(env, mode):
    need_flags(env, "--head-timeout")
    srv = env.server(mode, "--head-timeout", "1s",
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
    env.finish(srv, {}, fd_base=fds)


@case(27, timeout=40)
def min_rate(env, mode):
    need_flags(env, "--min-rate")
    srv = env.server(mode, "--min-rate", "1kB")
    old = put_file(os.path.join(env.storage, "x"), b"old")
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
    env.finish(srv, {"x": old, "fast": digest}, fd_base=fds)


def server_hwm_kb(srv):
    return sum(vm_hwm_kb(p) for p in srv.pids())


@case(28, timeout=240)
def big_roundtrip(env, mode):
    size = (500 if env.long else 100) * 1000 * 1000
    srv = env.server(mode, limits={"--max-upload": "1GB"})
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
    env.finish(srv, {"big": digest}, fd_base=fds)
    os.unlink(os.path.join(env.storage, "big"))


@case(29, timeout=40)
def pool_saturation(env, mode):
    srv = env.server(mode)
    old = put_file(os.path.join(env.storage, "x"), b"old")
    fds = warm(srv)
    n = env.nworkers(mode)
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
    env.finish(srv, {"x": old}, fd_base=fds)


@case(29, timeout=40)
def max_conns(env, mode):
    need_flags(env, "--max-conns")
    srv = env.server(mode, "--max-conns", "6")
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
    env.finish(srv, {}, fd_base=fds)


@case(30, timeout=90)
def ledger(env, mode):
    srv = env.server(mode, port=restart_port())
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
    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(6)]
    for t in threads:
        t.start()
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
    again = env.server(mode, port=srv.port)
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
    for n in os.listdir(env.storage):
        d = sha256(os.path.join(env.storage, n))
        check(d in sent, "%s holds bytes that were never sent in full "
              "(a partial file)", n)
        files[n] = d
    env.finish(again, files)


def server_sample(srv):
    pids = srv.pids()
    return (sum(proc_status(p, "VmRSS") for p in pids), fd_count(pids),
            sum(proc_status(p, "Threads") for p in pids))


@case(31, timeout=250)
def soak(env, mode):
    duration = 600 if env.long else 20
    warmup = 30 if env.long else 5
    srv = env.server(mode)
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
    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
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
    check(_SAN or rss1 < max(rss0 * 1.10, rss0 + 1024 * MEM),
          "RSS grew from %d to "
          "%d KiB after the warm-up", rss0, rss1)
    n = env.nworkers(mode)
    check(max(s[2] for s in samples) <= base_fds + 2 * n + 2,
          "fd count rose to %d (baseline %d)", max(s[2] for s in samples),
          base_fds)
    check(all(s[3] == base_threads for s in samples),
          "thread count changed: %s", sorted({s[3] for s in samples}))
    env.finish(srv, None, fd_base=base_fds)


# ================================================================ security

@case(32)
def traversal_get(env, mode):
    srv = env.server(mode)
    x = put_file(os.path.join(env.storage, "x"), b"x")
    os.mkdir(os.path.join(env.storage, "sub"))
    put_file(os.path.join(env.storage, "sub", "x"), b"inner")
    fds = warm(srv)
    storage_abs = os.path.realpath(env.storage)
    for req in (b"GET ../../etc/passwd", b"GET /etc/passwd", b"GET ..",
                b"GET .", b'GET ""', b"GET sub/x", b"GET ../canary/keep",
                b"GET %s/x" % storage_abs.encode(), b"GET ./x",
                b'GET "../x"', b"GET sub/../x", b"GET ....//x",
                b"DELETE ..", b"DELETE sub/x"):
        data = raw(srv.port, req + TERM)
        r = parse_reply(data)
        check(r["status"] == "ERROR" and "invalid name" in r["data"],
              "%r: %r", req, r)
        text = data.decode("utf-8", "replace")
        check("root:" not in text and storage_abs not in text and
              env.storage not in text, "%r leaked: %r", req, text[:200])
    env.finish(srv, {"x": x, "sub": "dir"}, fd_base=fds)


@case(33)
def traversal_upload(env, mode):
    srv = env.server(mode)
    fds = warm(srv)
    tag = "fileserv-rel33-%d" % os.getpid()
    tmp_x_before = os.path.exists("/tmp/x") and sha256("/tmp/x")
    tmp_before = set(os.listdir("/tmp"))
    for name in (b"../canary/x", b"/tmp/x", b"a/../../x", b"../x",
                 b"../canary/new", b"/tmp/" + tag.encode(), b"..",
                 b"../../" + tag.encode(), b"sub/../../x",
                 b'"../canary/keep"'):
        r = expect_error(srv.port, upload_req(name, b"escaped!"))
        check("invalid name" in r["data"], "UPLOAD %r: %r", name, r)
    check(not os.path.exists("/tmp/" + tag), "UPLOAD wrote /tmp/%s", tag)
    check((os.path.exists("/tmp/x") and sha256("/tmp/x")) == tmp_x_before,
          "/tmp/x changed")
    new_tmp = [e for e in set(os.listdir("/tmp")) - tmp_before
               if tag in e or e == "x"]
    check(not new_tmp, "new entries in /tmp: %s", new_tmp)
    check(not os.path.exists(os.path.join(os.path.dirname(env.root), "x")),
          "UPLOAD wrote next to the test root")
    env.finish(srv, {}, fd_base=fds)


@case(34)
def traversal_delete(env, mode):
    srv = env.server(mode)
    fds = warm(srv)
    canary_abs = os.path.join(os.path.realpath(env.canary), "keep").encode()
    for req in (b"DELETE ../canary/keep", b"DELETE " + canary_abs,
                b'DELETE "../canary/keep"', b"DELETE ../canary",
                b"DELETE ../canary/sub/deep", b"DELETE ../storage"):
        r = expect_error(srv.port, req + TERM)
        check("invalid name" in r["data"], "%r: %r", req, r)
        env.check_canary()
    env.finish(srv, {}, fd_base=fds)


@case(35)
def planted_symlinks(env, mode):
    srv = env.server(mode)
    os.symlink("/etc/passwd", os.path.join(env.storage, "pw"))
    os.symlink("../canary/keep", os.path.join(env.storage, "c"))
    os.symlink(os.path.join(env.canary, "x"), os.path.join(env.storage, "d"))
    os.symlink("../canary/sub", os.path.join(env.storage, "dirlink"))
    fds = warm(srv)
    check(listing(srv.port) == [], "symlinks listed: %s", listing(srv.port))
    for name in (b"pw", b"c", b"d", b"dirlink"):
        data = raw(srv.port, b"GET " + name + TERM)
        r = parse_reply(data)
        check(r["status"] == "ERROR", "GET %r through a symlink: %r", name,
              str(r)[:100])
        check(b"root:" not in data and b"canary" not in data,
              "GET %r leaked %r", name, data[:100])
    r = request(srv.port, upload_req(b"c", b"replaces the link"))
    c = os.path.join(env.storage, "c")
    if r["status"] == "OK":
        check(not os.path.islink(c) and open(c, "rb").read() ==
              b"replaces the link", "UPLOAD c did not replace the link")
    else:
        check(os.readlink(c) == "../canary/keep", "refused, but c changed")
    env.check_canary()
    expect_ok(srv.port, b"DELETE d" + TERM)
    check(not os.path.lexists(os.path.join(env.storage, "d")), "d kept")
    expect_error(srv.port, b"DELETE dirlink/deep" + TERM)
    expect_ok(srv.port, b"DELETE dirlink" + TERM)
    env.check_canary()
    files = {"pw": "link:/etc/passwd"}
    files["c"] = h(b"replaces the link") if r["status"] == "OK" else \
        "link:../canary/keep"
    env.finish(srv, files, fd_base=fds,
               expect_names=["c"] if r["status"] == "OK" else [])


@case(36)
def temp_unreachable(env, mode):
    srv = env.server(mode)
    x = put_file(os.path.join(env.storage, "x"), b"x")
    fds = warm(srv)
    s, _, _ = start_upload(srv.port, b"up", 4 * MiB, stop_after=2 * MiB)
    time.sleep(0.3)
    on_disk = temps(env.storage)
    info("during the upload: storage %s (%s)", os.listdir(env.storage),
         "O_TMPFILE: no name" if not on_disk else "named temporary")
    guesses = set(on_disk)
    for pid in srv.pids():
        for k in range(1, 4):
            guesses.add("%s%d-%d" % (TMP_PREFIX, pid, k))
    guesses |= {TMP_PREFIX, ".x", ".", "..", ".hidden"}
    if mode != "single":
        check(listing(srv.port) == ["x"], "LIST during an upload: %s",
              listing(srv.port))
        for g in sorted(guesses):
            for cmd in (b"GET ", b"DELETE "):
                r = expect_error(srv.port, cmd + g.encode() + TERM)
                check("invalid name" in r["data"], "%s%s: %r", cmd, g, r)
        check(temps(env.storage) == on_disk, "a temporary was deleted")
    s.close()
    if mode == "single":
        check(listing(srv.port) == ["x"], "LIST after the upload")
        for g in sorted(guesses):
            expect_error(srv.port, b"GET " + g.encode() + TERM)
    env.finish(srv, {"x": x}, fd_base=fds)


@case(37)
def loopback_only(env, mode):
    if not shutil.which("ss"):
        raise Skip("ss (iproute2) is not installed")
    srv = env.server(mode)
    listing(srv.port)
    lines = [l.split() for l in subprocess.run(
        ["ss", "-ltnH"], stdout=subprocess.PIPE, timeout=10).stdout.decode()
        .splitlines() if l.strip()]
    mine = [f[3] for f in lines if f[3].rsplit(":", 1)[-1] == str(srv.port)]
    check(mine == ["127.0.0.1:%d" % srv.port], "listening on %s, want only "
          "127.0.0.1:%d", mine, srv.port)
    env.finish(srv, {})


@case(38, modes=(None,))
def drop_privileges(env, mode):
    if "--user" not in serve_help(env.bin):
        raise Skip("not applicable: `fileserv serve` has no --user option")
    if os.geteuid() != 0:
        raise Skip("needs root")
    def refused(user, why):  # exit 2 at start, with a message
        r = subprocess.run([env.bin, "serve", "--port", "0", "--storage",
                            env.storage, "--user", user], timeout=10,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        check(r.returncode == 2 and why in r.stderr, "--user %s: exit %d, %r",
              user, r.returncode, r.stderr[-200:])
    refused("nobody", b"not writable")  # root's, not writable by others
    refused("no-such-user-x", b"no such user")
    os.chmod(env.storage, 0o777)
    kept = put_file(os.path.join(env.storage, "kept"), b"written by root")
    srv = env.server("process", "--user", "nobody")
    listing(srv.port)
    expect_ok(srv.port, upload_req(b"new", b"by nobody"))
    check(get_content(srv.port, b"kept") == b"written by root", "GET kept")
    st = os.stat(os.path.join(env.storage, "new"))
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
    env.finish(srv, {"kept": kept, "new": h(b"by nobody")})


# ================================================================ main

def run_one(name, binary, tmp, long_run):
    """Runs one test; returns (status, reason): ok, FAIL or SKIP."""
    fn, mode, _ = TESTS[name]
    env = Env(os.path.abspath(binary), tmp, long_run)
    try:
        fn(env, mode)
        return "ok", ""
    except Skip as e:
        return "SKIP", str(e)
    except Exception as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if f.filename == os.path.abspath(__file__)]
        mine = [f for f in frames if f.name == fn.__name__] or frames
        where = "line %d: " % mine[-1].lineno if mine else ""
        kind = "" if isinstance(e, Failure) else type(e).__name__ + ": "
        traceback.print_exc()
        if isinstance(e, Pending):
            where = ""
        return "FAIL", where + kind + str(e)
    finally:
        env.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True)
    p.add_argument("--tmp", help="a fresh directory per test")
    p.add_argument("--run", help="test name")
    p.add_argument("--list", action="store_true", help="list the tests")
    p.add_argument("--long", action="store_true")
    args = p.parse_args()
    if args.list or not args.run:
        for name, (_, _, limit) in TESTS.items():
            print("%-40s %ds" % (name, limit))
        return 0
    tmp = args.tmp or tempfile.mkdtemp(prefix="fileserv-rel-")
    status, reason = run_one(args.run, args.bin, tmp, args.long)
    if status != "FAIL":
        shutil.rmtree(tmp, ignore_errors=True)
    # one line for run.py; the traceback went to stderr
    print("RESULT " + (status if status != "ok" else "ok") +
          ("" if status == "ok" else " " + reason.replace("\n", " ")))
    return 1 if status == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
