"""`python -m ftq.services.emulator --port P [--speed N] [--faults JSON]`: serve the test double."""

from __future__ import annotations

import argparse

import uvicorn
from pydantic import ValidationError

from ftq.services.emulator.app import create_app
from ftq.services.emulator.faults import Faults


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(description="OpenAI emulator (a test double of OpenAI).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument(
        "--speed", type=float, default=60.0, help="emulated seconds per second (0: frozen)"
    )
    parser.add_argument("--org-slug", default="emulator", help="org part of ft: model names")
    parser.add_argument("--faults", help="fault switches as JSON, e.g. '{\"rate_429\": 0.1}'")
    args = parser.parse_args(argv)
    try:
        faults = Faults.model_validate_json(args.faults) if args.faults else None
    except ValidationError as error:
        parser.error(f"--faults: {error}")
    app = create_app(speed=args.speed, org_slug=args.org_slug, faults=faults)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
