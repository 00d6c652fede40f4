"""Find the forms a signed-in person can reach, by crawling the pages like a browser would."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

# Actions we never fuzz: they end the session or wipe data wholesale by design.
SKIP_ACTIONS = ("/logout", "/profile/sessions/sign-out-everywhere")


@dataclass
class Form:
    page: str
    action: str
    method: str
    fields: dict[str, list[str]] = field(default_factory=dict)  # name -> example values

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.method, self.action, tuple(sorted(self.fields)))


class _PageParser(HTMLParser):
    def __init__(self, page: str):
        super().__init__()
        self.page = page
        self.links: list[str] = []
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(urljoin(self.page, a["href"]))
        if a.get("hx-get") and tag != "form":  # HTMX loads (details, paging, lazy parts)
            self.links.append(urljoin(self.page, a["hx-get"]))
        elif tag == "form":
            action = a.get("hx-post") or a.get("hx-get") or a.get("action") or self.page
            method = "post" if a.get("hx-post") else (a.get("method") or "get").lower()
            if a.get("hx-get"):
                method = "get"
            self._form = Form(self.page, urljoin(self.page, action), method)
        elif self._form is not None and tag in ("input", "textarea", "select"):
            name = a.get("name")
            if not name or a.get("type") in ("submit", "button"):
                return
            self._form.fields.setdefault(name, [])
            if a.get("value") is not None:
                self._form.fields[name].append(a["value"])
            if tag == "select":
                self._select = name
        elif tag == "option" and self._form is not None and self._select:
            self._form.fields[self._select].append(a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "form" and self._form is not None:
            self.forms.append(self._form)
            self._form = None


def crawl(
    client,
    start_paths: list[str],
    prefix: str | tuple[str, ...],
    limit: int = 60,
    pages: set | None = None,
) -> list[Form]:
    """Breadth-first over same-area links; returns each distinct form once.

    `pages`, if given, receives every page path visited (with its query string).
    """
    seen_pages: set[str] = set()
    queue = list(start_paths)
    forms: dict[tuple, Form] = {}
    while queue and len(seen_pages) < limit:
        path = queue.pop(0)
        if path in seen_pages:
            continue
        seen_pages.add(path)
        if pages is not None:
            pages.add(path)
        response = client.get(path)
        if response.status_code != 200 or "text/html" not in response.content_type:
            continue
        parser = _PageParser(f"http://localhost{path}")
        parser.feed(response.get_data(as_text=True))
        for link in parser.links:
            parts = urlsplit(link)
            local = parts.path + (f"?{parts.query}" if parts.query else "")
            if parts.path.startswith(prefix) and local not in seen_pages and "csv" not in local:
                queue.append(local)
        for form in parser.forms:
            action = urlsplit(form.action)
            form.action = action.path
            if form.action.startswith(SKIP_ACTIONS):
                continue
            forms.setdefault(form.key, form)
    return list(forms.values())
