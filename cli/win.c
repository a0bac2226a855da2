/*
 * win.c - the parts of the cachelock command that differ on Windows:
 * wmain (arguments and environment as UTF-8), `cachelock run` with
 * CreateProcess, and `lock`/`unlock`, which need a descriptor a shell
 * holds and so do not exist here.
 *
 *   parse options and operands ─> start wait ─busy─> say who has the file
 *        open (once, on stderr), count the seconds on a console, wait on
 *        cachelock_wait_handle() (or the timeout alone) until granted,
 *        timed out or failed
 *                        │ granted
 *                        v
 *   CreateProcessW(COMMAND, suspended) inside a job object that kills
 *   everything in it when its last handle closes; resume it; wait; exit
 *   with COMMAND's exit code, after letting go of what it left running and
 *   releasing the lock.
 *
 * Why COMMAND does not inherit the lock, as it does on Unix: a Windows
 * lock belongs to the open file and to the process that took it, and
 * what happens to it when that process exits while a child still has a
 * copy of the handle is not documented.  So cachelock holds the lock
 * itself (-o on Unix), and the job object makes sure that COMMAND never
 * runs without it: if cachelock dies, even by TerminateProcess, its handle
 * of the job closes and Windows kills COMMAND and every process it
 * started, as the lock goes.  Console Ctrl-C reaches COMMAND directly;
 * cachelock ignores it and waits for COMMAND's decision.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#define _WIN32_WINNT 0x0A00
#include <windows.h>

#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cachelock run [options] CACHE_DIR SOURCE [--] COMMAND [ARG...]\n"
    "       cachelock run [options] CACHE_DIR SOURCE -c SHELL_COMMAND\n"
    "       cachelock run [options] SOURCE -- COMMAND [ARG...]   (CACHE_DIR from %" ENV_DIR "%)\n"
    "\n"
    "Take the lock of SOURCE in CACHE_DIR, run COMMAND under it, and exit with\n"
    "COMMAND's exit code.  Only the first '--' ends the operands: the rest is COMMAND.\n"
    "\n"
    "cachelock holds the lock while COMMAND runs and releases it when COMMAND\n"
    "exits.  COMMAND runs in a job object: if cachelock is killed, COMMAND and\n"
    "every process it started are killed too, so it never runs without the\n"
    "lock.  What COMMAND leaves running when it exits is let go.\n"
    "\n"
    "Options:\n"
    "  -x, -e, --exclusive        exclusive lock, for writers (the default)\n"
    "  -s, --shared               shared lock, for readers\n"
    "  -n, --nonblock, --nb, --nonblocking\n"
    "                             fail at once if the lock is busy (wins over -w)\n"
    "  -w, --timeout, --wait SECONDS\n"
    "                             give up after SECONDS (fractions and ms/s/m/h/d\n"
    "                             units allowed; default: %" ENV_TIMEOUT "%, else wait\n"
    "                             forever; -w 0 is -n)\n"
    "  -E, --conflict-exit-code N exit status when busy or timed out (default 1)\n"
    "  -q, --quiet                print nothing on stderr while waiting or when\n"
    "                             busy or timed out\n"
    "  -o, --close                accepted: the only way on Windows\n"
    "  -c, --command SHELL_COMMAND\n"
    "                             run SHELL_COMMAND with cmd.exe /d /s /c\n"
    "      --inherit-fd           accepted for compatibility (nothing is inherited)\n"
    "      --any-name             accept any SOURCE that is a valid file name here,\n"
    "                             not only portable names (aux, tools:beta, a.)\n"
    "      --verbose              say how long getting the lock took, and what runs\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version\n"
    "\n"
    "Not on Windows: -F/--no-fork (there is no exec); --fair (fair mode) is refused\n"
    "with status 69.\n"
    "Messages go to stderr only; stdout belongs to COMMAND.\n"
    "Exit status: COMMAND's own exit code (a crash gives its NTSTATUS, such as\n"
    "0xC0000005, as far as the caller's exit codes reach), the conflict code when\n"
    "busy or timed out, 64 usage, 66 cannot open the lock file, 69 cannot run\n"
    "COMMAND, 71 system error, 73 cannot create the lock file.\n";

/* ---- arguments, environment, time -------------------------------------- */

static UINT console_cp;

