"""``slowfast --help`` and ``slowfast eval-ava --help`` start fast: they list every command without importing torch,
pandas or numpy (what made start-up take seconds); the speed itself is measured by benchmarks/cli_startup.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slowfast.cli import COMMANDS

PROBE = """
import sys
from slowfast.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "pandas", "numpy", "pyarrow", "matplotlib") if m in sys.modules)
print("HEAVY:" + ",".join(heavy))
"""


@pytest.mark.parametrize("argv", [["--help"], ["eval-ava", "--help"]])
def test_help_imports_no_heavy_module(argv):
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                          timeout=300, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY:"
    if argv == ["--help"]:
        for name in COMMANDS:
            assert name in proc.stdout, name
    else:
        assert "--protocol" in proc.stdout and "activitynet-2020" in proc.stdout


def test_console_script_runs_a_command_after_the_lazy_help(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "slowfast.cli", "eval-ava", "--groundtruth", str(tmp_path / "x"),
                           "--detections", str(tmp_path / "x"), "--labelmap", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "No such file" in proc.stderr and "Traceback" not in proc.stderr
