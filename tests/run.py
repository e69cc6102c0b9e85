#!/usr/bin/env python3
"""fileserv's test driver: the C unit programs, then the black-box tests.

    python3 tests/run.py --bin ./fileserv --units "build/tests/t_codec ... tests/t_lua.lua"
                         [-k SUBSTRING] [--long] [-j JOBS] [-v]

A unit program ends with "NAME: N passed, N failed"; its checks count one
each, and a crash, a time-out or a missing summary line counts as one more
failure. Every black-box test (tests/blackbox.py, and RELIABILITY.md's
catalogue in tests/reliability.py) runs in its own process group with a
time limit, so a hung test is killed together with the servers it
started. Prints one line per test and ends with exactly one line "N
passed, N failed" (", N skipped" follows when a test could not run here);
exit status 1 if anything failed. Python 3 stdlib only.
"""
import argparse, concurrent.futures, os, re, shutil, signal, subprocess
import sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import blackbox  # noqa: E402  (the list of tests and their time limits)
import reliability  # noqa: E402  (RELIABILITY.md's catalogue, same format)
import measure  # noqa: E402  (what fileserv measures, same format)

# every black-box test: name -> (script that runs it, its time limit)
SUITES = {}
for _module in (blackbox, reliability, measure):
    for _name, (_, _, _limit) in _module.TESTS.items():
        SUITES[_name] = (_module.__file__, _limit)

UNIT_TIMEOUT = 180
SUMMARY = re.compile(r"^\S+: (\d+) passed, (\d+) failed$", re.M)


def run_group(cmd, timeout, env=None):
    """Runs cmd in a new process group; kills the group on timeout.
    Returns (exit status or None on timeout, stdout, stderr)."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True,
                         env=env)
    try:
        out, err = p.communicate(timeout=timeout)
        status = p.returncode
    except subprocess.TimeoutExpired:
        status = None
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # leftovers: servers, clients
        except OSError:
            pass
    if status is None:
        out, err = p.communicate()
    return status, out.decode("utf-8", "replace"), err.decode("utf-8",
                                                             "replace")


def run_unit(path, long_run, binary):
    """Returns (passed, failed, line, detail lines). A .lua unit runs in
    the fileserv binary's own interpreter (fileserv run FILE BINARY)."""
    name = os.path.basename(path)
    lua = path.endswith(".lua")
    if not os.access(path, os.R_OK if lua else os.X_OK):
        return 0, 1, "FAIL %s: not found or not executable" % name, []
    env = dict(os.environ, FILESERV_TEST_LONG="1" if long_run else "")
    t0 = time.monotonic()
    cmd = [binary, "run", path, binary] if lua else [path]
    status, out, err = run_group(cmd, UNIT_TIMEOUT * (3 if long_run else 1),
                                 env)
    took = time.monotonic() - t0
    sums = SUMMARY.findall(out)
    details = [l for l in out.splitlines() if l.startswith("FAIL")]
    passed, failed = (int(sums[-1][0]), int(sums[-1][1])) if sums else (0, 0)
    problem = None
    if status is None:
        problem = "timed out after %ds" % UNIT_TIMEOUT
    elif status < 0:
        problem = "killed by signal %d" % -status
    elif not sums:
        problem = "no 'N passed, N failed' line (exit %d)" % status
    elif status != 0 and failed == 0:
        problem = "exit status %d with no failed check" % status
    if problem:
        failed += 1
        details += err.strip().splitlines()[-5:]
        return passed, failed, "FAIL %s: %s (%d passed, %d failed)" % (
            name, problem, passed, failed), details
    if failed:
        return passed, failed, "FAIL %s: %d of %d checks failed (%.1fs)" % (
            name, failed, passed + failed, took), details
    return passed, 0, "ok   %s: %d checks (%.1fs)" % (name, passed, took), []


def run_blackbox(name, args, root):
    """Returns (True, False or None for skipped, line, details)."""
    script, limit = SUITES[name]
    tmp = os.path.join(root, re.sub(r"[^\w.-]", "_", name))
    cmd = [sys.executable, script, "--bin",
           args.bin, "--tmp", tmp, "--run", name] + (
               ["--long"] if args.long else [])
    t0 = time.monotonic()
    status, out, err = run_group(cmd, limit * (3 if args.long else 1))
    took = time.monotonic() - t0
    result = [l for l in out.splitlines() if l.startswith("RESULT ")]
    if status == 0 and result == ["RESULT ok"]:
        return True, "ok   %s (%.1fs)" % (name, took), []
    if status == 0 and len(result) == 1 and result[0].startswith(
            "RESULT SKIP"):
        return None, "skip %s: %s (%.1fs)" % (
            name, result[0][len("RESULT SKIP "):], took), []
    if status is None:
        reason = "timed out after %ds" % limit
    elif result:
        reason = result[-1][len("RESULT FAIL "):]
    else:
        reason = "exit status %s without a result" % status
    return False, "FAIL %s: %s (%.1fs)" % (name, reason, took), \
        err.strip().splitlines()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="the fileserv binary")
    p.add_argument("--units", default="", help="unit test binaries")
    p.add_argument("-k", dest="select", default="",
                   help="run only tests whose name contains this")
    p.add_argument("--long", action="store_true", help="longer variants")
    p.add_argument("-j", dest="jobs", type=int, default=2,
                   help="black-box tests run in parallel (default 2)")
    p.add_argument("-v", dest="verbose", action="store_true",
                   help="print tracebacks of failed tests")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    passed = failed = skipped = 0
    t_start = time.monotonic()

    for unit in args.units.split():
        if args.select not in os.path.basename(unit):
            continue
        n_ok, n_bad, line, details = run_unit(unit, args.long, args.bin)
        passed, failed = passed + n_ok, failed + n_bad
        print(line, flush=True)
        for d in details[:40]:
            print("     " + d)

    names = [n for n in SUITES if args.select in n]
    if not os.access(args.bin, os.X_OK) and names:
        print("FAIL %s: not found or not executable" % args.bin)
        failed += 1
        names = []
    root = tempfile.mkdtemp(prefix="fileserv-tests-")
    try:
        # the slowest first, so that parallel runs end together
        names.sort(key=lambda n: -SUITES[n][1])
        with concurrent.futures.ThreadPoolExecutor(max(args.jobs, 1)) as ex:
            futures = [ex.submit(run_blackbox, n, args, root) for n in names]
            for fut in concurrent.futures.as_completed(futures):
                ok, line, details = fut.result()
                if ok is None:
                    skipped += 1
                else:
                    passed, failed = passed + ok, failed + (not ok)
                print(line, flush=True)
                if not ok and args.verbose:
                    for d in details[-30:]:
                        print("     " + d)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("# %.1fs" % (time.monotonic() - t_start))
    print("%d passed, %d failed" % (passed, failed) +
          (", %d skipped" % skipped if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
