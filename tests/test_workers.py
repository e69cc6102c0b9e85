#!/usr/bin/env python3
"""Stress runs that never lose a worker silently: a worker that dies (a
signal, os.exit in a scenario) or cannot start (fork or pthread_create
refused under RLIMIT_NPROC) has every iteration it did not complete
counted as failed with its cause; a worker's exit leaves the servers its
parent started alone; an upload source that is not a regular file is
refused. From the CLI and from Lua, for both client pools.
"""
import json, os, resource, shutil, subprocess, tempfile, time

from harness import *  # noqa: F401,F403  (tests/harness.py)

POOLS = ("thread", "process")


def run_lua(ctx, source, *args, timeout=60, preexec=None, cwd=None):
    """Runs a Lua script with `fileserv run`; returns CompletedProcess
    with text output. The script gets args as arg[1...]."""
    path = os.path.join(cwd or ctx.root, "script.lua")
    with open(path, "w") as f:
        f.write(source)
    try:
        return subprocess.run([ctx.bin, "run", path] + [str(a) for a in args],
                              cwd=cwd or ctx.root, timeout=timeout,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, preexec_fn=preexec)
    except subprocess.TimeoutExpired:
        raise Failure("fileserv run timed out after %gs" % timeout)


def last_json(text):
    """The JSON value on the last line that starts with '{' or '['."""
    lines = [l for l in text.splitlines() if l[:1] in ("{", "[")]
    check(lines, "no JSON line in %r", text)
    return json.loads(lines[-1])


# ---------------------------------------------------------------- dying

DYING = r"""
local fileserv = require "fileserv"
local json = fileserv.json
local how, pool, timed = arg[1], arg[2], arg[3] == "timed"
local srv = assert(fileserv.serve { storage = arg[4], mode = "thread",
                                    workers = 2 })
io.write("before the run\n") -- buffered: a worker's exit must not repeat it
local opts = { server = srv, clients = 3, pool = pool, args = { how = how },
  scenario = function(c, worker, it, args)
    if worker == 2 and it == 2 then
      if args.how == "exit" then -- a pcall cannot keep the worker going
        pcall(os.exit, 0)
        error("not reached")
      end
      local pid = io.open("/proc/self/stat"):read("n")
      os.execute("kill -9 " .. pid)
    end
    assert(c:ls())
  end }
if timed then opts.duration = 1 else opts.iterations = 4 end
local t0 = fileserv.now()
local s, msg = fileserv.stress(opts)
local elapsed = fileserv.now() - t0
local alive = srv:client():ls() ~= nil
print(json.encode { summary = s or json.null, msg = msg, elapsed = elapsed,
                    alive = alive })
"""


def dying(ctx, pool, how, timed=False):
    r = run_lua(ctx, DYING, how, pool, "timed" if timed else "-", ctx.storage)
    check(r.returncode == 0, "exit %d: %s", r.returncode, r.stderr)
    check(r.stdout.count("before the run") == 1,
          "the parent's buffered output was written again: %r", r.stdout)
    out = last_json(r.stdout)
    s = out["summary"]
    check(isinstance(s, dict), "stress failed: %s", out.get("msg"))
    check(out["alive"], "the script's server was stopped by the worker")
    lost = s.get("worker_lost", "")
    cause = "called os.exit(0)" if how == "exit" else "killed by signal 9"
    check(lost.startswith("worker 2 " + cause), "worker_lost: %r", lost)
    if timed:
        check(s["failed"] == 1 and s["errors"]["worker"] == 1,
              "timed run: %d failed, %d worker errors", s["failed"],
              s["errors"]["worker"])
    else:
        check(s["ok"] == 9 and s["failed"] == 3 and
              s["errors"]["worker"] == 3,
              "ok %d failed %d (worker %d) of 12: worker 2 did 1 of 4",
              s["ok"], s["failed"], s["errors"]["worker"])
    # the wall time is within the run, never from the clock's epoch
    check(0 < s["wall_s"] <= out["elapsed"], "wall %s s, run took %s s",
          s["wall_s"], out["elapsed"])


@test()
def stress_worker_killed(ctx, _):
    dying(ctx, "process", "kill")


@test()
def stress_worker_killed_timed(ctx, _):
    dying(ctx, "process", "kill", timed=True)


@test(modes=POOLS)
def stress_worker_os_exit(ctx, pool):
    """os.exit in a scenario ends that worker only, in either pool."""
    dying(ctx, pool, "exit")


# ---------------------------------------------------------------- starting

def unprivileged(nproc):
    """A preexec_fn: become an unused uid limited to nproc tasks, so that
    the (nproc)th thread or process cannot be created."""
    if os.geteuid() != 0:
        raise Skip("needs root to run the client as a spare uid "
                   "under RLIMIT_NPROC")
    if SANITIZED:  # their runtimes make threads and tracers of their own
        raise Skip("a sanitizer runtime needs tasks of its own")
    uid = 50000 + os.getpid() % 10000

    def pre():
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return pre


def shared_dir():
    """A directory the spare uid can read (the test root is private)."""
    d = tempfile.mkdtemp(prefix="fileserv-stress-")
    os.chmod(d, 0o755)
    return d


