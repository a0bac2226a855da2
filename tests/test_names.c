/* test_names.c - which source names are accepted and where they map. */
#include "helpers.h"

static void test_valid_names_map_to_dot_locks_name_dot_lock(void)
{
    static const char *const names[] = {
        "registry", "official-1.2_x", "a b", ".hidden", "-dash", "ünïcödé", "日本語",
        "x.lock", "con1", "COMX", "nulx", "lpt", "a..b", "~user", "emoji-\xf0\x9f\x98\x80",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char buf[1024], want[1024];
        int n = cachelock_path(tap_dir, names[i], buf, sizeof buf);
        snprintf(want, sizeof want, "%s" SEP ".locks" SEP "%s.lock", tap_dir, names[i]);
        CHECK_EQ(n, (long long)strlen(want));
        CHECK(strcmp(buf, want) == 0);
        CHECK_EQ(cachelock_check_name(names[i]), 0);

        cachelock_t *lock;
        CHECK_EQ(cachelock_acquire(tap_dir, names[i], &lock), 0);
        CHECK(lock_is_file(lock, want));
        cachelock_release(lock);
    }
}

struct bad { const char *name; int code; const char *why; };

static void test_bad_names_are_refused_and_create_nothing(void)
{
    static const struct bad bad[] = {
        { "", -EINVAL, "is empty" },
        { ".", -EINVAL, "relative directory" },
        { "..", -EINVAL, "relative directory" },
        { "a/b", -EINVAL, "path separator" },
        { "/etc/passwd", -EINVAL, "path separator" },
        { "../escape", -EINVAL, "path separator" },
        { "a\\b", -EINVAL, "path separator" },
        { "..\\..\\x", -EINVAL, "path separator" },
        { "new\nline", -EINVAL, "control character" },
        { "tab\t", -EINVAL, "control character" },
        { "del\x7f", -EINVAL, "control character" },
        { "esc\x1b[0m", -EINVAL, "control character" },
        { "c:drive", -EINVAL, "not portable" },
        { "wild*", -EINVAL, "not portable" },
        { "what?", -EINVAL, "not portable" },
        { "pipe|", -EINVAL, "not portable" },
        { "<angle>", -EINVAL, "not portable" },
        { "quote\"", -EINVAL, "not portable" },
        { "trailing.", -EINVAL, "dot or a space" },
        { "trailing ", -EINVAL, "dot or a space" },
        { "con", -EINVAL, "reserved device" },
        { "NUL", -EINVAL, "reserved device" },
        { "aux.txt", -EINVAL, "reserved device" },
        { "Com1", -EINVAL, "reserved device" },
        { "lpt9.x", -EINVAL, "reserved device" },
        { "COM\xc2\xb9", -EINVAL, "reserved device" },      /* COM with superscript 1 */
        { "com\xc2\xb2.txt", -EINVAL, "reserved device" },  /* superscript 2 */
        { "LPT\xc2\xb3", -EINVAL, "reserved device" },      /* superscript 3 */
        { "CONIN$", -EINVAL, "reserved device" },
        { "conout$.log", -EINVAL, "reserved device" },
        { "\xff", -EINVAL, "UTF-8" },
        { "\xc0\xaf", -EINVAL, "UTF-8" },           /* overlong '/' */
        { "\xed\xa0\x80", -EINVAL, "UTF-8" },       /* a surrogate */
        { "\xf4\x90\x80\x80", -EINVAL, "UTF-8" },   /* above U+10FFFF */
        { "\xe6\x97", -EINVAL, "UTF-8" },           /* truncated */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cachelock_t *lock = (cachelock_t *)&lock;
        char buf[512];
        CHECK_EQ(cachelock_check_name(bad[i].name), bad[i].code);
        CHECK_STR_CONTAINS(cachelock_errmsg(), bad[i].why);
        CHECK_STR_CONTAINS(cachelock_errmsg(), "invalid source name");
        CHECK_EQ(cachelock_acquire(tap_dir, bad[i].name, &lock), bad[i].code);
        CHECK(lock == NULL);
        CHECK_EQ(cachelock_path(tap_dir, bad[i].name, buf, sizeof buf), bad[i].code);
    }
    /* Nothing at all was created, not even .locks. */
    CHECK_EQ(dir_entries(tap_dir), 0);
}

