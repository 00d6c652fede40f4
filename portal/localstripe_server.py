"""Run localstripe on 127.0.0.1 only (its own CLI binds every interface).

It never loads state from disk: each start is empty.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args()
    import aiohttp.web
    from localstripe.server import app

    aiohttp.web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
