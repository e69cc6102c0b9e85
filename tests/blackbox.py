#!/usr/bin/env python3
"""Black-box tests for fileserv: real servers on 127.0.0.1, port 0, driven
by raw sockets, the fileserv client and the independent tests/peer.py.

Each test is a function registered with @test; one registered per mode
when it takes `modes`. run.py runs every test in its own process group
(`blackbox.py --bin B --tmp DIR --run NAME`) with a time limit, so a hung
test is killed with its servers and never hangs the run. A test fails by
raising; check() gives the reason. Every test gets a fresh directory and
its own servers, stopped in finally. Python 3 stdlib only.
"""
import argparse, base64, hashlib, json, os, random, re, select, shutil
import signal, socket, struct, subprocess, sys, threading, time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer.py")
TERM = b"\r\n\r\n"
TMP_PREFIX = ".fileserv-tmp-"
MODES = ("single", "thread", "process")
LOG_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - (INFO|ERROR) - "
                    r"(\S+) - (.+)$")

TESTS = {}  # name -> (function, mode, timeout in seconds)


def test(timeout=60, modes=(None,)):
    def register(fn):
        for mode in modes:
            name = fn.__name__ + ("[%s]" % mode if mode else "")
            TESTS[name] = (fn, mode, timeout)
        return fn
    return register


class Failure(Exception):
    pass


def check(cond, message, *args):
    if not cond:
        raise Failure(message % args if args else message)


def wait_for(pred, timeout, interval=0.05):
    """Polls pred() until it is true or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


# ---------------------------------------------------------------- files

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_random(path, size):
    """Writes size random bytes to path; returns its sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 22))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def snapshot(d):
    """name -> sha256 (regular files), link target, 'dir' or 'other'."""
    out = {}
    for e in os.scandir(d):
        if e.is_symlink():
            out[e.name] = "link:" + os.readlink(e.path)
        elif e.is_file(follow_symlinks=False):
            out[e.name] = sha256(e.path)
        elif e.is_dir(follow_symlinks=False):
            out[e.name] = "dir"
        else:
            out[e.name] = "other"
    return out


def temps(d):
    return [n for n in os.listdir(d) if n.startswith(TMP_PREFIX)]


def check_unchanged(d, before, what):
    after = snapshot(d)
    check(not temps(d), "%s: temporary files left: %s", what, temps(d))
    check(after == before, "%s: storage changed: before %s, after %s", what,
          sorted(before.items()), sorted(after.items()))


# ---------------------------------------------------------------- processes

