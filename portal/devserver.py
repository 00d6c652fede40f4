"""The development stack behind `make run`: localstripe on loopback, the app, the scheduler."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request

from flask import Flask

from portal.config import LOCALSTRIPE_PORT

log = logging.getLogger(__name__)


def start_localstripe(port: int = LOCALSTRIPE_PORT) -> subprocess.Popen:
    """Start our loopback-only localstripe launcher and wait until it answers."""
    proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "portal.localstripe_server", "--port", str(port)],
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/js.stripe.com/v3/", timeout=1)  # noqa: S310
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("localstripe exited during start-up") from None
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("localstripe did not answer within 20 s")


def register_webhook(app: Flask, stripe_port: int, app_port: int) -> None:
    """Tell localstripe to deliver events to our webhook endpoint."""
    import json

    body = json.dumps(
        {
            "url": f"http://127.0.0.1:{app_port}/webhooks/stripe",
            "secret": app.config["STRIPE_WEBHOOK_SECRET"],
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"http://127.0.0.1:{stripe_port}/_config/webhooks/portal",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=5)  # noqa: S310


def run_dev_stack(app: Flask, port: int) -> None:
    stripe_port = int(os.environ.get("LOCALSTRIPE_PORT", LOCALSTRIPE_PORT))
    stripe_proc = start_localstripe(stripe_port)
    try:
        register_webhook(app, stripe_port, port)
        _start_scheduler(app)
        print(f" * Portal on http://127.0.0.1:{port}  (localstripe on 127.0.0.1:{stripe_port})")
        # app.run() is a no-op inside the `flask` CLI; serve with werkzeug directly.
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)
    finally:
        os.killpg(stripe_proc.pid, signal.SIGTERM)
        stripe_proc.wait(timeout=10)


def _start_scheduler(app: Flask) -> None:
    try:
        from portal.scheduler import start_background_scheduler
    except ImportError:  # the scheduler module arrives with the background-jobs work
        log.info("no scheduler module yet")
        return
    start_background_scheduler(app)
