"""The client against hostile servers: fake servers on 127.0.0.1, port 0,
that send replies which never end, have the wrong shape, carry terminal
escapes in names, trickle, stop reading an upload, or list far more than
one reply member may hold. Each class is driven through the CLI and
through the Lua client (`fileserv run` with fileserv.client). Every fake
server thread stops on its own deadline; every client run has a time
limit.
"""
import base64, json, os, socket, subprocess, threading, time

from harness import *  # noqa: F401,F403  (tests/harness.py)

# The client's stated bound (README): a few MB beyond its baseline. The
# check allows for the executable, libc and Lua themselves, and for
# sanitizer builds.
RSS_LIMIT_KB = 48 * 1024 * MEM
SERVER_LIFE = 60  # seconds a fake server thread may run at most


class Hostile:
    """Accepts connections; each runs behave(conn, head) in a thread."""

    def __init__(self, behave):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(1)
        self.port = self.sock.getsockname()[1]
        self.behave = behave
        self.deadline = time.monotonic() + SERVER_LIFE
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def alive(self):
        return time.monotonic() < self.deadline

    def accept_loop(self):
        while self.alive():
            try:
                conn = self.sock.accept()[0]
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,),
                             daemon=True).start()

    def serve(self, conn):
        with conn:
            conn.settimeout(10)
            try:
                head = b""
                while b" " not in head and TERM not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                self.behave(self, conn, head)
            except OSError:
                pass  # the client gave up, as it should


def canned(reply):
    """Reads the request, sends reply and closes."""
    def behave(srv, conn, head):
        while TERM not in head and len(head) < 1 << 20:
            chunk = conn.recv(65536)
            if not chunk:
                break
            head += chunk
        conn.settimeout(SERVER_LIFE)
        conn.sendall(reply)
    return behave


def endless(prefix, member):
    """Sends prefix, then member(i) for i = 0, 1, ... until the client
    leaves or the server's life ends."""
    def behave(srv, conn, head):
        conn.sendall(prefix)
        i = 0
        while srv.alive():
            conn.sendall(b"".join(member(i + k) for k in range(1000)))
            i += 1000
    return behave


def trickle(reply, pause):
    """Sends reply one byte every `pause` seconds, then keeps the
    connection open."""
    def behave(srv, conn, head):
        for i in range(len(reply)):
            if not srv.alive():
                return
            conn.sendall(reply[i:i + 1])
            time.sleep(pause)
        while srv.alive():
            time.sleep(0.2)
    return behave


def run_client(ctx, args, timeout=60, stdout=None):
    """Runs fileserv with args; returns (exit status, stdout, stderr,
    peak RSS in kB, seconds)."""
    out = stdout or subprocess.PIPE
    t0 = time.monotonic()
    p = subprocess.Popen([ctx.bin] + args, cwd=ctx.path("cwd"),
                         stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.PIPE)
    ctx.procs.append(p)
    box = {}

    def drain():
        box["out"] = p.stdout.read() if p.stdout else b""
        box["err"] = p.stderr.read()
    def sample():  # ru_maxrss would count the forking Python's pages
        while True:
            try:
                box["hwm"] = max(box.get("hwm", 0),
                                 vm_hwm_kb(p.pid))
            except OSError:
                return
            if p.returncode is not None:
                return
            time.sleep(0.02)
    threads = start_threads(lambda k: (drain, sample)[k](), 2)
    killer = threading.Timer(timeout, p.kill)
    killer.start()
    try:
        p.wait()
    finally:
        killer.cancel()
    took = time.monotonic() - t0
    for t in threads:
        t.join(10)
    check(took < timeout, "fileserv %s: killed after %gs (peak RSS %d kB)",
          " ".join(args), timeout, box.get("hwm", 0))
    return (p.returncode, box.get("out", b""),
            box.get("err", b"").decode(errors="replace"), box.get("hwm", 0),
            took)


def setup(ctx):
    os.makedirs(ctx.path("cwd"), exist_ok=True)


