"""The fileserv client: the command line, its exit statuses and
messages, and its behaviour against a broken server.
"""
import base64, os, re, socket, threading

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
