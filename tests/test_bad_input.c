/*
 * test_bad_input.c - a table of bad inputs.  Each gets its exact code and a
 * message naming the path (or the name), creates nothing, leaks no
 * descriptor, and does not crash.
 */
#include "helpers.h"

#ifndef _WIN32
#include <sys/socket.h>
#include <sys/un.h>
#endif

/* Setups run in the case directory; "c" is the cache the case uses. */
static void none(void) {}
static void cache_is_file(void) { close(open(tpath("c"), O_CREAT | O_WRONLY, 0666)); }
static void parent_is_file(void) { close(open(tpath("f"), O_CREAT | O_WRONLY, 0666)); }
static void mk_cache(void) { CHECK(mkdir(tpath("c"), 0777) == 0); }
static void mk_locks(void) { mk_cache(); CHECK(mkdir(tpath("c/.locks"), 0777) == 0); }
static void locks_is_file(void) { mk_cache(); close(open(tpath("c/.locks"), O_CREAT | O_WRONLY, 0666)); }
static void lock_is_dir(void) { mk_locks(); CHECK(mkdir(tpath("c/.locks/s.lock"), 0777) == 0); }
#ifndef _WIN32      /* reparse points: test_acquire; no FIFOs, sockets or modes */
static void locks_is_symlink(void)
{
    mk_cache();
    CHECK(mkdir(tpath("elsewhere"), 0777) == 0);
    CHECK(symlink(tpath("elsewhere"), tpath("c/.locks")) == 0);
}
static void locks_is_dangling_symlink(void)
{
    mk_cache();
    CHECK(symlink(tpath("nowhere"), tpath("c/.locks")) == 0);
}
static void lock_is_symlink(void)
{
    mk_locks();
    close(open(tpath("target"), O_CREAT | O_WRONLY, 0666));
    CHECK(symlink(tpath("target"), tpath("c/.locks/s.lock")) == 0);
}
static void lock_is_dangling_symlink(void)
{
    mk_locks();
    CHECK(symlink(tpath("nowhere"), tpath("c/.locks/s.lock")) == 0);
}
static void lock_is_fifo(void) { mk_locks(); CHECK(mkfifo(tpath("c/.locks/s.lock"), 0666) == 0); }
static void lock_is_socket(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    mk_locks();
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", tpath("c/.locks/s.lock"));
    CHECK(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
    close(s);
}
static void cache_unwritable(void) { CHECK(mkdir(tpath("c"), 0555) == 0); }
static void locks_unwritable(void) { mk_cache(); CHECK(mkdir(tpath("c/.locks"), 0555) == 0); }
static void cache_unsearchable(void) { mk_locks(); CHECK(chmod(tpath("c"), 0) == 0); }
#endif

static char long_name[300], huge_name[5000], long_dir[CACHELOCK_PATH_MAX + 50];

struct bad {
    const char *what;
    void (*setup)(void);
    const char *dir;        /* relative to the case directory; "@" = literal next field */
    const char *literal_dir;
    const char *source;
    int opts;               /* 0 defaults, 1 bad mode, 2 timeout -2, 3 bad flag, 4 NOCREATE, 5 no out,
                               6 ANYNAME */
    int code;
    int unprivileged;       /* needs a user that permissions apply to */
    const char *in_msg;
};

static const struct bad cases[] = {
    { "NULL cache_dir", none, NULL, NULL, "s", 0, -EINVAL, 0, "cache directory" },
    { "empty cache_dir", none, "@", "", "s", 0, -EINVAL, 0, "cache directory" },
    { "NULL source", none, "c", NULL, NULL, 0, -EINVAL, 0, "source name" },
    { "empty source", none, "c", NULL, "", 0, -EINVAL, 0, "''" },
    { "source .", none, "c", NULL, ".", 0, -EINVAL, 0, "'.'" },
    { "source ..", none, "c", NULL, "..", 0, -EINVAL, 0, "'..'" },
    { "traversal ../x", none, "c", NULL, "../x", 0, -EINVAL, 0, "'../x'" },
    { "separator a/b", none, "c", NULL, "a/b", 0, -EINVAL, 0, "'a/b'" },
    { "absolute /etc/passwd", none, "c", NULL, "/etc/passwd", 0, -EINVAL, 0, "'/etc/passwd'" },
    { "backslash", none, "c", NULL, "..\\x", 0, -EINVAL, 0, "path separator" },
    { "newline", none, "c", NULL, "a\nb", 0, -EINVAL, 0, "control character" },
    { "control \\x01", none, "c", NULL, "\x01", 0, -EINVAL, 0, "control character" },
    { "Windows device", none, "c", NULL, "con", 0, -EINVAL, 0, "reserved device" },
    { "invalid UTF-8", none, "c", NULL, "\xc3\x28", 0, -EINVAL, 0, "UTF-8" },
    { "251-byte name", none, "c", NULL, long_name, 0, -ENAMETOOLONG, 0, "longer than 250" },
    { "5000-byte name", none, "c", NULL, huge_name, 0, -ENAMETOOLONG, 0, "longer than 250" },
    { "cache_dir over CACHELOCK_PATH_MAX", none, "@", long_dir, "s", 0, -ENAMETOOLONG, 0, "File name too long" },
    { "cache_dir is a regular file", cache_is_file, "c", NULL, "s", 0, -ENOTDIR, 0, SEP "c" SEP ".locks'" },
    { "cache_dir below a regular file", parent_is_file, "f/c", NULL, "s", 0, -ENOTDIR, 0, SEP "f" SEP "c" },
    { ".locks is a file", locks_is_file, "c", NULL, "s", 0, -ENOTDIR, 0, SEP "c" SEP ".locks'" },
    { "lock path is a directory", lock_is_dir, "c", NULL, "s", 0, -EISDIR, 0, SEP "c" SEP ".locks" SEP "s.lock'" },
#ifdef _WIN32
    /* Windows file names are UTF-16: bytes that are not UTF-8 name no file. */
    { "cache_dir not UTF-8", none, "@", "c\xff", "s", 0, -EINVAL, 0, "not valid UTF-8" },
    { "any name not UTF-8", none, "c", NULL, "\xff", 6, -EINVAL, 0, "UTF-8" },
    { "any name with ':'", none, "c", NULL, "a:b", 6, -EINVAL, 0, "Windows refuses" },
    { "any name with '\\'", none, "c", NULL, "..\\x", 6, -EINVAL, 0, "path separator" },
#else
    { "cache_dir is /dev/null", none, "@", "/dev/null", "s", 0, -ENOTDIR, 0, "'/dev/null/.locks'" },
    { ".locks is a symlink", locks_is_symlink, "c", NULL, "s", 0, -ELOOP, 0, "/c/.locks'" },
    { ".locks is a dangling symlink", locks_is_dangling_symlink, "c", NULL, "s", 0, -ELOOP, 0, "/c/.locks'" },
    { "lock path is a symlink", lock_is_symlink, "c", NULL, "s", 0, -ELOOP, 0, "/c/.locks/s.lock'" },
    { "lock path is a dangling symlink", lock_is_dangling_symlink, "c", NULL, "s", 0, -ELOOP, 0, "/c/.locks/s.lock'" },
    { "lock path is a FIFO", lock_is_fifo, "c", NULL, "s", 0, -ENXIO, 0, "/c/.locks/s.lock'" },
    { "lock path is a socket", lock_is_socket, "c", NULL, "s", 0, -ENXIO, 0, "/c/.locks/s.lock'" },
    { "cache_dir not writable", cache_unwritable, "c", NULL, "s", 0, -EACCES, 1, "/c/.locks'" },
    { ".locks not writable", locks_unwritable, "c", NULL, "s", 0, -EACCES, 1, "/c/.locks/s.lock'" },
    { "cache_dir not searchable", cache_unsearchable, "c", NULL, "s", 0, -EACCES, 1, "/c/.locks'" },
#endif
    { "options: unknown mode", none, "c", NULL, "s", 1, -EINVAL, 0, "unknown mode" },
    { "options: timeout -2", none, "c", NULL, "s", 2, -EINVAL, 0, "negative" },
    { "options: unknown flag", none, "c", NULL, "s", 3, -EINVAL, 0, "unknown flags" },
    { "NOCREATE without lock file", mk_locks, "c", NULL, "s", 4, -ENOENT, 0, SEP "c" SEP ".locks" SEP "s.lock'" },
    { "out is NULL", none, "c", NULL, "s", 5, -EINVAL, 0, "out is NULL" },
};


static int run_case(const struct bad *b)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = (cachelock_t *)&lock;
    const char *dir = !b->dir ? NULL : strcmp(b->dir, "@") == 0 ? b->literal_dir : tpath(b->dir);
    switch (b->opts) {
    case 1: o.mode = (cachelock_mode_t)5; break;
    case 2: o.timeout_ms = -2; break;
    case 3: o.flags = 0x100; break;
    case 4: o.flags = CACHELOCK_F_NOCREATE; break;
    case 6: o.flags = CACHELOCK_F_ANYNAME; break;
    }
    int rc = cachelock_acquire_ex(dir, b->source, &o, b->opts == 5 ? NULL : &lock);
    if (b->opts != 5 && lock != NULL)
        tap_fail(__FILE__, __LINE__, "%s: out not NULL", b->what);
    if (rc == 0)
        cachelock_release(lock);
    return rc;
}

