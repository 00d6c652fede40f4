"""One-off: wrap user-facing string literals in portal/*.py in _() / _l(); f-strings -> %(name)s."""

import io
import re
import sys
import tokenize
from pathlib import Path

TARGET_CALL = re.compile(
    r"^(flash|\w*(Error|Refused|Failed|Denied|NotFound|Rejected|Locked|Invalid|Exists)|ValidationError"
    r"|StopValidation|\w*Field)$"
)
TARGET_KW = {"message", "label", "title", "hint", "error", "success", "toast", "prompt", "reason_text"}
SKIP_CALL = {"LedgerError", "MalformedEvent", "InvalidSignature", "HiddenField", "CSRFTokenField"}


def convert_fstring(tok: str) -> tuple[str, list[tuple[str, str]]] | None:
    m = re.match(r"^([rRbBuUfF]*)(\"\"\"|'''|\"|')(.*)\2$", tok, re.S)
    prefix, q, body = m.group(1), m.group(2), m.group(3)
    if "f" not in prefix.lower():
        return tok.replace("%", "%%") if False else tok, []
    args = []
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if body.startswith("{{", i):
            out.append("{")
            i += 2
            continue
        if body.startswith("}}", i):
            out.append("}")
            i += 2
            continue
        if c == "{":
            depth, j = 1, i + 1
            while depth:
                if body[j] == "{":
                    depth += 1
                elif body[j] == "}":
                    depth -= 1
                j += 1
            expr = body[i + 1 : j - 1]
            if re.search(r"(?<![=!<>]):|![rsa]$", expr):
                return None  # a format spec: by hand
            name = re.findall(r"[A-Za-z_]\w*", expr.split("(")[0])
            name = name[-1] if name else "value"
            name = name.lstrip("_") or "value"
            base, n = name, 2
            while any(a[0] == name and a[1] != expr for a in args):
                name = f"{base}{n}"
                n += 1
            if not any(a[0] == name for a in args):
                args.append((name, expr))
            out.append(f"%({name})s")
            i = j
            continue
        if c == "%":
            out.append("%%")
            i += 1
            continue
        out.append(c)
        i += 1
    new_prefix = prefix.replace("f", "").replace("F", "")
    return f"{new_prefix}{q}{''.join(out)}{q}", args


def rewrite(src: str, lazy: bool) -> tuple[str, int, list[str]]:
    toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    lines = src.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def off(pos):
        return offsets[pos[0] - 1] + pos[1]

    edits = []
    manual = []
    fn = "_l" if lazy else "_"
    i = 0
    sig = [t for t in toks if t.type not in (tokenize.NL, tokenize.COMMENT)]
    for k, t in enumerate(sig):
        if t.type != tokenize.STRING and not (t.type == getattr(tokenize, "FSTRING_START", -1)):
            continue
        prev = sig[k - 1] if k else None
        prev2 = sig[k - 2] if k > 1 else None
        if prev is None:
            continue
        ok = False
        if prev.string == "(" and prev2 is not None and prev2.type == tokenize.NAME:
            if TARGET_CALL.match(prev2.string) and prev2.string not in SKIP_CALL:
                ok = True
        if prev.string == "=" and prev2 is not None and prev2.type == tokenize.NAME and prev2.string in TARGET_KW:
            # keyword argument, not an assignment statement: the token before must be ( or ,
            prev3 = sig[k - 3] if k > 2 else None
            if prev3 is not None and prev3.string in ("(", ","):
                ok = True
        if not ok:
            continue
        # the run of adjacent strings
        run = []
        j = k
        if hasattr(tokenize, "FSTRING_START"):
            pass
        while j < len(sig) and sig[j].type == tokenize.STRING:
            run.append(sig[j])
            j += 1
        if not run:
            manual.append(f"{t.start[0]}: (fstring tokens) {t.line.strip()[:100]}")
            continue
        nxt = sig[j] if j < len(sig) else None
        if nxt is not None and nxt.string not in (")", ","):
            manual.append(f"{t.start[0]}: {t.line.strip()[:100]}")
            continue
        texts = "".join(eval(r.string.lstrip("fF")) if "f" not in re.match(r"^[a-zA-Z]*", r.string).group(0).lower() else r.string for r in run)
        if not re.search(r"[A-Za-z]{2,}", texts) or not re.search(r"[ A-Z]", texts):
            continue
        if re.match(r"^[a-z_]+$", texts):
            continue
        all_args = []
        new_parts = []
        bad = False
        for r in run:
            conv = convert_fstring(r.string)
            if conv is None:
                bad = True
                break
            s, args = conv
            for a in args:
                if a[0] in [x[0] for x in all_args] and (a[0], a[1]) not in all_args:
                    bad = True
                if a not in all_args:
                    all_args.append(a)
            new_parts.append(s)
        if bad:
            manual.append(f"{t.start[0]}: {t.line.strip()[:100]}")
            continue
        # plain strings in a run with f-strings need % escaped
        has_f = any("f" in re.match(r"^[a-zA-Z]*", r.string).group(0).lower() for r in run)
        if has_f:
            fixed = []
            for r, s in zip(run, new_parts):
                if "f" not in re.match(r"^[a-zA-Z]*", r.string).group(0).lower():
                    s = s.replace("%", "%%")
                fixed.append(s)
            new_parts = fixed
        start, end = off(run[0].start), off(run[-1].end)
        original = src[start:end]
        # keep the layout between the strings
        pieces = []
        cur = start
        for r, s in zip(run, new_parts):
            pieces.append(src[cur : off(r.start)])
            pieces.append(s)
            cur = off(r.end)
        body = "".join(pieces)
        kw = "".join(f", {n}={e}" for n, e in all_args)
        edits.append((start, end, f"{fn}({body}{kw})"))
    for start, end, new in sorted(edits, reverse=True):
        src = src[:start] + new + src[end:]
    return src, len(edits), manual


if __name__ == "__main__":
    total = 0
    for p in sys.argv[1:]:
        path = Path(p)
        src = path.read_text()
        lazy = path.name.endswith("forms.py")
        new, n, manual = rewrite(src, lazy)
        for m in manual:
            print(f"MANUAL {p}:{m}")
        if n:
            total += n
            fn = "_l" if lazy else "_"
            if not re.search(rf"^from portal\.i18n import .*\b{fn}\b", new, re.M):
                # after the last top-level import of the header
                lines = new.split("\n")
                last = max(i for i, l in enumerate(lines[:200]) if re.match(r"^(from \S+ import|import )", l) and not l.startswith("from __future__"))
                # step over a parenthesised import
                while "(" in lines[last] and ")" not in lines[last]:
                    last += 1
                    while not lines[last].startswith(")"):
                        last += 1
                lines.insert(last + 1, f"from portal.i18n import {fn}")
                new = "\n".join(lines)
            path.write_text(new)
            print(f"{p}: {n}")
    print("total", total)
