/*
 * lock.c - `cachelock lock FD` and `cachelock unlock FD`: flock(1)'s
 * descriptor mode on the lock files of a cache, for shell scripts that hold
 * a lock across several commands:
 *
 *     exec 9<>"$(cachelock path --create "$CACHE" registry)" || exit 1
 *     cachelock lock -n 9 || exit 1
 *     ... commands under the lock ...
 *     cachelock unlock 9        # or exit: closing the last copy unlocks
 *
 * The lock belongs to the open file that the shell and we share, so it
 * outlives this process, exactly as with `flock 9`.
 *
 *   check FD: open, a regular file named {CACHE_DIR}/.locks/{SOURCE}.lock
 *        (its name from /proc/self/fd), not removed ─> else 64 (or 75)
 *   try flock(LOCK_NB) ─busy─> -n: conflict status
 *        │                └──> say who holds it, block in flock(2) until
 *        │                     granted (-w: a child blocks for us, and is
 *        │                     killed at the deadline: conflict)
 *        v granted
 *   look the path up again: still this file? ─no─> unlock, 75: the script
 *        must open the path again (the file was pruned or replaced while
 *        it waited, and whoever locks the path now would not see our lock)
 */
#define _GNU_SOURCE
#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char lock_usage[] =
    "Usage: cachelock lock [options] FD\n"
    "\n"
    "Lock the lock file open on descriptor FD, like `flock FD`, for scripts that\n"
    "hold a lock across several commands.  The lock stays with the descriptor\n"
    "(the shell's) after cachelock exits:\n"
    "\n"
    "  exec 9<>\"$(cachelock path --create \"$CACHE\" registry)\" || exit 1\n"
    "  cachelock lock -n 9 || { echo busy; exit 1; }\n"
    "  ... commands under the lock ...\n"
    "  cachelock unlock 9   # or just exit\n"
    "\n"
    "FD must be a lock file of a cache, {CACHE_DIR}/.locks/{SOURCE}.lock.  After the\n"
    "lock is granted the path must still name that file; if it was pruned or\n"
    "replaced meanwhile, the lock is dropped and the status is 75: open the path\n"
    "again and lock again.\n"
    "\n"
    "Options:\n"
    "  -x, -e, --exclusive        exclusive lock (the default)\n"
    "  -s, --shared               shared lock\n"
    "  -u, --unlock               unlock instead (as 'cachelock unlock FD')\n"
    "  -n, --nonblock, --nb, --nonblocking\n"
    "                             fail at once if the lock is busy (wins over -w)\n"
    "  -w, --timeout, --wait SECONDS\n"
    "                             give up after SECONDS (default: $" ENV_TIMEOUT ",\n"
    "                             else wait forever; -w 0 is -n)\n"
    "  -E, --conflict-exit-code N exit status when busy or timed out (default 1)\n"
    "  -q, --quiet                print nothing on stderr while waiting or when\n"
    "                             busy or timed out\n"
    "      --any-name             accept any SOURCE that is a valid file name here\n"
    "      --local-only           refuse (status 69) unless the cache is on a local\n"
    "                             filesystem; elsewhere a warning is printed unless -q\n"
    "      --verbose              say how long getting the lock took\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version\n"
    "\n"
    "Exit status: 0 locked, the conflict code when busy or timed out, 64 usage (FD\n"
    "not open or not a lock file of a cache), 69 --local-only refused, 71 system\n"
    "error, 75 the lock file was removed or replaced: reopen it.\n";

static const char unlock_usage[] =
    "Usage: cachelock unlock FD\n"
    "\n"
    "Unlock the file open on descriptor FD (like `flock -u FD`).  Closing the\n"
    "descriptor (exec 9>&-, or the script's exit) unlocks it too.\n"
    "\n"
    "Exit status: 0, 64 usage (FD not open), 71 system error.\n";

/* A lock file open on a descriptor, and what its name says. */
struct lockfile {
    int fd;
    struct stat st;
    char path[PATH_MAX + 16];    /* from /proc/self/fd/FD */
    char dir[PATH_MAX + 16];     /* the cache directory */
    char source[NAME_MAX + 1];   /* the name between .locks/ and .lock */
    char shown[3 * PATH_MAX];    /* path, escaped for a terminal */
};

static int parse_fd(const char *cmd, const char *s, int *fd)
{
    long v;
    *fd = -1;
    if (cli_parse_uint(s, INT_MAX, &v) < 0)
        return cli_usage_error(cmd, "invalid file descriptor '%s': expected a number such as 9", s);
    *fd = (int)v;
    return 0;
}

