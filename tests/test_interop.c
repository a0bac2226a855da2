/* test_interop.c - we and other flock(2) users exclude each other: util-linux
 * flock(1) always, Python's filelock when it is installed.  On Windows: we
 * and other LockFileEx users, locking as fs4, Rust's std, Cargo and Go do
 * (offset 0, length 2^64 - 1) and as Python's filelock does (one byte at 0,
 * its handle without FILE_SHARE_DELETE), both played by this program. */
#include "helpers.h"

#ifdef _WIN32
#define ALL_BYTES "0xFFFFFFFFFFFFFFFF"

/* Another program's lock on the lock file of s: 'L' held, 'B' busy. */
static struct holder other_lock(const char *length, const char *how)
{
    const char *argv[] = { "range", tpath(".locks/s.lock"), "0", length, how };
    return helper_spawn(5, argv);
}

static void make_lock_file(void)
{
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    cachelock_release(lock);
}

static void test_fs4_and_std_holder_blocks_us(void)
{
    make_lock_file();
    struct holder p = other_lock(ALL_BYTES, "exclusive");
    CHECK_EQ(recv_byte(p.from), 'L');
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_SHARED), -EWOULDBLOCK);
    CHECK_EQ(helper_wait(&p), 0);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), 0);
}

static void test_fs4_and_std_shared_coexists_with_our_shared(void)
{
    make_lock_file();
    struct holder p = other_lock(ALL_BYTES, "shared");
    CHECK_EQ(recv_byte(p.from), 'L');
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_SHARED), 0);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    CHECK_EQ(helper_wait(&p), 0);
}

static void test_our_lock_blocks_fs4_and_std(void)
{
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    struct holder p = other_lock(ALL_BYTES, "exclusive try");
    CHECK_EQ(recv_byte(p.from), 'B');
    CHECK_EQ(helper_wait(&p), 1);
    p = other_lock(ALL_BYTES, "shared try");
    CHECK_EQ(recv_byte(p.from), 'B');
    CHECK_EQ(helper_wait(&p), 1);
    cachelock_release(lock);
    p = other_lock(ALL_BYTES, "exclusive try");
    CHECK_EQ(recv_byte(p.from), 'L');
    CHECK_EQ(helper_wait(&p), 0);
}

static void test_fs4_and_std_waiter_gets_lock_after_our_release(void)
{
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    struct holder p = other_lock(ALL_BYTES, "exclusive");    /* blocks in LockFileEx */
    holder_wait_blocked(&p);
    CHECK(!holder_replied(&p));
    cachelock_release(lock);
    CHECK_EQ(recv_byte(p.from), 'L');
    CHECK_EQ(helper_wait(&p), 0);
}

/* Python's filelock on Windows: LockFileEx of one byte at 0, which the
 * whole range overlaps, on a handle without FILE_SHARE_DELETE: while it
 * has the file open, prune cannot delete it and reports it busy. */
static void test_python_filelock_excludes_us_both_ways(void)
{
    cachelock_t *lock;
    make_lock_file();
    struct holder p = other_lock("1", "exclusive nodelete");
    CHECK_EQ(recv_byte(p.from), 'L');
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0, NULL, NULL), 0);
    CHECK(access(tpath(".locks/s.lock"), F_OK) == 0);
    CHECK_EQ(helper_wait(&p), 0);
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    p = other_lock("1", "exclusive try nodelete");
    CHECK_EQ(recv_byte(p.from), 'B');
    CHECK_EQ(helper_wait(&p), 1);
    cachelock_release(lock);
    p = other_lock("1", "exclusive try nodelete");
    CHECK_EQ(recv_byte(p.from), 'L');
    /* Unlocked but open without FILE_SHARE_DELETE: not prunable either. */
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0, NULL, NULL), 0);
    CHECK_EQ(helper_wait(&p), 0);
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0, NULL, NULL), 1);
}

