"""The readable results: the page and the chart that fileserv.html draws
from tests/t_report.lua's results table (`fileserv run tests/t_report.lua
BIN DIR` writes them), checked as XML and HTML, and the page rendered by
headless Chromium where /usr/bin/chromium exists (skipped otherwise).
"""
import html.parser, os, struct, subprocess, xml.etree.ElementTree as ET
import zlib

from harness import *  # noqa: F401,F403  (tests/harness.py)

FIXTURE = os.path.join(HERE, "t_report.lua")
CHROMIUM = "/usr/bin/chromium"
SVG_NS = "{http://www.w3.org/2000/svg}"
THREAD, PROCESS = (0x1f, 0x77, 0xb4), (0xd9, 0x5f, 0x02)  # the sides' colors


def render(binary, tmp):
    """Writes the fixture's results.html and results.svg into tmp."""
    p = subprocess.run([binary, "run", FIXTURE, binary, tmp],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "t_report.lua exit %d: %s", p.returncode,
          (p.stdout + p.stderr)[-500:])
    return os.path.join(tmp, "results.html"), os.path.join(tmp, "results.svg")


class Balance(html.parser.HTMLParser):
    """Checks that every element but the void ones is closed in order."""
    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.problems.append("unexpected </%s>" % tag)

    def handle_data(self, data):
        self.text.append(data)


@test()
def report_parses(ctx, _):
    page, svg = render(ctx.bin, ctx.root)
    root = ET.parse(svg).getroot()
    check(root.tag == SVG_NS + "svg", "svg root is %s", root.tag)
    circles = root.findall(".//%scircle" % SVG_NS)
    bars = [p for p in root.iter(SVG_NS + "path") if p.get("class") == "ci"]
    check(len(circles) >= 15 and len(bars) == 31,
          "svg: %d circles, %d error bars", len(circles), len(bars))
    doc = ET.parse(page).getroot()  # the page is well-formed XML too
    charts = [s for s in doc.iter("svg")
              if s.get("aria-label", "").endswith(" throughput")]
    check(doc.tag == "html" and len(charts) == 2,
          "page: root %s, %d inline charts", doc.tag, len(charts))
    check(len(doc.findall(".//tr[@id]")) == 32, "a row per cell")
    b = Balance()
    with open(page, encoding="utf-8") as f:
        b.feed(f.read())
    b.close()
    check(not b.problems and not b.stack, "html: %s, left open %s",
          b.problems[:3], b.stack)
    text = "".join(b.text)
    check('<script>alert("x")</script>' in text,
          "hostile text is shown as text")


def png_pixels(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG", path)
    pos, idat, head = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    width, height, depth, color, _, _, interlace = head
    check(depth == 8 and color in (2, 6) and not interlace,
          "PNG format depth %d color %d interlace %d", depth, color,
          interlace)
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], None
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(
            raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        prev = prev or bytearray(stride)
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else
                                      b if pb <= pc else c)) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return width, height, rows


@test(timeout=180)
def report_in_chromium(ctx, _):
    if not os.access(CHROMIUM, os.X_OK):
        raise Skip("no %s (apt-get install chromium)" % CHROMIUM)
    page, _ = render(ctx.bin, ctx.root)
    shot, profile = ctx.path("page.png"), ctx.path("profile")
    p = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--user-data-dir=" + profile, "--screenshot=" + shot,
         "--window-size=1280,2000", "file://" + page],
        capture_output=True, text=True, timeout=150)
    check(p.returncode == 0 and os.path.exists(shot),
          "chromium exit %d: %s", p.returncode, p.stderr[-500:])
    width, height, rows = png_pixels(shot)
    check((width, height) == (1280, 2000), "screenshot %dx%d", width, height)
    inked = sum(1 for row in rows for px in row if px != (255, 255, 255))
    check(inked > width * height // 50, "only %d pixels not white", inked)
    colors = {px for row in rows for px in row}
    check(THREAD in colors and PROCESS in colors,
          "the charts' thread and process markers are not on screen")
