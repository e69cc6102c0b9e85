"""Packaging: `make install` puts the binary, the man page, the scripts
and the documentation under DESTDIR and PREFIX, and nothing elsewhere;
and the repository stands alone: its documents link only to files it
holds, nothing refers to files outside it, and the reliability catalogue
names the tests of each case.
"""
import collections, glob, os, re, subprocess

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


def tracked_text_files():
    """The repository's text files (what git tracks, or every file when
    this is not a git checkout), relative to REPO."""
    r = subprocess.run(["git", "-C", REPO, "ls-files"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=30)
    names = r.stdout.decode().splitlines() if r.returncode == 0 else [
        os.path.relpath(os.path.join(d, n), REPO)
        for d, dirs, files in os.walk(REPO) for n in files
        if not d.startswith(os.path.join(REPO, "build"))]
    for name in names:
        path = os.path.join(REPO, name)
        try:
            with open(path, "rb") as f:
                data = f.read(1 << 20)
        except OSError:
            continue  # deleted in the working tree
        if b"\0" not in data:
            yield name, data.decode("utf-8", "replace")


@test()
def stands_alone(ctx, _):
    """No file points outside the repository (as to a sibling folder of
    shared notes), and every relative link in the Markdown documents
    reaches a file of the repository."""
    outside = re.compile(r"\.\./" + "shared|/work/" + r"\w|" + "shared" +
                         r" folder|\b(PROTOCOL|RELIABILITY)\.md")
    found, broken = [], []
    for name, text in tracked_text_files():
        for m in outside.finditer(text):
            found.append("%s:%d: %s" % (name, text.count("\n", 0, m.start())
                                        + 1, m.group(0)))
        if name.endswith(".md"):
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
                if re.match(r"[a-z]+:", target):
                    continue  # a URL
                path = os.path.join(REPO, os.path.dirname(name), target)
                if not os.path.exists(path):
                    broken.append("%s: %s" % (name, target))
    check(not found, "references outside the repository: %s", found[:10])
    check(not broken, "links to missing files: %s", broken[:10])


@test()
def catalogue_documented(ctx, _):
    """docs/reliability.md names every test tagged with a case, under that
    case, and every test it names exists."""
    for path in modules():
        load(path)
    by_case = collections.defaultdict(set)
    for t in TESTS.values():
        for tag in t.tags:
            if tag.startswith("case "):
                by_case[int(tag[5:])].add(t.fn.__name__)
    known = {t.fn.__name__ for t in TESTS.values()}
    with open(os.path.join(REPO, "docs", "reliability.md")) as f:
        doc = f.read()
    # a case is a paragraph "**N. Title.** text ... Test(s): `name`, ..."
    cases = dict((int(n), text) for n, text in re.findall(
        r"^\*\*(\d+)\. (.*?)(?=^\*\*\d+\. |^## |\Z)", doc, re.M | re.S))
    check(sorted(cases) == list(range(1, max(cases) + 1)),
          "docs/reliability.md: cases %s are not numbered 1..N", sorted(cases))
    missing, unknown = [], []
    for num, text in sorted(cases.items()):
        said = set()
        for span in re.findall(r"Tests?:\s(.*?)(?:\.\s|\.$|\Z)", text, re.S):
            said |= set(re.findall(r"`(\w+)`", span))
        missing += ["case %d: %s" % (num, n) for n in
                    sorted(by_case[num] - said)]
        unknown += ["case %d: %s" % (num, n) for n in sorted(said - known)]
    check(not missing, "tests tagged with a case but not named under it in "
          "docs/reliability.md: %s", missing)
    check(not unknown, "docs/reliability.md names tests that do not exist: "
          "%s", unknown)
    check(set(by_case) <= set(cases), "tags of cases the catalogue lacks: %s",
          sorted(set(by_case) - set(cases)))