static void test_name_length_limit_is_250_bytes(void)
{
    char name[300];
    cachelock_t *lock;
    memset(name, 'n', sizeof name);
    name[CACHELOCK_NAME_MAX] = '\0';
    CHECK_EQ(cachelock_acquire(tap_dir, name, &lock), 0);
    cachelock_release(lock);
    name[CACHELOCK_NAME_MAX] = 'n';
    name[CACHELOCK_NAME_MAX + 1] = '\0';
    lock = (cachelock_t *)&lock;
    CHECK_EQ(cachelock_acquire(tap_dir, name, &lock), -ENAMETOOLONG);
    CHECK(lock == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "longer than 250 bytes");
}

static void test_overlong_cache_dir_gives_enametoolong(void)
{
    static char dir[CACHELOCK_PATH_MAX + 100];
    cachelock_t *lock;
    memset(dir, 'd', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = '\0';
    CHECK_EQ(cachelock_acquire(dir, "x", &lock), -ENAMETOOLONG);
    CHECK(lock == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "File name too long");
}

static void test_null_and_empty_arguments_give_einval(void)
{
    cachelock_t *lock = (cachelock_t *)&lock;
    char buf[64];
    CHECK_EQ(cachelock_acquire(NULL, "x", &lock), -EINVAL);
    CHECK(lock == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "cache directory");
    CHECK_EQ(cachelock_acquire("", "x", &lock), -EINVAL);
    CHECK_EQ(cachelock_acquire(tap_dir, NULL, &lock), -EINVAL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "source name");
    CHECK_EQ(cachelock_acquire(tap_dir, "x", NULL), -EINVAL);
    CHECK_EQ(cachelock_try_acquire(NULL, "x", &lock), -EINVAL);
    CHECK_EQ(cachelock_check_name(NULL), -EINVAL);
    CHECK_EQ(cachelock_path(tap_dir, "x", NULL, 0), -ERANGE);
    CHECK_EQ(cachelock_path(tap_dir, "x", buf, 4), -ERANGE);
    CHECK_EQ(cachelock_fd(NULL), -EINVAL);
    CHECK_EQ(cachelock_mode(NULL), -EINVAL);
    cachelock_release(NULL);
    CHECK_EQ(dir_entries(tap_dir), 0);
}

static void test_trailing_slashes_of_cache_dir_are_ignored(void)
{
    char a[512], b[512], dir[512];
    snprintf(dir, sizeof dir, "%s///", tap_dir);
    CHECK(cachelock_path(tap_dir, "s", a, sizeof a) > 0);
    CHECK(cachelock_path(dir, "s", b, sizeof b) > 0);
    CHECK(strcmp(a, b) == 0);
    CHECK(cachelock_path("/", "s", a, sizeof a) > 0);
    CHECK(strcmp(a, "/.locks" SEP "s.lock") == 0);
#ifdef _WIN32
    /* Roots keep their separator; a bare drive is its current directory;
     * '/' and '\\' are both separators, the library joins with '\\'. */
    static const char *const roots[][2] = {
        { "C:\\", "C:\\.locks\\s.lock" }, { "C:/", "C:/.locks\\s.lock" },
        { "C:", "C:.locks\\s.lock" }, { "C:\\x\\/\\", "C:\\x\\.locks\\s.lock" },
        { "\\\\srv\\share\\", "\\\\srv\\share\\.locks\\s.lock" },
        { "\\\\srv\\share", "\\\\srv\\share\\.locks\\s.lock" },
        { "\\\\?\\C:\\", "\\\\?\\C:\\.locks\\s.lock" },
        { "\\", "\\.locks\\s.lock" },
    };
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        CHECK(cachelock_path(roots[i][0], "s", a, sizeof a) > 0);
        if (strcmp(a, roots[i][1]) != 0)
            tap_fail(__FILE__, __LINE__, "'%s': got '%s', expected '%s'", roots[i][0], a,
                     roots[i][1]);
    }
#endif
}

static void test_bad_options_are_refused(void)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock;
    o.mode = (cachelock_mode_t)7;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "x", &o, &lock), -EINVAL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "unknown mode");
    o = (cachelock_options_t)CACHELOCK_OPTIONS_INIT;
    o.timeout_ms = -2;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "x", &o, &lock), -EINVAL);
    o = (cachelock_options_t)CACHELOCK_OPTIONS_INIT;
    o.flags = 0x80;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "x", &o, &lock), -EINVAL);
    o = (cachelock_options_t)CACHELOCK_OPTIONS_INIT;
    o.version = 99;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "x", &o, &lock), -EINVAL);
    CHECK(lock == NULL);
    CHECK_EQ(dir_entries(tap_dir), 0);
    /* All zeroes is valid: version 1, exclusive, try once. */
    memset(&o, 0, sizeof o);
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "x", &o, &lock), 0);
    cachelock_release(lock);
}

