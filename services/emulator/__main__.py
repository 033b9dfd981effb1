"""`python -m services.emulator --host 127.0.0.1 --port 8100 [--speed N]`: serve the test double."""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(description="OpenAI emulator (a test double of OpenAI).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--speed", type=float, default=60.0, help="emulated seconds per second")
    parser.add_argument("--org-slug", default="emulator", help="org part of ft: model names")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(speed=args.speed, org_slug=args.org_slug), host=args.host, port=args.port
    )


if __name__ == "__main__":
    main()
