"""The event engine of `fileserv stress` (event.c): plain operations in
the thread pool run on a few OS threads, each driving many clients. Every
operation counts, verifies and fails as in the thread engine (a thread
per client, --threads per-client), against a real server and against
hostile ones; the open model keeps its schedule; and thousands of
clients fit in a few tens of MB.
"""
import json, os, resource, socket, subprocess, time

from harness import *  # noqa: F401,F403  (tests/harness.py)
from test_hostile_server import Hostile, never_read  # the fake server

ENGINES = {"event": [], "thread": ["--threads", "per-client"]}


def raise_nofile():
    """A socket per client: the soft descriptor limit at the hard one,
    for the servers this test starts (they inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@test(timeout=180)
def every_op_counts_and_verifies(ctx, _):
    """download, upload and list with 200 clients from one process: the
    event engine's counts, bytes and verified bytes are the thread
    engine's, the uploads arrive intact, and the summary names the
    engine."""
    raise_nofile()
    srv = ctx.server("thread", workers=4)
    src = ctx.path("src.bin")
    digest = write_random(src, 100 * 1000 + 1)  # not a multiple of 3
    for engine, flags in ENGINES.items():
        for op in ("upload", "download", "list"):
            rc, s, err = ctx.stress_json(srv.port, "--op", op, "--file", src,
                                "--name", "f.bin", "--clients", "200",
                                "--iterations", "2", *flags)
            check(rc == 0 and s, "%s %s: exit %d: %s", engine, op, rc, err)
            check(s["ok"] == 400 and s["failed"] == 0,
                  "%s %s: ok %d failed %d: %s", engine, op, s["ok"],
                  s["failed"], s.get("first_error"))
            check(s["engine"] == engine and s["pool"] == "thread",
                  "%s %s: engine %s pool %s", engine, op, s["engine"],
                  s["pool"])
            size = 0 if op == "list" else 400 * (100 * 1000 + 1)
            check(s["bytes"] == size, "%s %s: %d bytes, want %d", engine,
                  op, s["bytes"], size)
            want = size if op == "download" else 0
            check(s["verified_bytes"] == want, "%s %s: verified %d", engine,
                  op, s["verified_bytes"])
            check(s["client_time_s"] > 0, "%s %s: client time %s", engine,
                  op, s["client_time_s"])
        check(sha256(os.path.join(srv.storage, "f.bin")) == digest,
              "%s: the uploaded bytes differ", engine)
    check(s["threads"] is None, "thread engine: threads %s", s["threads"])
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--clients", "5",
                        "--threads", "3")
    check(rc == 0 and s["engine"] == "event" and s["threads"] == 3 and
          s["options"]["clients"] == 5, "--threads 3: %s %s", s, err)


@test(timeout=60)
def wrong_bytes_are_a_mismatch(ctx, _):
    """A download that differs from --file fails as a mismatch, verified
    bytes 0, in both engines; --no-verify counts it."""
    srv = ctx.server("thread", workers=2)
    put_file(os.path.join(srv.storage, "f.bin"), b"server bytes")
    put_file(ctx.path("ref.bin"), b"other bytes!")
    for engine, flags in ENGINES.items():
        rc, s, err = ctx.stress_json(srv.port, "--op", "download", "--file",
                            ctx.path("ref.bin"), "--name", "f.bin",
                            "--clients", "3", *flags)
        check(rc == 1 and s["errors"]["mismatch"] == 3 and
              s["verified_bytes"] == 0, "%s: exit %d %s", engine, rc, s)
        rc, s, err = ctx.stress_json(srv.port, "--op", "download", "--file",
                            ctx.path("ref.bin"), "--name", "f.bin",
                            "--clients", "3", "--no-verify", *flags)
        check(rc == 0 and s["ok"] == 3 and s["bytes"] == 36,
              "%s --no-verify: exit %d %s", engine, rc, s)


# ---------------------------------------------------------------- hostile

def sends(data):
    return lambda srv, conn, head: conn.sendall(data)


def stalls(srv, conn, head):
    """Reads the whole request, then says nothing."""
    while srv.alive() and conn.recv(65536):
        pass


def trickles(srv, conn, head):
    for b in b'{"status": "OK", "data_file": "' + b"QUJD" * 100:
        if not srv.alive():
            return
        conn.sendall(bytes([b]))
        time.sleep(0.3)


def resets(srv, conn, head):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    b"\x01\x00\x00\x00\x00\x00\x00\x00")


DEEP = b'{"status": ' + b"[" * 5000 + b"]" * 5000 + b"}\r\n\r\n"
HOSTILE = [
    ("short reply", sends(b'{"status": "OK", "data_fi'), "reset"),
    ("garbage", sends(b"HTTP/1.1 400 Bad Request\r\n\r\n"), "protocol"),
    ("bad base64", sends(b'{"status": "OK", "data_file": "QU*D"}\r\n\r\n'),
     "protocol"),
    ("nested 5000 deep", sends(DEEP), "protocol"),
    ("an ERROR", sends(b'{"status": "ERROR", "data": "no"}\r\n\r\n'),
     "server"),
    ("a reset", resets, "reset"),
    ("a stall", stalls, "timeout"),
    ("a trickle", trickles, "timeout"),
]


@test(timeout=240)
def hostile_servers_classified_alike(ctx, _):
    """Against fake servers that send short replies, garbage, bad base64,
    JSON nested 5,000 deep, ERROR, resets, nothing or a trickle: the
    event engine survives and classifies every failure as the thread
    engine does, with the same first error."""
    for what, behave, cls in HOSTILE:
        peer = Hostile(behave)
        seen = {}
        for engine, flags in ENGINES.items():
            rc, s, err = ctx.stress_json(peer.port, "--op", "download", "--name",
                                "f", "--no-verify", "--clients", "4",
                                "--iterations", "2", "-t", "1", *flags,
                                timeout=60)
            check(rc == 1 and s, "%s, %s: exit %d: %s", what, engine, rc,
                  err)
            check(s["failed"] == 8 and s["errors"][cls] == 8,
                  "%s, %s: failed %d, errors %s, want 8 %s: %s", what,
                  engine, s["failed"], s["errors"], cls,
                  s.get("first_error"))
            seen[engine] = s["first_error"].split(":")[0]
        check(seen["event"] == seen["thread"], "%s: first errors %s", what,
              seen)


@test(timeout=120)
def upload_to_a_server_that_does_not_read(ctx, _):
    """Uploads of 8 MB to a server that never reads them time out (-t 1)
    in both engines, and a refused connection is refused."""
    big = ctx.path("big.bin")
    with open(big, "wb") as f:
        f.truncate(8 << 20)
    peer, peer_never = Hostile(stalls), Hostile(never_read)
    port = free_port()
    for engine, flags in ENGINES.items():
        for p in (peer, peer_never):
            rc, s, err = ctx.stress_json(p.port, "--op", "upload", "--file", big,
                                "--clients", "3", "-t", "1", *flags,
                                timeout=60)
            check(rc == 1 and s["errors"]["timeout"] == 3,
                  "%s: exit %d %s %s", engine, rc, s and s["errors"], err)
        rc, s, err = ctx.stress_json(port, "--op", "list", "--clients", "3",
                            *flags)
        check(rc == 1 and s["errors"]["refused"] == 3 and
              "cannot connect" in s["first_error"], "%s refused: %s",
              engine, s)


# ---------------------------------------------------------------- schedule

@test(timeout=60)
def open_model_keeps_its_schedule(ctx, _):
    """The open model on the event engine: every arrival of the plan is
    started once, latency counts from the intended start (never below
    the service time), and the interval stream adds up to the summary."""
    srv = ctx.server("thread", workers=4)
    stream = ctx.path("stream.jsonl")
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--rate", "300",
                        "--duration", "2s", "--clients", "16",
                        "--interval", "0.5s", "--json-stream", stream)
    check(rc == 0 and s, "exit %d: %s", rc, err)
    m = s["open_model"]
    check(s["engine"] == "event" and m["started"] == 600 and
          m["dropped"] == 0 and s["ok"] == 600, "600 arrivals: %s", m)
    check(SANITIZED or abs(m["achieved_rate"] / 300 - 1) < 0.05,
          "achieved %.1f/s of 300/s", m["achieved_rate"])
    check(s["latency_ms"]["max"] >= s["service_ms"]["max"] and
          s["latency_ms"]["p50"] >= s["service_ms"]["p50"],
          "latency %s below service %s", s["latency_ms"], s["service_ms"])
    with open(stream) as f:
        lines = [json.loads(line) for line in f]
    check(sum(x.get("ok", 0) for x in lines[:-1]) == 600 and
          "summary" in lines[-1], "intervals: %s", lines[:-1])


# ---------------------------------------------------------------- memory

@test(timeout=240)
def thousands_of_clients_in_little_memory(ctx, _):
    """2,000 clients downloading a 1 KB file from one process take under
    48 MB at their peak (VmHWM): a few KB a client, where a thread per
    client took over 100 MB."""
    if raise_nofile() < 2200:
        raise Skip("needs 2,200 descriptors for 2,000 clients")
    # a sanitizer build's server may take longer than the default
    # queue timeout to reach the last of 2,000 queued requests
    srv = ctx.server("thread", "--queue-timeout", "300s", workers=4)
    src = ctx.path("1k.bin")
    write_random(src, 1024)
    ctx.cli_ok(srv.port, "put", src, "1k.bin", "-q")
    out = ctx.path("out.json")
    with open(out, "wb") as f:
        p = subprocess.Popen([ctx.bin, "stress", "--json", "--op", "download",
                              "--file", src, "--clients", "2000",
                              "--iterations", "2", "-p", str(srv.port)],
                             stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.DEVNULL)
        ctx.procs.append(p)
        peak, deadline = 0, time.monotonic() + 180
        while p.poll() is None and time.monotonic() < deadline:
            try:
                peak = max(peak, vm_hwm_kb(p.pid))
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        p.wait(10)
    with open(out) as f:
        s = json.load(f)
    check(p.returncode == 0, "stress exit %s: %s", p.returncode,
          s.get("first_error"))
    check(s["ok"] == 4000 and s["engine"] == "event",
          "ok %d of 4000 (%s): %s", s["ok"], s["engine"],
          s.get("first_error"))
    check(peak < 48 * 1024 * MEM, "2,000 clients: peak RSS %d KiB", peak)


@test(timeout=60)
def lua_names_the_engine(ctx, _):
    """fileserv.stress{} runs a plain op on the event engine, threads =
    N sets its threads, "per-client" and pool = "process" the others."""
    script = ctx.path("engines.lua")
    with open(script, "w") as f:
        f.write("""
