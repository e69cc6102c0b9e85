#!/usr/bin/env python3
"""The black-box test harness of fileserv: the test registry, the checks,
the server wrapper, socket and /proc helpers, and the runner of one test.

Tests live in tests/test_TOPIC.py modules: functions registered with
@test (or @case for a numbered case of docs/reliability.md), one per mode
when they take `modes`. tests/run.py imports every tests/test_*.py and
runs each test in its own process group with a time limit:

    python3 tests/harness.py --bin B --tmp DIR --module FILE --run NAME [--long]
    python3 tests/harness.py --bin B --list

so a hung test is killed with its servers and never hangs the run. A test
gets a Ctx: a fresh root holding storage/ and a sibling canary/ of known
files, and the servers and processes it starts (stopped afterwards). A
test fails by raising (check() gives the reason), raises Skip when a tool
or permission is missing here, and Pending for a server feature that is
not there yet. It ends with one line "RESULT ok", "RESULT FAIL reason" or
"RESULT SKIP reason". Every loop is bounded by count and by time; all
traffic stays on loopback. Python 3 stdlib only.

A catalogue case (@case) starts its servers with test-sized limits (idle
2 s, drain 3 s, max upload 8 MiB unless the case overrides them); after
the case, ctx.finish() checks that LIST still works, the storage holds
what the case expects, the canary is unchanged, no temporary file is
left, no worker is a zombie, descriptors are back at baseline (where the
case says so), the stderr is clean, and SIGTERM makes the server exit 0
with its workers. A server that a test kills and restarts on the same
port gets a free port below the ephemeral range (restart_port), and
hundreds of idle connections come from 127.0.0.2: either way no client
socket of a test running in parallel can hold the port a restart needs.
"""
import argparse, base64, collections, hashlib, importlib.util, json, os
import random, re, select, shutil, signal, socket, struct, subprocess, sys
import tempfile, threading, time, traceback

# run as a script, this module is also `harness` for the test modules
sys.modules.setdefault("harness", sys.modules[__name__])

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer.py")
TERM = b"\r\n\r\n"
TMP_PREFIX = ".fileserv-tmp-"
MODES = ("single", "thread", "process")
LOG_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - (INFO|ERROR) - "
                    r"(\S+) - (.+)$")
MiB = 1 << 20

IDLE, DRAIN = 2.0, 3.0          # the catalogue's test-sized limits
MAX_UPLOAD = 8 << 20
LIMITS = {"--idle-timeout": "2s", "--drain-timeout": "3s",
          "--max-upload": "8MiB"}
# Sanitizer builds are slower and hold more memory (ASan's quarantine):
# SLOW scales the latency and CPU bounds of the checks (never the
# server's own limits), MEM the memory bounds. FILESERV_TEST_SLOW
# overrides SLOW.
SANITIZED = any(os.environ.get(v) for v in (
    "ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS", "MSAN_OPTIONS"))
SLOW = float(os.environ.get("FILESERV_TEST_SLOW") or (4 if SANITIZED else 1))
MEM = 8 if SANITIZED else 1


# ---------------------------------------------------------------- registry

Test = collections.namedtuple("Test", "fn mode timeout tags limits")
TESTS = {}  # name -> Test


def test(timeout=60, modes=(None,), tags=(), limits=None):
    """Registers fn once per mode as NAME[mode]. limits: the server
    flags every ctx.server() of the test starts with (unless overridden
    per call); tags: shown with the result and matched by run.py -k."""
    def register(fn):
        for mode in modes:
            name = fn.__name__ + ("[%s]" % mode if mode else "")
            if name in TESTS:
                raise NameError("test %s is defined twice (%s, %s)" % (
                    name, TESTS[name].fn.__code__.co_filename,
                    fn.__code__.co_filename))
            TESTS[name] = Test(fn, mode, timeout, tuple(tags),
                               dict(limits or {}))
        return fn
    return register


def case(num, modes=MODES, timeout=60):
    """Registers case NUM of docs/reliability.md: tagged "case NUM", its
    servers with the test-sized LIMITS."""
    return test(timeout, modes, ("case %d" % num,), LIMITS)


class Failure(Exception):
    pass


class Skip(Exception):
    """The test cannot run here; the message says why."""


class Pending(Failure):
    def __init__(self, what):
        Failure.__init__(self, "pending feature: " + what)


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


def info(fmt, *args):
    """Measurements go to stderr (run.py -v shows them for failed tests)."""
    sys.stderr.write("INFO " + (fmt % args if args else fmt) + "\n")
    sys.stderr.flush()


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