def lua(ctx, port, body, timeout=60):
    """Runs a Lua script with `c`, a client of the fake server (-t 2),
    and `out(...)`, which prints one line; returns run_client's tuple."""
    script = ctx.path("script.lua")
    with open(script, "w") as f:
        f.write('local fileserv = require "fileserv"\n'
                'local c = fileserv.client { host = "127.0.0.1", '
                'port = %d, timeout = 2 }\n'
                'local function out(...) print(table.concat({...}, "|")) end\n'
                % port + body)
    return run_client(ctx, ["run", script], timeout)


def cli(port, *args):
    return list(args) + ["-p", str(port), "-t", "2", "-q"]


# ---------------------------------------------------------------- memory

ENDLESS = endless(b'{"status": "OK", "data_namafile": "f", ',
                  lambda i: b'"k%d": "%s", ' % (i, b"x" * 100))


@test(timeout=120)
def endless_members(ctx, _):
    """A reply whose members never end: every command and the Lua client
    fail with exit 3 (nil, class protocol) and 'too large' within the
    time limit, their peak RSS under the stated bound."""
    setup(ctx)
    srv = Hostile(ENDLESS)
    with open(ctx.path("cwd", "up.bin"), "wb") as f:
        f.write(b"u" * 1000)
    for args in (["get", "f"], ["ls"], ["stats"], ["rm", "f"],
                 ["put", "up.bin"]):
        rc, _, err, rss, _ = run_client(ctx, cli(srv.port, *args), 30)
        check(rc == 3 and "too large" in err, "%s: exit %d: %s", args, rc,
              err)
        check(rss < RSS_LIMIT_KB, "%s: peak RSS %d kB", args, rss)
    check(not os.path.exists(ctx.path("cwd", "f")), "get wrote a file")
    rc, out, err, rss, _ = run_client(ctx, [
        "stress", "-s", "127.0.0.1:%d" % srv.port, "--op", "download",
        "--name", "f", "-c", "2", "-i", "2", "-t", "2"], 30)
    check(rc != 0 and b"4 failed" in out and b"too large" in out,
          "stress: exit %d: %s %s", rc, out, err)
    check(rss < RSS_LIMIT_KB, "stress: peak RSS %d kB", rss)
    rc, out, err, rss, _ = lua(ctx, srv.port, """
for _, call in ipairs { {"get", "f"}, {"ls"}, {"stats"}, {"rm", "f"} } do
  local r, msg, class = c[call[1]](c, call[2])
  out(call[1], tostring(r), class, msg)
end
""", 60)
    lines = out.decode().splitlines()
    check(rc == 0 and len(lines) == 4, "lua: exit %d: %s %s", rc, out, err)
    for line in lines:
        check("|nil|protocol|" in line and "too large" in line, "lua: %s",
              line)
    check(rss < RSS_LIMIT_KB, "lua: peak RSS %d kB", rss)