TAP_MAIN(
    T(test_fs4_and_std_holder_blocks_us),
    T(test_fs4_and_std_shared_coexists_with_our_shared),
    T(test_our_lock_blocks_fs4_and_std),
    T(test_fs4_and_std_waiter_gets_lock_after_our_release),
    T(test_python_filelock_excludes_us_both_ways),
)
#else

struct peer { pid_t pid; int to, from; };

/* Start argv with its stdin and stdout on pipes. */
static struct peer peer_spawn(char *const argv[])
{
    int in[2], out[2];
    struct peer p;
    CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
    p.pid = fork();
    CHECK(p.pid >= 0);
    if (p.pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p.to = in[1];
    p.from = out[0];
    return p;
}

/* Close its stdin, read what it still prints (a peer that writes into a
 * closed pipe would die of SIGPIPE), and reap it. */
static void peer_finish(struct peer *p)
{
    int status;
    char buf[256];
    close(p->to);
    while (read(p->from, buf, sizeof buf) > 0)
        ;
    close(p->from);
    CHECK(waitpid(p->pid, &status, 0) == p->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int have(const char *cmd)
{
    char buf[1400];
    snprintf(buf, sizeof buf, "%s >/dev/null 2>&1", cmd);
    return system(buf) == 0;
}

/* flock(1) takes the lock, says "L", and holds it until its stdin closes. */
static struct peer flock1_hold(const char *mode)
{
    char *argv[] = { "flock", (char *)mode, (char *)tpath(".locks/s.lock"), "sh", "-c",
                     "echo L; exec cat >/dev/null", NULL };
    return peer_spawn(argv);
}

static void test_flock1_holder_blocks_us(void)
{
    cachelock_t *lock;
    if (!have("flock --version"))
        SKIP("flock(1) from util-linux is not installed");
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);   /* creates the file */
    cachelock_release(lock);
    struct peer p = flock1_hold("-x");
    CHECK_EQ(recv_byte(p.from), 'L');
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_SHARED), -EWOULDBLOCK);
    peer_finish(&p);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), 0);
}

static void test_flock1_shared_coexists_with_our_shared(void)
{
    cachelock_t *lock;
    if (!have("flock --version"))
        SKIP("flock(1) from util-linux is not installed");
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    cachelock_release(lock);
    struct peer p = flock1_hold("-s");
    CHECK_EQ(recv_byte(p.from), 'L');
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_SHARED), 0);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    peer_finish(&p);
}

static void test_our_lock_blocks_flock1(void)
{
    cachelock_t *lock;
    char cmd[600];
    if (!have("flock --version"))
        SKIP("flock(1) from util-linux is not installed");
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    snprintf(cmd, sizeof cmd, "flock -n '%s' true", tpath(".locks/s.lock"));
    CHECK_EQ(WEXITSTATUS(system(cmd)), 1);
    snprintf(cmd, sizeof cmd, "flock -n -s '%s' true", tpath(".locks/s.lock"));
    CHECK_EQ(WEXITSTATUS(system(cmd)), 1);
    cachelock_release(lock);
    snprintf(cmd, sizeof cmd, "flock -n '%s' true", tpath(".locks/s.lock"));
    CHECK_EQ(WEXITSTATUS(system(cmd)), 0);
}

static void test_flock1_waiter_gets_lock_after_our_release(void)
{
    cachelock_t *lock;
    if (!have("flock --version"))
        SKIP("flock(1) from util-linux is not installed");
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    struct peer p = flock1_hold("-x");
    wait_blocked_in_flock(p.pid);
    cachelock_release(lock);
    CHECK_EQ(recv_byte(p.from), 'L');
    peer_finish(&p);
}

/* Debian's python3-filelock is for the system interpreter. */
#define PYTHON "/usr/bin/python3"