local fileserv = require "fileserv"
local srv = fileserv.serve{}
for _, o in ipairs{ {}, {threads = 3}, {threads = "per-client"},
                    {pool = "process"} } do
  local opts = { server = srv, op = "list", clients = 4, iterations = 2 }
  for k, v in pairs(o) do opts[k] = v end
  local s = assert(fileserv.stress(opts))
  print(s.engine, s.threads, s.ok)
end
print(pcall(fileserv.stress, { server = srv, op = "list", threads = 0 }))
""")
    r = ctx.cli(None, "run", script)
    out = r.stdout.decode().split("\n")
    want = ["event\t%d\t8" % min(4, os.cpu_count()), "event\t3\t8",
            "thread\tnil\t8", "process\tnil\t8"]
    check(r.returncode == 0 and out[:4] == want, "exit %d: %s %s",
          r.returncode, out, r.stderr)
    check(out[4].startswith("false") and "thread count" in out[4],
          "threads = 0: %s", out[4])


@test(timeout=60)
def clients_that_fail_at_once_let_the_others_run(ctx, _):
    """With descriptors for some 30 of 100 clients, those left without
    one fail at once (no socket), over and over: they must still let the
    loop serve the clients that have one, which go on succeeding."""
    srv = ctx.server("thread", workers=4)
    put_file(os.path.join(srv.storage, "f"), b"x" * 1024)

    def few_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    r = subprocess.run([ctx.bin, "stress", "--json", "--op", "download",
                        "--name", "f", "--clients", "100", "--threads", "1",
                        "--duration", "1s", "-p", str(srv.port)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30, preexec_fn=few_descriptors)
    s = json.loads(r.stdout)
    check(s["failed"] > 0 and s["errors"]["network"] > 0,
          "no client was left without a descriptor: %s", s["errors"])
    check(s["ok"] > 100, "%d ok in 1 s beside the failures: %s", s["ok"],
          s.get("first_error"))


@test(timeout=60)
def client_stages_on_the_event_engine(ctx, _):
    """--client-stages runs on the event engine too: client k of a thread
    runs while the stages have at least k clients (test_load checks the
    counts in flight), here 2 of 6 clients in all."""
    srv = ctx.server("thread", workers=2)
    rc, s, err = ctx.stress_json(srv.port, "--op", "list", "--client-stages",
                        "0.1s:2,0.4s:2", "--clients", "6", "--threads", "2")
    check(rc == 0 and s["engine"] == "event" and s["ok"] > 0 and
          s["failed"] == 0, "exit %d: %s %s", rc, s, err)
