/*
 * selftest.c - `cachelock selftest`: do locks really work in this
 * directory?
 *
 * The library can tell which kind of filesystem a cache is on, not what its
 * server or FUSE daemon does with locks.  So this starts contenders there,
 * through the path given and, with --second-path, another path to the same
 * directory (a bind mount, a FUSE view of it, the same NFS export mounted
 * twice), and watches what they get:
 *
 *   exclusion         a lock held through one path makes an exclusive and a
 *                     shared try through the other busy, both ways; then
 *                     two processes, one per path, take turns for 0.2 s,
 *                     counting critical sections that overlapped (in
 *                     shared memory, not in the filesystem)
 *   shared locks      two shared holders, one per path, coexist, and an
 *                     exclusive try is busy while they hold
 *   release on death  a holder killed with SIGKILL leaves the lock free:
 *                     a timed acquire through the other path gets it
 *   notification      a timed wait through the second path is woken by a
 *                     release through the first, not only by its re-check
 *                     timer (without it, waits still work, up to
 *                     CACHELOCK_RECHECK_MAX_MS late: reported, not failed)
 *
 * Each check has a deadline; the whole run takes well under 2 s.  The
 * source is private to the run (cachelock-selftest-HOST-PID), and its lock
 * file is removed at the end.  Exit status 0 when locks work, 1 when a
 * check failed, or the usual statuses when the cache cannot be used.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "Usage: cachelock selftest [options] [CACHE_DIR]\n"
    "\n"
    "Check in well under 2 seconds whether locks really work in CACHE_DIR\n"
    "(default: $" ENV_DIR "): on NFS, SMB, FUSE, 9p or virtiofs that depends on the\n"
    "server.  Contender processes check that a lock excludes (also through a\n"
    "second path to the same directory), that shared locks coexist, that a killed\n"
    "holder's lock is free at once, and that a waiter is notified of a release.\n"
    "The test's lock file is private to the run and removed at the end.\n"
    "\n"
    "Options:\n"
    "      --second-path PATH  another path to the same directory (a bind mount,\n"
    "                          a FUSE view, the same export mounted twice):\n"
    "                          contenders use both\n"
    "  -j, --json              one JSON object on stdout, for scripts\n"
    "  -h, --help              show this help\n"
    "  -V, --version           show the version\n"
    "\n"
    "Exit status: 0 locks work (notification may be reported slow: waits then\n"
    "re-check every 20 ms at most), 1 a check failed: do not share this cache\n"
    "that way, 64 usage (also a second path that is not the same directory),\n"
    "66, 71, 73 as for 'run' when the cache cannot be used.\n";

#define STRESS_MS 200
#define DEATH_MS 800
#define NOTIFY_MS 300

enum result { OK, FAIL, SLOW };
static const char *const result_name[] = { "ok", "fail", "slow" };

struct check {
    const char *name;
    enum result result;
    char detail[9000];
};

/* What the contenders share: not through the filesystem under test. */
struct shared {
    int inside;             /* holders in the critical section now */
    int overlaps;           /* times someone found another one there */
    long turns[2];          /* critical sections of each contender */
};

struct test {
    const char *path[2];    /* [0] CACHE_DIR, [1] the second path (or the same) */
    char shown[2][4200];    /* escaped for a terminal */
    char source[128];
    struct shared *sh;
};

static double now_s(void)
{
    return cli_now();
}

static int lock_via(const struct test *t, int via, cachelock_mode_t mode, long timeout_ms,
                    cachelock_t **out)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    o.mode = mode;
    o.timeout_ms = timeout_ms;
    o.flags = CACHELOCK_F_UNOWNED;
    return cachelock_acquire_ex(t->path[via], t->source, &o, out);
}

/* ---- a contender: a child that holds a lock on request ----------------- */

struct contender {
    pid_t pid;
    int to, from;
};

/* A child that takes the lock through path via in mode and says 'L' (or
 * 'E' when it cannot), then on 'r' releases and says 'R', on 't' tries
 * an exclusive lock and says 'B' (busy) or 'F' (free, released again). */