def path_state(path):
    """What is at path: a regular file's sha256, 'link:target', the
    listing of a directory, 'other', or None when nothing is there."""
    if os.path.islink(path):
        return "link:" + os.readlink(path)
    if os.path.isfile(path):
        return sha256(path)
    if os.path.isdir(path):
        return sorted(os.listdir(path))
    return "other" if os.path.lexists(path) else None


def put_file(path, content):
    with open(path, "wb") as f:
        f.write(content)
    return hashlib.sha256(content).hexdigest()


def h(data):
    return hashlib.sha256(data).hexdigest()


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


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        kids = list(children(todo.pop()))
        out += kids
        todo += kids
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


def wait_workers(srv, n, exclude=(), timeout=2):
    """Waits until srv has n live workers, none of them in exclude."""
    def ready():
        kids = srv.workers()
        return (len(kids) == n and not set(kids) & set(exclude)
                and "Z" not in kids.values())
    return wait_for(ready, timeout, 0.02)


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


def start_threads(target, n):
    """Runs target(0) .. target(n - 1), each in a daemon thread; returns
    the threads, started."""
    threads = [threading.Thread(target=target, args=(k,), daemon=True)
               for k in range(n)]
    for t in threads:
        t.start()
    return threads


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else None


# ---------------------------------------------------------------- tools and options

_HELP = {}


