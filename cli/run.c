/*
 * run.c - `cachelock run`: take a lock, run a command under it.
 *
 *   parse options and operands ─> start wait ─busy─> say who holds it (once,
 *        on stderr), count the seconds on a terminal, poll until granted,
 *        timed out or failed
 *                        │ granted
 *                        v
 *   -F: clear FD_CLOEXEC, exec COMMAND in this process (it holds the lock)
 *   else fork ─> child: restore the signal mask; by default clear FD_CLOEXEC
 *                (COMMAND inherits the lock); with -o set PR_SET_PDEATHSIG
 *                instead (COMMAND dies with us); exec (errno back through a
 *                CLOEXEC pipe)
 *             ─> parent: with signals blocked, sigwaitinfo: pass on those
 *                sent with kill(1), reap the child on SIGCHLD; exit with the
 *                child's status (128+N if killed), WITHOUT unlocking unless
 *                -o: the lock ends when the last copy of the descriptor is
 *                closed (ours at our exit, COMMAND's, its daemons')
 *
 * Why the command inherits the lock by default: a wrapper that can be
 * killed with SIGKILL (OOM killer, a supervisor, kill -9 of the wrong pid)
 * cannot release anything when it dies, and the kernel then frees a lock
 * that only the wrapper had while COMMAND runs on.  flock(1) avoids that by
 * letting the command inherit the descriptor; so do we.  The price is that
 * a daemon started by COMMAND keeps the lock after COMMAND exits; -o/--close
 * trades that back, and covers the wrapper's death with PR_SET_PDEATHSIG.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

static const char usage[] =
    "Usage: cachelock run [options] CACHE_DIR SOURCE [--] COMMAND [ARG...]\n"
    "       cachelock run [options] CACHE_DIR SOURCE -c SHELL_COMMAND\n"
    "       cachelock run [options] SOURCE -- COMMAND [ARG...]   (CACHE_DIR from $" ENV_DIR ")\n"
    "\n"
    "Take the lock of SOURCE in CACHE_DIR, run COMMAND under it, and exit with\n"
    "COMMAND's status.  Only the first '--' ends the operands: the rest is COMMAND.\n"
    "\n"
    "COMMAND inherits the lock descriptor (its number is in $" ENV_FD "), as with\n"
    "flock(1): if cachelock is killed, even with SIGKILL, COMMAND keeps the lock.\n"
    "A process that COMMAND leaves running in the background (a daemon) keeps\n"
    "it too, until it exits or closes the descriptor; use -o to prevent that.\n"
    "\n"
    "Options:\n"
    "  -x, -e, --exclusive        exclusive lock, for writers (the default)\n"
    "  -s, --shared               shared lock, for readers\n"
    "  -n, --nonblock, --nb, --nonblocking\n"
    "                             fail at once if the lock is busy (wins over -w)\n"
    "  -w, --timeout, --wait SECONDS\n"
    "                             give up after SECONDS (fractions and ms/s/m/h/d\n"
    "                             units allowed; default: $" ENV_TIMEOUT ", else wait\n"
    "                             forever; -w 0 is -n)\n"
    "  -E, --conflict-exit-code N exit status when busy or timed out (default 1)\n"
    "  -q, --quiet                print nothing on stderr while waiting or when\n"
    "                             busy or timed out\n"
    "  -o, --close                COMMAND does not inherit the lock: cachelock holds\n"
    "                             it and releases it when COMMAND exits, so daemons\n"
    "                             do not keep it; if cachelock dies, COMMAND is\n"
    "                             killed (SIGKILL), never left running unlocked\n"
    "  -F, --no-fork              exec COMMAND in place of cachelock (no -o)\n"
    "      --fair                 wait in a queue: the lock is granted in the order\n"
    "                             of arrival among libcachelock's users that queue\n"
    "                             (see 'cachelock fair --help'); status 69 where\n"
    "                             fair mode cannot work (NFS, SMB, FUSE)\n"
    "  -c, --command SHELL_COMMAND\n"
    "                             run SHELL_COMMAND with /bin/sh -c\n"
    "      --inherit-fd           accepted for compatibility: the default now\n"
    "      --any-name             accept any SOURCE that is a valid file name here,\n"
    "                             not only portable names (aux, tools:beta, a.)\n"
    "      --local-only           refuse (status 69) unless the cache is on a local\n"
    "                             filesystem; elsewhere (NFS, SMB, FUSE, ...) a\n"
    "                             warning is printed unless -q\n"
    "      --verbose              say how long getting the lock took, and what runs\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version\n"
    "\n"
    "Messages go to stderr only; stdout belongs to COMMAND.\n"
    "Exit status: COMMAND's own, 128+N if it was killed by signal N, the conflict\n"
    "code when busy or timed out, 64 usage, 66 cannot open the lock file, 69 cannot\n"
    "run COMMAND (or --local-only refused, or fair mode cannot work here), 71 system\n"
    "error, 73 cannot create the lock file (or a read-only mount).\n";

/* Signals that someone sends us with kill(2) (a supervisor, a CI runner's
 * timeout) are passed on to the command.  Terminal signals (Ctrl-C) reach the
 * whole foreground process group anyway, so those with si_code SI_KERNEL are
 * not forwarded; they would arrive twice. */
