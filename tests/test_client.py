"""The fileserv client: the command line, its exit statuses and
messages, and its behaviour against a broken server.
"""
import base64, json, os, re, socket, threading

from harness import *  # noqa: F401,F403  (tests/harness.py)


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
                "list", "delete", "serve", "stress", "run", "bench",
                "compare", "merge"):
        r = ctx.cli(None, cmd, "--help", cwd=cwd, timeout=5)
        check(r.returncode == 0 and b"usage" in r.stdout.lower(),
              "%s --help: exit %d", cmd, r.returncode)
        # help texts are printed as they are, not through printf
        check(b"%%" not in r.stdout, "%s --help shows a doubled %%", cmd)
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


# ---------------------------------------------------------------- the front-end

# every command, as `fileserv --help` must list it
COMMANDS = ("get", "put", "ls", "rm", "stats", "serve", "stress", "run",
            "compare", "bench", "help")
HINT = "(see 'fileserv %s --help')"


def text(b):
    return b.decode("utf-8", "replace")


def usage_error(ctx, args, cmd, message):
    """fileserv ARGS exits 2 with exactly 'fileserv CMD: MESSAGE (hint)'."""
    r = ctx.cli(None, *args, timeout=10)
    want = "fileserv %s: %s %s\n" % (cmd, message, HINT % cmd)
    check(r.returncode == 2, "%s: exit %d, want 2 (%r)", args, r.returncode,
          text(r.stderr))
    check(text(r.stderr) == want, "%s: stderr %r, want %r", args,
          text(r.stderr), want)


@test()
def usage_errors(ctx, _):
    """One wording for each kind of mistake, in every command, exit 2."""
    for cmd in ("get", "put", "ls", "rm", "stats", "serve", "stress",
                "bench"):
        usage_error(ctx, [cmd, "-x"], cmd, "unknown option '-x'")
        usage_error(ctx, [cmd, "--bogus"], cmd, "unknown option '--bogus'")
        usage_error(ctx, [cmd, "--bogus=1"], cmd, "unknown option '--bogus'")
    for cmd in ("get", "ls", "stress"):
        usage_error(ctx, [cmd, "-t"], cmd, "option '-t' needs a value")
        usage_error(ctx, [cmd, "--timeout"], cmd,
                    "option '--timeout' needs a value")
        usage_error(ctx, [cmd, "-t", "soon"], cmd, "option '-t': invalid "
                    "duration 'soon' (examples: 30s, 500ms, 2m)")
        usage_error(ctx, [cmd, "--port=99999"], cmd, "option '--port': "
                    "invalid port '99999' (expected 0 to 65535)")
    usage_error(ctx, ["get", "-o"], "get", "option '-o' needs a value")
    usage_error(ctx, ["get", "f", "-qz"], "get", "unknown option '-z'")
    usage_error(ctx, ["get"], "get", "expected one NAME")
    usage_error(ctx, ["ls", "extra"], "ls",
                "unexpected argument (expected no arguments)")
    usage_error(ctx, ["serve", "--idle-timeout", "0"], "serve",
                "option '--idle-timeout': invalid timeout '0' (must be more "
                "than 0)")
    usage_error(ctx, ["get", "f", "-t", "0s"], "get",
                "option '-t': invalid timeout '0s' (must be more than 0)")
    usage_error(ctx, ["serve", "-w", "0"], "serve", "option '-w': invalid "
                "worker count '0' (expected 1 to 1024)")
    usage_error(ctx, ["stress", "--clients", "many", "--op", "list"],
                "stress", "option '--clients': invalid client count 'many' "
                "(expected 1 to 10000)")
    usage_error(ctx, ["stress", "-p", "1"], "stress", "--op is required")
    usage_error(ctx, ["bench", "--runs", "10"], "bench",
                "option '--runs': invalid run count '10' (expected 1 to 9)")
    usage_error(ctx, ["run"], "run", "expected SCRIPT")
    usage_error(ctx, ["compare", "--bogus", "a", "b"], "compare",
                "unknown option '--bogus'")
    usage_error(ctx, ["compare", "a", "b", "--fail-above"], "compare",
                "option '--fail-above' needs a value")
    for cmd in ("serve", "stress", "bench"):
        usage_error(ctx, [cmd, "extra"], cmd, "unexpected argument 'extra'")
    # a global option where it means nothing is refused, not ignored
    usage_error(ctx, ["bench", "-s", "127.0.0.1:1"], "bench",
                "option -s (--server) does not apply to bench")
    usage_error(ctx, ["-t", "5s", "serve"], "serve",
                "option -t (--timeout) does not apply to serve")
    # the front-end's own mistakes point at the main help
    for args, message in ((["frobnicate"], "unknown command 'frobnicate'"),
                          (["-x", "ls"], "unknown option '-x'"),
                          (["-s"], "option '-s' needs a value"),
                          ([], "no command given"),
                          (["help", "nope"], "unknown command 'nope'")):
        r = ctx.cli(None, *args, timeout=10)
        want = "fileserv: %s (see 'fileserv --help')\n" % message
        check(r.returncode == 2 and text(r.stderr) == want,
              "%s: exit %d, %r, want %r", args, r.returncode, text(r.stderr),
              want)


