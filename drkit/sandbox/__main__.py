"""`python -m drkit.sandbox [--port N]`: serve the sandbox in the foreground."""

from __future__ import annotations

import argparse

from drkit.sandbox import SANDBOX_HOST, serve_forever


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve drkit's local AWS emulator.")
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    args = parser.parse_args()
    print(f"drkit sandbox on http://{SANDBOX_HOST}:{args.port} (Ctrl-C stops it)", flush=True)
    serve_forever(args.port)


if __name__ == "__main__":
    main()
