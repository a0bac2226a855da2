"""Finding the shared library (CACHELOCK_LIBRARY, next to the package, the
installed prefix, the dynamic loader), the error that lists what was tried,
and packaging: a wheel built offline, and `make install PYTHON=`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import unittest
import zipfile

import cachelock
from helpers import DEADLINE, PYTHON, CacheTest, need

PACKAGE = os.path.dirname(os.path.abspath(cachelock.__file__))
PROJECT = os.path.dirname(os.path.dirname(PACKAGE))     # bindings/python
LIBRARY = os.path.realpath(cachelock.library_path())


def python_version_dir() -> str:
    return "python{}.{}".format(*sys.version_info[:2])


def load(path_entry: str, cache: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Import the package found at *path_entry* in a new interpreter, with
    CACHELOCK_LIBRARY and LD_LIBRARY_PATH unset unless given, print where
    the library came from, and lock something in *cache*."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("CACHELOCK_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    environ.update(env)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import cachelock; "
            "print(cachelock.library_path()); "
            "print(cachelock.CacheLock(sys.argv[2], 'x').acquire(blocking=False).lock.path)")
    return subprocess.run([PYTHON, "-I", "-c", code, path_entry, cache],
                          env=environ, capture_output=True, text=True, timeout=DEADLINE)


class FindingTest(CacheTest):

    def copy_package(self, where: str) -> str:
        """A copy of the package under *where*; its directory."""
        target = os.path.join(where, "cachelock")
        shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
        return target

    def load(self, path_entry: str, **env: str) -> subprocess.CompletedProcess[str]:
        return load(path_entry, self.cache, **env)

    def test_cachelock_library_names_the_file(self) -> None:
        where = os.path.join(self.dir, "site")
        self.copy_package(where)
        done = self.load(where, CACHELOCK_LIBRARY=LIBRARY)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines()[0], LIBRARY)

    def test_cachelock_library_that_does_not_load_is_an_import_error(self) -> None:
        where = os.path.join(self.dir, "site")
        self.copy_package(where)
        missing = os.path.join(self.dir, "nowhere", "libcachelock.so.0")
        done = self.load(where, CACHELOCK_LIBRARY=missing)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("ImportError: cannot load the C library libcachelock "
                      "(CACHELOCK_LIBRARY names a file that does not load)", done.stderr)
        self.assertIn(missing, done.stderr)

    def test_library_next_to_the_package(self) -> None:
        where = os.path.join(self.dir, "site")
        package = self.copy_package(where)
        shutil.copy(LIBRARY, os.path.join(package, "libcachelock.so.0"))
        done = self.load(where)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines()[0],
                         os.path.join(package, "libcachelock.so.0"))

    def test_library_in_the_installed_prefix(self) -> None:
        prefix = os.path.join(self.dir, "prefix")
        for site in ("site-packages", "dist-packages"):
            with self.subTest(site=site):
                where = os.path.join(prefix, "lib", python_version_dir(), site)
                self.copy_package(where)
                os.makedirs(os.path.join(prefix, "lib"), exist_ok=True)
                shutil.copy(LIBRARY, os.path.join(prefix, "lib", "libcachelock.so.0"))
                done = self.load(where)
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assertEqual(done.stdout.splitlines()[0],
                                 os.path.join(prefix, "lib", "libcachelock.so.0"))
                shutil.rmtree(prefix)

    def test_library_through_the_dynamic_loader(self) -> None:
        where = os.path.join(self.dir, "site")
        self.copy_package(where)
        libdir = os.path.join(self.dir, "libs")
        os.makedirs(libdir)
        shutil.copy(LIBRARY, os.path.join(libdir, "libcachelock.so.0"))
        done = self.load(where, LD_LIBRARY_PATH=libdir)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines()[0], "libcachelock.so.0")

    def test_nothing_found_lists_every_path_tried(self) -> None:
        where = os.path.join(self.dir, "site")
        package = self.copy_package(where)
        done = self.load(where)
        if done.returncode == 0:
            self.skipTest("libcachelock is installed on this machine, found as "
                          + done.stdout.splitlines()[0])
        self.assertIn("ImportError: cannot load the C library libcachelock (set "
                      "CACHELOCK_LIBRARY to the path of libcachelock.so.0", done.stderr)
        for tried in (os.path.join(package, "libcachelock.so.0"),
                      os.path.join(sys.prefix, "lib", "libcachelock.so.0"),
                      "  libcachelock.so.0: ",
                      "ctypes.util.find_library('cachelock'): not found"):
            self.assertIn(tried, done.stderr)


class PackagingTest(CacheTest):

    def test_wheel_builds_offline_with_py_typed(self) -> None:
        for module, package in (("pip", "python3-pip"), ("setuptools", "python3-setuptools"),
                                ("wheel", "python3-wheel")):
            found = subprocess.run([PYTHON, "-c", f"import {module}"],
                                   capture_output=True).returncode == 0
            need(found, f"no {module} for {PYTHON} (apt-get install {package})")
        # setuptools builds in the source tree: build a copy.
        source = os.path.join(self.dir, "source")
        shutil.copytree(PROJECT, source, ignore=shutil.ignore_patterns(
            "__pycache__", "build", "*.egg-info"))
        wheels = os.path.join(self.dir, "wheels")
        done = subprocess.run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-index",
                               "--no-build-isolation", "--disable-pip-version-check",
                               "-q", "-w", wheels, source],
                              capture_output=True, text=True, timeout=DEADLINE * 6)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        [wheel] = os.listdir(wheels)
        self.assertEqual(wheel, f"cachelock-{cachelock.__version__}-py3-none-any.whl")
        with zipfile.ZipFile(os.path.join(wheels, wheel)) as z:
            names = set(z.namelist())
        for module in ("__init__", "_cache", "_errors", "_library", "_lock", "_wait"):
            self.assertIn(f"cachelock/{module}.py", names)
        self.assertIn("cachelock/py.typed", names)
        self.assertFalse([n for n in names if n.startswith("tests/")])

    def test_make_install_with_python(self) -> None:
        build = os.environ.get("BUILD")
        root = os.path.dirname(os.path.dirname(PROJECT))
        need(bool(build) and os.path.exists(os.path.join(root, "Makefile")),
             "BUILD is not set: run through make check")
        need(shutil.which("make") is not None, "no make")
        destdir = os.path.join(self.dir, "root")
        done = subprocess.run(["make", "-s", "-C", root, f"BUILD={build}", "install",
                               "PREFIX=/opt/cl", f"DESTDIR={destdir}", f"PYTHON={PYTHON}"],
                              capture_output=True, text=True, timeout=DEADLINE * 6)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        site = subprocess.run([PYTHON, os.path.join(PROJECT, "sitedir.py"), "/opt/cl"],
                              capture_output=True, text=True, check=True).stdout.strip()
        installed = destdir + site
        self.assertTrue(os.path.isfile(os.path.join(installed, "cachelock", "py.typed")))
        # Found in the prefix it is installed in, even under DESTDIR.
        done = load(installed, self.cache)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines()[0],
                         os.path.join(destdir, "opt/cl/lib/libcachelock.so.0"))


if __name__ == "__main__":
    unittest.main()
