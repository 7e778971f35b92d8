"""Running ``gamestore.cli.main`` in-process, for the CLI tests."""
from __future__ import annotations

from typing import Any

import pytest

from gamestore.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``gamestore ARGV``."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
