"""The shipped catalogues: every UI string of the current sources translated in every language,
placeholders kept, the compiled .mo files up to date, and no unmarked text in templates."""

from __future__ import annotations

import gettext
import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from portal.i18n import DEFAULT_LOCALE, LANGUAGES, TRANSLATIONS_DIR
from tests.i18n.textscan import unmarked

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(code for code in LANGUAGES if code != DEFAULT_LOCALE)
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "_l": None,
    "N_": None,
}
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def source_messages() -> dict:
    """msgid -> locations, extracted from portal/ and templates/ as `make translations` does."""
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        if isinstance(message, tuple):
            message = tuple(message[:2])
        if message:
            found.setdefault(message, []).append(f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def sources():
    return source_messages()


def catalogue(language: str):
    with open(TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po", "rb") as po:
        return read_po(po, locale=language)


def test_the_sources_have_strings_to_translate(sources):
    assert len(sources) > 500
    assert "Sign in" in sources and "Account balance" in sources  # templates and navigation
    assert "Choose one of the languages offered." in sources  # domain messages


@pytest.mark.parametrize("language", SHIPPED)
def test_every_string_of_the_sources_is_translated(sources, language):
    """Fails when a string is added or changed without its translation (run `make
    translations`, then translate the new entries of the .po files)."""
    messages = catalogue(language)
    problems = []
    for msgid, where in sources.items():
        entry = messages.get(msgid)
        strings = () if entry is None else entry.string
        strings = strings if isinstance(strings, tuple) else (strings,)
        if entry is None:
            problems.append(f"missing: {msgid!r} ({where[0]})")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {msgid!r} ({where[0]})")
        elif not all(s.strip() for s in strings):
            problems.append(f"untranslated: {msgid!r} ({where[0]})")
    assert not problems, f"{language}: {len(problems)} strings\n" + "\n".join(problems[:40])


@pytest.mark.parametrize("language", SHIPPED)
def test_translations_keep_the_placeholders_and_format(language):
    problems = []
    for entry in catalogue(language):
        if not entry.id or not entry.string:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        wanted = set().union(*(PLACEHOLDER.findall(i) for i in ids))
        formatted = any("%(" in i or "%%" in i for i in ids)
        for text in strings:
            names = set(PLACEHOLDER.findall(text))
            # A plural form may leave out %(num)s ("one card"); nothing else may be dropped.
            if names - wanted or (wanted - {"num"}) - names:
                problems.append(f"{ids[0]!r}: {sorted(names)} vs {sorted(wanted)}")
            if formatted:
                try:
                    text % {name: 1 for name in wanted | names}
                except (ValueError, TypeError, KeyError) as exc:
                    problems.append(f"{ids[0]!r}: {text!r} does not format ({exc})")
            elif "%(" in text:
                problems.append(f"{ids[0]!r}: a placeholder that is never filled in {text!r}")
    assert not problems, "\n".join(problems)


def test_the_placeholder_check_catches_a_dropped_placeholder():
    # The rule above, on a made-up pair: it must be able to fail.
    wanted = set(PLACEHOLDER.findall("Send %(amount)s to %(number)s"))
    assert wanted - set(PLACEHOLDER.findall("%(amount)s senden")) == {"number"}


@pytest.mark.parametrize("language", SHIPPED)
def test_the_compiled_catalogue_matches_its_po_file(language):
    """The .mo files are committed (a fresh clone runs without a build step): they must be the
    compilation of the .po files (`make translations` recompiles them)."""
    compiled = io.BytesIO()
    write_mo(compiled, catalogue(language))
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)._catalog
    with open(TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.mo", "rb") as mo:
        shipped = gettext.GNUTranslations(mo)._catalog
    assert shipped == expected, "run `make translations` to recompile the .mo files"


def test_templates_have_no_unmarked_text():
    """Visible text and labels (aria-label, placeholder, title, alt, hx-confirm) in templates are
    inside _()/ngettext(); the scan is what tests/i18n/textscan.py prints by hand."""
    problems = []
    for path in sorted((ROOT / "templates").rglob("*")):
        if path.suffix in (".html", ".txt"):
            problems += [
                f"{path.relative_to(ROOT)}:{line}: {text!r}"
                for line, text in unmarked(path.read_text())
            ]
    assert not problems, "\n".join(problems)


def test_the_scan_finds_unmarked_text():
    source = (
        '<h1>{{ _("Marked") }}</h1><p>Not marked {{ x }}</p>'
        '<input aria-label="Search me"><b>{{ _("ok") }}</b>'
    )
    assert [text for _line, text in unmarked(source)] == ["Not marked", 'aria-label="Search me"']