static void test_strerror_covers_outcomes(void)
{
    CHECK_STR_CONTAINS(cachelock_strerror(-EWOULDBLOCK), "busy");
    CHECK_STR_CONTAINS(cachelock_strerror(-ETIMEDOUT), "Timed out");
    CHECK_STR_CONTAINS(cachelock_strerror(-EDEADLK), "deadlock");
    CHECK_STR_CONTAINS(cachelock_strerror(EACCES), "Permission denied");
    CHECK_STR_CONTAINS(cachelock_strerror(-123456), "Unknown error");
    CHECK_STR_CONTAINS(cachelock_strerror(-ESTALE), "replaced");
    CHECK(strcmp(cachelock_version(), CACHELOCK_VERSION_STRING) == 0);
}

/* Every ASCII byte, in the middle of a name, against the rule written out
 * independently here: printable, and none of / \\ < > : " | ? *. */
static void test_every_ascii_byte_is_judged_by_the_rule(void)
{
    for (int c = 1; c < 128; c++) {
        char name[4] = { 'a', (char)c, 'b', '\0' };
        int expect_ok = c >= 0x20 && c != 0x7f && !strchr("/\\<>:\"|?*", c);
        int rc = cachelock_check_name(name);
        if ((rc == 0) != expect_ok)
            tap_fail(__FILE__, __LINE__, "byte 0x%02x: got %d, expected %s", c, rc,
                     expect_ok ? "accepted" : "refused");
    }
}

/* CACHELOCK_F_ANYNAME: any valid file name here, for caches shared with
 * tools that create names the portable rule refuses; what could leave
 * .locks or is too long is still refused, and messages show odd bytes
 * escaped. */
static void test_any_name_flag_accepts_every_valid_file_name(void)
{
#ifdef _WIN32
    /* A Windows file name has none of \ : * ? " < > | and no control
     * character, and is UTF-16: only trailing dots and spaces are left to
     * the flag (device names too, but what "aux" opens depends on the
     * Windows version). */
    static const char *const odd[] = { "trailing.", "trailing ", "dots..." };
#else
    static const char *const odd[] = {
        "aux", "tools:beta", "trailing.", "trailing ", "new\nline", "\xff\xfe", "a\\b", "CON",
        "COM\xc2\xb9", "what?",
    };
#endif
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    o.flags = CACHELOCK_F_ANYNAME;
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        char buf[1024], want[1024];
        cachelock_t *lock;
        CHECK_EQ(cachelock_check_name(odd[i]), -EINVAL);            /* not portable */
        CHECK_EQ(cachelock_acquire(tap_dir, odd[i], &lock), -EINVAL);
        CHECK_EQ(cachelock_check_name_ex(odd[i], CACHELOCK_F_ANYNAME), 0);
        snprintf(want, sizeof want, "%s" SEP ".locks" SEP "%s.lock", tap_dir, odd[i]);
        CHECK_EQ(cachelock_path_ex(tap_dir, odd[i], CACHELOCK_F_ANYNAME, buf, sizeof buf),
                 (long long)strlen(want));
        CHECK(strcmp(buf, want) == 0);
        CHECK_EQ(cachelock_acquire_ex(tap_dir, odd[i], &o, &lock), 0);
        CHECK(lock_is_file(lock, want));
        cachelock_release(lock);
    }
    /* Still refused with the flag, creating nothing. */
    static const struct bad bad[] = {
        { "", -EINVAL, "is empty" }, { ".", -EINVAL, "relative directory" },
        { "..", -EINVAL, "relative directory" }, { "a/b", -EINVAL, "path separator" },
        { "../x", -EINVAL, "path separator" },
#ifdef _WIN32
        { "a\\b", -EINVAL, "path separator" }, { "..\\x", -EINVAL, "path separator" },
        { "tools:beta", -EINVAL, "Windows refuses" }, { "what?", -EINVAL, "Windows refuses" },
        { "new\nline", -EINVAL, "control character" }, { "\xff\xfe", -EINVAL, "UTF-8" },
#endif
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cachelock_t *lock;
        CHECK_EQ(cachelock_acquire_ex(tpath("fresh"), bad[i].name, &o, &lock), bad[i].code);
        CHECK_STR_CONTAINS(cachelock_errmsg(), bad[i].why);
        CHECK(access(tpath("fresh"), F_OK) != 0);
    }
    char longname[300];
    memset(longname, 'x', 251);
    longname[251] = '\0';
    CHECK_EQ(cachelock_check_name_ex(longname, CACHELOCK_F_ANYNAME), -ENAMETOOLONG);
    longname[250] = '\0';
    CHECK_EQ(cachelock_check_name_ex(longname, CACHELOCK_F_ANYNAME), 0);
    CHECK_EQ(cachelock_check_name_ex("x", 0x80), -EINVAL);
    CHECK_EQ(cachelock_path_ex(tap_dir, "x", 0x80, longname, sizeof longname), -EINVAL);
    /* A control character is shown escaped, never raw. */
    CHECK_EQ(cachelock_check_name("esc\x1b[2J"), -EINVAL);
    CHECK(strchr(cachelock_errmsg(), '\x1b') == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "\\x1b");
}

