"""`python -m kubeinfer.gateway`: the gateway without loading the rest of the CLI (tests, containers)."""

from __future__ import annotations

import argparse
import sys

from kubeinfer.gateway.auth import NoApiKeysError
from kubeinfer.gateway.server import serve, settings_with


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeinfer.gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model", default=None)
    parser.add_argument("--engine-url", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--insecure-no-auth", action="store_true")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    settings = settings_with(model=args.model, engine_url=args.engine_url, data_dir=args.data_dir)
    try:
        serve(settings, args.host, args.port, args.insecure_no_auth, args.log_level)
    except NoApiKeysError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
