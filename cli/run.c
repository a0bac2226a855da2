/*
 * run.c - `cachelock run`: take a lock, run a command, release.
 *
 *   parse options ─> start wait ─busy─> say who holds it (once), count the
 *        seconds on a terminal, poll until granted, timed out or failed
 *                        │ granted
 *                        v
 *   fork ─> child: restore the signal mask, clear FD_CLOEXEC only with
 *           --inherit-fd, exec (errno back through a CLOEXEC pipe)
 *        ─> parent: with signals blocked, sigwaitinfo: pass on those sent
 *           with kill(1), reap the child on SIGCHLD; release; exit with the
 *           child's status (128+N if killed)
 */
#define _GNU_SOURCE
#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "Usage: cachelock run [options] CACHE_DIR SOURCE [--] COMMAND [ARG...]\n"
    "       cachelock run [options] SOURCE -- COMMAND [ARG...]\n"
    "\n"
    "Take the lock of SOURCE in CACHE_DIR (default: $" ENV_DIR "), run COMMAND,\n"
    "and release the lock when it exits.\n"
    "\n"
    "Options:\n"
    "  -x, --exclusive            exclusive lock, for writers (the default)\n"
    "  -s, --shared               shared lock, for readers\n"
    "  -n, --nonblock             fail at once if the lock is busy (same as -w 0)\n"
    "  -w, --timeout SECONDS      give up after SECONDS (fractions and ms/s/m/h units\n"
    "                             allowed; default: $" ENV_TIMEOUT ", else wait forever)\n"
    "  -E, --conflict-exit-code N exit status when busy or timed out (default 1)\n"
    "  -q, --quiet                no wait or conflict messages\n"
    "      --inherit-fd           let COMMAND inherit the lock descriptor (its number\n"
    "                             is in $CACHELOCK_FD); the lock then lives until the\n"
    "                             last process holding it closes it\n"
    "  -h, --help                 show this help\n"
    "\n"
    "Exit status: COMMAND's own, 128+N if it was killed by signal N, the conflict\n"
    "code when busy or timed out, 64 usage, 66 cannot open the lock file, 69 cannot\n"
    "run COMMAND, 71 system error, 73 cannot create the lock file.\n";

/* Signals that someone sends us with kill(2) (a supervisor, a CI runner's
 * timeout) are passed on to the command.  Terminal signals (Ctrl-C) reach the
 * whole foreground process group anyway, so those with si_code SI_KERNEL are
 * not forwarded; they would arrive twice. */
static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "held exclusive by pid 12 (make -j4)", "held shared by 2: pid 3 (a), ..."
 * from the kernel's lock table. */
static void describe_holders(const char *dir, const char *source, char *buf, size_t size)
{
    cachelock_holder_t *h = NULL;
    size_t n = 0, holders = 0, used;
    int rc = cachelock_holders(dir, source, &h, &n);

    for (size_t i = 0; i < n; i++)
        holders += !h[i].waiting;
    if (rc < 0 || holders == 0) {
        snprintf(buf, size, "held by a process not visible here (another machine, another "
                 "container, or it let go a moment ago)");
        free(h);
        return;
    }
    if (h[0].mode == CACHELOCK_EXCLUSIVE)
        used = (size_t)snprintf(buf, size, "held exclusive by ");
    else
        used = (size_t)snprintf(buf, size, "held shared by %zu: ", holders);
    for (size_t i = 0; i < holders && used < size; i++) {
        used += (size_t)snprintf(buf + used, size - used, "%spid %d (%s)", i ? ", " : "",
                                 h[i].pid, h[i].command[0] ? h[i].command : "?");
    }
    free(h);
}

struct run_opts {
    cachelock_options_t lock;
    int conflict_code;
    int quiet;
    int inherit_fd;
    const char *dir, *source;
    char **command;
};

/* Wait for the lock, telling the person why we wait.  Returns 1 with *out,
 * or 0 with *status set to the exit status (which may be 0 with -E 0). */
static int take_lock(const struct run_opts *o, cachelock_t **out, int *status)
{
    cachelock_wait_t *w;
    int rc, shown = 0, tty = !o->quiet && isatty(2);
    int64_t start = now_ms(), last_second = 0;
    char path[4200] = "", who[1024];

    rc = cachelock_wait_start(o->dir, o->source, &o->lock, &w);
    if (rc < 0) {
        cli_error("%s", cachelock_errmsg());
        *status = cli_exit_for(rc, cachelock_errmsg());
        return 0;
    }
    for (;;) {
        rc = cachelock_wait_step(w, out);
        if (rc != -EINPROGRESS)
            break;
        if (!shown && !o->quiet) {
            cachelock_path(o->dir, o->source, path, sizeof path);
            describe_holders(o->dir, o->source, who, sizeof who);
            char limit[64] = "";
            if (o->lock.timeout_ms > 0)
                snprintf(limit, sizeof limit, "; giving up after %.3gs",
                         (double)o->lock.timeout_ms / 1000);
            cli_error("waiting for '%s' ('%s'), %s; locks die with their process, so a wait "
                      "means a live holder%s", o->source, path, who, limit);
            if (tty)
                fputs("cachelock: waited 0s", stderr);
            shown = 1;
        }
        int timeout = cachelock_wait_timeout(w);
        if (tty) {
            int to_tick = (int)(1000 - (now_ms() - start) % 1000);
            if (to_tick < timeout)
                timeout = to_tick;
        }
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        poll(&p, p.fd >= 0 ? 1 : 0, timeout);
        if (tty) {
            int64_t second = (now_ms() - start) / 1000;
            if (second != last_second) {
                fprintf(stderr, "\r\033[Kcachelock: waited %llds", (long long)second);
                last_second = second;
            }
        }
    }
    if (shown && tty)
        fprintf(stderr, "\r\033[Kcachelock: waited %.1fs\n", (double)(now_ms() - start) / 1000);
    cachelock_wait_free(w);
    if (rc == 0)
        return 1;
    if (rc == -EWOULDBLOCK || rc == -ETIMEDOUT) {
        if (!o->quiet)
            cli_error("%s", cachelock_errmsg());
        *status = o->conflict_code;
        return 0;
    }
    cli_error("%s", cachelock_errmsg());
    *status = cli_exit_for(rc, cachelock_errmsg());
    return 0;
}