def serve_help(binary):
    if binary not in _HELP:
        r = subprocess.run([binary, "serve", "--help"], timeout=10,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _HELP[binary] = r.stdout.decode(errors="replace")
    return _HELP[binary]


def need_flags(ctx, *flags):
    missing = [f for f in flags if f not in serve_help(ctx.bin)]
    if missing:
        raise Pending("%s (not in `fileserv serve --help` yet)"
                      % ", ".join(missing))


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


# ---------------------------------------------------------------- server

class Server:
    """fileserv serve on 127.0.0.1 (port 0 unless given), optionally under
    a wrapper (strace, unshare, fiu-run, prlimit): self.pid is the fileserv
    process itself. Ready when its --ready-fd gives the port (or, with
    ready=False, when it accepts a connection)."""

    stderr_tail = 3000  # bytes of the server's stderr quoted in failures

    def __init__(self, ctx, mode, workers, flags, wrap=(), proc_env=None,
                 preexec=None, keep_signals=False, port=0, ready=True,
                 ns_root=False, stop_timeout=10):
        self.ctx, self.mode, self.storage = ctx, mode, ctx.storage
        self.errlog = ctx.path("server-%d.stderr" % len(ctx.servers))
        self.ns_root, self.stop_timeout = ns_root, stop_timeout
        cmd = list(wrap) + [ctx.bin, "serve", "--mode", mode, "--workers",
                            str(workers), "--port", str(port), "--storage",
                            ctx.storage, "-q"] + list(flags)
        r = w = None
        if ready:
            r, w = os.pipe()
            cmd += ["--ready-fd", str(w)]
        if "strace" in wrap[:1] and SANITIZED:
            # LeakSanitizer cannot run under ptrace; the other checks can
            proc_env = dict(proc_env or os.environ)
            proc_env["ASAN_OPTIONS"] = proc_env.get("ASAN_OPTIONS", "") + \
                ":detect_leaks=0"
        with open(self.errlog, "ab") as err:
            self.proc = subprocess.Popen(
                cmd, pass_fds=(w,) if ready else (), stdin=subprocess.DEVNULL,
                stdout=err, stderr=err, env=proc_env, preexec_fn=preexec,
                restore_signals=not keep_signals)
        ctx.servers.append(self)
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
        binary = os.path.realpath(self.ctx.bin)
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

    def stderr(self):
        try:
            with open(self.errlog, "rb") as f:
                return f.read()[-self.stderr_tail:].decode("utf-8",
                                                           "replace")
        except OSError:
            return ""

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

    def workers(self):
        return children(self.pid)

    def alive(self):
        return self.proc.poll() is None

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

    def stop(self, timeout=None):
        """SIGTERM; returns the exit status. Fails if the server takes
        longer than timeout (its stop_timeout by default) or a worker
        outlives it."""
        timeout = timeout or self.stop_timeout
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


class Ctx:
    """One test's fresh root (storage/ + canary/), its binary, and the
    servers and processes it starts."""

    def __init__(self, binary, root, long_run, limits=None):
        self.bin, self.long, self.root = binary, long_run, root
        self.limits = dict(limits or {})
        os.makedirs(root, exist_ok=True)
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

    def server(self, mode="thread", *extra, workers=4, limits=None, **kw):
        """A server on ctx.storage with the test's limits, updated by
        limits (a value None drops a flag), then the extra flags."""
        lim = dict(self.limits, **(limits or {}))
        flags = [x for k, v in lim.items() if v is not None for x in (k, v)]
        if "--drain-timeout" in lim and "stop_timeout" not in kw:
            kw["stop_timeout"] = DRAIN + 3
        return Server(self, mode, workers, flags + list(extra), **kw)

    def nworkers(self, mode, workers=4):
        return 1 if mode == "single" else workers

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

    def stress_json(self, port, *args, timeout=60, env=None):
        """fileserv stress --json ARGS: (exit status, summary or None,
        stderr)."""
        r = self.cli(port, "stress", "--json", *args, timeout=timeout,
                     env=env)
        try:
            summary = json.loads(r.stdout.decode())
        except ValueError:
            summary = None
        return r.returncode, summary, r.stderr.decode(errors="replace")

    def cli_ok(self, port, *args, **kw):
        r = self.cli(port, *args, **kw)
        check(r.returncode == 0, "fileserv %s: exit %d: %s", " ".join(args),
              r.returncode, r.stderr.decode(errors="replace").strip())
        return r

    def peer(self, port, *args, timeout=60):
        """Runs tests/peer.py (the original's behaviour) as a client."""
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


def stats_data(port):
    return expect_ok(port, b"STATS" + TERM)["data"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def warm(srv):
    """First LIST, then the descriptor baseline."""
    listing(srv.port)
    time.sleep(0.2)
    return fd_count(srv.pids())


# ---------------------------------------------------------------- streaming

def b64_chunks(size, seed=None, chunk=192 * 1024):
    """(raw bytes, base64) pieces of size random bytes; chunk % 3 == 0."""
    rng = random.Random(seed) if seed is not None else None
    left = size
    while left:
        n = min(left, chunk)
        data = rng.randbytes(n) if rng else os.urandom(n)
        yield data, base64.b64encode(data)
        left -= n


def start_upload(port, name, size, stop_after=None, seed=None, timeout=60):
    """Sends UPLOAD name + the base64 of size random bytes and the
    terminator; or, with stop_after, only the first stop_after raw bytes
    (rounded down to whole base64 groups), with no terminator, and
    returns at once, so that the server sees the client stop there.
    Returns (socket, sha256 of the payload or None when stopped short,
    raw bytes sent)."""
    s = connect(port, timeout)
    s.sendall(b"UPLOAD " + name + b" ")
    if stop_after is not None:
        size = min(size, stop_after) // 3 * 3
    digest, sent = hashlib.sha256(), 0
    for data, text in b64_chunks(size, seed):
        digest.update(data)
        s.sendall(text)
        sent += len(data)
    if stop_after is None:
        s.sendall(TERM)
        return s, digest.hexdigest(), sent
    return s, None, sent


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


# ================================================================ runner

def load(path):
    """Imports the test module at path (its tests register in TESTS)."""
    name = os.path.splitext(os.path.basename(path))[0]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def modules():
    """Every tests/test_*.py, in name order."""
    return sorted(os.path.join(HERE, n) for n in os.listdir(HERE)
                  if n.startswith("test_") and n.endswith(".py"))


def run_one(name, binary, root, long_run):
    """Runs one test; returns (status, reason): ok, FAIL or SKIP."""
    t = TESTS[name]
    ctx = Ctx(os.path.abspath(binary), root, long_run, t.limits)
    try:
        t.fn(ctx, t.mode)
        return "ok", ""
    except Skip as e:
        return "SKIP", str(e)
    except Exception as e:
        source = t.fn.__code__.co_filename
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if f.filename == source]
        mine = [f for f in frames if f.name == t.fn.__name__] or frames
        where = "line %d: " % mine[-1].lineno if mine else ""
        kind = "" if isinstance(e, Failure) else type(e).__name__ + ": "
        traceback.print_exc()
        if isinstance(e, Pending):
            where = ""
        return "FAIL", where + kind + str(e)
    finally:
        ctx.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True)
    p.add_argument("--tmp", help="a fresh directory for the test")
    p.add_argument("--module", help="the test module (default: all)")
    p.add_argument("--run", help="test name")
    p.add_argument("--list", action="store_true", help="list the tests")
    p.add_argument("--long", action="store_true")
    args = p.parse_args()
    for path in [args.module] if args.module else modules():
        load(path)
    if args.list or not args.run:
        for name, t in TESTS.items():
            print("%-40s %4ds %s" % (name, t.timeout, " ".join(t.tags)))
        return 0
    tmp = args.tmp or tempfile.mkdtemp(prefix="fileserv-test-")
    status, reason = run_one(args.run, args.bin, tmp, args.long)
    if status != "FAIL":
        shutil.rmtree(tmp, ignore_errors=True)
    # one line for run.py; the traceback went to stderr
    print("RESULT " + status + ("" if status == "ok" else
                                " " + reason.replace("\n", " ")))
    return 1 if status == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