static int not_open(int fd)
{
    cli_error("descriptor %d is not open: open the lock file first, e.g. "
              "exec %d<>\"$(cachelock path --create CACHE_DIR SOURCE)\"", fd, fd);
    return EXIT_USAGE;
}

/* The file on f->fd is no longer the one its path names. */
static int stale(const struct lockfile *f, const char *what)
{
    const char *base = strrchr(f->path, '/');
    /* cachelock prune renames a file to .locks/.prune-* just before it
     * removes it: that name says nothing to the script. */
    if (base && strncmp(base + 1, ".prune-", 7) == 0)
        cli_error("the lock file of descriptor %d was removed by cachelock prune: open its path "
                  "again (exec %d<>\"$(cachelock path --create ...)\") and lock again", f->fd, f->fd);
    else
        cli_error("lock file '%s' (descriptor %d) was %s: open its path again "
                  "(exec %d<>\"$(cachelock path --create ...)\") and lock again",
                  f->shown, f->fd, what, f->fd);
    return EXIT_STALE;
}

/* Check that f->fd is the lock file of a source of a cache and fill in f.
 * 0, or an exit status after a message. */
static int identify(struct lockfile *f, unsigned flags)
{
    char link[64];
    ssize_t len;

    if (fstat(f->fd, &f->st) < 0) {
        if (errno == EBADF)
            return not_open(f->fd);
        cli_error("cannot stat descriptor %d: %s", f->fd, cachelock_strerror(errno));
        return EXIT_OSERR;
    }
    snprintf(link, sizeof link, "/proc/self/fd/%d", f->fd);
    len = readlink(link, f->path, sizeof f->path - 1);
    if (len < 0 || len == (ssize_t)sizeof f->path - 1) {
        cli_error("cannot read the name of descriptor %d from '%s': %s", f->fd, link,
                  cachelock_strerror(len < 0 ? errno : ENAMETOOLONG));
        return EXIT_OSERR;
    }
    f->path[len] = '\0';
    if (S_ISREG(f->st.st_mode) && f->st.st_nlink == 0) {
        /* Unlinked: the kernel shows the old name with " (deleted)". */
        static const char deleted[] = " (deleted)";
        size_t dl = sizeof deleted - 1;
        if ((size_t)len > dl && strcmp(f->path + len - dl, deleted) == 0)
            f->path[len - dl] = '\0';
    }
    cli_text_escape(f->shown, sizeof f->shown, f->path);
    if (!S_ISREG(f->st.st_mode)) {
        cli_error("descriptor %d is not a lock file of a cache: '%s' is not a regular file",
                  f->fd, f->shown);
        return EXIT_USAGE;
    }
    /* {dir}/.locks/{source}.lock, also when it was removed since it was
     * opened: then it was a lock file, and the script must reopen it. */
    char *base = strrchr(f->path, '/');
    size_t blen = base ? strlen(base + 1) : 0;
    const char *locks = NULL;
    if (base && base > f->path) {
        *base = '\0';
        locks = strrchr(f->path, '/');
        *base = '/';
    }
    if (!locks || (size_t)(base - locks) != 7 || strncmp(locks, "/.locks", 7) != 0) {
        cli_error("descriptor %d is not a lock file of a cache: '%s' is not in a .locks "
                  "directory", f->fd, f->shown);
        return EXIT_USAGE;
    }
    if (blen <= 5 || strcmp(base + 1 + blen - 5, ".lock") != 0) {
        /* cachelock prune renames a file to .prune-* just before it
         * removes it. */
        if (strncmp(base + 1, ".prune-", 7) == 0)
            return stale(f, "removed");
        cli_error("descriptor %d is not a lock file of a cache: '%s' is not "
                  "{CACHE_DIR}/.locks/{SOURCE}.lock", f->fd, f->shown);
        return EXIT_USAGE;
    }
    if (f->st.st_nlink == 0)
        return stale(f, "removed (pruned?)");
    size_t dlen = (size_t)(locks - f->path);
    memcpy(f->dir, f->path, dlen);
    f->dir[dlen] = '\0';
    if (dlen == 0)
        strcpy(f->dir, "/");
    snprintf(f->source, sizeof f->source, "%.*s", (int)(blen - 5), base + 1);
    int rc = cachelock_check_name_ex(f->source, flags);
    if (rc < 0)
        return cli_name_error(rc, f->source, flags);
    return 0;
}