static int run_command(const struct run_opts *o, cachelock_t *lock)
{
    sigset_t waitset, old;
    int errpipe[2], status, err = 0;
    pid_t pid;

    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        cli_error("cannot run '%s': %s", o->command[0], cachelock_strerror(errno));
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
        cli_error("cannot run '%s': %s", o->command[0], cachelock_strerror(err));
        return EXIT_OSERR;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (o->inherit_fd) {
            char num[16];
            int fd = cachelock_fd(lock);
            snprintf(num, sizeof num, "%d", fd);
            if (fcntl(fd, F_SETFD, 0) < 0 || setenv("CACHELOCK_FD", num, 1) < 0)
                err = errno;
        }
        if (!err) {
            execvp(o->command[0], o->command);
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
    for (;;) {
        siginfo_t si;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            break;
        if (sigwaitinfo(&waitset, &si) < 0)
            continue;
        if (si.si_signo != SIGCHLD && (si.si_code == SI_USER || si.si_code == SI_QUEUE))
            kill(pid, si.si_signo);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (n == (ssize_t)sizeof err) {
        cli_error("cannot run '%s': %s", o->command[0], cachelock_strerror(err));
        cachelock_release(lock);
        return EXIT_UNAVAILABLE;
    }
    /* With --inherit-fd, the command or a daemon it started may still hold
     * the descriptor; like flock(1), leave the lock to the kernel, which
     * frees it when the last copy is closed.  Otherwise unlock now. */
    if (!o->inherit_fd)
        cachelock_release(lock);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

int cli_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "exclusive", no_argument, NULL, 'x' },
        { "shared", no_argument, NULL, 's' },
        { "nonblock", no_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, 'w' },
        { "conflict-exit-code", required_argument, NULL, 'E' },
        { "quiet", no_argument, NULL, 'q' },
        { "inherit-fd", no_argument, NULL, 'I' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    struct run_opts o = { CACHELOCK_OPTIONS_INIT, EXIT_CONFLICT_DEFAULT, 0, 0, NULL, NULL, NULL };
    int c, timeout_set = 0;
    long v;
    const char *env;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:xsnw:E:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'x': o.lock.mode = CACHELOCK_EXCLUSIVE; break;
        case 's': o.lock.mode = CACHELOCK_SHARED; break;
        case 'n': o.lock.timeout_ms = 0; timeout_set = 1; break;
        case 'w':
            if (cli_parse_duration(optarg, &v) < 0)
                return cli_usage_error("run", "invalid timeout '%s': expected seconds, e.g. 10 or 0.5",
                                       optarg);
            o.lock.timeout_ms = v;
            timeout_set = 1;
            break;
        case 'E':
            if (cli_parse_uint(optarg, 255, &v) < 0)
                return cli_usage_error("run", "invalid conflict exit code '%s': expected 0 to 255",
                                       optarg);
            o.conflict_code = (int)v;
            break;
        case 'q': o.quiet = 1; break;
        case 'I': o.inherit_fd = 1; break;
        case 'h':
            fputs(usage, stdout);
            return cli_close_stdout();
        case ':':
            return cli_usage_error("run", "option '%s' requires an argument", argv[optind - 1]);
        default:
            if (optopt && optopt != 'I')
                return cli_usage_error("run", "invalid option -- '%c'", optopt);
            return cli_usage_error("run", "unrecognized option '%s'", argv[optind - 1]);
        }
    }
    if (!timeout_set && (env = getenv(ENV_TIMEOUT)) && *env) {
        if (cli_parse_duration(env, &v) < 0)
            return cli_usage_error("run", "invalid %s '%s': expected seconds", ENV_TIMEOUT, env);
        o.lock.timeout_ms = v;
    }

    /* Operands: up to "--", or the first two (flock(1) style). */
    int rest = argc - optind, dashes = -1;
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            dashes = i;
            break;
        }
    }
    int operands = dashes >= 0 ? dashes - optind : (rest < 2 ? rest : 2);
    if (operands == 2) {
        o.dir = argv[optind];
        o.source = argv[optind + 1];
    } else if (operands == 1 && dashes >= 0) {
        o.source = argv[optind];
        if (!(o.dir = cli_default_dir("run")))
            return EXIT_USAGE;
    } else if (operands > 2) {
        return cli_usage_error("run", "too many operands before '--': expected [CACHE_DIR] SOURCE");
    } else {
        return cli_usage_error("run", "missing operands: expected CACHE_DIR SOURCE -- COMMAND");
    }
    o.command = argv + (dashes >= 0 ? dashes + 1 : optind + 2);
    if (!o.command[0])
        return cli_usage_error("run", "missing COMMAND to run");

    cachelock_t *lock;
    int status;
    if (!take_lock(&o, &lock, &status))
        return status;
    /* Nothing of ours goes to stdout; the command owns it. */
    return run_command(&o, lock);
}