@test(timeout=180)
def endless_listing_bounded(ctx, _):
    """A listing that never ends: ls prints names as they come, in
    bounded memory; c:ls(fn) gets them one by one, and an error raised in
    fn ends the listing; c:ls() stops at its table's 256 MiB."""
    setup(ctx)
    srv = Hostile(endless(b'{"status": "OK", "data": [',
                          lambda i: b'"name-%08d-%s", ' % (i, b"n" * 200)))
    p = subprocess.Popen([ctx.bin] + cli(srv.port, "ls"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    ctx.procs.append(p)
    lines, deadline = 0, time.monotonic() + 3
    while time.monotonic() < deadline:
        lines += p.stdout.read(1 << 20).count(b"\n")
    hwm = vm_hwm_kb(p.pid)
    p.kill()
    p.wait()
    check(lines > 10000, "ls printed %d names in 3 s", lines)
    check(hwm < RSS_LIMIT_KB, "ls peak RSS %d kB after %d names", hwm, lines)
    rc, out, err, rss, _ = lua(ctx, srv.port, """
local n = 0
local ok, e = pcall(c.ls, c, function(name)
  n = n + 1
  if n == 50000 then error("enough") end
end)
out(tostring(ok), tostring(e):match("enough") or tostring(e), n)
""")
    check(rc == 0 and out.decode().strip() == "false|enough|50000",
          "lua ls(fn): exit %d: %s %s", rc, out, err)
    rc, out, err, _, _ = lua(ctx, srv.port, """
local r, msg, class = c:ls()
out(tostring(r), class, msg)
""", 120)
    check(rc == 0 and out.startswith(b"nil|local|listing larger than c:ls() "
                                     b"keeps (256 MiB)"),
          "lua ls(): exit %d: %s %s", rc, out, err)


# ---------------------------------------------------------------- shape

GET_SHAPES = [
    b'{"status": "OK", "data_namafile": "f"}',
    b'{"status": "OK", "data_namafile": "f", "data_file": null}',
    b'{"status": "OK", "data_namafile": "f", "data_file": 7}',
    b'{"status": "OK", "data_file": "QUJD", "data_file": "REVG"}',
    b'{"status": "YES", "data_file": "QUJD"}',
    b'{"data_file": "QUJD"}',
]
LIST_SHAPES = [
    b'{"status": "OK", "data": {"a": "b"}}',
    b'{"status": "OK", "data": "a.txt"}',
    b'{"status": "OK"}',
    b'{"status": "OK", "data": ["a", 1]}',
    b'{"status": "OK", "data": ["a"], "data": ["b"]}',
]


@test(timeout=120)
def reply_shapes(ctx, _):
    """A reply without its command's shape is a protocol error: exit 3,
    no file written, nothing listed; the Lua client returns nil, class
    protocol."""
    setup(ctx)
    for reply in GET_SHAPES:
        srv = Hostile(canned(reply + TERM))
        rc, _, err, _, _ = run_client(ctx, cli(srv.port, "get", "f"), 20)
        check(rc == 3 and "malformed" in err, "get %s: exit %d: %s", reply,
              rc, err)
        check(os.listdir(ctx.path("cwd")) == [], "get %s left %s", reply,
              os.listdir(ctx.path("cwd")))
        rc, out, err, _, _ = lua(ctx, srv.port, """
local r, msg, class = c:get("f", "lua.out")
out(tostring(r), class, msg)
""")
        check(rc == 0 and out.startswith(b"nil|protocol|malformed"),
              "lua get %s: %s %s", reply, out, err)
        check(not os.path.exists(ctx.path("cwd", "lua.out")),
              "lua get %s wrote a file", reply)
    for reply in LIST_SHAPES:
        srv = Hostile(canned(reply + TERM))
        rc, out, err, _, _ = run_client(ctx, cli(srv.port, "ls"), 20)
        check(rc == 3 and "malformed" in err and
              out in (b"", b"a\n"), "ls %s: exit %d: %r %s", reply, rc, out,
              err)
        rc, out, err, _, _ = lua(ctx, srv.port, """
local r, msg, class = c:ls()
out(tostring(r), class, msg)
""")
        check(rc == 0 and out.startswith(b"nil|protocol|malformed"),
              "lua ls %s: %s %s", reply, out, err)
    srv = Hostile(canned(b'{"status": "OK", "data": "counters"}' + TERM))
    rc, _, err, _, _ = run_client(ctx, cli(srv.port, "stats"), 20)
    check(rc == 3 and "malformed" in err, "stats: exit %d: %s", rc, err)


# ---------------------------------------------------------------- terminal

HOSTILE_NAMES = [
    (b"\\u001b]0;pwned\\u0007", "\\x1b]0;pwned\\a"),
    (b"two\\nlines\\r", "two\\nlines\\r"),
    (b"csi\\u009b2J", "csi\\u009b2J"),
    (b"back\\\\slash", "back\\\\slash"),
    (b"\\u202etxt.exe", "\\u202etxt.exe"),
    (b"raw\xff\xfe", "raw\\xff\\xfe"),
    (b"nul\\u0000x\\u007f", "nul\\x00x\\x7f"),
    (b"caf\xc3\xa9", "caf\u00e9"),
]


@test()
def ls_names_visible(ctx, _):
    """ls prints every byte of a name visibly, one name a line; the
    server's ERROR message, rm's message and the text in stats are shown
    the same way."""
    setup(ctx)
    names = b", ".join(b'"%s"' % raw for raw, _ in HOSTILE_NAMES)
    srv = Hostile(canned(b'{"status": "OK", "data": [%s]}' % names + TERM))
    rc, out, err, _, _ = run_client(ctx, cli(srv.port, "ls"), 20)
    want = "".join(shown + "\n" for _, shown in HOSTILE_NAMES)
    check(rc == 0 and out == want.encode(), "ls: exit %d: %r, want %r (%s)",
          rc, out, want, err)
    srv = Hostile(canned(
        b'{"status": "ERROR", "data": "no\\u001b[2J such\\nfile"}' + TERM))
    rc, _, err, _, _ = run_client(ctx, cli(srv.port, "get", "f"), 20)
    check(rc == 1 and "no\\x1b[2J such\\nfile" in err and "\x1b" not in err,
          "get ERROR: exit %d: %r", rc, err)
    srv = Hostile(canned(b'{"status": "OK", "data": {"mode": "\\u001b[2Jt", '
                         b'"workers": 1, "commands": {"G\\u009bT": '
                         b'{"requests": 1}}}}' + TERM))
    rc, out, err, _, _ = run_client(ctx, cli(srv.port, "stats"), 20)
    check(rc == 0 and b"\\x1b[2Jt mode" in out and b"G\\u009bT" in out
          and b"\x1b" not in out and b"\xc2\x9b" not in out,
          "stats: exit %d: %r %s", rc, out, err)
    srv = Hostile(canned(b'{"status": "OK", "data": "gone\\u001b[2J"}'
                         + TERM))
    rc, out, err, _, _ = run_client(ctx, ["rm", "f", "-p", str(srv.port)],
                                    20)
    check(rc == 0 and out == b"gone\\x1b[2J\n", "rm: exit %d: %r %s", rc,
          out, err)


# ---------------------------------------------------------------- time

GOOD_GET = (b'{"status": "OK", "data_namafile": "f", "data_file": "%s"}'
            % base64.b64encode(b"right bytes"))
TIME_LIMIT = 7  # -t 2: a bounded wait ends well inside this


def timed_out(rc, err, took):
    return (rc == 3 and "timed out" in err and "temporarily" not in err
            and took < TIME_LIMIT)


@test(timeout=120)
def trickled_reply(ctx, _):
    """A reply that trickles one byte every 0.2 s (each byte beats -t 2):
    every command gives up with 'timed out', exit 3, and the Lua client
    with class timeout."""
    setup(ctx)
    replies = {"get": GOOD_GET, "ls": b'{"status": "OK", "data": ["a", '
               b'"b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]}',
               "stats": b'{"status": "OK", "data": {"requests": 1, '
               b'"succeeded": 1, "failed": 0, "bytes_in": 0}}'}
    for cmd, reply in replies.items():
        srv = Hostile(trickle(reply * 3 + TERM, 0.2))
        args = [cmd, "f"] if cmd == "get" else [cmd]
        rc, _, err, _, took = run_client(ctx, cli(srv.port, *args), 30)
        check(timed_out(rc, err, took), "%s: exit %d after %.1fs: %s", cmd,
              rc, took, err)
        rc, out, err, _, took = lua(ctx, srv.port, """
local r, msg, class = c:%s(%s)
out(tostring(r), class, msg)
""" % (cmd, '"f"' if cmd == "get" else ""), 30)
        check(rc == 0 and out.startswith(b"nil|timeout|") and
              b"timed out" in out and took < TIME_LIMIT + 2,
              "lua %s: %.1fs %s %s", cmd, took, out, err)


@test(timeout=60)
def reply_never_closed(ctx, _):
    """A complete reply followed by silence, or by endless whitespace, on
    a connection the server never closes: the download succeeds at once
    (the reply ends at its closing brace)."""
    setup(ctx)

    def silent(srv, conn, head):
        conn.sendall(GOOD_GET)
        while srv.alive():
            time.sleep(0.2)

    def spaces(srv, conn, head):
        conn.sendall(GOOD_GET)
        while srv.alive():
            conn.sendall(b" " * 65536)

    for behave in (silent, spaces):
        srv = Hostile(behave)
        out = ctx.path("cwd", behave.__name__)
        rc, _, err, _, _ = run_client(ctx, cli(srv.port, "get", "f", "-o",
                                               out, "-t", "30"), 20)
        check(rc == 0, "%s: exit %d: %s", behave.__name__, rc, err)
        with open(out, "rb") as f:
            check(f.read() == b"right bytes", "%s: wrong file",
                  behave.__name__)
        rc, lout, err, _, _ = lua(ctx, srv.port, """
local r, msg = c:get("f")
out(tostring(r and r.bytes), tostring(msg))
""", 20)
        check(rc == 0 and lout.strip() == b"11|nil", "lua %s: %s %s",
              behave.__name__, lout, err)


def never_read(srv, conn, head):
    while srv.alive():
        time.sleep(0.2)


def slow_read(srv, conn, head):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    while srv.alive():
        if not conn.recv(1):
            return
        time.sleep(0.2)


@test(timeout=120)
def upload_not_read(ctx, _):
    """An upload to a server that never reads, or reads one byte every
    0.2 s: put -t 2 gives up with 'timed out', exit 3, in bounded time;
    so does the Lua client."""
    setup(ctx)
    big = ctx.path("cwd", "big.bin")
    with open(big, "wb") as f:
        f.truncate(64 << 20)
    for behave in (never_read, slow_read):
        srv = Hostile(behave)
        rc, _, err, _, took = run_client(ctx, cli(srv.port, "put", big),
                                         30)
        check(timed_out(rc, err, took), "%s: exit %d after %.1fs: %s",
              behave.__name__, rc, took, err)
        rc, out, err, _, took = lua(ctx, srv.port, """
local r, msg, class = c:put(%s)
out(tostring(r), class, msg)
""" % json.dumps(big), 30)
        check(rc == 0 and out.startswith(b"nil|timeout|") and
              took < TIME_LIMIT + 2, "lua %s: %.1fs %s %s",
              behave.__name__, took, out, err)


# ---------------------------------------------------------------- listing

@test(timeout=180)
def large_listing(ctx, _):
    """A listing of 300,000 names of 240 bytes (75 MB, over any one
    member's cap): ls prints them all in bounded memory; c:ls() returns
    them in a table, c:ls(fn) streams them."""
    setup(ctx)
    n = 300000
    body = b", ".join(b'"%06d-%s"' % (i, b"n" * 233) for i in range(n))
    reply = b'{"status": "OK", "data": [' + body + b"]}" + TERM
    del body
    srv = Hostile(canned(reply))
    with open(ctx.path("ls.out"), "wb") as sink:
        rc, _, err, rss, _ = run_client(ctx, cli(srv.port, "ls"), 120,
                                        stdout=sink)
    check(rc == 0, "ls: exit %d: %s", rc, err)
    check(rss < RSS_LIMIT_KB, "ls: peak RSS %d kB", rss)
    with open(ctx.path("ls.out"), "rb") as f:
        lines = f.read().split(b"\n")
    check(len(lines) == n + 1 and lines[n - 1].startswith(b"%06d-" % (n - 1))
          and all(len(l) == 240 for l in lines[:n]), "ls printed %d lines",
          len(lines) - 1)
    del lines
    rc, out, err, _, _ = lua(ctx, srv.port, """
local r, msg = c:ls()
out(tostring(r and #r.names), tostring(r and r.count),
    r and r.names[300000]:sub(1, 7) or msg)
local seen = 0
local s = assert(c:ls(function(name) seen = seen + #name end))
out(seen, s.count, tostring(s.names))
""", 120)
    check(rc == 0 and out.decode().splitlines() == [
        "300000|300000|299999-", "72000000|300000|nil"],
        "lua: exit %d: %s %s", rc, out, err)