static void test_bad_inputs_get_exact_codes_and_change_nothing(void)
{
    /* The first message of a thread sets up its thread-local storage, for
     * which the runtime may keep a handle (mingw's emulated TLS does):
     * have it before counting. */
    CHECK_EQ(cachelock_check_name(NULL), -EINVAL);
    int fds = count_fds();
    memset(long_name, 'n', 251);
    memset(huge_name, 'h', sizeof huge_name - 1);
    memset(long_dir, 'd', sizeof long_dir - 1);
    long_dir[0] = '/';
    int skipped = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad *b = &cases[i];
        char before[4096], after[4096];
#ifdef _WIN32
        tap_rm_tree(tap_dir);
        CHECK(CreateDirectoryA(tap_dir, NULL));
#else
        char cmd[600];
        snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'/*", tap_dir, tap_dir);
        if (system(cmd) != 0) {}
#endif
        b->setup();
        snapshot_tree(tap_dir, before, sizeof before);
        int rc;
#ifndef _WIN32      /* no rows need an unprivileged user there */
        if (b->unprivileged && geteuid() == 0) {
            /* root bypasses permissions: run the case as nobody. */
            int rep[2];
            CHECK(pipe(rep) == 0);
            CHECK(chmod(tap_dir, 0755) == 0);
            pid_t pid = fork();
            if (pid == 0) {
                if (setgid(65534) < 0 || setuid(65534) < 0)
                    _exit(77);
                int r = run_case(b);
                char msg[512] = "";
                snprintf(msg, sizeof msg, "%s", cachelock_errmsg());
                if (write(rep[1], &r, sizeof r) != sizeof r || write(rep[1], msg, sizeof msg) < 0)
                    _exit(1);
                _exit(0);
            }
            close(rep[1]);
            int status;
            char msg[512] = "";
            if (read(rep[0], &rc, sizeof rc) != sizeof rc) {
                CHECK(waitpid(pid, &status, 0) == pid);
                close(rep[0]);
                /* Only a failure to become nobody is a skip; a case that
                 * crashed or failed there is a failure. */
                if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
                    skipped++;
                    continue;
                }
                tap_fail(__FILE__, __LINE__, "%s: the case run as nobody died (status 0x%x)",
                         b->what, status);
            }
            if (read(rep[0], msg, sizeof msg) < 0) {}
            close(rep[0]);
            waitpid(pid, &status, 0);
            if (!strstr(msg, b->in_msg))
                tap_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", b->what, msg, b->in_msg);
        } else