/* A wait with a time limit.  A child process blocks in flock(2) on the
 * same open file description: a lock granted to it is the description's,
 * so the script's.  This process waits for the child for at most ms
 * milliseconds (SIGCHLD blocked, sigtimedwait(2)); at the deadline it kills
 * the child, whose pending request the kernel then drops, and looks once
 * more without waiting: the lock is ours if the child got it in the
 * meantime (a second lock call on the same description succeeds), or if
 * it is free right now.  No timer signal interrupts anything, so neither a
 * caller's signal mask nor SA_RESTART semantics (ThreadSanitizer, for one,
 * installs its handlers with it) can stretch or cut the wait, and a
 * SIGALRM from kill(1) is ignored meanwhile.  Returns 0 when held, 1 when
 * the time ran out, or -errno. */
static int timed_flock(int fd, int op, long ms)
{
    sigset_t chld, old;
    struct sigaction ign, old_alrm;
    int status, rc;

    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGALRM, &ign, &old_alrm);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        goto out;
    }
    if (pid == 0) {
        /* Not to outlive us: if we die, the request goes with this child. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        _exit(flock(fd, op) == 0 ? 0 : 1);
    }
    struct timespec end, now, left;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += (time_t)(ms / 1000);
    end.tv_nsec += (ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
            if (rc < 0 && flock(fd, op | LOCK_NB) == 0)
                rc = 0;
            goto out;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
            break;
        left.tv_sec = end.tv_sec - now.tv_sec;
        left.tv_nsec = end.tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0) {
            left.tv_sec--;
            left.tv_nsec += 1000000000L;
        }
        sigtimedwait(&chld, NULL, &left);      /* a SIGCHLD, or the deadline */
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (flock(fd, op | LOCK_NB) == 0)
        rc = 0;
    else
        rc = errno == EWOULDBLOCK ? 1 : -errno;
out:
    sigprocmask(SIG_SETMASK, &old, NULL);
    sigaction(SIGALRM, &old_alrm, NULL);
    return rc;
}

struct lock_opts {
    int op;               /* LOCK_EX, LOCK_SH or LOCK_UN */
    long timeout_ms;      /* -1 forever, 0 try */
    int conflict_code, quiet, verbose, local_only;
    unsigned flags;
};

static int sys_error(const struct lockfile *f, const char *what, int err)
{
    cli_error("cannot %s '%s' (descriptor %d): %s", what, f->shown, f->fd, cachelock_strerror(err));
    return EXIT_OSERR;
}

/* Take the lock on f.  0 when granted, or an exit status. */
static int take(const struct lock_opts *o, const struct lockfile *f)
{
    char who[2048], note[512];
    int rc;

    /* Where the lock file is: refused (--local-only) or said once, in the
     * wait line or now. */
    int fs = cachelock_fs_of(f->dir);
    cli_fs_note(fs, note, sizeof note);
    if (o->local_only && fs != CACHELOCK_FS_LOCAL) {
        cli_error("cannot lock '%s' (descriptor %d): the cache is on %s, not a local "
                  "filesystem, and --local-only refuses it", f->shown, f->fd,
                  fs == CACHELOCK_FS_UNKNOWN ? "a filesystem of unknown kind"
                  : fs < 0 ? "a filesystem that cannot be read" : cachelock_fs_name(fs));
        return EXIT_UNAVAILABLE;
    }

    if (flock(f->fd, o->op | LOCK_NB) == 0) {
        if (note[0] && !o->quiet)
            cli_error("warning: %s", note);
        return 0;
    }
    if (errno != EWOULDBLOCK)
        return sys_error(f, "lock", errno);
    if (o->timeout_ms == 0) {
        if (!o->quiet) {
            cli_describe_holders(f->dir, f->source, who, sizeof who);
            cli_error("cannot lock '%s': busy, %s", f->shown, who);
        }
        return o->conflict_code;
    }
    if (!o->quiet) {
        char limit[64] = "";
        cli_describe_holders(f->dir, f->source, who, sizeof who);
        if (o->timeout_ms > 0)
            snprintf(limit, sizeof limit, "; giving up after %.3gs", (double)o->timeout_ms / 1000);
        cli_error("waiting for '%s' (descriptor %d), %s; locks die with their process, so a "
                  "wait means a live holder%s%s%s", f->shown, f->fd, who, limit,
                  note[0] ? "; " : "", note);
    }
    if (o->timeout_ms > 0) {
        rc = timed_flock(f->fd, o->op, o->timeout_ms);
        if (rc < 0)
            return sys_error(f, "lock", -rc);
        if (rc == 1) {
            if (!o->quiet)
                cli_error("timed out after %ld ms waiting for lock '%s'", o->timeout_ms, f->shown);
            return o->conflict_code;
        }
        return 0;
    }
    for (;;) {
        if (flock(f->fd, o->op) == 0)
            return 0;
        if (errno != EINTR)
            return sys_error(f, "lock", errno);
    }
}

