"""Storage safety and durability: atomic replacement, cut-off and
concurrent uploads, symlinks and special files, path traversal, a full
disk, the fsync/rename order, and injected I/O faults.
"""
import base64, collections, json, os, random, re, resource, shutil, signal, socket, subprocess, tempfile, threading, time

from harness import *  # noqa: F401,F403  (tests/harness.py)


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


@test(modes=MODES, tags=("case 12",))
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


@case(12, timeout=90)
def client_abort(ctx, mode):
    srv = ctx.server(mode, limits={"--max-upload": "1GB"})
    old = put_file(os.path.join(ctx.storage, "x"), os.urandom(1000))
    fds = warm(srv)
    s, _, sent = start_upload(srv.port, b"x", 60 * 1000 * 1000,
                              stop_after=50 * 1000 * 1000)
    s2, _, _ = start_upload(srv.port, b"new", 60 * 1000 * 1000,
                            stop_after=1000 * 1000)
    time.sleep(0.2)
    rst_close(s)
    rst_close(s2)
    t0 = time.monotonic()
    ok = wait_for(lambda: not temps(ctx.storage) and
                  sorted(os.listdir(ctx.storage)) == ["x"] and
                  fd_count(srv.pids()) <= fds, 1)
    check(ok, "1 s after the abort: storage %s, descriptors %d (base %d)",
          os.listdir(ctx.storage), fd_count(srv.pids()), fds)
    info("abort cleaned up in %.2fs", time.monotonic() - t0)
    check(listing(srv.port) == ["x"], "still serving")
    ctx.finish(srv, {"x": old}, fd_base=fds)


@case(25)
def same_name_uploads(ctx, mode):
    srv = ctx.server(mode)
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
    threads = start_threads(up, 50)
    for t in threads:
        t.join(60)
    for i, r in enumerate(results):
        check(isinstance(r, dict) and (r["status"] == "OK" or
                                       "conflict" in r.get("data", "")),
              "upload %d: %r", i, r)
    final = open(os.path.join(ctx.storage, "same"), "rb").read()
    check(final in payloads, "the final file is none of the 50 payloads "
          "(%d bytes)", len(final))
    check(get_content(srv.port, b"same") == final, "GET differs from disk")
    ctx.finish(srv, {"same": h(final)}, fd_base=fds)


@test(modes=MODES, tags=("case 10", "case 35"))
def symlinks_and_special_files(ctx, mode):
    canary = ctx.path("canary", "keep")
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
    ctx.check_canary()
    check(listing(srv.port) == (["a", "rel"] if r["status"] == "OK"
                                else ["a"]), "LIST at the end")


@case(10)
def missing_dir_fifo(ctx, mode):
    srv = ctx.server(mode)
    os.mkdir(os.path.join(ctx.storage, "d"))
    os.mkfifo(os.path.join(ctx.storage, "p"))
    x = put_file(os.path.join(ctx.storage, "x"), b"x")
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
    ctx.finish(srv, {"x": x, "d": "dir", "p": "other"}, fd_base=fds)


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
def disk_full(ctx, mode):
    if not shutil.which("unshare"):
        raise Skip("unshare is not installed")
    ok, why = unshare_works()
    if not ok:
        raise Skip("unshare -m + tmpfs mount not permitted here: " + why)
    srv = ctx.server(mode, limits={"--max-upload": "1GB"}, ns_root=True,
                     wrap=["unshare", "-m", "sh", "-c",
                           'mount -t tmpfs -o size=8m tmpfs "$0" && '
                           'exec "$@"', ctx.storage])
    listing(srv.port)
    with open("/proc/%d/mountinfo" % srv.pid) as f:
        mounts = [l.split() for l in f]
    check(any(m[4] == os.path.realpath(ctx.storage) and "tmpfs" in m
              for m in mounts), "storage is not a tmpfs for the server")
    reply, old = upload_stream(srv.port, b"x", MiB)
    check(reply["status"] == "OK", "small upload: %r", reply)
    reply, _ = upload_stream(srv.port, b"x", 20 * 1000 * 1000)
    check(reply["status"] == "ERROR", "20 MB into 8 MB: %r", reply)
    check("space" in reply["data"].lower(), "no-space message: %r",
          reply["data"])
    ctx.check_storage(srv, {"x": old})
    reply, _ = upload_stream(srv.port, b"new", 20 * 1000 * 1000)
    check(reply["status"] == "ERROR", "20 MB new name: %r", reply)
    ctx.check_storage(srv, {"x": old})
    # fill it, fail, free it, succeed
    reply, filler = upload_stream(srv.port, b"filler", 5 * MiB)
    check(reply["status"] == "OK", "5 MiB filler: %r", reply)
    reply, _ = upload_stream(srv.port, b"more", 3 * MiB)
    check(reply["status"] == "ERROR", "3 MiB over a full disk: %r", reply)
    ctx.check_storage(srv, {"x": old, "filler": filler})
    expect_ok(srv.port, b"DELETE filler" + TERM)
    reply, small = upload_stream(srv.port, b"small", 2 * MiB)
    check(reply["status"] == "OK", "upload after freeing space: %r", reply)
    ctx.finish(srv, {"x": old, "small": small})
    # variant without mounts: RLIMIT_FSIZE, SIGXFSZ ignored -> EFBIG
    fsize = 3 * MiB

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    srv = ctx.server(mode, preexec=limit, keep_signals=True,
                     limits={"--max-upload": "1GB"})
    before = snapshot(ctx.storage)
    reply, _ = upload_stream(srv.port, b"x", 5 * MiB)
    check(reply["status"] == "ERROR", "5 MiB over RLIMIT_FSIZE 3 MiB: %r",
          reply)
    check("large" in reply["data"].lower() or "fbig" in reply["data"].lower(),
          "EFBIG message: %r", reply["data"])
    ctx.check_storage(srv, before)
    reply, small2 = upload_stream(srv.port, b"y", MiB)
    check(reply["status"] == "OK", "1 MiB under the limit: %r", reply)
    before["y"] = small2
    ctx.finish(srv, before)


