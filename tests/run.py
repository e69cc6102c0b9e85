#!/usr/bin/env python3
"""fileserv's test driver: the C unit programs, then the black-box tests.

    python3 tests/run.py --bin ./fileserv --units "build/tests/t_codec ... tests/t_lua.lua"
                         [-k SUBSTRING] [--long] [-j JOBS] [-v]

A unit program (tests/check.h, tests/t_lua.lua) prints one line "TEST
PASSED FAILED NAME" per test function (its checks passed and failed) and
ends with "PROGRAM: N passed, N failed (N checks)"; each function counts
as one test, and a crash, a time-out or a missing summary line counts as
one more failed test. The black-box tests are the functions registered
in every tests/test_*.py module (see tests/harness.py); each runs in its
own process group with a time limit, so a hung test is killed together
with the servers it started. -k selects the unit programs and black-box
tests whose name contains SUBSTRING, or whose tag (e.g. "case 27") it
is. Prints one line per test and ends with exactly one line "N passed, N
failed" (", N skipped" follows when a test could not run here), N
counting tests; exit status 1 if anything failed.
Python 3 stdlib only.
"""
import argparse, concurrent.futures, os, re, shutil, signal, subprocess
import sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (the registry of black-box tests)

UNIT_TIMEOUT = 180
UNIT_TEST = re.compile(r"^TEST (\d+) (\d+) (.+)$")
SUMMARY = re.compile(r"^\S+: (\d+) passed, (\d+) failed \((\d+) checks\)$",
                     re.M)


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


def unit_results(name, out):
    """The per-function results of a unit program's output: a list of
    (ok, line, detail lines); a function's FAIL lines precede its TEST
    line. Returns (results, checks counted, FAIL lines of no function)."""
    results, pending, checks = [], [], 0
    for line in out.splitlines():
        m = UNIT_TEST.match(line)
        if line.startswith("FAIL"):
            pending.append(line)
        elif m:
            ok, bad = int(m.group(1)), int(m.group(2))
            checks += ok + bad
            if bad:
                results.append((False, "FAIL %s.%s: %d of %d checks failed"
                                % (name, m.group(3), bad, ok + bad), pending))
            else:
                results.append((True, "ok   %s.%s: %d checks" % (
                    name, m.group(3), ok), []))
            pending = []
    return results, checks, pending


def run_unit(path, long_run, binary):
    """Returns a list of (ok, line, detail lines), one per test function
    of the unit program, and one more failure if the program did not end
    well. A .lua unit runs in the fileserv binary's own interpreter
    (fileserv run FILE BINARY)."""
    name = os.path.splitext(os.path.basename(path))[0]
    lua = path.endswith(".lua")
    if not os.access(path, os.R_OK if lua else os.X_OK):
        return [(False, "FAIL %s: not found or not executable" % name, [])]
    env = dict(os.environ, FILESERV_TEST_LONG="1" if long_run else "")
    t0 = time.monotonic()
    cmd = [binary, "run", path, binary] if lua else [path]
    limit = UNIT_TIMEOUT * (3 if long_run else 1)
    status, out, err = run_group(cmd, limit, env)
    took = time.monotonic() - t0
    results, checks, stray = unit_results(name, out)
    sums = SUMMARY.findall(out)
    problem = None
    if status is None:
        problem = "timed out after %ds" % limit
    elif status < 0:
        problem = "killed by signal %d" % -status
    elif not sums:
        problem = "no 'N passed, N failed (N checks)' line (exit %d)" % status
    elif status != 0 and all(ok for ok, _, _ in results):
        problem = "exit status %d with no failed test" % status
    elif int(sums[-1][0]) + int(sums[-1][1]) != len(results):
        problem = "%s tests in the summary, %d reported" % (
            int(sums[-1][0]) + int(sums[-1][1]), len(results))
    if problem:
        after = " after %s" % results[-1][1].split()[1].rstrip(":") \
            if results else ""
        results.append((False, "FAIL %s: %s%s" % (name, problem, after),
                        stray + err.strip().splitlines()[-5:]))
    elif stray:
        results.append((False, "FAIL %s: checks outside a test function"
                        % name, stray))
    results.append((None, "#    %s: %d tests, %d checks (%.1fs)" % (
        name, len(results), checks, took), []))
    return results


def run_blackbox(name, args, root):
    """Returns (True, False or None for skipped, line, details)."""
    t = harness.TESTS[name]
    tmp = os.path.join(root, re.sub(r"[^\w.-]", "_", name))
    cmd = [sys.executable, harness.__file__, "--bin", args.bin, "--tmp", tmp,
           "--module", t.fn.__code__.co_filename, "--run", name] + (
               ["--long"] if args.long else [])
    tags = " (%s)" % ", ".join(t.tags) if t.tags else ""
    t0 = time.monotonic()
    status, out, err = run_group(cmd, t.timeout * (3 if args.long else 1))
    took = time.monotonic() - t0
    result = [l for l in out.splitlines() if l.startswith("RESULT ")]
    if status == 0 and result == ["RESULT ok"]:
        return True, "ok   %s%s (%.1fs)" % (name, tags, took), []
    if status == 0 and len(result) == 1 and result[0].startswith(
            "RESULT SKIP"):
        return None, "skip %s%s: %s (%.1fs)" % (
            name, tags, result[0][len("RESULT SKIP "):], took), []
    if status is None:
        reason = "timed out after %ds" % t.timeout
    elif result:
        reason = result[-1][len("RESULT FAIL "):]
    else:
        reason = "exit status %s without a result" % status
    return False, "FAIL %s%s: %s (%.1fs)" % (name, tags, reason, took), \
        err.strip().splitlines()


def selected(name, tags, select):
    """-k: a part of the name, or a whole tag ("case 1" is not "case 12")."""
    return select in name or select in tags


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="the fileserv binary")
    p.add_argument("--units", default="", help="unit test binaries")
    p.add_argument("-k", dest="select", default="",
                   help="run only tests whose name contains this, or whose tag "
                   "it is")
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
        for ok, line, details in run_unit(unit, args.long, args.bin):
            if ok is not None:
                passed, failed = passed + ok, failed + (not ok)
            print(line, flush=True)
            for d in details[:40]:
                print("     " + d)

    for path in harness.modules():
        try:
            harness.load(path)
        except Exception as e:  # its tests cannot run
            failed += 1
            print("FAIL %s: %s: %s" % (os.path.basename(path),
                                       type(e).__name__, e), flush=True)
    names = [n for n, t in harness.TESTS.items()
             if selected(n, t.tags, args.select)]
    if not os.access(args.bin, os.X_OK) and names:
        print("FAIL %s: not found or not executable" % args.bin)
        failed += 1
        names = []
    root = tempfile.mkdtemp(prefix="fileserv-tests-")
    try:
        # the slowest first, so that parallel runs end together
        names.sort(key=lambda n: -harness.TESTS[n].timeout)
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