static void test_python_filelock_excludes_us_both_ways(void)
{
    cachelock_t *lock;
    if (!have(PYTHON " -c 'import filelock'"))
        SKIP("python3-filelock is not installed (apt-get install python3-filelock)");
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    cachelock_release(lock);
    char script[800];
    snprintf(script, sizeof script,
             "import filelock, sys\n"
             "l = filelock.FileLock('%s')\n"
             "l.acquire()\n"
             "print('L', flush=True)\n"
             "sys.stdin.read()\n"
             "l.release()\n", tpath(".locks/s.lock"));
    char *argv[] = { PYTHON, "-c", script, NULL };
    struct peer p = peer_spawn(argv);
    CHECK_EQ(recv_byte(p.from), 'L');
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    peer_finish(&p);

    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    char cmd[900];
    snprintf(cmd, sizeof cmd,
             PYTHON " -c \"import filelock,sys\n"
             "try:\n filelock.FileLock('%s', timeout=0).acquire(); sys.exit(0)\n"
             "except filelock.Timeout:\n sys.exit(1)\"", tpath(".locks/s.lock"));
    CHECK_EQ(WEXITSTATUS(system(cmd)), 1);
    cachelock_release(lock);
    CHECK_EQ(WEXITSTATUS(system(cmd)), 0);
}

/* The Rust original (ccpm/agpm CacheLock) opens the lock file without
 * truncating and takes an exclusive flock(2); Rust's std File::lock() does
 * exactly that on Linux, so a program written with it stands in for it
 * (no crates can be fetched here). */
static void test_rust_file_lock_excludes_us_both_ways(void)
{
    static const char program[] =
        "use std::fs::OpenOptions;\n"
        "use std::io::{BufRead, Write};\n"
        "fn main() {\n"
        "    let path = std::env::args().nth(1).unwrap();\n"
        "    let f = OpenOptions::new().create(true).write(true).truncate(false).open(&path).unwrap();\n"
        "    if std::env::args().nth(2).is_some() {\n"
        "        std::process::exit(if f.try_lock().is_ok() { 0 } else { 1 });\n"
        "    }\n"
        "    f.lock().unwrap();\n"
        "    println!(\"L\");\n"
        "    std::io::stdout().flush().unwrap();\n"
        "    let mut line = String::new();\n"
        "    std::io::stdin().lock().read_line(&mut line).unwrap();\n"
        "}\n";
    char cmd[1200], bin[600];
    const char *rustc = access("/root/.cargo/bin/rustc", X_OK) == 0 ? "/root/.cargo/bin/rustc" : "rustc";
    snprintf(cmd, sizeof cmd, "%s --version", rustc);
    if (!have(cmd))
        SKIP("rustc is not installed");
    FILE *f = fopen(tpath("lock.rs"), "w");
    CHECK(f && fputs(program, f) >= 0 && fclose(f) == 0);
    snprintf(bin, sizeof bin, "%s", tpath("rustlock"));
    snprintf(cmd, sizeof cmd, "%s --edition 2021 -o '%s' '%s' 2>&1", rustc, bin, tpath("lock.rs"));
    if (system(cmd) != 0)
        SKIP("this rustc has no std File::lock (Rust 1.89 or later needed)");

    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    snprintf(cmd, sizeof cmd, "'%s' '%s' try", bin, tpath(".locks/s.lock"));
    CHECK_EQ(WEXITSTATUS(system(cmd)), 1);     /* ours blocks it */
    cachelock_release(lock);
    CHECK_EQ(WEXITSTATUS(system(cmd)), 0);

    char *argv[] = { bin, (char *)tpath(".locks/s.lock"), NULL };
    struct peer p = peer_spawn(argv);
    CHECK_EQ(recv_byte(p.from), 'L');
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);   /* its blocks ours */
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_SHARED), -EWOULDBLOCK);
    peer_finish(&p);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), 0);
}

TAP_MAIN(
    T(test_flock1_holder_blocks_us),
    T(test_flock1_shared_coexists_with_our_shared),
    T(test_our_lock_blocks_flock1),
    T(test_flock1_waiter_gets_lock_after_our_release),
    T(test_python_filelock_excludes_us_both_ways, 20),
    T(test_rust_file_lock_excludes_us_both_ways, 60),
)
#endif
