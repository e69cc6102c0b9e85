"""Packaging: `make install` puts the binary, the man page, the scripts
and the documentation under DESTDIR and PREFIX, and nothing elsewhere.
"""
import glob, os, re, subprocess

from harness import *  # noqa: F401,F403  (tests/harness.py)

REPO = os.path.dirname(HERE)


def installed_files(root):
    """Paths of the files under root, relative to it."""
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, _, names in os.walk(root) for n in names)


@test(timeout=120)
def make_install(ctx, _):
    built = os.path.join(REPO, "fileserv")
    if not os.path.exists(built) or not os.path.samefile(ctx.bin, built):
        raise Skip("installs the release build ./fileserv, not %s" % ctx.bin)
    dest = ctx.path("dest")
    # -o fileserv: install what was built and tested, never rebuild it
    r = subprocess.run(["make", "--no-print-directory", "-o", "fileserv",
                        "install", "DESTDIR=" + dest, "PREFIX=/opt/fs"],
                       cwd=REPO, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=100)
    check(r.returncode == 0, "make install: exit %d: %s", r.returncode,
          r.stdout.decode(errors="replace")[-500:])
    docs = ["README.md"] + sorted(
        os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO,
                                                                 "docs",
                                                                 "*.md")))
    scripts = sorted(os.path.basename(p) for p in
                     glob.glob(os.path.join(REPO, "scripts", "*.lua")))
    want = sorted(["opt/fs/bin/fileserv", "opt/fs/share/man/man1/fileserv.1"]
                  + ["opt/fs/share/doc/fileserv/" + os.path.basename(d)
                     for d in docs]
                  + ["opt/fs/share/fileserv/scripts/" + s for s in scripts])
    check("opt/fs/share/doc/fileserv/protocol.md" in want and
          "opt/fs/share/doc/fileserv/reliability.md" in want and
          "opt/fs/share/fileserv/scripts/stress_all.lua" in want,
          "the tree lacks its docs or scripts: %s", want)
    got = installed_files(dest)
    check(got == want, "installed %s, want %s", got, want)
    prefix = os.path.join(dest, "opt", "fs")
    for rel, src in ([("bin/fileserv", built),
                      ("share/man/man1/fileserv.1",
                       os.path.join(REPO, "fileserv.1"))] +
                     [("share/doc/fileserv/" + os.path.basename(d),
                       os.path.join(REPO, d)) for d in docs] +
                     [("share/fileserv/scripts/" + s,
                       os.path.join(REPO, "scripts", s)) for s in scripts]):
        path = os.path.join(prefix, rel)
        check(sha256(path) == sha256(src), "%s differs from %s", rel, src)
        mode = os.stat(path).st_mode & 0o777
        check(mode == (0o755 if rel.startswith("bin/") else 0o644),
              "%s has mode %o", rel, mode)
    r = subprocess.run([os.path.join(prefix, "bin", "fileserv"),
                        "--version"], stdout=subprocess.PIPE, timeout=10)
    check(r.returncode == 0 and r.stdout.startswith(b"fileserv "),
          "the installed binary: exit %d, %r", r.returncode, r.stdout)
    # what the man page's SEE ALSO names is installed with it
    with open(os.path.join(REPO, "fileserv.1")) as f:
        see_also = f.read().split(".SH SEE ALSO", 1)[-1]
    named = re.findall(r"\b(?:docs/)?([\w.-]+\.md)\b", see_also)
    check(named, "the man page names no documentation")
    for name in named:
        check(os.path.exists(os.path.join(prefix, "share", "doc", "fileserv",
                                          name)),
              "fileserv(1) cites %s, which is not installed", name)