static void restore_console(void)
{
    if (console_cp)
        SetConsoleOutputCP(console_cp);
}

/* UTF-16 to a new UTF-8 string; NULL when it is not valid UTF-16. */
static char *to_utf8(const wchar_t *w)
{
    int n = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, NULL, 0, NULL, NULL);
    char *s = n > 0 ? malloc((size_t)n) : NULL;
    if (s && WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, s, n, NULL, NULL) != n) {
        free(s);
        s = NULL;
    }
    return s;
}

/* UTF-8 to a new UTF-16 string; NULL when it is not valid UTF-8. */
static wchar_t *to_wide(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w = n > 0 ? malloc((size_t)n * sizeof *w) : NULL;
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        w = NULL;
    }
    return w;
}

const char *cli_getenv(const char *name)
{
    /* The C runtime's getenv() gives the ANSI code page's spelling, which
     * loses every character outside it: ask for UTF-16.  Kept for the
     * life of the process (two names are ever asked for). */
    static struct { const char *name; char *value; } cache[4];
    for (size_t i = 0; i < sizeof cache / sizeof cache[0]; i++) {
        if (cache[i].name && strcmp(cache[i].name, name) == 0)
            return cache[i].value;
        if (!cache[i].name) {
            wchar_t *wname = to_wide(name);
            const wchar_t *wvalue = wname ? _wgetenv(wname) : NULL;
            free(wname);
            cache[i].name = name;
            cache[i].value = wvalue ? to_utf8(wvalue) : NULL;
            return cache[i].value;
        }
    }
    return getenv(name);
}

double cli_now(void)
{
    LARGE_INTEGER f, t;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&t);
    return (double)t.QuadPart / (double)f.QuadPart;
}

int wmain(int argc, wchar_t **wargv);     /* the entry point with -municode */

int wmain(int argc, wchar_t **wargv)
{
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    if (!argv) {
        cli_error("out of memory");
        return EXIT_OSERR;
    }
    for (int i = 0; i < argc; i++) {
        argv[i] = to_utf8(wargv[i]);
        if (!argv[i]) {
            cli_error("argument %d is not valid UTF-16", i);
            return EXIT_USAGE;
        }
    }
    /* Bytes as they are ("\n", not "\r\n"), and UTF-8 on a console. */
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
    console_cp = GetConsoleOutputCP();
    if (console_cp && console_cp != CP_UTF8 && SetConsoleOutputCP(CP_UTF8))
        atexit(restore_console);
    else
        console_cp = 0;
    return cli_main(argc, argv);
}

/* ---- lock and unlock: not here ------------------------------------------ */

static int no_descriptors(const char *cmd)
{
    cli_error("'%s' works on a descriptor that a shell holds open, which Windows shells do "
              "not have: use 'cachelock run'", cmd);
    return EXIT_UNAVAILABLE;
}

int cli_lock(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return no_descriptors("lock");
}

int cli_unlock(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return no_descriptors("unlock");
}

/* selftest starts its contenders with fork(2); on Windows the checks it
 * would make are what make check-windows runs under wine. */
int cli_selftest(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("selftest is not available on Windows: it starts its contender processes "
              "with fork(2)");
    return EXIT_UNAVAILABLE;
}

/* ---- run ------------------------------------------------------------------ */

/* Ignore console Ctrl-C and Ctrl-Break while COMMAND runs: it gets them
 * too and decides.  (A handler, not SetConsoleCtrlHandler(NULL, TRUE),
 * whose "ignore" COMMAND would inherit.) */
static BOOL WINAPI ignore_ctrl(DWORD type)
{
    (void)type;
    return TRUE;
}

/* Wait for the lock, telling the person why we wait.  Returns 1 with *out,
 * or 0 with *status set to the exit status. */
