"""Shared benchmark plumbing: machine facts, results file, gunicorn, wrk, signing in."""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results.md"
PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BENCH_SECRET = "bench-secret-key-" + "x" * 32


def machine() -> str:
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB RAM, {python}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Report:
    """One benchmark's figures and verdicts, appended to bench/results.md."""

    title: str
    database: str
    lines: list[str] = field(default_factory=list)

    def figure(self, text: str) -> None:
        print(f"  {text}", flush=True)
        self.lines.append(f"- {text}")

    def target(self, name: str, value: float, limit: float, *, at_least: bool) -> bool:
        met = value >= limit if at_least else value <= limit
        sign = ">=" if at_least else "<="
        self.figure(
            f"{name}: {value:.2f} (target {sign} {limit}) — **{'met' if met else 'missed'}**"
        )
        return met


def write_results(reports: list[Report], mode: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"\n## Run of {stamp} ({mode})\n", f"Machine: {machine()}\n"]
    for report in reports:
        out.append(f"\n### {report.title} — {report.database}\n")
        out.extend(line + "\n" for line in report.lines)
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nAppended by `make bench` / `make bench-quick`.\n"
        )
    with RESULTS.open("a") as fh:
        fh.writelines(out)


# --- a production-like server ------------------------------------------------------


class Gunicorn:
    """gunicorn exactly as in production (portal/gunicorn_conf.py) on a loopback port."""

    def __init__(self, database_url: str, extra_env: dict | None = None, app: str = "app:app"):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "PORT": str(self.port),
            "SECRET_KEY": BENCH_SECRET,
            "ACCESS_LOG": "0",
            "PYTHONPATH": str(ROOT),
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Gunicorn:
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.proc = subprocess.Popen(  # noqa: S603
            [gunicorn, "-c", str(ROOT / "portal" / "gunicorn_conf.py"), self.app],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 90  # a busy 2-core machine took 23 s to import the app
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1)  # noqa: S310
                return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def sign_in(base_url: str, email: str, password: str) -> str:
    """Sign in like a browser (CSRF token included); returns the Cookie header value."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(f"{base_url}/login").read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    body = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": token})
    opener.open(  # noqa: S310 - loopback
        urllib.request.Request(
            f"{base_url}/login", data=body.encode(), headers={"Referer": f"{base_url}/login"}
        )
    )
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    if "session=" not in cookie:
        raise RuntimeError("sign-in failed")
    return cookie


@dataclass
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    # Answers per status code, when the Lua script prints "status <code> <count>" lines.
    statuses: dict[int, int] = field(default_factory=dict)
    requests: int = 0


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int = 8,
    headers: dict | None = None,
    script: Path | None = None,
    script_args: list[str] | None = None,
) -> LoadResult:
    """Load `url` with wrk (Debian package) and parse throughput and latency percentiles."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    args.append(url)
    if script_args:
        args += ["--", *script_args]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return LoadResult(
        rps,
        _percentile(out, "50%"),
        _percentile(out, "99%"),
        int(non_2xx.group(1)) if non_2xx else 0,
        {int(code): int(n) for code, n in re.findall(r"^status (\d+) (\d+)$", out, re.M)},
        int(total.group(1)) if total else 0,
    )


def _percentile(out: str, label: str) -> float:
    value, unit = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def sequential_latency(url: str, cookie: str, *, count: int, headers: dict | None = None) -> float:
    """Median latency in ms of `count` sequential requests over one keep-alive connection."""
    import http.client

    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie, **(headers or {})})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        timings.append((time.perf_counter() - started) * 1000)
    conn.close()
    timings.sort()
    return timings[len(timings) // 2]


class Browser:
    """A minimal cookie-keeping HTTP client on one keep-alive connection.

    `source` picks the client's loopback address (127.0.0.0/8 all reaches the server on
    Linux), so each simulated client has its own address for per-address limits.
    """

    CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')

    def __init__(self, base_url: str, source: str | None = None):
        import http.client

        parsed = urllib.parse.urlparse(base_url)
        self.conn = http.client.HTTPConnection(
            parsed.hostname, parsed.port, timeout=60, source_address=(source, 0) if source else None
        )
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(self, method: str, path: str, form: dict | None = None, headers=None):
        """(status, body text); form fields are sent url-encoded, the CSRF token included."""
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode({"csrf_token": self.csrf, **form})
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers={**sent, **(headers or {})})
        response = self.conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        for header in response.msg.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        found = self.CSRF.search(text)
        if found:
            self.csrf = found.group(1)
        return response.status, text

    def sign_in(self, email: str, password: str) -> None:
        self.request("GET", "/login")
        status, _ = self.request("POST", "/login", {"email": email, "password": password})
        if status not in (302, 303):
            raise RuntimeError(f"sign-in of {email} answered {status}")

    def close(self) -> None:
        self.conn.close()
