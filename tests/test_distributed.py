"""A stress run spread over several instances, started by a real
launcher and across network namespaces, then merged with `fileserv
merge`: the merged totals equal one process's run of the same workload.
Skipped, with the reason, where Open MPI is not installed or network
namespaces cannot be made (not root, no CAP_NET_ADMIN, no `ip`).
"""
import json, glob, os, re, shutil, signal, subprocess, time

from harness import *  # noqa: F401,F403  (tests/harness.py)

EXACT = ("ok", "failed", "bytes", "verified_bytes", "clients", "errors")


def run_bounded(cmd, timeout, env=None):
    """Runs cmd in its own process group; kills the group (by its pid) on
    timeout. Returns (exit status, stdout, stderr)."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True,
                         env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise Failure("%s timed out after %gs: %s" % (
            " ".join(cmd[:4]), timeout, err.decode(errors="replace")))
    return p.returncode, out.decode(errors="replace"), err.decode(
        errors="replace")


def single_run(ctx, target, args):
    """One process running the whole workload: its summary."""
    rc, out, err = run_bounded([ctx.bin, "stress", "-s", target, "--json"]
                               + args, 60)
    check(rc == 0, "single run: exit %d: %s", rc, err)
    return json.loads(out)


def merge_files(ctx, files):
    rc, out, err = run_bounded([ctx.bin, "merge", "--json"] + files, 60)
    check(rc == 0, "merge: exit %d: %s", rc, err)
    return json.loads(out), err


def check_equal(merged, single, instances):
    for key in EXACT:
        check(merged[key] == single[key], "%s: merged %s, single %s", key,
              merged[key], single[key])
    check(merged["latency_histogram"]["n"] == single["latency_histogram"]["n"],
          "histogram counts: merged %d, single %d",
          merged["latency_histogram"]["n"], single["latency_histogram"]["n"])
    check(merged["instances"] == instances, "instances: %s",
          merged["instances"])
    info("merged %d instances: %d ok, %d bytes, p99 %.2f ms, wall %.3f s, "
         "start spread %s s; single: %d ok, p99 %.2f ms, wall %.3f s",
         instances, merged["ok"], merged["bytes"],
         merged["latency_ms"]["p99"], merged["wall_s"],
         merged.get("start_spread_s"), single["ok"],
         single["latency_ms"]["p99"], single["wall_s"])


# ---------------------------------------------------------------- netns

NETNS_PREFIX = "fsm%d" % os.getpid()


def ip(*args):
    """Runs ip ARGS; raises Failure with its message if it fails."""
    r = subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=20)
    if r.returncode != 0:
        raise Failure("ip %s: %s" % (" ".join(args),
                                      r.stderr.decode(errors="replace")))


def netns_make(clients):
    """A server namespace with a bridge at 10.201.0.1/24 and one
    namespace per client, each on a veth pair into the bridge at
    10.201.0.(11+i). Returns (server ns, client ns list)."""
    srv = NETNS_PREFIX + "s"
    ip("netns", "add", srv)
    ip("-n", srv, "link", "set", "lo", "up")
    ip("-n", srv, "link", "add", "br0", "type", "bridge")
    ip("-n", srv, "addr", "add", "10.201.0.1/24", "dev", "br0")
    ip("-n", srv, "link", "set", "br0", "up")
    names = []
    for i in range(clients):
        ns = NETNS_PREFIX + "c%d" % i
        ip("netns", "add", ns)
        names.append(ns)
        ip("link", "add", "v%d" % i, "netns", srv, "type", "veth", "peer",
           "name", "eth0", "netns", ns)
        ip("-n", srv, "link", "set", "v%d" % i, "master", "br0", "up")
        ip("-n", ns, "addr", "add", "10.201.0.%d/24" % (11 + i), "dev",
           "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
    return srv, names


def netns_remove():
    """Deletes every namespace of this test (their veths go with them)."""
    r = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=20)
    for line in r.stdout.decode().splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(NETNS_PREFIX):
            subprocess.run(["ip", "netns", "del", name], timeout=20,
                           stderr=subprocess.DEVNULL)


def netns_usable():
    """None, or why network namespaces cannot be made here."""
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to make network namespaces"
    if not shutil.which("ip"):
        return "ip (Debian iproute2) is not installed"
    probe = NETNS_PREFIX + "probe"
    r = subprocess.run(["ip", "netns", "add", probe], timeout=20,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        return "cannot make a network namespace: " + r.stderr.decode(
            errors="replace").strip()
    subprocess.run(["ip", "netns", "del", probe], timeout=20)
    return None


def serve_in(ctx, ns, host):
    """fileserv serve in namespace ns on host, port 0; returns (Popen,
    port)."""
    p = subprocess.Popen(["ip", "netns", "exec", ns, ctx.bin, "serve",
                          "--host", host, "-p", "0", "--storage",
                          ctx.storage, "--workers", "4"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    ctx.procs.append(p)
    deadline, seen = time.monotonic() + 10, b""
    while time.monotonic() < deadline and p.poll() is None:
        seen += p.stderr.readline()
        m = re.search(rb"serving .* on [0-9.]+:(\d+)", seen)
        if m:
            return p, int(m.group(1))
    raise Failure("server in %s did not start: %r" % (ns, seen))


@test(timeout=180)
def netns_instances_merge(ctx, _):
    """The server in one network namespace on 10.201.0.1, two instances
    in two others (10.201.0.11, .12), each a segment of one run released
    at one --start-at, traffic
    only over the veth pairs: the merge equals one process's run from
    one namespace, and the server saw connections from both addresses."""
    why = netns_usable()
    if why:
        raise Skip(why)
    srv_ns, clients = None, []
    server = None
    try:
        srv_ns, clients = netns_make(2)
        server, port = serve_in(ctx, srv_ns, "10.201.0.1")
        target = "10.201.0.1:%d" % port
        src = ctx.path("f")
        write_random(src, 30000)
        ip_exec = ["ip", "netns", "exec"]
        rc, out, err = run_bounded(ip_exec + [clients[0], ctx.bin, "put",
                                              src, "f", "-q", "-s", target],
                                   30)
        check(rc == 0, "put over the veth: %d %s", rc, err)
        # the server is not on the clients' loopback: only the veth
        rc, out, err = run_bounded(ip_exec + [clients[0], ctx.bin, "ls",
                                              "-p", str(port), "-t", "2s"],
                                   30)
        check(rc != 0, "the server answered on a client's loopback")
        work = ["--op", "download", "--file", src, "-c", "6", "-i", "4"]
        files = []
        procs = []
        start = int(time.time()) + 2
        for i, ns in enumerate(clients):
            files.append(ctx.path("r-%d.json" % i))
            procs.append(subprocess.Popen(
                ip_exec + [ns, ctx.bin, "stress", "-s", target, "--json",
                           "--segment", "%d/%d" % (i, len(clients)),
                           "--start-at", str(start)] + work,
                stdin=subprocess.DEVNULL, stdout=open(files[-1], "wb"),
                stderr=subprocess.PIPE, start_new_session=True))
        ctx.procs.extend(procs)
        for p in procs:
            try:
                p.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                raise Failure("an instance timed out")
            check(p.returncode == 0, "instance: exit %d: %s", p.returncode,
                  p.stderr.read().decode(errors="replace"))
        merged, _ = merge_files(ctx, files)
        rc, out, err = run_bounded(ip_exec + [clients[0], ctx.bin, "stress",
                                              "-s", target, "--json"] + work,
                                   60)
        check(rc == 0, "single run: exit %d: %s", rc, err)
        single = json.loads(out)
        check_equal(merged, single, len(clients))
        server.send_signal(signal.SIGTERM)
        _, log = server.communicate(timeout=15)
        for i in range(len(clients)):
            check(b"connection from 10.201.0.%d" % (11 + i) in log,
                  "no connection from 10.201.0.%d in the server's log", 11 + i)
    finally:
        if server and server.poll() is None:
            server.kill()
            server.wait(5)
        netns_remove()


# ---------------------------------------------------------------- mpirun

@test(timeout=180)
def mpirun_instances_merge(ctx, _):
    """Open MPI's mpirun starts 4 instances of one stress run against a
    loopback server (each takes its share from OMPI_COMM_WORLD_RANK and
    _SIZE: 10 clients as 3, 3, 2, 2), all released at one --start-at,
    each writing --out-json r-%r.json; their merge equals one process's
    run."""
    mpirun = shutil.which("mpirun")
    if not mpirun:
        raise Skip("mpirun is not installed (Debian package openmpi-bin)")
    srv = ctx.server("thread", workers=4)
    target = "127.0.0.1:%d" % srv.port
    src = ctx.path("f")
    write_random(src, 30000)
    ctx.cli_ok(srv.port, "put", src, "f", "-q")
    work = ["--op", "download", "--file", src, "-c", "10", "-i", "3"]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    start = int(time.time()) + 3
    rc, out, err = run_bounded(
        [mpirun, "--oversubscribe", "-np", "4", ctx.bin, "stress", "-s",
         target, "--start-at", str(start), "--out-json",
         ctx.path("r-%r.json")] + work, 120, env)
    check(rc == 0, "mpirun: exit %d: %s", rc, err)
    files = sorted(glob.glob(ctx.path("r-*.json")))
    check(len(files) == 4, "4 result files: %s", files)
    merged, warnings = merge_files(ctx, files)
    check([r["segment"]["source"] for r in merged["ranks"]] == ["OMPI"] * 4,
          "shares from Open MPI's environment: %s",
          [r["segment"] for r in merged["ranks"]])
    check([r["clients"] for r in merged["ranks"]] == [3, 3, 2, 2],
          "10 clients as 3, 3, 2, 2: %s",
          [r["clients"] for r in merged["ranks"]])
    check(merged["start_spread_s"] is not None, "start spread recorded")
    check_equal(merged, single_run(ctx, target, work), 4)