static int take_lock(const struct cli_run_args *o, cachelock_t **out, int *status)
{
    cachelock_wait_t *w;
    int rc, shown = 0, tty = !o->quiet && _isatty(2);
    double start = cli_now();
    long long last_second = 0;

    rc = cachelock_wait_start(o->dir, o->source, &o->lock, &w);
    if (rc < 0) {
        *status = cli_name_error(rc, o->source, o->lock.flags);
        return 0;
    }
    for (;;) {
        rc = cachelock_wait_step(w, out);
        if (rc != -EINPROGRESS)
            break;
        if (!shown && !o->quiet) {
            char path[CACHELOCK_PATH_MAX + 1] = "", who[2048], name[1024];
            char shown_path[2 * CACHELOCK_PATH_MAX], limit[64] = "";
            cachelock_path_ex(o->dir, o->source, o->lock.flags, path, sizeof path);
            cli_describe_holders(o->dir, o->source, who, sizeof who);
            cli_text_escape(name, sizeof name, o->source);
            cli_text_escape(shown_path, sizeof shown_path, path);
            if (o->lock.timeout_ms > 0)
                snprintf(limit, sizeof limit, "; giving up after %.3gs",
                         (double)o->lock.timeout_ms / 1000);
            cli_error("waiting for '%s' ('%s'), %s; locks die with their process, so a wait "
                      "means a live holder%s", name, shown_path, who, limit);
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
        /* The event of the request the wait queued in the kernel; none
         * where requests are not queued (wine): the timeout alone. */
        HANDLE event = cachelock_wait_handle(w);
        if (event)
            WaitForSingleObject(event, (DWORD)timeout);
        else
            Sleep((DWORD)timeout);
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
        if (o->verbose)
            cli_error("getting lock took %.6f seconds", cli_now() - start);
        return 1;
    }
    if (rc == -EWOULDBLOCK || rc == -ETIMEDOUT) {
        if (!o->quiet)
            cli_lib_message();
        *status = o->conflict_code;
        return 0;
    }
    *status = cli_lib_error(rc);
    return 0;
}

/* Append s to the command line at *w, quoted as the C runtime's (and
 * CommandLineToArgvW's) parser reads it back: quotes only when needed,
 * backslashes doubled only before a quote. */
static void quote_arg(wchar_t **w, const wchar_t *s)
{
    wchar_t *o = *w;
    if (*s && !wcspbrk(s, L" \t\n\v\"")) {
        while (*s)
            *o++ = *s++;
        *w = o;
        return;
    }
    *o++ = L'"';
    for (;;) {
        size_t backslashes = 0;
        while (*s == L'\\') {
            s++;
            backslashes++;
        }
        if (!*s) {
            for (size_t i = 0; i < 2 * backslashes; i++)
                *o++ = L'\\';
            break;
        }
        if (*s == L'"') {
            for (size_t i = 0; i < 2 * backslashes + 1; i++)
                *o++ = L'\\';
            *o++ = *s++;
        } else {
            for (size_t i = 0; i < backslashes; i++)
                *o++ = L'\\';
            *o++ = *s++;
        }
    }
    *o++ = L'"';
    *w = o;
}

/* The command line of COMMAND (or of cmd.exe for -c), as a new string;
 * NULL with *what set when an argument is not valid UTF-8. */
static wchar_t *command_line(const struct cli_run_args *o, const char **what)
{
    size_t room = 64;
    wchar_t **args;
    size_t n = 0;
    const char *shell_argv[5];
    char **argv = o->command;
    wchar_t *line, *w;

    if (o->shell) {
        /* %ComSpec% would let the environment choose the shell; cmd.exe
         * from the system directory means the same thing for everyone.
         * /d: no AutoRun commands; /s /c "...": the command as given. */
        shell_argv[0] = "cmd.exe";
        shell_argv[1] = "/d";
        shell_argv[2] = "/s";
        shell_argv[3] = "/c";
        shell_argv[4] = NULL;
        argv = (char **)shell_argv;
    }
    while (argv[n])
        n++;
    args = calloc(n + 1, sizeof *args);
    if (!args) {
        *what = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        args[i] = to_wide(argv[i]);
        if (!args[i]) {
            *what = argv[i];
            line = NULL;
            goto out;
        }
        room += 2 * wcslen(args[i]) + 3;
    }
    wchar_t *shell = NULL;
    if (o->shell) {
        shell = to_wide(o->shell);
        if (!shell) {
            *what = o->shell;
            line = NULL;
            goto out;
        }
        room += wcslen(shell) + 3;
    }
    line = w = malloc(room * sizeof *line);
    if (!line) {
        *what = "out of memory";
        free(shell);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (i)
            *w++ = L' ';
        quote_arg(&w, args[i]);
    }
    if (shell) {
        /* cmd.exe /s /c strips the outer quotes and runs the rest as is. */
        *w++ = L' ';
        *w++ = L'"';
        wcscpy(w, shell);
        w += wcslen(shell);
        *w++ = L'"';
        free(shell);
    }
    *w = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(args[i]);
    free(args);
    return line;
}

static const char *win_strerror(DWORD err)
{
    switch (err) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:  return "No such file or directory";
    case ERROR_ACCESS_DENIED:   return "Permission denied";
    case ERROR_BAD_EXE_FORMAT:  return "Exec format error";
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:     return "Cannot allocate memory";
    default:                    return NULL;
    }
}