@test()
def global_options(ctx, _):
    """-s, -p, -t and -q work before or after the command."""
    srv = ctx.server("thread")
    expect_ok(srv.port, upload_req(b"f", b"hello"))
    addr = "127.0.0.1:%d" % srv.port
    for args in (["-s", addr, "ls"], ["ls", "-s", addr],
                 ["--server=" + addr, "list"], ["-p", str(srv.port), "ls"],
                 ["-t", "5s", "-p", str(srv.port), "ls"],
                 ["-q", "ls", "--port", str(srv.port)]):
        r = ctx.cli(None, *args, timeout=10)
        check(r.returncode == 0 and r.stdout == b"f\n", "%s: exit %d %r %r",
              args, r.returncode, r.stdout, r.stderr)
    out = ctx.path("out")
    r = ctx.cli(None, "-q", "-s", addr, "get", "f", "-o", out, timeout=10)
    check(r.returncode == 0 and r.stderr == b"", "-q get: %d %r",
          r.returncode, r.stderr)
    check(open(out, "rb").read() == b"hello", "-q get wrote the wrong bytes")
    # after the command, a later value wins over one before it
    r = ctx.cli(None, "-p", "1", "ls", "-p", str(srv.port), timeout=10)
    check(r.returncode == 0, "later -p did not win: %r", r.stderr)
    # -s reaches a script's client calls as its default server
    script = ctx.path("ls.lua")
    with open(script, "w") as f:
        f.write('local r = assert(fileserv.client():ls())\n'
                'print(table.concat(r.names, ","))\n')
    r = ctx.cli(None, "-s", addr, "run", script, timeout=20)
    check(r.returncode == 0 and r.stdout == b"f\n", "run -s: %d %r %r",
          r.returncode, r.stdout, r.stderr)


@test()
def help_everywhere(ctx, _):
    """`fileserv --help` lists every command; `help CMD` is CMD --help."""
    r = ctx.cli(None, "--help")
    check(r.returncode == 0, "--help: exit %d", r.returncode)
    listed = re.findall(r"^  ([a-z]+) ", text(r.stdout), re.M)
    for cmd in COMMANDS:
        check(cmd in listed, "--help does not list %s: %s", cmd, listed)
    r2 = ctx.cli(None, "help")
    check(r2.returncode == 0 and r2.stdout == r.stdout, "help != --help")
    for cmd in COMMANDS[:-1] + ("download", "upload", "list", "delete"):
        a = ctx.cli(None, cmd, "--help", timeout=10)
        b = ctx.cli(None, "help", cmd, timeout=10)
        check(a.returncode == 0 and a.stdout.startswith(b"usage: fileserv "),
              "%s --help: exit %d %r", cmd, a.returncode, a.stdout[:80])
        check(b.returncode == 0 and b.stdout == a.stdout,
              "help %s differs from %s --help", cmd, cmd)
    # a short option means one thing in every command
    meaning = {}
    for cmd in COMMANDS[:-1]:
        out = text(ctx.cli(None, cmd, "--help").stdout)
        for short, long in re.findall(r"^\s+-(\w), (--[a-z-]+)", out, re.M):
            meaning.setdefault(short, set()).add(long)
    for short, longs in sorted(meaning.items()):
        check(len(longs) == 1, "-%s means %s", short, sorted(longs))
    # each command's help names the global options it takes
    for cmd, opts in (("get", ("--server", "--port", "--timeout", "--quiet",
                               "--output", "--force")),
                      ("stats", ("--json", "--server")),
                      ("serve", ("--port", "--quiet", "--storage",
                                 "--head-timeout")),
                      ("stress", ("--op", "--file", "--duration",
                                  "--server")),
                      ("bench", ("--quick", "--runs", "--quiet"))):
        out = text(ctx.cli(None, cmd, "--help").stdout)
        for opt in opts:
            check(opt in out, "%s --help lacks %s", cmd, opt)


