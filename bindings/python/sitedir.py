"""Print the directory that ``make install PYTHON=...`` puts the package in.

    python3 bindings/python/sitedir.py PREFIX

The interpreter's own site directory when it lies under PREFIX/lib (for
Debian's python3 and PREFIX=/usr/local, /usr/local/lib/python3.11/
dist-packages, which is on its sys.path), else the standard layout under
PREFIX (PREFIX/lib/python3.11/site-packages: add it to PYTHONPATH).  The
package then finds the library in PREFIX/lib by itself.
"""

import os
import sys
import sysconfig


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 64
    prefix = os.path.abspath(sys.argv[1])
    default = sysconfig.get_path("purelib")
    lib = os.path.join(prefix, "lib") + os.sep
    if default.startswith(lib):
        print(default)
    else:
        print(sysconfig.get_path("purelib", "posix_prefix",
                                 {"base": prefix, "platbase": prefix}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
