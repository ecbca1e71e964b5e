"""``python -m fastiot.cli``: the same as the ``fastiot-workbench`` command."""

from __future__ import annotations

from fastiot.cli.supervisor import main

if __name__ == "__main__":
    raise SystemExit(main())