/* After the grant: does the path still name the file we locked? */
static int still_named(const struct lockfile *f)
{
    struct stat now;
    if (lstat(f->path, &now) < 0)
        return 0;
    return now.st_dev == f->st.st_dev && now.st_ino == f->st.st_ino;
}

int cli_lock(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "exclusive", no_argument, NULL, 'x' },
        { "shared", no_argument, NULL, 's' },
        { "unlock", no_argument, NULL, 'u' },
        { "nonblock", no_argument, NULL, 'n' },
        { "nonblocking", no_argument, NULL, 'n' },
        { "nb", no_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, 'w' },
        { "wait", required_argument, NULL, 'w' },
        { "conflict-exit-code", required_argument, NULL, 'E' },
        { "quiet", no_argument, NULL, 'q' },
        { "any-name", no_argument, NULL, OPT_ANY_NAME },
        { "local-only", no_argument, NULL, OPT_LOCAL_ONLY },
        { "verbose", no_argument, NULL, OPT_VERBOSE },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    struct lock_opts o = { LOCK_EX, -1, EXIT_CONFLICT_DEFAULT, 0, 0, 0, 0 };
    struct lockfile f = { .fd = -1 };
    int c, rc, nonblock = 0, timeout_set = 0;
    memset(&f, 0, sizeof f);
    f.fd = -1;
    long v;
    const char *env;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:xesunw:E:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'x':
        case 'e': o.op = LOCK_EX; break;
        case 's': o.op = LOCK_SH; break;
        case 'u': o.op = LOCK_UN; break;
        case 'n': nonblock = 1; break;
        case 'w':
            if (cli_parse_duration(optarg, &o.timeout_ms) < 0)
                return cli_usage_error("lock", "invalid timeout '%s': expected seconds, e.g. 10 or 0.5",
                                       optarg);
            timeout_set = 1;
            break;
        case 'E':
            if (cli_parse_uint(optarg, 255, &v) < 0)
                return cli_usage_error("lock", "invalid conflict exit code '%s': expected 0 to 255",
                                       optarg);
            o.conflict_code = (int)v;
            break;
        case 'q': o.quiet = 1; break;
        case OPT_ANY_NAME: o.flags |= CACHELOCK_F_ANYNAME; break;
        case OPT_LOCAL_ONLY: o.local_only = 1; break;
        case OPT_VERBOSE: o.verbose = 1; break;
        case 'h': return cli_print_help(lock_usage);
        case 'V': return cli_print_version();
        default: return cli_option_error("lock", argv, c, longopts);
        }
    }
    if (nonblock) {
        o.timeout_ms = 0;
    } else if (!timeout_set && (env = getenv(ENV_TIMEOUT)) && *env) {
        if (cli_parse_duration(env, &o.timeout_ms) < 0)
            return cli_usage_error("lock", "invalid %s '%s': expected seconds", ENV_TIMEOUT, env);
    }
    if (argc - optind != 1)
        return cli_usage_error("lock", argc == optind ? "missing FD: expected the number of a "
                               "descriptor open on a lock file" : "too many operands: expected FD");
    if ((rc = parse_fd("lock", argv[optind], &f.fd)) != 0)
        return rc;
    if (o.op == LOCK_UN) {
        char *args[] = { argv[0], argv[optind], NULL };
        return cli_unlock(2, args);
    }
    if ((rc = identify(&f, o.flags)) != 0)
        return rc;

    double start = cli_now();
    if ((rc = take(&o, &f)) != 0)
        return rc;
    if (!still_named(&f)) {
        flock(f.fd, LOCK_UN);
        return stale(&f, "removed or replaced while we waited for it (pruned?); it is unlocked");
    }
    if (o.verbose)
        cli_error("getting lock took %.6f seconds", cli_now() - start);
    return 0;
}

int cli_unlock(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    struct stat st;
    int c, fd = -1, rc;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': return cli_print_help(unlock_usage);
        case 'V': return cli_print_version();
        default: return cli_option_error("unlock", argv, c, longopts);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("unlock", argc == optind ? "missing FD" : "too many operands: expected FD");
    if ((rc = parse_fd("unlock", argv[optind], &fd)) != 0)
        return rc;
    if (fstat(fd, &st) < 0) {
        if (errno == EBADF)
            return not_open(fd);
        cli_error("cannot stat descriptor %d: %s", fd, cachelock_strerror(errno));
        return EXIT_OSERR;
    }
    if (flock(fd, LOCK_UN) < 0) {
        cli_error("cannot unlock descriptor %d: %s", fd, cachelock_strerror(errno));
        return EXIT_OSERR;
    }
    return 0;
}
