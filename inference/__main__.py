"""The bundled inference service's own entry point: ``python -m inference``.

It needs nothing of the control plane, so a replica (started by the router, a
container or ``inferplane serve``) runs the service alone. Settings come from
``INFERPLANE_<NAME>`` variables; the options below override the common ones.
"""

from __future__ import annotations

import argparse
import os
import sys

from pydantic import ValidationError

from inference.logs import setup_logging
from inference.server import serve
from inference.settings import ServiceSettings, describe_settings_error


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 to serve other hosts")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", help="known model name, local directory or HF id")
    parser.add_argument("--max-batch-size", type=int, help="sequences per forward pass (1 = no batching)")
    parser.add_argument("--engine", help="batching engine: dynamic or continuous")
    parser.add_argument("--log-level", default=os.environ.get("INFERPLANE_LOG_LEVEL", "info"))
    parser.add_argument("--log-format", default=os.environ.get("INFERPLANE_LOG_FORMAT", "text"))
    args = parser.parse_args(argv)
    try:
        setup_logging(args.log_level, args.log_format)
    except ValueError as error:
        parser.error(str(error))
    overrides = {
        key: value
        for key, value in {
            "model": args.model,
            "max_batch_size": args.max_batch_size,
            "engine": args.engine,
        }.items()
        if value is not None
    }
    try:
        settings = ServiceSettings.model_validate(overrides)
    except ValidationError as error:
        print(f"error: {describe_settings_error(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        f"inferplane inference service: http://{args.host}:{args.port}  (model {settings.served_name}; "
        f"OpenAI API at http://{args.host}:{args.port}/v1, metrics at /metrics)",
        file=sys.stderr,
    )
    serve(settings, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