def strace_lines(path):
    with open(path, errors="replace") as f:
        return f.read().splitlines()


@case(20)
def durability_order(ctx, mode):
    ensure_tool("strace", "strace")
    trace = ctx.path("w-strace.txt")
    srv = ctx.server(mode, wrap=["strace", "-f", "-qq", "-y", "-s", "120",
                                 "-o", trace, "-e",
                                 "trace=fsync,fdatasync,renameat,renameat2,"
                                 "linkat,write,sendto,sendmsg,close"])
    old = put_file(os.path.join(ctx.storage, "x"), b"old")
    listing(srv.port)
    expect_ok(srv.port, upload_req(b"x", b"new version"))
    ctx.finish(srv, {"x": h(b"new version")})
    lines = strace_lines(trace)
    storage = os.path.realpath(ctx.storage)
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


def imported(binary):
    r = subprocess.run(["nm", "-D", binary], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=20)
    return set(re.findall(r"^\s+U (\w+)", r.stdout.decode(), re.M))


@case(21, timeout=120)
def libfiu(ctx, mode):
    if SANITIZED or "asan" in ctx.bin or "tsan" in ctx.bin:
        raise Skip("release build only (LD_PRELOAD clashes with sanitizers)")
    ensure_tool("fiu-run", "fiu-utils", "/usr/lib/fiu/fiu_posix_preload.so")
    syms = imported(ctx.bin)
    for sym in ("fsync", "write"):
        check(sym in syms, "fileserv does not import %s: fiu's %s failure "
              "point would not reach it (imports: %s)", sym, sym,
              sorted(s for s in syms if "sync" in s or "write" in s))
    fiu = lambda *cmds: ["fiu-run", "-x", "-f", ""] + [
        x for c in cmds for x in ("-c", c)]
    # 1. fsync fails: ERROR, no rename, old version intact
    old = put_file(os.path.join(ctx.storage, "x"), b"old version")
    srv = ctx.server(mode, wrap=fiu("enable name=posix/io/sync/fsync"))
    for name in (b"x", b"new"):
        r = request(srv.port, upload_req(name, b"never stored"))
        check(r["status"] == "ERROR", "UPLOAD %r with fsync failing: %r",
              name, r)
        ctx.check_storage(srv, {"x": old})
    ctx.finish(srv, {"x": old})
    # 2. short writes: every byte still stored
    srv = ctx.server(mode, wrap=fiu("enable name=posix/io/rw/write/reduce"))
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
    ctx.finish(srv, files)
    # 3. 5% of write() calls fail under load: OK with the right bytes, or
    # ERROR; never OK with wrong bytes
    srv = ctx.server(mode, wrap=fiu("enable_random name=posix/io/rw/write,"
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
    threads = start_threads(client, 4)
    for t in threads:
        t.join(60)
    info("5%% write faults: %s", dict(results))
    check(not wrong, "%d wrong results: %s", len(wrong), wrong[:3])
    check(results["OK"] > 0, "nothing succeeded: %s", dict(results))
    ctx.finish(srv, None)


@case(32)
def traversal_get(ctx, mode):
    srv = ctx.server(mode)
    x = put_file(os.path.join(ctx.storage, "x"), b"x")
    os.mkdir(os.path.join(ctx.storage, "sub"))
    put_file(os.path.join(ctx.storage, "sub", "x"), b"inner")
    fds = warm(srv)
    storage_abs = os.path.realpath(ctx.storage)
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
              ctx.storage not in text, "%r leaked: %r", req, text[:200])
    ctx.finish(srv, {"x": x, "sub": "dir"}, fd_base=fds)


@case(33)
def traversal_upload(ctx, mode):
    srv = ctx.server(mode)
    fds = warm(srv)
    tag = "fileserv-rel33-%d" % os.getpid()
    tmp_x_before = path_state("/tmp/x")
    tmp_before = set(os.listdir("/tmp"))
    for name in (b"../canary/x", b"/tmp/x", b"a/../../x", b"../x",
                 b"../canary/new", b"/tmp/" + tag.encode(), b"..",
                 b"../../" + tag.encode(), b"sub/../../x",
                 b'"../canary/keep"'):
        r = expect_error(srv.port, upload_req(name, b"escaped!"))
        check("invalid name" in r["data"], "UPLOAD %r: %r", name, r)
    check(not os.path.exists("/tmp/" + tag), "UPLOAD wrote /tmp/%s", tag)
    check(path_state("/tmp/x") == tmp_x_before, "/tmp/x changed")
    new_tmp = [e for e in set(os.listdir("/tmp")) - tmp_before
               if tag in e or e == "x"]
    check(not new_tmp, "new entries in /tmp: %s", new_tmp)
    check(not os.path.exists(os.path.join(os.path.dirname(ctx.root), "x")),
          "UPLOAD wrote next to the test root")
    ctx.finish(srv, {}, fd_base=fds)


@case(34)
def traversal_delete(ctx, mode):
    srv = ctx.server(mode)
    fds = warm(srv)
    canary_abs = os.path.join(os.path.realpath(ctx.canary), "keep").encode()
    for req in (b"DELETE ../canary/keep", b"DELETE " + canary_abs,
                b'DELETE "../canary/keep"', b"DELETE ../canary",
                b"DELETE ../canary/sub/deep", b"DELETE ../storage"):
        r = expect_error(srv.port, req + TERM)
        check("invalid name" in r["data"], "%r: %r", req, r)
        ctx.check_canary()
    ctx.finish(srv, {}, fd_base=fds)


@case(35)
def planted_symlinks(ctx, mode):
    srv = ctx.server(mode)
    os.symlink("/etc/passwd", os.path.join(ctx.storage, "pw"))
    os.symlink("../canary/keep", os.path.join(ctx.storage, "c"))
    os.symlink(os.path.join(ctx.canary, "x"), os.path.join(ctx.storage, "d"))
    os.symlink("../canary/sub", os.path.join(ctx.storage, "dirlink"))
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
    c = os.path.join(ctx.storage, "c")
    if r["status"] == "OK":
        check(not os.path.islink(c) and open(c, "rb").read() ==
              b"replaces the link", "UPLOAD c did not replace the link")
    else:
        check(os.readlink(c) == "../canary/keep", "refused, but c changed")
    ctx.check_canary()
    expect_ok(srv.port, b"DELETE d" + TERM)
    check(not os.path.lexists(os.path.join(ctx.storage, "d")), "d kept")
    expect_error(srv.port, b"DELETE dirlink/deep" + TERM)
    expect_ok(srv.port, b"DELETE dirlink" + TERM)
    ctx.check_canary()
    files = {"pw": "link:/etc/passwd"}
    files["c"] = h(b"replaces the link") if r["status"] == "OK" else \
        "link:../canary/keep"
    ctx.finish(srv, files, fd_base=fds,
               expect_names=["c"] if r["status"] == "OK" else [])


@case(36)
def temp_unreachable(ctx, mode):
    srv = ctx.server(mode)
    x = put_file(os.path.join(ctx.storage, "x"), b"x")
    fds = warm(srv)
    s, _, _ = start_upload(srv.port, b"up", 4 * MiB, stop_after=2 * MiB)
    time.sleep(0.3)
    on_disk = temps(ctx.storage)
    info("during the upload: storage %s (%s)", os.listdir(ctx.storage),
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
        check(temps(ctx.storage) == on_disk, "a temporary was deleted")
    s.close()
    if mode == "single":
        check(listing(srv.port) == ["x"], "LIST after the upload")
        for g in sorted(guesses):
            expect_error(srv.port, b"GET " + g.encode() + TERM)
    ctx.finish(srv, {"x": x}, fd_base=fds)