def check_start_failure(s, pool, started):
    check(s["ok"] == 0 and s["failed"] == 30 and s["errors"]["worker"] == 30,
          "ok %d failed %d (worker %d): want all 30 failed", s["ok"],
          s["failed"], s["errors"]["worker"])
    check(s["pool"] == pool, "pool %s", s["pool"])
    check(s["wall_s"] == 0, "wall %s s though no worker ran", s["wall_s"])
    check(started > 0 or "not started" in s.get("worker_lost", ""),
          "worker_lost: %r", s.get("worker_lost"))


@test(modes=POOLS)
def stress_start_fails_cli(ctx, pool):
    srv = ctx.server("thread")
    try:
        for nproc, started in ((1, 0), (4, 3)):
            r = subprocess.run(
                [ctx.bin, "stress", "--op", "list", "-c", "10", "-i", "3",
                 "--pool", pool, "--threads", "10", "-p", str(srv.port),
                 "--json"],
                cwd="/", stdin=subprocess.DEVNULL, capture_output=True,
                text=True, timeout=60, preexec_fn=unprivileged(nproc))
            check(r.returncode == 3, "nproc %d: exit %d, want 3: %s", nproc,
                  r.returncode, r.stderr)
            want = "cannot start %s worker %d of 10" % (pool, started + 1)
            check(want in r.stderr, "nproc %d: stderr %r", nproc, r.stderr)
            s = json.loads(r.stdout)
            check(want in s.get("error", ""), "error %r", s.get("error"))
            check_start_failure(s, pool, started)
    finally:
        check(srv.stop() == 0, "server exit status")


START = r"""
local fileserv = require "fileserv"
local s, msg, class, summary = fileserv.stress { server = arg[1],
  op = "list", clients = 10, iterations = 3, pool = arg[2], threads = 10 }
print(msg or "")
print(fileserv.json.encode { ok = s ~= nil, msg = msg, class = class,
                             summary = summary })
"""


@test(modes=POOLS)
def stress_start_fails_lua(ctx, pool):
    srv = ctx.server("thread")
    d = shared_dir()
    try:
        pre = unprivileged(4)
        r = run_lua(ctx, START, "127.0.0.1:%d" % srv.port, pool, cwd=d,
                    preexec=pre)
        check(r.returncode == 0, "exit %d: %s", r.returncode, r.stderr)
        out = last_json(r.stdout)
        check(not out["ok"] and out["class"] == "local",
              "stress returned %r", out)
        check("cannot start %s worker 4 of 10" % pool in out["msg"],
              "message %r", out["msg"])
        check_start_failure(out["summary"], pool, 3)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        check(srv.stop() == 0, "server exit status")


# ---------------------------------------------------------------- sources

NOT_REGULAR = r"""
local fileserv = require "fileserv"
local c = fileserv.client(arg[1])
local out = {}
for i = 2, #arg - 1 do
  local ok, msg = c:put(arg[i], "x")
  local s, smsg = fileserv.stress { server = c, op = "upload", file = arg[i],
                                    name = "x", pool = arg[#arg] }
  out[#out + 1] = { put = ok == nil and msg or "accepted",
                    stress = s == nil and smsg or "accepted" }
end
print(fileserv.json.encode(out))
"""


@test(timeout=60)
def put_not_regular_files(ctx, _):
    srv = ctx.server("thread", "--max-upload", "1MiB", "--idle-timeout", "2s")
    try:
        fifo = ctx.path("fifo")
        os.mkfifo(fifo)
        sources = {ctx.root: "a directory", "/dev/zero": "a character device",
                   fifo: "a FIFO"}
        for path, kind in sources.items():
            want = "%s: not a regular file (%s)" % (path, kind)
            t0 = time.monotonic()
            r = ctx.cli(srv.port, "put", path, "x", timeout=20)
            check(r.returncode == 3 and want in r.stderr.decode(),
                  "put %s: exit %d: %s", path, r.returncode, r.stderr)
            for pool in POOLS:
                r = ctx.cli(srv.port, "stress", "--op", "upload", "--file",
                            path, "--pool", pool, timeout=20)
                check(r.returncode == 3 and want in r.stderr.decode(),
                      "stress upload %s: exit %d: %s", path, r.returncode,
                      r.stderr)
            check(time.monotonic() - t0 < 15, "%s was not refused at once",
                  path)
        for pool in POOLS:
            r = run_lua(ctx, NOT_REGULAR, "127.0.0.1:%d" % srv.port,
                        *sources, pool, timeout=30)
            check(r.returncode == 0, "lua: exit %d: %s", r.returncode,
                  r.stderr)
            for (path, kind), got in zip(sources.items(),
                                         last_json(r.stdout)):
                want = "%s: not a regular file (%s)" % (path, kind)
                check(got["put"] == want and got["stress"] == want,
                      "lua %s: %r", path, got)
        check(ctx.cli(srv.port, "ls").stdout.strip() == b"",
              "something was uploaded")
    finally:
        check(srv.stop() == 0, "server exit status")