/* cachelock_sources() lists lock files whose names only the relaxed rule
 * accepts (made by flock(1) or the Rust original), and prune handles them;
 * entries that could never be a source stay out. */
static void test_sources_and_prune_see_names_of_other_tools(void)
{
#ifdef _WIN32
    /* Names other tools can make there: not "aux" (a device, or not, by
     * Windows version) nor "tools:beta" (a stream of the file "tools"). */
    static const char *const files[] = { "trailing .lock", "dot..lock", "plain.lock", "notalock",
                                         ".lock" };
    static const char *const want[] = { "dot.", "plain", "trailing " };
#else
    static const char *const files[] = { "aux.lock", "tools:beta.lock", "dot..lock",
                                         "plain.lock", "notalock", ".lock" };
    static const char *const want[] = { "aux", "dot.", "plain", "tools:beta" };
#endif
    const size_t nwant = sizeof want / sizeof want[0];
    char **names;
    size_t n;
    CHECK(mkdir(tpath(".locks"), 0777) == 0);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[64];
        snprintf(p, sizeof p, ".locks/%s", files[i]);
        int fd = open(tpath(p), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        CHECK(fd >= 0);
        close(fd);
    }
    CHECK_EQ(cachelock_sources(tap_dir, &names, &n), 0);
    CHECK_EQ(n, nwant);
    for (size_t i = 0; i < nwant; i++)
        CHECK(strcmp(names[i], want[i]) == 0);
    cachelock_sources_free(names, n);
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0, NULL, NULL), (long long)nwant);
    CHECK_EQ(cachelock_sources(tap_dir, &names, &n), 0);
    CHECK_EQ(n, 0);
    cachelock_sources_free(names, n);
    CHECK(access(tpath(".locks/notalock"), F_OK) == 0);
}

/* cachelock_prepare() makes the cache, .locks and the lock file, locks
 * nothing, truncates nothing, and refuses what an acquire refuses. */
static void test_prepare_creates_without_locking(void)
{
    char path[600];
    CHECK_EQ(cachelock_prepare(tpath("c/d"), "s", 0), 0);
    snprintf(path, sizeof path, "%s" SEP ".locks" SEP "s.lock", tpath("c/d"));
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
    CHECK_EQ(try_once(tpath("c/d"), "s", CACHELOCK_EXCLUSIVE), 0);     /* nothing held */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0 && write(fd, "x", 1) == 1);
    close(fd);
    CHECK_EQ(cachelock_prepare(tpath("c/d"), "s", 0), 0);
    CHECK(stat(path, &st) == 0 && st.st_size == 1);                    /* not truncated */
    CHECK_EQ(cachelock_prepare(tpath("c/d"), "dot.", 0), -EINVAL);
    CHECK_EQ(cachelock_prepare(tpath("c/d"), "dot.", CACHELOCK_F_ANYNAME), 0);
    CHECK_EQ(cachelock_prepare(tpath("c/d"), "s", 0x80), -EINVAL);
#ifndef _WIN32      /* test_acquire tests reparse points on Windows */
    CHECK(symlink(tpath("elsewhere"), tpath("c/d/.locks/l.lock")) == 0);
    CHECK_EQ(cachelock_prepare(tpath("c/d"), "l", 0), -ELOOP);
    CHECK(access(tpath("elsewhere"), F_OK) != 0);
#endif
}

TAP_MAIN(
    T(test_any_name_flag_accepts_every_valid_file_name),
    T(test_sources_and_prune_see_names_of_other_tools),
    T(test_prepare_creates_without_locking),
    T(test_every_ascii_byte_is_judged_by_the_rule),
    T(test_valid_names_map_to_dot_locks_name_dot_lock),
    T(test_bad_names_are_refused_and_create_nothing),
    T(test_name_length_limit_is_250_bytes),
    T(test_overlong_cache_dir_gives_enametoolong),
    T(test_null_and_empty_arguments_give_einval),
    T(test_trailing_slashes_of_cache_dir_are_ignored),
    T(test_bad_options_are_refused),
    T(test_strerror_covers_outcomes),
)