static int contender_start(const struct test *t, int via, cachelock_mode_t mode,
                           struct contender *c)
{
    int cmd[2], rep[2];
    c->pid = -1;
    c->to = c->from = -1;
    if (pipe(cmd) < 0)
        return -errno;
    if (pipe(rep) < 0) {
        int err = errno;
        close(cmd[0]);
        close(cmd[1]);
        return -err;
    }
    c->pid = fork();
    if (c->pid < 0) {
        int err = errno;
        close(cmd[0]); close(cmd[1]); close(rep[0]); close(rep[1]);
        return -err;
    }
    if (c->pid == 0) {
        cachelock_t *lock = NULL, *other;
        char r;
        close(cmd[1]);
        close(rep[0]);
        r = lock_via(t, via, mode, 1000, &lock) == 0 ? 'L' : 'E';
        if (write(rep[1], &r, 1) != 1)
            _exit(1);
        while (read(cmd[0], &r, 1) == 1) {
            if (r == 'r') {
                cachelock_release(lock);
                lock = NULL;
                r = 'R';
            } else if (r == 't') {
                int rc = lock_via(t, via, CACHELOCK_EXCLUSIVE, 0, &other);
                cachelock_release(other);
                r = rc == -EWOULDBLOCK ? 'B' : 'F';
            }
            if (write(rep[1], &r, 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    close(cmd[0]);
    close(rep[1]);
    c->to = cmd[1];
    c->from = rep[0];
    return 0;
}

/* Send c a command and wait for its answer, at most 2 s; 0 on silence. */
static char ask(struct contender *c, char cmd)
{
    char r = 0;
    if (cmd && write(c->to, &cmd, 1) != 1)
        return 0;
    struct pollfd p = { c->from, POLLIN, 0 };
    if (poll(&p, 1, 2000) == 1 && read(c->from, &r, 1) == 1)
        return r;
    return 0;
}

static void contender_end(struct contender *c, int kill_it)
{
    int status;
    if (c->pid <= 0)
        return;
    if (kill_it)
        kill(c->pid, SIGKILL);
    close(c->to);
    close(c->from);
    waitpid(c->pid, &status, 0);
    c->pid = -1;
}

/* A try through path via: the code (0 means it was free, and is again). */
static int try_via(const struct test *t, int via, cachelock_mode_t mode)
{
    cachelock_t *lock = NULL;
    int rc = lock_via(t, via, mode, 0, &lock);
    cachelock_release(lock);
    return rc;
}

/* ---- the checks ---------------------------------------------------------- */

static void check_exclusion(struct test *t, struct check *k)
{
    struct contender c;
    int broken = 0;
    char why[9000] = "";

    k->name = "exclusion";
    /* Held through each path in turn, tried through the other. */
    for (int via = 0; via < 2 && !broken; via++) {
        if (contender_start(t, via, CACHELOCK_EXCLUSIVE, &c) < 0 || ask(&c, 0) != 'L') {
            snprintf(why, sizeof why, "a contender could not take the lock through '%s'",
                     t->shown[via]);
            broken = 1;
        } else if (try_via(t, !via, CACHELOCK_EXCLUSIVE) != -EWOULDBLOCK ||
                   try_via(t, !via, CACHELOCK_SHARED) != -EWOULDBLOCK) {
            snprintf(why, sizeof why, "a lock held through '%s' did not exclude one through '%s'",
                     t->shown[via], t->shown[!via]);
            broken = 1;
        }
        contender_end(&c, 1);
    }

    /* Two processes take turns for a while, one per path. */
    pid_t pids[2];
    double end = now_s() + STRESS_MS / 1000.0;
    memset(t->sh, 0, sizeof *t->sh);
    for (int via = 0; via < 2; via++) {
        pids[via] = fork();
        if (pids[via] == 0) {
            while (now_s() < end) {
                cachelock_t *lock;
                if (lock_via(t, via, CACHELOCK_EXCLUSIVE, 500, &lock) != 0)
                    continue;
                if (__atomic_add_fetch(&t->sh->inside, 1, __ATOMIC_SEQ_CST) != 1)
                    __atomic_add_fetch(&t->sh->overlaps, 1, __ATOMIC_SEQ_CST);
                for (int spin = 0; spin < 50; spin++)
                    __atomic_load_n(&t->sh->inside, __ATOMIC_SEQ_CST);
                __atomic_sub_fetch(&t->sh->inside, 1, __ATOMIC_SEQ_CST);
                __atomic_add_fetch(&t->sh->turns[via], 1, __ATOMIC_SEQ_CST);
                cachelock_release(lock);
            }
            _exit(0);
        }
    }
    for (int via = 0; via < 2; via++) {
        int status;
        if (pids[via] > 0)
            waitpid(pids[via], &status, 0);
    }
    int overlaps = __atomic_load_n(&t->sh->overlaps, __ATOMIC_SEQ_CST);
    long turns = t->sh->turns[0] + t->sh->turns[1];
    if (overlaps > 0) {
        size_t used = strlen(why);
        snprintf(why + used, sizeof why - used, "%s%d of %ld critical sections overlapped in "
                 "%.1f s", used ? "; " : "", overlaps, turns, STRESS_MS / 1000.0);
        broken = 1;
    }
    k->result = broken ? FAIL : OK;
    if (broken)
        snprintf(k->detail, sizeof k->detail, "%s", why);
    else
        snprintf(k->detail, sizeof k->detail, "%ld critical sections in %.1f s, none overlapped",
                 turns, STRESS_MS / 1000.0);
}

static void check_shared(struct test *t, struct check *k)
{
    struct contender c;
    k->name = "shared locks";
    k->result = OK;
    if (contender_start(t, 0, CACHELOCK_SHARED, &c) < 0 || ask(&c, 0) != 'L') {
        k->result = FAIL;
        snprintf(k->detail, sizeof k->detail, "a contender could not take a shared lock through "
                 "'%s'", t->shown[0]);
    } else {
        int sh = try_via(t, 1, CACHELOCK_SHARED);
        int ex = try_via(t, 1, CACHELOCK_EXCLUSIVE);
        if (sh != 0) {
            k->result = FAIL;
            snprintf(k->detail, sizeof k->detail, "a shared lock through '%s' was refused while "
                     "another was held through '%s': %s", t->shown[1], t->shown[0],
                     cachelock_strerror(sh));
        } else if (ex != -EWOULDBLOCK) {
            k->result = FAIL;
            snprintf(k->detail, sizeof k->detail, "an exclusive lock through '%s' was %s while a "
                     "shared one was held through '%s'", t->shown[1],
                     ex == 0 ? "granted" : cachelock_strerror(ex), t->shown[0]);
        } else {
            snprintf(k->detail, sizeof k->detail, "two shared holders coexisted, an exclusive "
                     "try was busy");
        }
    }
    contender_end(&c, 1);
}

static void check_death(struct test *t, struct check *k)
{
    struct contender c;
    cachelock_t *lock = NULL;
    k->name = "release on death";
    if (contender_start(t, 0, CACHELOCK_EXCLUSIVE, &c) < 0 || ask(&c, 0) != 'L') {
        contender_end(&c, 1);
        k->result = FAIL;
        snprintf(k->detail, sizeof k->detail, "a contender could not take the lock");
        return;
    }
    double start = now_s();
    kill(c.pid, SIGKILL);
    contender_end(&c, 1);
    int rc = lock_via(t, 1, CACHELOCK_EXCLUSIVE, DEATH_MS, &lock);
    double took = now_s() - start;
    cachelock_release(lock);
    if (rc == 0) {
        k->result = OK;
        snprintf(k->detail, sizeof k->detail, "free %.1f ms after the holder was killed",
                 took * 1000);
    } else {
        k->result = FAIL;
        snprintf(k->detail, sizeof k->detail, "the lock of a holder killed with SIGKILL was "
                 "still held %d ms later (%s)", DEATH_MS, cachelock_strerror(rc));
    }
}

static void check_notification(struct test *t, struct check *k)
{
    struct contender c;
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w = NULL;
    cachelock_t *lock = NULL;
    k->name = "notification";
    if (contender_start(t, 0, CACHELOCK_EXCLUSIVE, &c) < 0 || ask(&c, 0) != 'L') {
        contender_end(&c, 1);
        k->result = FAIL;
        snprintf(k->detail, sizeof k->detail, "a contender could not take the lock");
        return;
    }
    o.timeout_ms = 1000;
    int rc = cachelock_wait_start(t->path[1], t->source, &o, &w);
    if (rc == 0)
        rc = cachelock_wait_step(w, &lock);
    if (rc != -EINPROGRESS) {
        k->result = FAIL;
        snprintf(k->detail, sizeof k->detail, "a wait through '%s' %s while the lock was held "
                 "through '%s'", t->shown[1], rc == 0 ? "got the lock" : cachelock_strerror(rc),
                 t->shown[0]);
        cachelock_release(lock);
        cachelock_wait_free(w);
        contender_end(&c, 1);
        return;
    }
    int fd = cachelock_wait_fd(w);
    double start = now_s();
    ask(&c, 'r');       /* the holder releases (and keeps running) */
    struct pollfd p = { fd, POLLIN, 0 };
    int woken = fd >= 0 && poll(&p, 1, NOTIFY_MS) == 1;
    double took = now_s() - start;
    /* Woken or not, the wait must get the lock now. */
    double end = now_s() + 1;
    while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS && now_s() < end) {
        struct pollfd q = { cachelock_wait_fd(w), POLLIN, 0 };
        poll(&q, q.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
    }
    cachelock_release(lock);
    cachelock_wait_free(w);
    contender_end(&c, 1);
    if (rc != 0) {
        k->result = FAIL;
        snprintf(k->detail, sizeof k->detail, "a wait through '%s' did not get the lock after "
                 "its release through '%s' (%s)", t->shown[1], t->shown[0],
                 cachelock_strerror(rc));
    } else if (woken) {
        k->result = OK;
        snprintf(k->detail, sizeof k->detail, "a waiter was woken %.0f us after the release",
                 took * 1e6);
    } else {
        k->result = SLOW;
        snprintf(k->detail, sizeof k->detail, "%s: waiters notice a release only when they "
                 "re-check, at most %d ms late", fd < 0 ? "no change notification here"
                 : "a release was not notified to a waiter", CACHELOCK_RECHECK_MAX_MS);
    }
}

/* ---- the command --------------------------------------------------------- */

/* Is second another path to the directory of first?  The private lock
 * file made through first must be there, with the same identity or, where
 * identities differ (FUSE views), the same bytes.  The bytes are written
 * before the second path is looked at: a FUSE view would keep the size it
 * saw first for a while. */
static int same_directory(const struct test *t)
{
    char a[4200], b[4200], token[64], got[64] = "";
    struct stat sa, sb;
    if (cachelock_path(t->path[0], t->source, a, sizeof a) < 0 ||
        cachelock_path(t->path[1], t->source, b, sizeof b) < 0)
        return 0;
    snprintf(token, sizeof token, "cachelock selftest %ld %ld\n", (long)getpid(), (long)time(NULL));
    int fd = open(a, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    ssize_t n = write(fd, token, strlen(token));
    close(fd);
    if (n < 0 || stat(a, &sa) < 0 || stat(b, &sb) < 0)
        return 0;
    if (sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)
        return 1;
    fd = open(b, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    n = read(fd, got, sizeof got - 1);
    close(fd);
    got[n > 0 ? n : 0] = '\0';
    return strcmp(got, token) == 0;
}

static void make_source(struct test *t)
{
    char host[64] = "";
    if (gethostname(host, sizeof host - 1) < 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    snprintf(t->source, sizeof t->source, "cachelock-selftest-%s-%ld", host, (long)getpid());
    if (cachelock_check_name(t->source) < 0)
        snprintf(t->source, sizeof t->source, "cachelock-selftest-%ld", (long)getpid());
}

static void print_text(const struct test *t, const int fs[2], int second, const struct check *k,
                       int n, int failed, double secs)
{
    printf("cachelock selftest of '%s' (%s)", t->shown[0], cachelock_fs_name(fs[0]));
    if (second)
        printf(", also through '%s' (%s)", t->shown[1], cachelock_fs_name(fs[1]));
    printf("\n");
    for (int i = 0; i < n; i++)
        printf("  %-17s %-5s %s\n", k[i].name, result_name[k[i].result], k[i].detail);
    if (failed)
        printf("result: FAIL in %.2f s: locks do not work here%s; do not share this cache "
               "this way\n", secs, second ? " through these two paths" : "");
    else
        printf("result: ok in %.2f s\n", secs);
}

static void print_json(const struct test *t, const int fs[2], int second, const struct check *k,
                       int n, int failed, double secs)
{
    printf("{\"cache_dir\":");
    cli_json_string(stdout, t->path[0]);
    printf(",\"fs\":\"%s\",\"second_path\":", cachelock_fs_name(fs[0]));
    if (second) {
        cli_json_string(stdout, t->path[1]);
        printf(",\"second_fs\":\"%s\"", cachelock_fs_name(fs[1]));
    } else {
        printf("null,\"second_fs\":null");
    }
    printf(",\"checks\":[");
    for (int i = 0; i < n; i++) {
        printf("%s{\"name\":\"%s\",\"result\":\"%s\",\"detail\":", i ? "," : "", k[i].name,
               result_name[k[i].result]);
        cli_json_string(stdout, k[i].detail);
        putchar('}');
    }
    printf("],\"result\":\"%s\",\"seconds\":%.3f}\n", failed ? "fail" : "ok", secs);
}

int cli_selftest(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "second-path", required_argument, NULL, OPT_SECOND_PATH },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    struct test t;
    struct check k[4];
    const char *second = NULL;
    int c, json = 0, rc, fs[2];

    memset(&t, 0, sizeof t);
    memset(k, 0, sizeof k);
    opterr = 0;
    optind = 1;
    /* Options may follow CACHE_DIR: there is no command to stop at. */
    while ((c = getopt_long(argc, argv, ":jhV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SECOND_PATH: second = optarg; break;
        case 'j': json = 1; break;
        case 'h': return cli_print_help(usage);
        case 'V': return cli_print_version();
        default: return cli_option_error("selftest", argv, c, longopts);
        }
    }
    if (argc - optind > 1)
        return cli_usage_error("selftest", "too many operands: expected [CACHE_DIR]");
    if (optind < argc)
        t.path[0] = argv[optind];
    else if (!(t.path[0] = cli_default_dir("selftest")))
        return EXIT_USAGE;
    t.path[1] = second ? second : t.path[0];
    for (int i = 0; i < 2; i++)
        cli_text_escape(t.shown[i], sizeof t.shown[i], t.path[i]);
    make_source(&t);

    double start = now_s();
    if ((rc = cachelock_prepare(t.path[0], t.source, 0)) < 0)
        return cli_lib_error(rc);
    char lockfile[4200];
    cachelock_path(t.path[0], t.source, lockfile, sizeof lockfile);
    if (second && !same_directory(&t)) {
        unlink(lockfile);
        return cli_usage_error("selftest", "'%s' is not another path to '%s': the test's lock "
                               "file made through the one is not in the other", t.shown[1],
                               t.shown[0]);
    }
    fs[0] = cachelock_fs_of(t.path[0]);
    fs[1] = cachelock_fs_of(t.path[1]);
    t.sh = mmap(NULL, sizeof *t.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t.sh == MAP_FAILED) {
        unlink(lockfile);
        cli_error("cannot run the self-test: mmap: %s", cachelock_strerror(errno));
        return EXIT_OSERR;
    }
    /* Our output must not be copied by the contenders' exits. */
    fflush(stdout);
    fflush(stderr);
    check_exclusion(&t, &k[0]);
    check_shared(&t, &k[1]);
    check_death(&t, &k[2]);
    check_notification(&t, &k[3]);
    double secs = now_s() - start;
    munmap(t.sh, sizeof *t.sh);
    cachelock_close_idle();
    unlink(lockfile);

    int failed = 0;
    for (int i = 0; i < 4; i++)
        failed |= k[i].result == FAIL;
    if (json)
        print_json(&t, fs, second != NULL, k, 4, failed, secs);
    else
        print_text(&t, fs, second != NULL, k, 4, failed, secs);
    int out = cli_close_stdout();
    return failed ? 1 : out;
}