static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

/* -c runs SHELL_COMMAND with the shell every system has, not $SHELL (which
 * flock(1) uses): a script means the same thing for every user. */
static char shell_path[] = "/bin/sh", shell_name[] = "sh", shell_c[] = "-c";

struct run_opts {
    struct cli_run_args a;
    const char *file;         /* what to exec: COMMAND's first word, or /bin/sh */
    char **command;           /* its argv */
    char *sh_argv[4];         /* "sh", "-c", SHELL_COMMAND */
};

/* Wait for the lock, telling the person why we wait.  Returns 1 with *out,
 * or 0 with *status set to the exit status (which may be 0 with -E 0). */
static int take_lock(const struct run_opts *o, cachelock_t **out, int *status)
{
    cachelock_wait_t *w;
    int rc, shown = 0, tty = !o->a.quiet && isatty(2);
    double start = cli_now();
    long long last_second = 0;

    rc = cachelock_wait_start(o->a.dir, o->a.source, &o->a.lock, &w);
    if (rc < 0) {
        *status = cli_name_error(rc, o->a.source, o->a.lock.flags);
        return 0;
    }
    for (;;) {
        rc = cachelock_wait_step(w, out);
        if (rc != -EINPROGRESS)
            break;
        if (!shown && !o->a.quiet) {
            char path[4200] = "", who[2048], name[1024], shown_path[8400], limit[64] = "";
            /* Fair mode (asked for, or the cache's policy): the lock may
             * be free and still not ours, others being ahead in the queue. */
            int fair = (o->a.lock.flags & CACHELOCK_F_FAIR) || cachelock_fair_policy(o->a.dir) == 1;
            cachelock_path_ex(o->a.dir, o->a.source, o->a.lock.flags & CACHELOCK_F_ANYNAME, path,
                              sizeof path);
            if (fair && cli_holders_count(o->a.dir, o->a.source) == 0)
                snprintf(who, sizeof who, "free, but others are queued ahead of us");
            else
                cli_describe_holders(o->a.dir, o->a.source, who, sizeof who);
            cli_text_escape(name, sizeof name, o->a.source);
            cli_text_escape(shown_path, sizeof shown_path, path);
            char note[512];
            if (o->a.lock.timeout_ms > 0)
                snprintf(limit, sizeof limit, "; giving up after %.3gs",
                         (double)o->a.lock.timeout_ms / 1000);
            cli_fs_note(cachelock_fs_of(o->a.dir), note, sizeof note);
            cli_error("waiting for '%s' ('%s'), %s; locks die with their process, so a wait "
                      "means a live holder%s%s%s%s", name, shown_path, who,
                      fair ? "; queued, first come first served (fair mode)" : "", limit,
                      note[0] ? "; " : "", note);
            if (tty)
                fputs("cachelock: waited 0s", stderr);
            shown = 1;
        }
        int timeout = cachelock_wait_timeout(w);
        if (tty) {
            int to_tick = (int)(1000 - (long long)((cli_now() - start) * 1000) % 1000);
            if (to_tick < timeout)
                timeout = to_tick;
        }
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        poll(&p, p.fd >= 0 ? 1 : 0, timeout);
        if (tty) {
            long long second = (long long)(cli_now() - start);
            if (second != last_second) {
                fprintf(stderr, "\r\033[Kcachelock: waited %llds", second);
                last_second = second;
            }
        }
    }
    if (shown && tty)
        fprintf(stderr, "\r\033[Kcachelock: waited %.1fs\n", cli_now() - start);
    cachelock_wait_free(w);
    if (rc == 0) {
        /* Said once: in the wait line, or now. */
        if (!o->a.quiet && !shown) {
            char note[512];
            cli_fs_note(cachelock_fs(*out), note, sizeof note);
            if (note[0])
                cli_error("warning: %s", note);
        }
        if (o->a.verbose)
            cli_error("getting lock took %.6f seconds", cli_now() - start);
        return 1;
    }
    if (rc == -EWOULDBLOCK || rc == -ETIMEDOUT) {
        if (!o->a.quiet)
            cli_lib_message();
        *status = o->a.conflict_code;
        return 0;
    }
    *status = cli_lib_error(rc);
    return 0;
}