@test()
def stats_table(ctx, _):
    """`fileserv stats` is a table with units; --json the raw object."""
    srv = ctx.server("thread")
    expect_ok(srv.port, upload_req(b"f", b"x" * 3000))
    check(get_content(srv.port, b"f") == b"x" * 3000, "GET f")
    expect_error(srv.port, b"GET missing" + TERM)
    r = ctx.cli_ok(srv.port, "stats", "--json")
    data = json.loads(r.stdout)
    check(data["file_bytes_in"] == 3000 and data["file_bytes_out"] == 3000,
          "file bytes: %s", data)
    check(data["wire_bytes_in"] >= 4000 and data["wire_bytes_out"] >= 4000,
          "wire bytes: %s", data)
    check("bytes_in" not in data, "the old ambiguous key is still there")
    r = ctx.cli_ok(srv.port, "stats")
    out = text(r.stdout)
    check(re.search(r"^server +127\.0\.0\.1:%d, thread mode, 4 workers, "
                    r"up \d+\.\d s$" % srv.port, out, re.M), "header: %r", out)
    check(re.search(r"^requests +2: 1 ok, 1 failed", out, re.M) or
          re.search(r"^requests +3: 2 ok, 1 failed", out, re.M),
          "totals: %r", out)
    check(re.search(r"^GET +2 +1 +1$", out, re.M), "GET row: %r", out)
    check(re.search(r"^UPLOAD +1 +1 +0$", out, re.M), "UPLOAD row: %r", out)
    check(re.search(r"^file +3\.0 kB +3\.0 kB$", out, re.M),
          "file bytes row: %r", out)
    check(re.search(r"^wire +4\.\d kB +4\.\d kB ", out, re.M),
          "wire bytes row: %r", out)
    check("{" not in out and "uptime_s" not in out, "raw JSON: %r", out)


@test(timeout=120)
def get_replaces_whole(ctx, _):
    """get -f over an existing file gives its name to a new file only once
    the download is complete: a reader of the name meanwhile sees one
    whole version, never a part; a hard link to the old file keeps the
    old bytes (it was not rewritten in place); nothing is left beside it
    (bounded: three downloads of 4 MiB, a reader loop of at most 100000
    reads)."""
    srv = ctx.server("thread")
    versions = [os.urandom(4 * MiB), os.urandom(4 * MiB)]
    d = ctx.path("dir")
    os.mkdir(d)
    out, link = os.path.join(d, "f"), os.path.join(d, "old")
    first = b"the version before\n" * 1000
    put_file(out, first)
    os.link(out, link)
    stop, bad, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set() and reads[0] < 100000:
            with open(out, "rb") as f:
                data = f.read()
            reads[0] += 1
            if data != first and data not in versions:
                bad.append(len(data))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(3):
            put_file(os.path.join(ctx.storage, "f"), versions[i % 2])
            ctx.cli_ok(srv.port, "get", "f", "-o", out, "-f", "-q")
    finally:
        stop.set()
        t.join()
    check(not bad, "readers saw partial files of %s bytes", bad[:5])
    info("%d reads", reads[0])
    check(open(out, "rb").read() == versions[0], "not the last version")
    check(open(link, "rb").read() == first, "the old file was rewritten")
    check(sorted(os.listdir(d)) == ["f", "old"], "left %s", os.listdir(d))


