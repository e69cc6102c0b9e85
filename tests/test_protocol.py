"""The wire protocol as clients see it: round trips, framing,
quoting, names, bad requests and base64, split and false terminators,
half-close, STATS, and interoperation with tests/peer.py (the original's
behaviour) in both directions.
"""
import base64, hashlib, json, os, random, re, time

from harness import *  # noqa: F401,F403  (tests/harness.py)


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


@test(modes=MODES, tags=("case 1", "case 32", "case 33", "case 34"))
def bad_requests(ctx, mode):
    """Every bad input of docs/protocol.md: an ERROR JSON, nothing changes."""
    srv = ctx.server(mode)
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
    ctx.check_canary()
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


@test(modes=MODES)
def stats_counters(ctx, mode):
    srv = ctx.server(mode)
    s0 = stats_data(srv.port)
    check(s0["mode"] == mode and s0["workers"] == (1 if mode == "single"
                                                  else 4),
          "mode/workers: %s %s", s0["mode"], s0["workers"])
    for key in ("requests", "succeeded", "failed", "file_bytes_in",
                "file_bytes_out", "wire_bytes_in", "wire_bytes_out",
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
    # file bytes are the decoded contents: 3 uploads and 3 GETs of "ABC";
    # wire bytes are everything on the sockets, base64 and JSON included
    delta = lambda k: s1[k] - s0[k]
    check(delta("file_bytes_in") == 9 and delta("file_bytes_out") == 9,
          "file bytes in %d, out %d, want 9 and 9", delta("file_bytes_in"),
          delta("file_bytes_out"))
    check(delta("wire_bytes_in") > 9 * 4 // 3 and
          delta("wire_bytes_out") > 9 * 4 // 3,
          "wire bytes in %d, out %d", delta("wire_bytes_in"),
          delta("wire_bytes_out"))
    check(s1["connections"] >= s0["connections"] + 27, "connections")
    # STATS does not count itself in the totals
    for _ in range(5):
        stats_data(srv.port)
    check(got(stats_data(srv.port)) == want, "STATS changed the totals")
    r = ctx.cli_ok(srv.port, "stats", "--json")
    check(json.loads(r.stdout)["succeeded"] == want[0], "fileserv stats: %s",
          r.stdout[:200])


@case(1)
def bad_commands(ctx, mode):
    srv = ctx.server(mode)
    x = put_file(os.path.join(ctx.storage, "x"), b"x version 1")
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
    # `list`: commands are case-insensitive (docs/protocol.md): a LIST
    r = request(srv.port, b"list" + TERM)
    check(r["status"] == "OK" and r["data"] == ["x"], "list: %r", r)
    ctx.finish(srv, {"x": x}, fd_base=fds)


@case(4)
def bad_base64(ctx, mode):
    """A bad UPLOAD leaves storage untouched: no file, old version, no temp."""
    srv = ctx.server(mode)
    old = put_file(os.path.join(ctx.storage, "x"), b"old version")
    fds = warm(srv)
    bad = [b"QUJD*QUJD", b"QUJD\xff", b"====", b"QUJDQ", b"QUJDQUI",
           b"QU\x00JD", b"QUJD\x00", b"QUJD\r\nQUJD", b"QUJD====",
           b"QQ==QUJD", b"A===", b"-_-_", b"QUJD\x7f", b"QR==", b"abd=",
           b"QUJD!", b"QUJD\xc3\xa9QUJD"]
    for data in bad:
        for name in (b"x", b"new"):
            r = expect_error(srv.port, b"UPLOAD " + name + b" " + data + TERM)
            check("base64" in r["data"] or "invalid" in r["data"],
                  "%r: message %r", data, r["data"])
            ctx.check_storage(srv, {"x": old})
            check(listing(srv.port) == ["x"], "LIST after %r", data)
    # a bad byte after megabytes of good data: the error still arrives
    good = base64.b64encode(os.urandom(3 << 20))
    for cut in (0, 4096, len(good) // 2, len(good) - 4):
        body = good[:cut] + b"*" + good[cut:]
        expect_error(srv.port, b"UPLOAD x " + body + TERM, timeout=20)
        ctx.check_storage(srv, {"x": old})
    check(get_content(srv.port, b"x") == b"old version", "old version lost")
    # 'abc=' is well-formed base64 (RFC 4648: two bytes, zero pad bits):
    # it must be stored exactly as Python decodes it, or refused
    r = request(srv.port, b"UPLOAD pad abc=" + TERM)
    files = {"x": old}
    if r["status"] == "OK":
        files["pad"] = h(base64.b64decode(b"abc=", validate=True))
    ctx.finish(srv, files, fd_base=fds)


@case(5)
def split_terminator(ctx, mode):
    srv = ctx.server(mode)
    content = os.urandom(100003)
    x = put_file(os.path.join(ctx.storage, "x"), content)
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
    ctx.finish(srv, {"x": x, "y": h(b"split upload")}, fd_base=fds)


@case(6)
def not_a_terminator(ctx, mode):
    srv = ctx.server(mode)
    x = put_file(os.path.join(ctx.storage, "x"), b"keep me")
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
        check(os.path.exists(os.path.join(ctx.storage, "x")),
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
    ctx.finish(srv, {"x": x}, fd_base=fds)


@case(7)
def name_lengths(ctx, mode):
    srv = ctx.server(mode)
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
    ctx.finish(srv, files, fd_base=fds)


@case(8)
def nul_in_name(ctx, mode):
    """GET a\\0b: ERROR, and strace shows no open of "a"."""
    ensure_tool("strace", "strace")
    trace = ctx.path("w-strace.txt")
    a = put_file(os.path.join(ctx.storage, "a"), b"must not be served")
    srv = ctx.server(mode, wrap=["strace", "-f", "-qq", "-s", "300", "-o",
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
    ctx.finish(srv, {"a": a})
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
def half_close(ctx, mode):
    srv = ctx.server(mode)
    content = os.urandom(MiB + 7)
    f = put_file(os.path.join(ctx.storage, "f"), content)
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
    ctx.finish(srv, {"f": f, "g": h(b"half")}, fd_base=fds)


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
def garbage_smoke(ctx, mode):
    srv = ctx.server(mode, "--log-file", ctx.path("w-server.log"))
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
    with open(ctx.path("w-server.log"), errors="replace") as f:
        log = f.read()
    for bad in ("Sanitizer", "runtime error", "assert"):
        check(bad not in log, "%r in the log", bad)
    ctx.finish(srv, None, fd_base=fds)
