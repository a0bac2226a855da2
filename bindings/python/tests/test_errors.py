"""Exceptions: Timeout and Busy are outcomes, CacheLockError everything else,
all OSErrors carrying the library's message (the operation and the path);
names the library refuses are ValueErrors, and create nothing."""

from __future__ import annotations

import errno
import os
import pickle
import unittest

from cachelock import Busy, CacheLock, CacheLockError, Timeout
from helpers import CacheTest


class HierarchyTest(unittest.TestCase):

    def test_built_in_bases_keep_existing_except_clauses_working(self) -> None:
        self.assertTrue(issubclass(Timeout, TimeoutError))
        self.assertTrue(issubclass(Busy, Timeout))
        self.assertTrue(issubclass(Busy, BlockingIOError))
        self.assertTrue(issubclass(CacheLockError, OSError))
        # Outcomes are not failures of the system.
        self.assertFalse(issubclass(Timeout, CacheLockError))
        self.assertFalse(issubclass(CacheLockError, TimeoutError))

    def test_exceptions_survive_pickling(self) -> None:
        for exc in (Timeout("timed out after 5 ms waiting for lock '/c/.locks/a.lock'", "/x"),
                    Busy("cannot lock '/c/.locks/a.lock': held by another owner", "/x"),
                    CacheLockError(errno.EACCES, "cannot open lock file '/x': Permission denied",
                                   "/x")):
            copy = pickle.loads(pickle.dumps(exc))
            self.assertIs(type(copy), type(exc))
            self.assertEqual((str(copy), copy.errno, copy.filename),
                             (str(exc), exc.errno, exc.filename))


class MessageTest(CacheTest):

    def test_busy_message_names_the_lock_file(self) -> None:
        with CacheLock(self.cache, "registry") as lock:
            with self.assertRaises(Busy) as caught:
                CacheLock(self.cache, "registry").acquire(blocking=False)
        self.assertEqual(str(caught.exception),
                         f"cannot lock '{lock.path}': held by another owner")
        self.assertEqual(caught.exception.filename, lock.path)
        self.assertEqual(caught.exception.lock_file, lock.path)  # filelock's attribute

    def test_system_failure_is_a_cache_lock_error_with_errno_and_message(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        not_a_dir = os.path.join(self.dir, "file")
        with open(not_a_dir, "w"):
            pass
        lock = CacheLock(not_a_dir, "registry")
        with self.assertRaises(CacheLockError) as caught:
            lock.acquire()
        exc = caught.exception
        self.assertIsInstance(exc, NotADirectoryError)
        self.assertEqual(exc.errno, errno.ENOTDIR)
        self.assertEqual(exc.strerror, os.strerror(errno.ENOTDIR))
        self.assertEqual(str(exc), f"cannot open lock directory '{not_a_dir}/.locks': "
                                   "Not a directory")
        self.assertEqual(exc.filename, lock.path)
        self.assertFalse(lock.locked)

    def test_a_symbolic_link_as_lock_file_is_refused(self) -> None:
        os.makedirs(os.path.join(self.cache, ".locks"))
        target = os.path.join(self.dir, "elsewhere")
        os.symlink(target, self.lock_file("registry"))
        with self.assertRaises(CacheLockError) as caught:
            CacheLock(self.cache, "registry").acquire(timeout=1)
        self.assertEqual(caught.exception.errno, errno.ELOOP)
        self.assertIn(self.lock_file("registry"), str(caught.exception))
        self.assertFalse(os.path.exists(target))

    def test_permission_denied_is_a_permission_error(self) -> None:
        if os.geteuid() == 0:
            # Root passes every permission check; a read-only filesystem
            # would do, but cannot be made without privileges either.
            os.makedirs(os.path.join(self.cache, ".locks"))
            path = self.lock_file("registry")
            os.mkfifo(path)
            with self.assertRaises(CacheLockError) as caught:
                CacheLock(self.cache, "registry").acquire(blocking=False)
            self.assertEqual(caught.exception.errno, errno.ENXIO)
            return
        os.makedirs(self.cache)
        os.chmod(self.cache, 0o555)
        self.addCleanup(os.chmod, self.cache, 0o755)
        with self.assertRaises(PermissionError) as denied:
            CacheLock(self.cache, "registry").acquire()
        self.assertIsInstance(denied.exception, CacheLockError)
        self.assertIn("Permission denied", str(denied.exception))


class NameTest(CacheTest):

    REFUSED = ["", ".", "..", "../escape", "a/b", "a\\b", "tab\there", "a<b", "a>b",
               "a:b", 'a"b', "a|b", "a?b", "a*b", "trailing.", "trailing ", "CON",
               "nul.txt", "COM1", "LPT\u00b9", "x" * 251]

    def test_refused_names_raise_value_error_and_create_nothing(self) -> None:
        for name in self.REFUSED:
            with self.subTest(name=name):
                with self.assertRaises(ValueError) as caught:
                    CacheLock(self.cache, name)
                self.assertTrue(str(caught.exception).startswith("invalid source name"),
                                str(caught.exception))
        self.assertFalse(os.path.exists(self.cache))

    def test_nul_bytes_and_wrong_types(self) -> None:
        with self.assertRaises(ValueError) as caught:
            CacheLock(self.cache, "a\0b")
        self.assertEqual(str(caught.exception),
                         "invalid source name 'a\\x00b': contains a NUL byte")
        self.assertRaises(ValueError, CacheLock, self.cache + "\0", "a")
        self.assertRaises(ValueError, CacheLock, "", "a")
        self.assertRaises(TypeError, CacheLock, self.cache, b"a")
        self.assertRaises(TypeError, CacheLock, 42, "a")

    def test_longest_name_is_accepted(self) -> None:
        with CacheLock(self.cache, "x" * 250) as lock:
            self.assertTrue(os.path.exists(lock.path))

    def test_unicode_names_are_portable(self) -> None:
        with CacheLock(self.cache, "caf\u00e9-\u6f22\u5b57") as lock:
            self.assertTrue(os.path.exists(lock.path))

    def test_whole_path_too_long_is_an_os_error(self) -> None:
        deep = "/" + "/".join(["d" * 200] * 21)
        with self.assertRaises(CacheLockError) as caught:
            CacheLock(deep, "registry")
        self.assertEqual(caught.exception.errno, errno.ENAMETOOLONG)


if __name__ == "__main__":
    unittest.main()