/* Let exec'd programs inherit the lock: clear FD_CLOEXEC on our copy, which
 * is what a forked child or -F execs with, and say its number. */
static int pass_descriptor(cachelock_t *lock)
{
    char num[16];
    int fd = cachelock_fd(lock), flags;

    snprintf(num, sizeof num, "%d", fd);
    if (setenv(ENV_FD, num, 1) < 0)
        return -errno;
    flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

static int exec_failed(const struct run_opts *o, int err)
{
    char name[1024];
    cli_text_escape(name, sizeof name, o->file);
    cli_error("cannot run '%s': %s", name, cachelock_strerror(err));
    return err == ENOMEM ? EXIT_OSERR : EXIT_UNAVAILABLE;
}

/* -F: become COMMAND.  Returns only if exec fails. */
static int exec_in_place(const struct run_opts *o, cachelock_t *lock)
{
    int err = -pass_descriptor(lock);
    if (!err) {
        signal(SIGCHLD, SIG_DFL);
        execvp(o->file, o->command);
        err = errno;
    }
    cachelock_release(lock);
    return exec_failed(o, err);
}

/* A descriptor at 3 or above: with stdin, stdout or stderr closed when we
 * were started, pipe2() could return one of those numbers, and COMMAND
 * would get our error pipe as its stdout. */
static int high_fd(int fd)
{
    if (fd >= 3)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int err = errno;
    close(fd);
    errno = err;
    return moved;
}

static int run_command(const struct run_opts *o, cachelock_t *lock)
{
    sigset_t waitset, old;
    int errpipe[2], status, err = 0;
    pid_t pid, parent = getpid();

    if (!o->a.close_fd && (err = -pass_descriptor(lock)) != 0) {
        cachelock_release(lock);
        return exec_failed(o, err);
    }
    if (pipe2(errpipe, O_CLOEXEC) < 0 || (errpipe[0] = high_fd(errpipe[0])) < 0 ||
        (errpipe[1] = high_fd(errpipe[1])) < 0) {
        cli_error("cannot run COMMAND: pipe: %s", cachelock_strerror(errno));
        cachelock_release(lock);
        return EXIT_OSERR;
    }
    /* No signal handlers: the forwarded signals and SIGCHLD stay blocked and
     * are taken with sigwaitinfo(2), so none is lost between fork and wait
     * and none runs a handler at an awkward moment.  A SIGCHLD disposition
     * of SIG_IGN inherited from our parent would make the kernel reap the
     * command before we can read its status. */
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGCHLD);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&waitset, forwarded[i]);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_BLOCK, &waitset, &old);
    pid = fork();
    if (pid < 0) {
        err = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(errpipe[0]);
        close(errpipe[1]);
        cachelock_release(lock);
        cli_error("cannot run COMMAND: fork: %s", cachelock_strerror(err));
        return EXIT_OSERR;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
#ifdef PR_SET_PDEATHSIG
        /* -o: COMMAND does not hold the lock, we do; if we die (even by
         * SIGKILL) the kernel frees it, so COMMAND must die too.  The
         * parent may have died before prctl(): then we were reparented
         * already and must not run at all.  (The kernel releases the lock
         * as the parent exits and signals us just after, so COMMAND is
         * killed within microseconds of the release, not before it.) */
        if (o->a.close_fd) {
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                err = errno;
            else if (getppid() != parent)
                _exit(127);
        }
#else
        (void)parent;
#endif
        if (!err) {
            execvp(o->file, o->command);
            err = errno;
        }
        if (write(errpipe[1], &err, sizeof err) < 0)
            _exit(127);
        _exit(127);
    }
    close(errpipe[1]);

    ssize_t n;
    do n = read(errpipe[0], &err, sizeof err); while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    pid_t r;
    int wait_err = 0;
    for (;;) {
        siginfo_t si;
        r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) {
            wait_err = errno;
            break;
        }
        if (sigwaitinfo(&waitset, &si) < 0)
            continue;
        if (si.si_signo != SIGCHLD && (si.si_code == SI_USER || si.si_code == SI_QUEUE))
            kill(pid, si.si_signo);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (r != pid) {
        /* Not our child any more (someone reaped it): its status is lost. */
        cli_error("cannot wait for COMMAND: %s", cachelock_strerror(wait_err));
        return EXIT_OSERR;
    }
    if (n == (ssize_t)sizeof err) {
        /* The child is gone and never ran COMMAND: nobody else has the
         * descriptor, unlocking is safe. */
        cachelock_release(lock);
        return exec_failed(o, err);
    }
    /* By default COMMAND, or a daemon it started, may still hold the
     * descriptor: like flock(1), leave the lock to the kernel, which frees
     * it when the last copy is closed (ours as we exit).  With -o we are
     * the only holder: unlock now. */
    if (o->a.close_fd)
        cachelock_release(lock);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* What to exec: COMMAND, or the shell with SHELL_COMMAND. */
static void set_command(struct run_opts *o)
{
    if (o->a.shell) {
        o->sh_argv[0] = shell_name;
        o->sh_argv[1] = shell_c;
        o->sh_argv[2] = o->a.shell;
        o->sh_argv[3] = NULL;
        o->command = o->sh_argv;
        o->file = shell_path;
    } else {
        o->command = o->a.command;
        o->file = o->command[0];
    }
}

int cli_run(int argc, char **argv)
{
    struct run_opts o;
    memset(&o, 0, sizeof o);
    int rc = cli_run_parse(argc, argv, usage, &o.a);
    if (rc >= 0)
        return rc;
    set_command(&o);

    cachelock_t *lock;
    int status;
    if (!take_lock(&o, &lock, &status))
        return status;
    if (o.a.verbose) {
        char name[1024];
        cli_text_escape(name, sizeof name, o.file);
        cli_error("executing %s", name);
    }
    /* Nothing of ours goes to stdout; the command owns it. */
    if (o.a.no_fork)
        return exec_in_place(&o, lock);
    return run_command(&o, lock);
}
