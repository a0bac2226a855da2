/*
 * path.c - lock paths as Windows wants them.
 *
 * The library speaks UTF-8; Windows file names are UTF-16.  Paths are
 * converted strictly (bytes that are not UTF-8 are refused, never
 * replaced: two different names must never open one file), made absolute
 * with GetFullPathNameW (a relative cache directory is taken against the
 * current directory at each open, '/' becomes '\\', "." and ".." go), and
 * prefixed with \\?\ (\\?\UNC\ for shares), which lifts the MAX_PATH limit
 * of 260 characters without a longPathAware manifest.  The library's own
 * limit, CACHELOCK_PATH_MAX bytes of UTF-8, applies everywhere instead.
 *
 * Names differing only in case are one file on NTFS (and under wine), so
 * "Registry" and "registry" are one lock; name.c already keeps device
 * names (CON, NUL, COM1, ...) and trailing dots and spaces out of
 * portable names.
 */
#include "win.h"

#include <stdlib.h>
#include <string.h>

/* Index just past `count` components of s, each followed by a separator,
 * from i; 0 when s ends first. */
static size_t past_components(const char *s, size_t len, size_t i, int count)
{
    while (count-- > 0) {
        while (i < len && !cachelock__os_is_sep(s[i]))
            i++;
        if (i >= len)
            return 0;
        i++;
    }
    return i;
}

static int is_drive(const char *s, size_t len)
{
    return len >= 2 && s[1] == ':' &&
           ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'));
}

size_t cachelock__os_root_len(const char *dir, size_t len)
{
    if (is_drive(dir, len))
        return len >= 3 && cachelock__os_is_sep(dir[2]) ? 3 : 2;
    if (len >= 2 && cachelock__os_is_sep(dir[0]) && cachelock__os_is_sep(dir[1])) {
        /* \\?\C:\ and \\.\C:\, \\?\UNC\server\share\, \\server\share\ */
        if (len >= 4 && (dir[2] == '?' || dir[2] == '.') && cachelock__os_is_sep(dir[3])) {
            if (is_drive(dir + 4, len - 4))
                return len >= 7 && cachelock__os_is_sep(dir[6]) ? 7 : 0;
            if (len >= 8 && strncmp(dir + 4, "UNC", 3) == 0 && cachelock__os_is_sep(dir[7]))
                return past_components(dir, len, 8, 2);
            return past_components(dir, len, 4, 1);
        }
        return past_components(dir, len, 2, 2);
    }
    return len >= 1 && cachelock__os_is_sep(dir[0]) ? 1 : 0;
}

const char *cachelock__os_name_refused(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '\\')
            return "contains a path separator";
        if (c < 0x20)
            return "contains a control character, which Windows refuses in file names";
        if (strchr("<>:\"|?*", c))
            return "contains a character that Windows refuses in file names (< > : \" | ? *)";
    }
    if (len > INT_MAX ||
        MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, (int)len, NULL, 0) <= 0)
        return "is not valid UTF-8 (Windows file names are UTF-16)";
    return NULL;
}

size_t cachelock__win_root_len(const wchar_t *p)
{
    size_t len = wcslen(p), i, seps = 0;
    if (wcsncmp(p, L"\\\\?\\UNC\\", 8) == 0) {
        /* \\?\UNC\server\share\ */
        for (i = 8; i < len; i++)
            if (p[i] == L'\\' && ++seps == 2)
                return i + 1;
        return len;
    }
    if (wcsncmp(p, L"\\\\?\\", 4) == 0) {
        /* \\?\C:\, or \\?\Volume{...}\ */
        for (i = 4; i < len; i++)
            if (p[i] == L'\\')
                return i + 1;
        return len;
    }
    return 0;
}

int cachelock__win_path(const char *path, size_t len, wchar_t **out)
{
    wchar_t *wide = NULL, *full = NULL;
    int n, rc = 0;
    DWORD need;

    *out = NULL;
    if (len > CACHELOCK_PATH_MAX || len > INT_MAX)
        return -ENAMETOOLONG;
    /* MB_ERR_INVALID_CHARS: invalid UTF-8 fails (ERROR_NO_UNICODE_TRANSLATION)
     * instead of becoming U+FFFD. */
    n = len ? MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, (int)len, NULL, 0) : 0;
    if (n <= 0)
        return -EINVAL;
    wide = cachelock__sys.malloc(((size_t)n + 1) * sizeof *wide);
    if (!wide)
        return -ENOMEM;
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, (int)len, wide, n) != n) {
        rc = -EINVAL;
        goto out;
    }
    wide[n] = 0;
    if (wcslen(wide) != (size_t)n) {        /* an embedded NUL: cannot be */
        rc = -EINVAL;
        goto out;
    }
    need = cachelock__sys.GetFullPathNameW(wide, 0, NULL, NULL);
    if (need == 0) {
        rc = cachelock__win_error(GetLastError());
        goto out;
    }
    /* Room for the path, its NUL and the longest prefix (\\?\UNC\ for
     * \\, which replaces two characters). */
    full = cachelock__sys.malloc(((size_t)need + 8) * sizeof *full);
    if (!full) {
        rc = -ENOMEM;
        goto out;
    }
    DWORD got = cachelock__sys.GetFullPathNameW(wide, need, full + 6, NULL);
    if (got == 0 || got >= need) {
        rc = got == 0 ? cachelock__win_error(GetLastError()) : -ENAMETOOLONG;
        goto out;
    }
    wchar_t *f = full + 6;
    if (wcsncmp(f, L"\\\\?\\", 4) == 0 || wcsncmp(f, L"\\\\.\\", 4) == 0) {
        /* Already a device or verbatim path (GetFullPathNameW gives
         * \\.\NUL for a device name): opened as it is. */
        memmove(full, f, ((size_t)got + 1) * sizeof *full);
    } else if (f[0] == L'\\' && f[1] == L'\\') {
        /* \\server\share\... -> \\?\UNC\server\share\... */
        memmove(full + 8, f + 2, ((size_t)got - 1) * sizeof *full);
        memcpy(full, L"\\\\?\\UNC\\", 8 * sizeof *full);
    } else {
        memmove(full + 4, f, ((size_t)got + 1) * sizeof *full);
        memcpy(full, L"\\\\?\\", 4 * sizeof *full);
    }
    *out = full;
    full = NULL;
out:
    free(wide);
    free(full);
    return rc;
}

int cachelock__win_utf8(const wchar_t *w, char *buf, size_t size)
{
    int n = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, buf,
                                size > INT_MAX ? INT_MAX : (int)size, NULL, NULL);
    return n > 0 ? 0 : -1;
}