#endif
        {
            rc = run_case(b);
            if (!strstr(cachelock_errmsg(), b->in_msg))
                tap_fail(__FILE__, __LINE__, "%s: message '%s' lacks '%s'", b->what,
                         cachelock_errmsg(), b->in_msg);
        }
        if (rc != b->code)
            tap_fail(__FILE__, __LINE__, "%s: got %d (%s), expected %d", b->what, rc,
                     cachelock_strerror(rc), b->code);
        snapshot_tree(tap_dir, after, sizeof after);
        if (strcmp(before, after) != 0)
            tap_fail(__FILE__, __LINE__, "%s: created something:\n%s", b->what, after);
    }
    cachelock_close_idle();     /* released files are kept open for reuse */
    CHECK_EQ(count_fds(), fds);
    tap_diag("%zu bad inputs, %d skipped (no user nobody)", sizeof cases / sizeof cases[0], skipped);
#ifdef _WIN32
    CHECK(sizeof cases / sizeof cases[0] >= 25);
#else
    CHECK(sizeof cases / sizeof cases[0] >= 30);
#endif
}

static void test_handle_released_twice_is_ignored(void)
{
    cachelock_t *a, *b;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &a), 0);
    cachelock_release(a);
    cachelock_release(a);   /* a stale token: recognised, nothing touched */
    CHECK_STR_CONTAINS(cachelock_errmsg(), "released twice");
    CHECK_EQ(cachelock_acquire(tap_dir, "t", &b), 0);
    cachelock_release((cachelock_t *)((char *)b + 4096));    /* never a handle */
    CHECK_EQ(try_once(tap_dir, "t", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);  /* b still held */
    cachelock_release(b);
    CHECK_EQ(try_once(tap_dir, "t", CACHELOCK_EXCLUSIVE), 0);
}

TAP_MAIN(
    T(test_bad_inputs_get_exact_codes_and_change_nothing, 60),
    T(test_handle_released_twice_is_ignored),
)
