"""Text in templates that is not marked for translation (tests/i18n; by hand:
`python -m tests.i18n.textscan templates/**/*.html`).

A template is split into Jinja constructs, HTML tags and text; text with letters outside
`{{ _() }}`/`{% trans %}` is unmarked, as are user-visible attributes (aria-label, placeholder,
title, alt, hx-confirm) with letters and no `_(`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# A tag may hold Jinja with ">" in it (class="{{ 'a' if x >= 1 }}").
TOKEN = re.compile(
    r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|<!--.*?-->|<(?:[^>{]|\{\{.*?\}\}|\{%.*?%\}|\{(?![{%]))*>)",
    re.S,
)
ATTR = re.compile(r'\b(aria-label|placeholder|title|alt|hx-confirm|data-confirm)="([^"]*)"')
URL_PATH = re.compile(r"^(/[\w/.-]*|&\w+;)$")  # the rest of a link after {{ portal_url }}
LETTERS = re.compile(r"[A-Za-z]{2,}")
# Text that is the same in every language (brand, units, codes).
UNTRANSLATED = {"VoIP Billing", "PDF", "CSV", "API", "ID", "PIN", "SVG", "HTML", "URL", "JSON"}


def tokens(source: str):
    pos = 0
    for m in TOKEN.finditer(source):
        if m.start() > pos:
            yield "text", source[pos : m.start()], pos
        yield "tag", m.group(0), m.start()
        pos = m.end()
    if pos < len(source):
        yield "text", source[pos:], pos


def unmarked(source: str) -> list[tuple[int, str]]:
    """(line, text) of every unmarked piece of visible text in a template."""
    found = []
    depth = 0  # inside {% trans %} ... {% endtrans %}, or <script>/<style>, or a {% raw %}
    skip = 0
    for kind, text, pos in tokens(source):
        line = source.count("\n", 0, pos) + 1
        if kind == "tag":
            t = text.replace("-", " ").split()
            if text.startswith("{%") and len(t) > 1:
                if t[1] in ("trans", "pluralize"):
                    depth += t[1] == "trans"
                elif t[1] == "endtrans":
                    depth -= 1
            low = text.lower()
            if low.startswith(("<script", "<style")):
                skip += 1
            elif low.startswith(("</script", "</style")):
                skip -= 1
            if text.startswith("<") and not text.startswith("<!--"):
                for name, value in ATTR.findall(text):
                    plain = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", value)
                    if LETTERS.search(plain) and plain.strip() not in UNTRANSLATED:
                        found.append((line, f'{name}="{value}"'))
            continue
        if depth or skip:
            continue
        stripped = text.strip()
        if (
            LETTERS.search(stripped)
            and stripped not in UNTRANSLATED
            and not URL_PATH.match(stripped)
        ):
            found.append((line, stripped))
    return found


def main(paths: list[str]) -> int:
    total = 0
    for p in paths:
        for line, text in unmarked(Path(p).read_text()):
            total += 1
            print(f"{p}:{line}: {text!r}")
    print(total, "unmarked", file=sys.stderr)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