@test()
def get_into_directory(ctx, _):
    """get -o DIR and -o DIR/ write DIR/NAME as cp would; a bad -o path
    is named as given, never as the temporary file beside it."""
    srv = ctx.server("thread")
    expect_ok(srv.port, upload_req(b"f", b"contents"))
    d = ctx.path("dir")
    os.mkdir(d)
    for out in (d, d + "/"):
        ctx.cli_ok(srv.port, "get", "f", "-o", out, "-q", "-f")
        check(open(os.path.join(d, "f"), "rb").read() == b"contents",
              "get -o %s", out)
        check(sorted(os.listdir(d)) == ["f"], "-o %s left %s", out,
              os.listdir(d))
    r = ctx.cli(srv.port, "get", "f", "-o", d + "/")
    check(r.returncode == 3 and (d + "/f exists").encode() in r.stderr,
          "second get into DIR/: exit %d %r", r.returncode, r.stderr)
    for out, named in ((ctx.path("missing") + "/", ctx.path("missing", "f")),
                       (ctx.path("no", "such", "x"), ctx.path("no", "such",
                                                              "x"))):
        r = ctx.cli(srv.port, "get", "f", "-o", out)
        err = text(r.stderr)
        check(r.returncode == 3 and named + ": No such file or directory"
              in err, "get -o %s: exit %d %r", out, r.returncode, err)
        check(".fileserv-" not in err, "message names the temporary: %r",
              err)


def on_terminal(ctx, port, *args, timeout=30):
    """Runs fileserv ARGS with stderr on a pseudo-terminal; returns (exit
    status, what the terminal showed)."""
    import pty, select, subprocess, time
    master, slave = pty.openpty()
    p = subprocess.Popen([ctx.bin] + list(args) + ["-p", str(port)],
                         cwd=ctx.root, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    shown, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last user closed it
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
    return p.wait(5), text(shown).replace("\r\n", "\n")


def last_drawn(shown):
    """The progress line as it was left: the last redraw before the
    first newline, without its clear-to-end-of-line."""
    return shown.split("\n")[0].split("\r")[-1].replace("\033[K", "")


@test()
def progress_display(ctx, _):
    """On a terminal: an upload shows total, percentage and ETA; a
    download, whose size the protocol does not send, shows bytes, rate and
    elapsed time; -q shows nothing."""
    srv = ctx.server("thread")
    src = ctx.path("src")
    with open(src, "wb") as f:
        f.write(os.urandom(3 << 20))
    rc, shown = on_terminal(ctx, srv.port, "put", src, "up")
    check(rc == 0, "put on a terminal: exit %d %r", rc, shown)
    last = last_drawn(shown)
    check(re.search(r"3\.1 MB / 3\.1 MB +100%  .*/s  ETA 0\.0 s", last),
          "upload progress: %r", last)
    rc, shown = on_terminal(ctx, srv.port, "get", "up", "-o",
                            ctx.path("back"))
    check(rc == 0, "get on a terminal: exit %d %r", rc, shown)
    last = last_drawn(shown)
    check(re.search(r"3\.1 MB +\S+ [kMG]?B/s  \d+\.\d s elapsed", last),
          "download progress: %r", last)
    check("%" not in last and "ETA" not in last,
          "a download without a known size shows a percentage: %r", last)
    check("downloaded up: 3.1 MB in" in shown, "summary line: %r", shown)
    rc, shown = on_terminal(ctx, srv.port, "get", "up", "-o",
                            ctx.path("back2"), "-q")
    check(rc == 0 and shown == "", "-q on a terminal: %d %r", rc, shown)


@test()
def man_page_complete(ctx, _):
    """fileserv.1 documents every command and every option --help lists."""
    page = open(os.path.join(HERE, "..", "fileserv.1")).read()
    page = page.replace("\\-", "-").replace("\\fB", "").replace("\\fP", "")
    for cmd in COMMANDS[:-1]:
        check(re.search(r"^\.SS .*\b%s\b" % cmd, page, re.M),
              "fileserv.1 has no section for %s", cmd)
        out = text(ctx.cli(None, cmd, "--help").stdout)
        for opt in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out))):
            check(opt in page, "fileserv.1 lacks %s %s", cmd, opt)
