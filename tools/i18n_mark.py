"""One-off helper: wrap plain template text in {{ _('...') }}; list mixed runs for hand work."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from i18n_scan import ATTR, LETTERS, UNTRANSLATED, tokens  # noqa: E402

INLINE = re.compile(r"</?(a|strong|em|b|i|code|small|span|time|abbr|kbd|mark|br)\b", re.I)


def is_joiner(tok: str | None, side: str) -> bool:
    if tok is None:
        return False
    if tok.startswith("{{"):
        return "_(" not in tok and "ngettext" not in tok
    if not INLINE.match(tok):
        return False
    closing = tok.startswith("</")
    # Text after an inline element that closed, or before one that opens, is part of a sentence.
    return closing if side == "prev" else not closing


def quote(text: str) -> str:
    text = text.replace("%", "%%")
    if "'" in text:
        return '"' + text.replace('"', '\\"') + '"'
    return "'" + text + "'"


def mark(source: str, path: str, mixed_out: list) -> str:
    toks = list(tokens(source))
    out = []
    depth = skip = 0
    for i, (kind, text, pos) in enumerate(toks):
        if kind == "tag":
            t = text.replace("-", " ").split()
            if text.startswith("{%") and len(t) > 1:
                if t[1] == "trans":
                    depth += 1
                elif t[1] == "endtrans":
                    depth -= 1
            low = text.lower()
            if low.startswith(("<script", "<style")):
                skip += 1
            elif low.startswith(("</script", "</style")):
                skip -= 1
            if text.startswith("<") and not text.startswith("<!--"):

                def attr(m):
                    name, value = m.group(1), m.group(2)
                    if "{{" in value or "{%" in value:
                        return m.group(0)
                    v = value.strip()
                    if LETTERS.search(v) and v not in UNTRANSLATED:
                        return f'{name}="{{{{ _({quote(v)}) }}}}"'
                    return m.group(0)

                text = ATTR.sub(attr, text)
            out.append(text)
            continue
        stripped = text.strip()
        if depth or skip or not LETTERS.search(stripped) or stripped in UNTRANSLATED:
            out.append(text)
            continue
        prev = toks[i - 1][1] if i > 0 else None
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        lead = text[: len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()) :]
        mixed = (is_joiner(prev, "prev") and "\n" not in lead) or (
            is_joiner(nxt, "next") and "\n" not in trail
        )
        if mixed:
            line = source.count("\n", 0, pos) + 1
            mixed_out.append(f"{path}:{line}: {stripped!r}")
            out.append(text)
            continue
        # Keep HTML entities/odd characters verbatim inside the msgid.
        out.append(f"{lead}{{{{ _({quote(stripped)}) }}}}{trail}")
    return "".join(out)


if __name__ == "__main__":
    mixed = []
    for p in [a for a in sys.argv[1:] if a != "--write"]:
        src = Path(p).read_text()
        new = mark(src, p, mixed)
        if new != src and "--write" in sys.argv[0:1] + sys.argv:
            Path(p).write_text(new)
    print("\n".join(mixed))
    print(len(mixed), "mixed", file=sys.stderr)
