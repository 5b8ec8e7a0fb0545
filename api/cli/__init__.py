"""The ``gpuplan`` command line (entry point ``api.cli:main``).

The commands live in one module per group (``db``, ``catalog``, ``fleet``, ``offers``, ``collect``,
``planning``, ``quickstart``), assembled in ``api.cli.commands``; ``api.cli.app`` holds the frame they
share (the typer app, the runtime, the database, the mapping of errors to exit statuses) and
``api.cli.render`` turns typed results into rich tables. This module imports nothing heavy, so Ctrl-C
while the libraries load ends like Ctrl-C anywhere else: one line, exit status 130.
"""

from __future__ import annotations

import sys

from api.cli.status import ExitStatus


def main() -> None:
    try:
        from api.cli.commands import app  # noqa: PLC0415 (loaded here so that Ctrl-C while loading is one line)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(ExitStatus.INTERRUPTED) from None
    app()