static int cannot_run(const struct cli_run_args *o, const char *what, DWORD err)
{
    char name[1024];
    const char *text = win_strerror(err);
    cli_text_escape(name, sizeof name, o->shell ? "cmd.exe" : o->command[0]);
    if (text)
        cli_error("cannot run '%s': %s%s", name, what, text);
    else
        cli_error("cannot run '%s': %sWindows error %lu", name, what, (unsigned long)err);
    return err == ERROR_NOT_ENOUGH_MEMORY || err == ERROR_OUTOFMEMORY ? EXIT_OSERR
                                                                      : EXIT_UNAVAILABLE;
}

static int run_command(const struct cli_run_args *o, cachelock_t *lock)
{
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    const char *bad = NULL;
    DWORD code = 0;
    int status;

    wchar_t *line = command_line(o, &bad);
    if (!line) {
        char name[1024];
        cli_text_escape(name, sizeof name, bad);
        cli_error("cannot run COMMAND: '%s' is not valid UTF-8", name);
        cachelock_release(lock);
        return EXIT_USAGE;
    }
    HANDLE job = CreateJobObjectW(NULL, NULL);
    memset(&li, 0, sizeof li);
    li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    if (!job || !SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li)) {
        status = cannot_run(o, "cannot make its job object: ", GetLastError());
        goto out;
    }
    /* COMMAND gets our standard handles and nothing else of ours: the
     * lock handle is not inheritable. */
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    si.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    for (int i = 0; i < 3; i++) {
        HANDLE h = i == 0 ? si.hStdInput : i == 1 ? si.hStdOutput : si.hStdError;
        if (h && h != INVALID_HANDLE_VALUE)
            SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
    }
    fflush(stdout);
    fflush(stderr);
    SetConsoleCtrlHandler(ignore_ctrl, TRUE);
    /* Suspended until it is in the job: it must not run a moment outside. */
    if (!CreateProcessW(NULL, line, NULL, NULL, TRUE, CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT,
                        NULL, NULL, &si, &pi)) {
        status = cannot_run(o, "", GetLastError());
        goto out;
    }
    if (!AssignProcessToJobObject(job, pi.hProcess)) {
        DWORD err = GetLastError();
        TerminateProcess(pi.hProcess, 1);
        WaitForSingleObject(pi.hProcess, INFINITE);
        CloseHandle(pi.hThread);
        CloseHandle(pi.hProcess);
        status = cannot_run(o, "cannot tie its life to ours (job object): ", err);
        goto out;
    }
    ResumeThread(pi.hThread);
    CloseHandle(pi.hThread);
    WaitForSingleObject(pi.hProcess, INFINITE);
    if (!GetExitCodeProcess(pi.hProcess, &code)) {
        cli_error("cannot read the exit code of COMMAND: Windows error %lu",
                  (unsigned long)GetLastError());
        code = EXIT_OSERR;
    }
    CloseHandle(pi.hProcess);
    /* COMMAND is done: what it left running is let go (as with -o on
     * Unix, it no longer runs under the lock). */
    li.BasicLimitInformation.LimitFlags = 0;
    SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li);
    status = (int)code;
out:
    if (job)
        CloseHandle(job);
    free(line);
    cachelock_release(lock);
    return status;
}

int cli_run(int argc, char **argv)
{
    struct cli_run_args o;
    int rc = cli_run_parse(argc, argv, usage, &o);
    if (rc >= 0)
        return rc;

    cachelock_t *lock;
    int status;
    if (!take_lock(&o, &lock, &status))
        return status;
    if (o.verbose) {
        char name[1024];
        cli_text_escape(name, sizeof name, o.shell ? "cmd.exe" : o.command[0]);
        cli_error("executing %s", name);
    }
    return run_command(&o, lock);
}