def children(pid):
    """Pids whose parent is pid, with their state letter."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out[int(entry)] = fields[0]
    return out


def gone(pids):
    """True if none of pids runs any more (a zombie has ended)."""
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return False
        except OSError:
            pass
    return True


def fd_count(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return n


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Server:
    """A fileserv server on a free port; ready when the port is known."""

    def __init__(self, ctx, mode, workers, storage, extra):
        self.ctx, self.mode, self.storage = ctx, mode, storage
        self.errlog = ctx.path("server-%d.stderr" % len(ctx.procs))
        r, w = os.pipe()
        cmd = [ctx.bin, "serve", "--mode", mode, "--workers", str(workers),
               "--port", "0", "--storage", storage, "--ready-fd", str(w),
               "-q"] + list(extra)
        with open(self.errlog, "wb") as err:
            self.proc = subprocess.Popen(cmd, pass_fds=(w,),
                                         stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        os.close(w)
        ctx.procs.append(self.proc)
        self.pid = self.proc.pid
        try:
            self.port = self._read_port(r, 10)
        finally:
            os.close(r)

    def _read_port(self, fd, timeout):
        data, deadline = b"", time.monotonic() + timeout
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(left, 0))[0]
            chunk = os.read(fd, 64) if ready else None
            if chunk is None or chunk == b"":
                self.proc.kill()
                raise Failure("server %s: no port on the ready fd (%s): %s"
                              % (self.mode, "timeout" if chunk is None
                                 else "closed", self.stderr()))
            data += chunk
        return int(data)

    stderr_tail = 2000  # bytes of the server's stderr quoted in failures

    def stderr(self):
        try:
            with open(self.errlog, "rb") as f:
                return f.read()[-self.stderr_tail:].decode("utf-8",
                                                           "replace")
        except OSError:
            return ""

    def pids(self):
        return [self.pid] + list(children(self.pid))

    def workers(self):
        return children(self.pid)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status (fails if it takes too long)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("server (%s) still running %gs after SIGTERM"
                          % (self.mode, timeout))


class Ctx:
    """One test's directory, binaries and processes."""

    def __init__(self, binary, root, long_run):
        self.bin, self.root, self.long = binary, root, long_run
        self.procs = []

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def server(self, mode="thread", *extra, workers=4, storage=None):
        storage = storage or self.path("storage")
        os.makedirs(storage, exist_ok=True)
        return Server(self, mode, workers, storage, extra)

    def cli(self, port, *args, cwd=None, timeout=60, env=None):
        """Runs the fileserv client; returns CompletedProcess (bytes)."""
        cmd = [self.bin] + list(args)
        if port is not None:
            cmd += ["-p", str(port)]
        try:
            return subprocess.run(cmd, cwd=cwd or self.root, timeout=timeout,
                                  stdin=subprocess.DEVNULL, env=env,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        except subprocess.TimeoutExpired:
            raise Failure("client %s timed out after %gs" % (args, timeout))

    def cli_ok(self, port, *args, **kw):
        r = self.cli(port, *args, **kw)
        check(r.returncode == 0, "fileserv %s: exit %d: %s", " ".join(args),
              r.returncode, r.stderr.decode(errors="replace").strip())
        return r

    def peer(self, port, *args, timeout=60):
        cmd = [sys.executable, PEER, "--port", str(port)] + list(args)
        try:
            return subprocess.run(cmd, cwd=self.root, timeout=timeout,
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        except subprocess.TimeoutExpired:
            raise Failure("peer %s timed out" % (args,))

    def peer_server(self, storage):
        p = subprocess.Popen([sys.executable, PEER, "serve", "--port", "0",
                              "--storage", storage],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        ready = select.select([p.stdout], [], [], 10)[0]
        line = p.stdout.readline().decode() if ready else ""
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        check(m, "peer server did not start: %r", line)
        return p, int(m.group(1))

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                kids = children(p.pid)
                p.kill()
                for kid in kids:
                    try:
                        os.kill(kid, signal.SIGKILL)
                    except OSError:
                        pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------- sockets

def connect(port, timeout=10):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def recv_all(sock, timeout=10, allow_reset=False):
    """Reads until EOF; fails if that takes more than timeout seconds."""
    data, deadline = bytearray(), time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        check(left > 0, "no end of reply within %gs (got %d bytes: %r)",
              timeout, len(data), bytes(data[:200]))
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            check(allow_reset, "connection reset after %d bytes: %r",
                  len(data), bytes(data[:200]))
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


def raw(port, data, pieces=None, timeout=10, nodelay=False, shut_wr=False,
        allow_reset=False):
    """Sends one request (or pieces: [(bytes, delay)]); returns all bytes
    the server sent until it closed."""
    with connect(port, timeout) as s:
        if nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for chunk, delay in pieces or [(data, 0)]:
                s.sendall(chunk)
                time.sleep(delay)
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            check(allow_reset, "server closed while we were sending")
        return recv_all(s, timeout, allow_reset)


def parse_reply(data, exact=True):
    """Checks the framing of one reply and returns it as a dict. With
    exact=False only the JSON is checked (for tests about other things)."""
    if exact:
        check(data.endswith(TERM), "reply does not end with \\r\\n\\r\\n: "
              "%r", data[-200:])
        check(data.find(TERM) == len(data) - 4,
              "\\r\\n\\r\\n inside the reply at %d of %d", data.find(TERM),
              len(data))
        data = data[:-4]
    try:
        obj = json.loads(data.decode("utf-8").strip())
    except ValueError as e:
        raise Failure("reply is not JSON (%s): %r" % (e, data[:300]))
    check(isinstance(obj, dict) and obj.get("status") in ("OK", "ERROR"),
          "reply without a status: %r", data[:300])
    return obj


def request(port, data, **kw):
    return parse_reply(raw(port, data, **kw))


def expect_ok(port, data, exact=True, **kw):
    r = parse_reply(raw(port, data, **kw), exact)
    check(r["status"] == "OK", "%r: %r", (data or b"")[:80], str(r)[:300])
    return r


def expect_error(port, data, **kw):
    reply = raw(port, data, **kw)
    r = parse_reply(reply, exact=False)
    check(r["status"] == "ERROR", "%r answered %r, want ERROR",
          (data or b"")[:80], str(r)[:300])
    check(isinstance(r.get("data"), str) and r["data"],
          "%r: ERROR without a message: %r", (data or b"")[:80], r)
    return parse_reply(reply)


def upload_req(name, content):
    return b"UPLOAD " + name + b" " + base64.b64encode(content) + TERM


def get_content(port, name, exact=False):
    """The bytes of a file; the reply's framing is get_reply_framing's."""
    req = b"GET " + name + TERM
    r = parse_reply(raw(port, req), exact)
    check(r["status"] == "OK", "%r: %r", req, str(r)[:300])
    check(set(r) == {"status", "data_namafile", "data_file"},
          "GET reply members: %s", sorted(r))
    return base64.b64decode(r["data_file"], validate=True)


def listing(port):
    return expect_ok(port, b"LIST" + TERM)["data"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


# ================================================================ tests

@test(modes=MODES)
def roundtrip(ctx, mode):
    srv = ctx.server(mode)
    # around the server's 192 KiB read chunk: a file ends mid-chunk, on
    # a chunk's last byte, or one byte into the next
    sizes = (0, 1, 2, 3, 4, 5, 6, 7, 1000, 65536, 196607, 196608, 196609,
             393216, 1000003)
    shas = {}
    for size in sizes:
        src = ctx.path("in-%d" % size)
        shas[size] = write_random(src, size)
        ctx.cli_ok(srv.port, "put", src, "f%d.bin" % size, "-q")
        check(sha256(os.path.join(srv.storage, "f%d.bin" % size))
              == shas[size], "stored f%d.bin differs", size)
    ls = ctx.cli_ok(srv.port, "ls").stdout.decode().split("\n")[:-1]
    check(sorted(ls) == sorted("f%d.bin" % s for s in sizes), "ls: %s", ls)
    for size in sizes:
        out = ctx.path("out-%d" % size)
        ctx.cli_ok(srv.port, "get", "f%d.bin" % size, "-o", out, "-q")
        check(sha256(out) == shas[size], "size %d: downloaded bytes differ",
              size)
    # names with spaces, quotes and non-ASCII go through the CLI too
    for name in ("my file.txt", "\u00e9t\u00e9 \"q\" \\b.txt"):
        ctx.cli_ok(srv.port, "put", ctx.path("in-1000"), name, "-q")
        out = ctx.path("named")
        ctx.cli_ok(srv.port, "get", name, "-o", out, "-f", "-q")
        check(sha256(out) == shas[1000], "%r: bytes differ", name)
        check(os.path.exists(os.path.join(srv.storage, name)),
              "%r not stored under its name", name)
    # replacing a file, then deleting it
    ctx.cli_ok(srv.port, "put", ctx.path("in-3"), "f1000.bin", "-q")
    ctx.cli_ok(srv.port, "get", "f1000.bin", "-o", ctx.path("o2"), "-q")
    check(sha256(ctx.path("o2")) == shas[3], "replaced file not served")
    ctx.cli_ok(srv.port, "rm", "f1000.bin", "-q")
    check(not os.path.exists(os.path.join(srv.storage, "f1000.bin")),
          "rm left the file")
    check("f1000.bin" not in listing(srv.port), "rm: still listed")
    check(not temps(srv.storage), "temporary files left")


@test(modes=("thread", "process"))  # single's one worker is the GET's
def replace_keeps_readers(ctx, mode):
    """UPLOAD over a file swaps in a new inode: a GET already sending the
    old version finishes it whole, a hard link to the old version keeps
    its bytes (nothing written in place), and no temporary is left."""
    srv = ctx.server(mode)
    # 27 MB of reply: more than the socket buffers hold
    old, new = os.urandom(20 * 1000 * 1000), os.urandom(1000 * 1000 + 1)
    expect_ok(srv.port, upload_req(b"r", old))
    link = ctx.path("old-link")
    os.link(os.path.join(srv.storage, "r"), link)
    with connect(srv.port) as reader:
        reader.sendall(b"GET r" + TERM)
        first = reader.recv(1000)  # the server is now mid-reply
        expect_ok(srv.port, upload_req(b"r", new))
        reply = parse_reply(first + recv_all(reader, 30))
    check(base64.b64decode(reply["data_file"]) == old,
          "the GET under way did not finish the old version")
    with open(link, "rb") as f:
        check(f.read() == old, "the old version changed in place")
    check(get_content(srv.port, b"r") == new, "the new version not served")
    check(sorted(os.listdir(srv.storage)) == ["r"], "storage holds %s",
          os.listdir(srv.storage))


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


@test(modes=MODES, timeout=180)
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


@test(modes=MODES)
def interop_peer_client(ctx, mode):
    """tests/peer.py (the original's behaviour) as the client."""
    srv = ctx.server(mode)
    files = {}
    for size in (0, 1, 2, 3, 4, 1000, 1 << 20):
        src = ctx.path("p%d" % size)
        files["p%d" % size] = write_random(src, size)
        r = ctx.peer(srv.port, "upload", src, "p%d" % size)
        check(r.returncode == 0, "peer upload %d: %s", size, r.stderr)
    r = ctx.peer(srv.port, "list")
    check(r.returncode == 0 and sorted(json.loads(r.stdout)) == sorted(files),
          "peer list: %s %s", r.stdout, r.stderr)
    for name, digest in files.items():
        out = ctx.path("got-" + name)
        r = ctx.peer(srv.port, "get", name, out)
        check(r.returncode == 0, "peer get %s: %s", name, r.stderr)
        check(sha256(out) == digest, "peer get %s: bytes differ", name)
        check(sha256(os.path.join(srv.storage, name)) == digest,
              "stored %s differs", name)
    r = ctx.peer(srv.port, "get", "missing", ctx.path("nothing"))
    check(r.returncode == 1, "peer get missing: exit %d", r.returncode)
    r = ctx.peer(srv.port, "delete", "p1")
    check(r.returncode == 0, "peer delete: %s", r.stderr)
    r = ctx.peer(srv.port, "list")
    check("p1" not in json.loads(r.stdout), "deleted file still listed")
    r = ctx.peer(srv.port, "delete", "p1")
    check(r.returncode == 1, "peer delete twice: exit %d", r.returncode)


@test()
def interop_peer_server(ctx, _):
    """The fileserv client against tests/peer.py's server."""
    storage = ctx.path("peer-storage")
    _, port = ctx.peer_server(storage)
    files = {}
    for size in (0, 1, 2, 3, 4, 1000, (1 << 20) + 1):
        src = ctx.path("c%d" % size)
        files["c%d" % size] = write_random(src, size)
        ctx.cli_ok(port, "put", src, "-q")
        check(sha256(os.path.join(storage, "c%d" % size)) == files["c%d" % size],
              "peer stored c%d differently", size)
    ls = ctx.cli_ok(port, "ls").stdout.decode().split()
    check(sorted(ls) == sorted(files), "ls against peer: %s", ls)
    for name, digest in files.items():
        out = ctx.path("back-" + name)
        ctx.cli_ok(port, "get", name, "-o", out, "-q")
        check(sha256(out) == digest, "get %s from peer: bytes differ", name)
    r = ctx.cli_ok(port, "get", "c1000", "-o", "-", "-q")
    check(hashlib.sha256(r.stdout).hexdigest() == files["c1000"],
          "get -o - from peer differs")
    ctx.cli_ok(port, "rm", "c3", "-q")
    check(not os.path.exists(os.path.join(storage, "c3")), "rm via peer")
    cwd = ctx.path("cwd")
    os.mkdir(cwd)
    r = ctx.cli(port, "get", "missing", cwd=cwd)
    check(r.returncode == 1 and not os.listdir(cwd),
          "get missing from peer: exit %d, cwd %s", r.returncode,
          os.listdir(cwd))
    r = ctx.cli(port, "stats")
    check(r.returncode == 1, "stats against the original: exit %d (%s)",
          r.returncode, r.stderr)


BAD_REQUESTS = [
    b"FOO x", b"FOO", b"\x00\x01\xff", b"", b" ", b"GET", b"GET ", b"GET a b",
    b"GET  a", b"DELETE", b"DELETE a b", b"LIST x", b"STATS x", b"UPLOAD",
    b"UPLOAD x", b"GETX a", b"GET ../../etc/passwd", b"GET /etc/passwd",
    b"GET ..", b"GET .", b"GET .hidden", b"GET a/b", b"GET a\x00b",
    b"GET a\x01b", b"GET a\x7fb", b"GET a\tb", b"GET " + b"n" * 256,
    b"GET \xff\xfe", b"GET \xc3", b"GET \xed\xa0\x80", b"GET \xc0\xaf",
    b'GET ""', b'GET "a', b'GET "a\\nb"', b"GET .fileserv-tmp-1-1",
    b"DELETE ../../etc/passwd", b"DELETE /etc/passwd", b"DELETE ..",
    b"DELETE .", b"DELETE ../canary/keep", b"DELETE " + b"n" * 256,
    b"UPLOAD ../escape QUJD", b"UPLOAD /tmp/fileserv-escape-%d QUJD"
    % os.getpid(), b"UPLOAD a/../../escape QUJD", b"UPLOAD .hidden QUJD",
    b"UPLOAD .. QUJD", b"UPLOAD a\x00b QUJD", b"UPLOAD \xff QUJD",
    b"UPLOAD " + b"n" * 256 + b" QUJD", b"UPLOAD .fileserv-tmp-1 QUJD",
]


@test(modes=MODES)
def bad_requests(ctx, mode):
    """Every bad input of PROTOCOL.md: an ERROR JSON, nothing changes."""
    srv = ctx.server(mode)
    os.makedirs(ctx.path("canary"))
    with open(ctx.path("canary", "keep"), "wb") as f:
        f.write(b"canary")
    for name in (b"a", b"b"):
        expect_ok(srv.port, upload_req(name, b"content of " + name))
    before, root_before = snapshot(srv.storage), sorted(os.listdir(ctx.root))
    for req in BAD_REQUESTS:
        r = expect_error(srv.port, req + TERM)
        text = json.dumps(r)
        check("root:" not in text and srv.storage not in text,
              "%r leaked: %s", req, text)
        if req.startswith((b"GET ", b"DELETE ", b"UPLOAD ")) and req.count(b" ") == 1:
            check("no such file" not in r["data"],
                  "%r: refused only by the file system: %r", req, r["data"])
        check(listing(srv.port) == ["a", "b"], "LIST after %r", req)
    check_unchanged(srv.storage, before, "bad requests")
    check(sorted(os.listdir(ctx.root)) == root_before,
          "files appeared next to storage: %s", os.listdir(ctx.root))
    check(not os.path.exists("/tmp/fileserv-escape-%d" % os.getpid()),
          "UPLOAD /tmp/... wrote outside storage")
    check(open(ctx.path("canary", "keep"), "rb").read() == b"canary",
          "canary changed")
    # 255 bytes is a valid name: not found, then stored
    n255 = b"n" * 255
    r = expect_error(srv.port, b"GET " + n255 + TERM)
    check("no such file" in r["data"], "255-byte name: %r", r["data"])
    expect_ok(srv.port, upload_req(n255, b"long name"))
    check(get_content(srv.port, n255) == b"long name", "255-byte name")
    # case-insensitive commands
    check(request(srv.port, b"list" + TERM)["data"] == sorted(["a", "b",
          "n" * 255]), "lowercase list")
    r = expect_ok(srv.port, b"gEt a" + TERM, exact=False)
    check(base64.b64decode(r["data_file"]) == b"content of a", "gEt")
    expect_ok(srv.port, b"Delete " + n255 + TERM)
    expect_ok(srv.port, b"stats" + TERM)


BAD_BASE64 = [b"QUJD*QUJD", b"QUJD!", b"====", b"A===", b"QUJDQ", b"QUJDQUI",
              b"QU\x00JD", b"QUJD====", b"QQ==QUJD", b"QUJD\r\nQUJD", b"-_-_",
              b"QUJD\xc3\xa9QUJD", b"QUJD\x00"]


@test(modes=MODES)
def bad_base64(ctx, mode):
    """A bad UPLOAD leaves storage untouched: no file, old version, no temp."""
    srv = ctx.server(mode)
    expect_ok(srv.port, upload_req(b"x", b"old version"))
    before, fds = snapshot(srv.storage), fd_count(srv.pids())
    for data in BAD_BASE64:
        for name in (b"x", b"new"):
            expect_error(srv.port, b"UPLOAD " + name + b" " + data + TERM)
            check_unchanged(srv.storage, before, "UPLOAD %r %r" % (name, data))
            check(listing(srv.port) == ["x"], "LIST after %r", data)
    # a bad byte after megabytes of good data: the error still arrives
    good = base64.b64encode(os.urandom(3 << 20))
    for cut in (0, 4096, len(good) // 2, len(good) - 4):
        body = good[:cut] + b"*" + good[cut:]
        expect_error(srv.port, b"UPLOAD x " + body + TERM, timeout=20)
        check_unchanged(srv.storage, before, "bad byte at %d" % cut)
    check(get_content(srv.port, b"x") == b"old version", "old version lost")
    check(wait_for(lambda: fd_count(srv.pids()) <= fds, 2),
          "descriptors: %d before, %d after", fds, fd_count(srv.pids()))


@test(modes=MODES)
def get_reply_framing(ctx, mode):
    """GET replies end with exactly one \\r\\n\\r\\n, as every reply must
    (the original client reads until it sees one)."""
    srv = ctx.server(mode)
    for size in (0, 1, 2, 3, 4, 100000):
        content = os.urandom(size)
        expect_ok(srv.port, upload_req(b"f%d" % size, content))
        data = raw(srv.port, b"GET f%d" % size + TERM)
        r = parse_reply(data)
        check(set(r) == {"status", "data_namafile", "data_file"} and
              r["data_namafile"] == "f%d" % size, "members: %s", sorted(r))
        check(base64.b64decode(r["data_file"], validate=True) == content,
              "size %d: bytes differ", size)
    for req in (b"LIST", b"STATS", b"GET missing", b"DELETE f0", b"FOO"):
        parse_reply(raw(srv.port, req + TERM))


@test(modes=MODES)
def protocol_details(ctx, mode):
    """Quoted names, split terminators, piecewise uploads, half-close."""
    srv = ctx.server(mode)
    content = os.urandom(300001)
    expect_ok(srv.port, b'UPLOAD "my file.txt" ' + base64.b64encode(content)
              + TERM)
    expect_ok(srv.port, upload_req(b'"q\\"uo\\\\te"', b"quoted"))
    check(sorted(listing(srv.port)) == ["my file.txt", 'q"uo\\te'],
          "LIST: %s", listing(srv.port))
    r = parse_reply(raw(srv.port, b'GET "my file.txt"' + TERM), exact=False)
    check(r["data_namafile"] == "my file.txt", "data_namafile %r",
          r["data_namafile"])
    check(base64.b64decode(r["data_file"], validate=True) == content,
          "quoted GET bytes differ")
    check(get_content(srv.port, b'"q\\"uo\\\\te"') == b"quoted", "escapes")
    check(os.path.exists(os.path.join(srv.storage, 'q"uo\\te')),
          "escaped name stored wrongly: %s", os.listdir(srv.storage))
    # a long listing, sorted
    names = ["n%04d \u00e9\"\\" % i for i in range(1500)]
    for n in names:
        open(os.path.join(srv.storage, n), "wb").close()
    check(listing(srv.port) == sorted(names + ["my file.txt", 'q"uo\\te']),
          "LIST of 1502 files")
    for n in names:
        os.unlink(os.path.join(srv.storage, n))
    # terminator split across sends, and one byte per send
    whole = raw(srv.port, b"LIST" + TERM)
    split = raw(srv.port, None, pieces=[(b"LIS", 0.05), (b"T\r\n\r", 0.3),
                                        (b"\n", 0)], nodelay=True)
    check(split == whole, "split terminator: %r vs %r", split, whole)
    req = b'GET "my file.txt"' + TERM
    one = raw(srv.port, None, pieces=[(req[i:i + 1], 0.002)
                                      for i in range(len(req))], nodelay=True)
    check(base64.b64decode(parse_reply(one, False)["data_file"]) == content,
          "GET sent byte by byte")
    # an upload whose data arrives in many small pieces
    body = upload_req(b"pieces", content)
    parts = [(body[i:i + 7001], 0.001) for i in range(0, len(body), 7001)]
    expect_ok(srv.port, None, pieces=parts, nodelay=True)
    check(get_content(srv.port, b"pieces") == content, "piecewise upload")
    # an upload's terminator split at each of its last bytes
    body = upload_req(b"split", b"hello world!")
    for cut in range(len(body) - 6, len(body)):
        expect_ok(srv.port, None, pieces=[(body[:cut], 0.2),
                                          (body[cut:], 0)], nodelay=True)
    check(get_content(srv.port, b"split") == b"hello world!", "split upload")
    # half-close after the request: the whole reply still arrives
    r = parse_reply(raw(srv.port, req, shut_wr=True), exact=False)
    check(base64.b64decode(r["data_file"]) == content, "half-close GET")
    # an empty upload makes an empty file
    expect_ok(srv.port, b"UPLOAD empty " + TERM)
    check(get_content(srv.port, b"empty") == b"", "empty upload")
    # LF-only or CR-only line ends are not a terminator
    for junk in (b"LIST\n\n", b"LIST\r\n\n", b"LIST\r\r\r\r"):
        data = raw(srv.port, junk, shut_wr=True, timeout=5,
                   allow_reset=True)
        check(not data or parse_reply(data)["status"] == "ERROR",
              "%r was taken as a request: %r", junk, data)


@test(modes=MODES)
def upload_cut_off(ctx, mode):
    """An upload cut mid-stream (RST or FIN) leaves the old version."""
    srv = ctx.server(mode)
    old = os.urandom(1 << 20)
    expect_ok(srv.port, upload_req(b"x", old))
    before, fds = snapshot(srv.storage), fd_count(srv.pids())
    data = base64.b64encode(os.urandom(4 << 20))
    for how in ("rst", "fin", "rst-early", "fin-no-data"):
        s = connect(srv.port)
        s.sendall(b"UPLOAD x " + (b"" if how == "fin-no-data" else
                                  data[:12 if how == "rst-early" else
                                       len(data) // 2]))
        time.sleep(0.2)
        if how.startswith("rst"):
            rst_close(s)
        else:
            s.shutdown(socket.SHUT_WR)
            got = recv_all(s, 10, allow_reset=True)
            check(not got or parse_reply(got)["status"] == "ERROR",
                  "cut upload answered %r", got[:200])
            s.close()
        ok = wait_for(lambda: listing(srv.port) == ["x"] and
                      not temps(srv.storage), 3)
        check(ok, "%s: storage %s", how, os.listdir(srv.storage))
        check_unchanged(srv.storage, before, how)
        check(get_content(srv.port, b"x") == old, "%s: old version lost", how)
    check(wait_for(lambda: fd_count(srv.pids()) <= fds, 2),
          "descriptors: %d before, %d after", fds, fd_count(srv.pids()))
    new = os.urandom(1000)
    expect_ok(srv.port, upload_req(b"x", new))
    check(get_content(srv.port, b"x") == new, "upload after cut-offs")


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


@test(modes=("thread", "process"))
def concurrent_uploads_one_name(ctx, mode):
    """Last writer wins, whole: the file equals exactly one payload."""
    srv = ctx.server(mode)
    payloads = [os.urandom(200000 + i) for i in range(20)]
    results = [None] * 20

    def upload(i):
        try:
            results[i] = request(srv.port, upload_req(b"same", payloads[i]),
                                 timeout=30)
        except Exception as e:  # reported below
            results[i] = e
    threads = [threading.Thread(target=upload, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    for i, r in enumerate(results):
        check(isinstance(r, dict) and r["status"] == "OK",
              "upload %d: %r", i, r)
    final = get_content(srv.port, b"same")
    check(final in payloads, "final content is none of the payloads")
    check(os.listdir(srv.storage) == ["same"], "storage: %s",
          os.listdir(srv.storage))


def wait_workers(srv, n, exclude=(), timeout=2):
    """Waits until the server has n live workers, none of them in exclude."""
    def ready():
        kids = srv.workers()
        return (len(kids) == n and not set(kids) & set(exclude)
                and "Z" not in kids.values())
    return wait_for(ready, timeout)


@test(modes=("process",))
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


@test(modes=("process",))
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


def restart_port():
    """A free port below the ephemeral range, for a server that is killed
    and restarted on the same port: no client socket of a parallel test
    can take it in between."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                pass
    raise Failure("no free port below %d" % low)


@test(modes=("process",))
def master_killed(ctx, mode):
    """SIGKILL of the parent takes the workers with it; a restart on the
    same port serves at once and sweeps stale temporaries."""
    srv = ctx.server(mode, "--port", str(restart_port()), workers=3)
    check(wait_workers(srv, 3), "3 workers expected: %s", srv.workers())
    kids = list(srv.workers())
    srv.proc.kill()
    srv.proc.wait(5)
    check(wait_for(lambda: gone(kids), 1),
          "workers survived the parent's SIGKILL")
    stale = os.path.join(srv.storage, TMP_PREFIX + "stale")
    with open(stale, "wb") as f:
        f.write(b"partial")
    again = ctx.server(mode, "--port", str(srv.port), workers=3)
    check(again.port == srv.port, "restart got port %d", again.port)
    check(listing(again.port) == [], "LIST after restart")
    check(not os.path.exists(stale), "stale temporary not swept")


@test(modes=("process",))
def worker_killed_mid_upload(ctx, mode):
    srv = ctx.server(mode, workers=1)
    old = os.urandom(100000)
    expect_ok(srv.port, upload_req(b"x", old))
    before = snapshot(srv.storage)
    check(wait_workers(srv, 1), "one worker expected")
    s = connect(srv.port)
    s.sendall(b"UPLOAD x " + base64.b64encode(os.urandom(2 << 20)))
    time.sleep(0.3)
    victim = list(srv.workers())[0]
    os.kill(victim, signal.SIGKILL)
    got = recv_all(s, 5, allow_reset=True)
    check(got == b"", "a killed worker answered %r", got[:100])
    s.close()
    check(wait_workers(srv, 1, exclude=[victim]), "no new worker")
    check(get_content(srv.port, b"x") == old, "old version lost")
    check_unchanged(srv.storage, before, "worker killed mid-upload")


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


@test(modes=MODES)
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


@test(modes=MODES)
def second_signal(ctx, mode):
    """A stalled client delays the exit; a second SIGTERM ends it at once."""
    srv = ctx.server(mode, "--drain-timeout", "30s")
    s = connect(srv.port)
    s.sendall(b"UPLOAD x QUJD")
    time.sleep(0.3)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    check(srv.alive(), "exited before the drain (in-flight upload)")
    srv.proc.send_signal(signal.SIGTERM)
    try:
        srv.proc.wait(2)
    except subprocess.TimeoutExpired:
        raise Failure("still running 2 s after the second SIGTERM")
    s.close()
    check(not temps(srv.storage) and not os.listdir(srv.storage),
          "storage after the exit: %s", os.listdir(srv.storage))


def stats_data(port):
    return expect_ok(port, b"STATS" + TERM)["data"]


@test(modes=MODES)
def stats_counters(ctx, mode):
    srv = ctx.server(mode)
    s0 = stats_data(srv.port)
    check(s0["mode"] == mode and s0["workers"] == (1 if mode == "single"
                                                  else 4),
          "mode/workers: %s %s", s0["mode"], s0["workers"])
    for key in ("requests", "succeeded", "failed", "bytes_in", "bytes_out",
                "connections", "uptime_s", "commands"):
        check(key in s0, "STATS lacks %s: %s", key, sorted(s0))
    ok_reqs = [b"LIST", b"UPLOAD f QUJD", b"GET f", b"LIST", b"DELETE f"]
    bad_reqs = [b"GET missing", b"FOO", b"GET ..", b"DELETE missing"]
    for _ in range(3):  # spread over the workers
        for req in ok_reqs:
            expect_ok(srv.port, req + TERM, exact=False)
        for req in bad_reqs:
            expect_error(srv.port, req + TERM)
    want = (s0["succeeded"] + 15, s0["failed"] + 12, s0["requests"] + 27)
    got = lambda s: (s["succeeded"], s["failed"], s["requests"])
    check(wait_for(lambda: got(stats_data(srv.port)) == want, 2),
          "succeeded/failed/requests %s, want %s", got(stats_data(srv.port)),
          want)
    s1 = stats_data(srv.port)
    c0, c1 = s0["commands"], s1["commands"]
    for cmd, ok, bad in (("LIST", 6, 0), ("UPLOAD", 3, 0), ("GET", 3, 6),
                         ("DELETE", 3, 3)):
        check(c1[cmd]["succeeded"] - c0[cmd]["succeeded"] == ok and
              c1[cmd]["failed"] - c0[cmd]["failed"] == bad,
              "%s counters: %s -> %s", cmd, c0[cmd], c1[cmd])
    check(s1["bytes_in"] > s0["bytes_in"] and
          s1["bytes_out"] > s0["bytes_out"], "byte counters did not grow")
    check(s1["connections"] >= s0["connections"] + 27, "connections")
    # STATS does not count itself in the totals
    for _ in range(5):
        stats_data(srv.port)
    check(got(stats_data(srv.port)) == want, "STATS changed the totals")
    r = ctx.cli_ok(srv.port, "stats")
    check(json.loads(r.stdout)["succeeded"] == want[0], "fileserv stats: %s",
          r.stdout[:200])


@test()
def client_cli(ctx, _):
    srv = ctx.server("thread")
    expect_ok(srv.port, upload_req(b"f", b"version 1"))
    cwd = ctx.path("cwd")
    os.mkdir(cwd)
    run = lambda *a, **kw: ctx.cli(srv.port, *a, cwd=cwd, **kw)
    ctx.cli_ok(srv.port, "get", "f", "-q", cwd=cwd)
    check(open(os.path.join(cwd, "f"), "rb").read() == b"version 1", "get")
    expect_ok(srv.port, upload_req(b"f", b"version 2"))
    for args in (["get", "f"], ["get", "f", "-o", "f"],
                 ["download", "f"]):
        r = run(*args)
        check(r.returncode != 0, "%s overwrote without -f", args)
        check(b"exists" in r.stderr, "%s: message %r", args, r.stderr)
        check(open(os.path.join(cwd, "f"), "rb").read() == b"version 1",
              "%s changed the file", args)
    ctx.cli_ok(srv.port, "get", "f", "-f", "-q", cwd=cwd)
    check(open(os.path.join(cwd, "f"), "rb").read() == b"version 2", "-f")
    before = sorted(os.listdir(cwd))
    r = run("get", "missing")
    check(r.returncode == 1, "get missing: exit %d", r.returncode)
    check(b"missing" in r.stderr, "message: %r", r.stderr)
    check(sorted(os.listdir(cwd)) == before, "get missing left %s",
          os.listdir(cwd))
    r = run("get", "missing", "-o", os.path.join(cwd, "out"))
    check(r.returncode == 1 and sorted(os.listdir(cwd)) == before,
          "get missing -o: exit %d, %s", r.returncode, os.listdir(cwd))
    r = ctx.cli_ok(srv.port, "get", "f", "-o", "-", "-q", cwd=cwd)
    check(r.stdout == b"version 2", "-o -: %r", r.stdout)
    r = run("get", "f", "-o", ctx.path("no", "such", "dir", "x"))
    check(r.returncode == 3, "get into a missing dir: exit %d", r.returncode)
    # usage errors: exit 2 and a message naming the problem
    for args, word in ((["get", "--bogus", "f"], b"--bogus"),
                       (["ls", "-z"], b"-z"), (["put", "--nope", "x"],
                                               b"--nope"),
                       (["get"], b"NAME"), (["ls", "extra"], b"argument"),
                       (["rm"], b"NAME"), (["put"], b"FILE"),
                       (["get", "f", "-p", "99999"], b"99999"),
                       (["get", "f", "-t", "soon"], b"soon")):
        r = ctx.cli(None, *args, cwd=cwd)
        check(r.returncode == 2, "%s: exit %d", args, r.returncode)
        check(word in r.stderr, "%s: message %r lacks %r", args, r.stderr,
              word)
    for args in (["frobnicate"], []):
        r = ctx.cli(None, *args, cwd=cwd)
        check(r.returncode == 2, "fileserv %s: exit %d", args, r.returncode)
    for args, word in ((["serve", "--mode", "bogus"], b"bogus"),
                       (["serve", "--workers", "0"], b"0"),
                       (["serve", "--bogus"], b"--bogus"),
                       (["serve", "--idle-timeout", "0"], b"idle"),
                       (["serve", "--max-upload", "lots"], b"lots")):
        r = ctx.cli(None, *args, cwd=cwd, timeout=5)
        check(r.returncode == 2 and word in r.stderr, "%s: exit %d, %r",
              args, r.returncode, r.stderr)
    # connection refused: exit 3
    r = ctx.cli(free_port(), "ls", cwd=cwd)
    check(r.returncode == 3, "refused: exit %d", r.returncode)
    check(b"refused" in r.stderr.lower(), "refused: %r", r.stderr)
    # local failures: exit 3
    r = run("put", ctx.path("does-not-exist"))
    check(r.returncode == 3, "put of a missing file: exit %d", r.returncode)
    r = run("put", cwd)
    check(r.returncode == 3, "put of a directory: exit %d", r.returncode)
    r = run("rm", "missing")
    check(r.returncode == 1, "rm missing: exit %d", r.returncode)
    # --help everywhere, --version
    for cmd in ("get", "put", "ls", "rm", "stats", "download", "upload",
                "list", "delete", "serve"):
        r = ctx.cli(None, cmd, "--help", cwd=cwd, timeout=5)
        check(r.returncode == 0 and b"usage" in r.stdout.lower(),
              "%s --help: exit %d", cmd, r.returncode)
    r = ctx.cli(None, "--help", cwd=cwd)
    check(r.returncode == 0 and b"usage" in r.stdout, "--help")
    r = ctx.cli(None, "--version", cwd=cwd)
    check(r.returncode == 0 and re.search(rb"fileserv \d+\.\d+\.\d+",
                                          r.stdout), "--version: %r",
          r.stdout)
    # -s HOST:PORT and $FILESERV_SERVER
    r = ctx.cli(None, "ls", "-s", "127.0.0.1:%d" % srv.port, cwd=cwd)
    check(r.returncode == 0 and r.stdout == b"f\n", "-s host:port: %r",
          r.stdout)
    env = dict(os.environ, FILESERV_SERVER="127.0.0.1:%d" % srv.port)
    r = ctx.cli(None, "ls", cwd=cwd, env=env)
    check(r.returncode == 0 and r.stdout == b"f\n", "$FILESERV_SERVER")
    ctx.cli_ok(srv.port, "rm", "f", "-q")
    check(ctx.cli_ok(srv.port, "ls").stdout == b"", "ls after rm")


class FakeServer:
    """Answers its connections, in order, with canned reply bytes (then
    closes), after reading each request head."""

    def __init__(self, replies):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.thread = threading.Thread(target=self.serve, args=(replies,),
                                       daemon=True)
        self.thread.start()

    def serve(self, replies):
        for reply in replies:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                head = b""
                try:
                    while TERM not in head:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    self.requests.append(head)
                    conn.sendall(reply)
                except OSError:
                    pass
        self.sock.close()


@test()
def client_bad_server(ctx, _):
    """The client against a broken server: a clear exit status, and a
    failed download leaves no file, no temporary, no change."""
    b64 = base64.b64encode(b"right bytes? /?/").decode()
    good = ('{ "data_file" :"%s" ,"data_namafile":"f",\n"status" : "OK" }'
            % b64.replace("/", "\\/")).encode() + TERM
    cases = [  # (reply, exit status)
        (b'{"status": "OK", "data_namafile": "f", "data_file": "QUJD*"}'
         + TERM, 3),
        (b'{"status": "OK", "data_namafile": "f", "data_file": "QUJDQUJD',
         3),
        (b'{"status": "OK", "data_namafile": "f", "data_file": "QUJDQ"}'
         + TERM, 3),
        (b"HTTP/1.0 200 OK" + TERM, 3),
        (b"", 3),
        (b'{"status": "ERROR", "data": "no such file: f"}' + TERM, 1),
        (good, 0),
    ]
    fake = FakeServer([reply for reply, _ in cases] * 2)
    cwd = ctx.path("cwd")
    os.mkdir(cwd)
    for reply, want in cases:
        r = ctx.cli(fake.port, "get", "f", cwd=cwd, timeout=20)
        check(r.returncode == want, "reply %r: exit %d, want %d (%s)",
              reply[:60], r.returncode, want, r.stderr)
        files = os.listdir(cwd)
        check(files == (["f"] if want == 0 else []),
              "reply %r: cwd holds %s", reply[:60], files)
        if want == 0:
            check(open(os.path.join(cwd, "f"), "rb").read() ==
                  b"right bytes? /?/", "escaped reply: wrong bytes")
            os.unlink(os.path.join(cwd, "f"))
    check(fake.requests[0] == b"GET f" + TERM, "request %r",
          fake.requests[0])
    # a failed forced download leaves the existing file alone
    with open(os.path.join(cwd, "f"), "wb") as f:
        f.write(b"keep")
    for reply, want in cases:
        r = ctx.cli(fake.port, "get", "f", "-f", cwd=cwd, timeout=20)
        check(r.returncode == want, "-f, reply %r: exit %d", reply[:60],
              r.returncode)
        check(os.listdir(cwd) == ["f"], "-f: cwd holds %s", os.listdir(cwd))
        if want:
            check(open(os.path.join(cwd, "f"), "rb").read() == b"keep",
                  "-f, reply %r: the old file changed", reply[:60])


@test(modes=MODES)
def symlinks_and_special_files(ctx, mode):
    os.makedirs(ctx.path("canary"))
    canary = ctx.path("canary", "keep")
    with open(canary, "wb") as f:
        f.write(b"canary bytes")
    storage = ctx.path("storage")
    os.makedirs(os.path.join(storage, "d"))
    for name, content in (("a", b"regular"), (".hidden", b"hidden"),
                          ("d/inner", b"inner")):
        with open(os.path.join(storage, name), "wb") as f:
            f.write(content)
    os.symlink(canary, os.path.join(storage, "link"))
    os.symlink("../canary/keep", os.path.join(storage, "rel"))
    os.symlink("d", os.path.join(storage, "dlink"))
    os.symlink("/nonexistent", os.path.join(storage, "dangling"))
    os.symlink("/etc/passwd", os.path.join(storage, "pw"))
    os.mkfifo(os.path.join(storage, "p"))
    for bad in (b"new\nline", b"\xff\xfe", b"tab\there"):  # never listed
        with open(os.path.join(storage.encode(), bad), "wb") as f:
            f.write(b"unreachable")
    srv = ctx.server(mode)
    check(listing(srv.port) == ["a"], "LIST shows %s", listing(srv.port))
    for name in (b"link", b"rel", b"dlink", b"dangling", b"pw", b"d", b"p",
                 b".hidden"):
        t0 = time.monotonic()
        r = expect_error(srv.port, b"GET " + name + TERM, timeout=5)
        check(time.monotonic() - t0 < 2, "GET %r took %.1fs", name,
              time.monotonic() - t0)
        check("canary" not in json.dumps(r) and "root:" not in json.dumps(r),
              "GET %r leaked: %r", name, r)
    expect_ok(srv.port, b"DELETE link" + TERM)
    check(not os.path.lexists(os.path.join(storage, "link")), "link kept")
    expect_error(srv.port, b"DELETE d" + TERM)
    expect_error(srv.port, upload_req(b"d", b"over a directory"))
    check(os.path.isdir(os.path.join(storage, "d")) and
          os.listdir(os.path.join(storage, "d")) == ["inner"],
          "DELETE or UPLOAD changed a directory")
    check(not temps(storage), "temporary files left: %s", temps(storage))
    r = request(srv.port, upload_req(b"rel", b"through the link?"))
    rel = os.path.join(storage, "rel")
    if r["status"] == "OK":
        check(not os.path.islink(rel), "UPLOAD wrote through a symlink")
    check(open(canary, "rb").read() == b"canary bytes", "canary changed")
    check(os.listdir(ctx.path("canary")) == ["keep"], "canary dir changed")
    check(listing(srv.port) == (["a", "rel"] if r["status"] == "OK"
                                else ["a"]), "LIST at the end")


@test(modes=MODES)
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


@test(modes=MODES)
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


@test(modes=MODES)
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


@test(modes=MODES, timeout=120)
def garbage_smoke(ctx, mode):
    """Seeded random requests: a reply or a close, each quickly; no fd
    leak; round trips still intact afterwards."""
    srv = ctx.server(mode, "--idle-timeout", "2s")
    listing(srv.port)
    time.sleep(0.2)
    fds = fd_count(srv.pids())
    rng = random.Random(1234)
    tokens = [b"LIST", b"GET", b"UPLOAD", b"DELETE", b"STATS", b"list",
              b" ", b" ", b" ", b'"', b"\\", TERM, b"\r\n", b"\r", b"\n",
              b"x", b"..", b"/", b".", b"QUJD", b"====", b"=", b"\x00",
              b"\xff", b"\xc3\xa9", b"a" * 300]
    for i in range(1000 if ctx.long else 200):
        if rng.random() < 0.2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(64)))
        else:
            data = b"".join(rng.choice(tokens)
                            for _ in range(rng.randrange(1, 12)))
        if rng.random() < 0.5:
            data += TERM
        t0 = time.monotonic()
        got = raw(srv.port, data, shut_wr=True, timeout=4, allow_reset=True)
        check(time.monotonic() - t0 < 3, "input %d (%r) took %.1fs", i,
              data[:60], time.monotonic() - t0)
        if got:
            parse_reply(got)
    for size in (0, 1, 2, 3, 1000):
        content = os.urandom(size)
        expect_ok(srv.port, upload_req(b"rt", content))
        check(get_content(srv.port, b"rt") == content, "round trip %d", size)
    check(wait_for(lambda: fd_count(srv.pids()) <= fds, 3),
          "descriptors: %d before, %d after", fds, fd_count(srv.pids()))
    check(not temps(srv.storage), "temporary files left")
    check(srv.alive(), "server died")


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
    # one line for run.py; the traceback went to stderr
    print("RESULT " + ("ok" if ok else "FAIL " + reason.replace("\n", " ")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
