#!/usr/bin/env python3
"""Checks that an imgsearch HTML page is well formed and self-contained.

usage: check_html.py PAGE [--imgs N] [--figures N] [--rows TABLE_ID=N] [--text STRING]...

Parses the page with html.parser and fails (exit 1, naming the problem) when: a non-void
element is left open or closed out of order; the page has a script, an iframe, an object,
a stylesheet link, a font, or any src/href/url() that is not a data: URI or an in-page
#anchor; an <img> is not an embedded JPEG that decodes (JPEG SOI..EOI markers, and PIL when
installed); or the counts of images, SVG figures or table rows differ from those given.
"""
import base64
import io
import re
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SVG_VOID_OK = {"rect", "line", "circle", "polyline", "path", "polygon", "ellipse"}  # may be self-closed
FORBIDDEN = {"script", "iframe", "object", "embed", "link", "base", "frame", "applet"}


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.imgs, self.figures = [], [], [], []
        self.rows, self.table, self.text = {}, None, []

    def handle_starttag(self, tag, attrs):
        self._tag(tag, attrs, closed=False)

    def handle_startendtag(self, tag, attrs):
        self._tag(tag, attrs, closed=True)

    def _tag(self, tag, attrs, closed):
        a = dict(attrs)
        where = "line %d" % self.getpos()[0]
        if tag in FORBIDDEN:
            self.errors.append("%s: <%s> is not allowed in a self-contained page" % (where, tag))
        for name in ("src", "href", "xlink:href", "srcset", "action", "poster", "data"):
            v = a.get(name)
            if v is not None and not (v.startswith("data:") or v.startswith("#")):
                self.errors.append("%s: <%s %s=%r> refers outside the page" % (where, tag, name, v[:80]))
        if "url(" in (a.get("style") or ""):
            self.errors.append("%s: <%s style> uses url()" % (where, tag))
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "svg" and "figure" in (a.get("class") or "").split():
            self.figures.append(a.get("id") or "")
        if tag == "table":
            self.table = a.get("id") or ""
            self.rows.setdefault(self.table, 0)
        if tag == "tr" and self.table is not None:
            self.rows[self.table] += 1
        if tag not in VOID and not closed:
            self.stack.append((tag, where))
        elif closed and tag not in VOID and tag not in SVG_VOID_OK:
            self.errors.append("%s: <%s/> self-closed" % (where, tag))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append("line %d: </%s> does not close the open <%s>" %
                               (self.getpos()[0], tag, self.stack[-1][0] if self.stack else "nothing"))
            return
        self.stack.pop()
        if tag == "table":
            self.table = None

    def handle_data(self, data):
        self.text.append(data)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, args = argv[1], argv[2:]
    html = open(path, encoding="utf-8").read()
    page = Page()
    page.feed(html)
    page.close()
    errors = list(page.errors)
    if not html.lstrip().lower().startswith("<!doctype html>"):
        errors.append("no <!DOCTYPE html>")
    for tag, where in page.stack:
        errors.append("%s: <%s> never closed" % (where, tag))
    for css in re.findall(r"<style>(.*?)</style>", html, re.S):
        if "@import" in css or "url(" in css or "@font-face" in css:
            errors.append("<style> loads something (@import, url() or @font-face)")
    try:
        from PIL import Image
    except ImportError:
        Image = None
    for i, src in enumerate(page.imgs):
        prefix = "data:image/jpeg;base64,"
        if not src.startswith(prefix):
            errors.append("img %d is not an embedded JPEG: %r" % (i, src[:60]))
            continue
        data = base64.b64decode(src[len(prefix):], validate=True)
        if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
            errors.append("img %d: not a complete JPEG" % i)
        elif Image is not None:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                if max(im.size) > 400:
                    errors.append("img %d: %dx%d is not a thumbnail" % (i, im.size[0], im.size[1]))
    text = " ".join(page.text)
    k = 0
    while k < len(args):
        opt, val = args[k], args[k + 1]
        k += 2
        if opt == "--imgs" and len(page.imgs) != int(val):
            errors.append("expected %s images, found %d" % (val, len(page.imgs)))
        elif opt == "--figures" and len(page.figures) != int(val):
            errors.append("expected %s SVG figures, found %d (%s)" % (val, len(page.figures), page.figures))
        elif opt == "--rows":
            table, n = val.split("=")
            if page.rows.get(table) != int(n):
                errors.append("expected %s rows in table #%s, found %s" % (n, table, page.rows.get(table)))
        elif opt == "--text" and val not in text:
            errors.append("text %r not on the page" % val)
    if errors:
        for e in errors:
            print("check_html: %s: %s" % (path, e), file=sys.stderr)
        return 1
    print("%s: ok, %d images, %d figures, tables %s" % (path, len(page.imgs), len(page.figures), page.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
