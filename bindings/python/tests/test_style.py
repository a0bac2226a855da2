"""The package's own checks, as rustfmt and clippy are the crate's: pyflakes
(no unused names, no undefined ones), pycodestyle (PEP 8, lines up to 99
characters as PEP 8 allows a team), and mypy --strict over the package,
its tests and its benchmark (the type hints that py.typed promises)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import unittest

from helpers import DEADLINE, PYTHON, need

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["src/cachelock", "tests", "bench", "sitedir.py"]


class StyleTest(unittest.TestCase):

    def check(self, module: str, package: str, *args: str,
              env: dict[str, str] | None = None) -> None:
        need(importlib.util.find_spec(module) is not None,
             f"no {module} for {PYTHON} (apt-get install {package})")
        done = subprocess.run([PYTHON, "-m", module, *args, *SOURCES], cwd=PROJECT,
                              env=env, capture_output=True, text=True, timeout=DEADLINE * 6)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_pyflakes(self) -> None:
        self.check("pyflakes", "python3-pyflakes")

    def test_pycodestyle(self) -> None:
        self.check("pycodestyle", "python3-pycodestyle", "--max-line-length=99")

    def test_mypy_strict(self) -> None:
        env = dict(os.environ, MYPYPATH=os.pathsep.join(
            [os.path.join(PROJECT, "src"), os.path.join(PROJECT, "tests")]))
        self.check("mypy", "mypy", "--strict", "--cache-dir=/dev/null", env=env)


if __name__ == "__main__":
    unittest.main()
