/*
 * torture.c - many processes and threads hammer a few sources while a
 * pruner removes lock files and a killer SIGKILLs random holders; at the
 * end nothing may be lost, torn or hung.   `make torture` runs it.
 *
 *   torture [SECONDS]          (default 10, or $TORTURE_SECONDS)
 *
 * Each source has a data file holding one record, "VALUE/VALUE\n", that a
 * writer replaces in two halves with a yield between them: if two writers
 * (or a writer and a reader) were ever inside at once, a reader would see
 * the halves differ, or an increment would be lost.
 *
 * Accounting: every thread has a record in shared memory.  Before writing
 * it notes the source, the new value and its own count; after the second
 * half it bumps its own count (one store).  A holder killed mid-write leaves
 * either nothing, a torn record, or a complete one not yet counted.  The
 * killer marks the source "debris" before the kill, then takes the lock
 * itself, rolls a torn record back (the increment did not happen) or
 * counts a complete one on the victim's behalf, and clears the mark.
 * While the mark is set, writers do not write (the record must stay as the
 * victim left it until the killer has looked), and a torn record is
 * expected; a torn record without the mark is a violation.
 *
 * Half of the worker processes acquire in fair mode (CACHELOCK_F_FAIR):
 * they queue while the others barge, the killer kills them in the queue
 * and while they hold, and the pruner removes their queue's sidecars; the
 * counts must hold all the same, and nobody may hang.
 *
 *   final value of each source == sum of all counts for it
 *   violations (torn reads, lost or extra increments, hangs) == 0
 */
#define _GNU_SOURCE
#include <cachelock.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SOURCES 3
#define PROCS 8             /* worker processes */
#define MAX_THREADS 3       /* per process */
#define SLOTS (PROCS * MAX_THREADS * 64)   /* records, replaced workers included */
#define HALF 12

struct record {
    int pid;
    int src;                /* source being written, or -1 */
    int state;              /* 0 idle, 1 holding, 2 writing */
    long base;              /* count[src] when writing began */
    long newval;
    long count[SOURCES];    /* completed increments */
    long reads, acquires;
    int64_t progress_ms;
    int fair;               /* acquires in fair mode */
};

struct shared {
    int stop;
    int debris[SOURCES];
    long behalf[SOURCES];   /* increments the killer counted for victims */
    long rolled_back, kills, prunes, torn_with_debris;
    long violations;
    int next_slot;
    struct record rec[SLOTS];
};

static struct shared *sh;
static char dir[256];
static const char *const names[SOURCES] = { "alpha", "beta", "gamma" };

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void data_path(int s, char *buf, size_t n) { snprintf(buf, n, "%s/%s.data", dir, names[s]); }

/* Read both halves; returns 1 if equal (value in *v), 0 if torn. */
static int read_record(int fd, long *v, int yield)
{
    char a[HALF + 1] = "", b[HALF + 1] = "";
    if (pread(fd, a, HALF, 0) != HALF)
        return 0;
    if (yield)
        sched_yield();
    if (pread(fd, b, HALF, HALF) != HALF)
        return 0;
    *v = atol(a + 1);
    return memcmp(a + 1, b + 1, 10) == 0;     /* the ten digits of each half */
}

static void write_half(int fd, int which, long v)
{
    char buf[HALF + 1];
    snprintf(buf, sizeof buf, "%c%010ld%c", which ? '/' : '<', v, which ? '\n' : ' ');
    if (pwrite(fd, buf, HALF, which * HALF) != HALF)
        __atomic_add_fetch(&sh->violations, 1, __ATOMIC_SEQ_CST);
}

static void violation(const char *what, int s)
{
    fprintf(stderr, "torture: VIOLATION: %s on %s (pid %d)\n", what, names[s], (int)getpid());
    __atomic_add_fetch(&sh->violations, 1, __ATOMIC_SEQ_CST);
}

static void *worker(void *arg)
{
    struct record *r = arg;
    unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)(uintptr_t)arg;
    int fds[SOURCES];
    for (int s = 0; s < SOURCES; s++) {
        char p[512];
        data_path(s, p, sizeof p);
        fds[s] = open(p, O_RDWR | O_CLOEXEC);
        if (fds[s] < 0)
            return NULL;
    }
    while (!__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST)) {
        int s = (int)(rand_r(&seed) % SOURCES);
        int reader = rand_r(&seed) % 3 == 0;
        int how = rand_r(&seed) % 5;    /* 0-2 blocking, 3 try, 4 timed */
        cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
        cachelock_t *lock;
        o.mode = reader ? CACHELOCK_SHARED : CACHELOCK_EXCLUSIVE;
        o.timeout_ms = how == 3 ? 0 : how == 4 ? 5 : -1;
        o.flags = r->fair ? CACHELOCK_F_FAIR : 0;
        int rc = cachelock_acquire_ex(dir, names[s], &o, &lock);
        r->progress_ms = now_ms();
        if (rc == -EWOULDBLOCK || rc == -ETIMEDOUT)
            continue;
        if (rc != 0) {
            fprintf(stderr, "torture: %s\n", cachelock_errmsg());
            violation("acquire failed", s);
            continue;
        }
        r->acquires++;
        r->src = s;
        r->state = 1;
        long v;
        int whole = read_record(fds[s], &v, 1);
        if (!whole) {
            if (__atomic_load_n(&sh->debris[s], __ATOMIC_SEQ_CST))
                __atomic_add_fetch(&sh->torn_with_debris, 1, __ATOMIC_SEQ_CST);
            else
                violation(reader ? "torn read" : "torn record before write", s);
        } else if (reader) {
            r->reads++;
        } else if (__atomic_load_n(&sh->debris[s], __ATOMIC_SEQ_CST)) {
            /* A killed writer's record may be complete but not yet counted;
             * the killer must see it as the victim left it. */
        } else {
            r->base = r->count[s];
            r->newval = v + 1;
            __atomic_store_n(&r->state, 2, __ATOMIC_SEQ_CST);
            write_half(fds[s], 0, v + 1);
            sched_yield();
            write_half(fds[s], 1, v + 1);
            __atomic_store_n(&r->count[s], r->base + 1, __ATOMIC_SEQ_CST);
        }
        __atomic_store_n(&r->state, 0, __ATOMIC_SEQ_CST);
        r->src = -1;
        cachelock_release(lock);
    }
    return NULL;
}

static struct record *new_record(void)
{
    int i = __atomic_fetch_add(&sh->next_slot, 1, __ATOMIC_SEQ_CST);
    if (i >= SLOTS)
        return NULL;
    memset(&sh->rec[i], 0, sizeof sh->rec[i]);
    sh->rec[i].src = -1;
    sh->rec[i].pid = getpid();
    sh->rec[i].progress_ms = now_ms();
    return &sh->rec[i];
}

static pid_t spawn_worker(int index)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int threads = index % 4 == 0 ? MAX_THREADS : 1;     /* some processes are threaded */
    pthread_t t[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        struct record *r = new_record();
        if (!r)
            _exit(1);
        r->fair = index % 4 == 0 || index % 4 == 3;     /* threaded ones too */
        if (pthread_create(&t[i], NULL, worker, r) != 0)
            _exit(1);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    _exit(0);
}

/* After killing pid: repair and account for what it was doing. */
static void recover(pid_t victim)
{
    for (int i = 0; i < sh->next_slot && i < SLOTS; i++) {
        struct record *r = &sh->rec[i];
        if (r->pid != victim || r->state != 2)
            continue;
        int s = r->src;
        cachelock_t *lock;
        if (cachelock_acquire(dir, names[s], &lock) != 0) {
            violation("killer cannot lock", s);
            continue;
        }
        char p[512];
        long v;
        data_path(s, p, sizeof p);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            if (!read_record(fd, &v, 0)) {
                /* Torn: the first half is new, the second still old. */
                write_half(fd, 0, r->newval - 1);
                sh->rolled_back++;
            } else if (v == r->newval && r->count[s] == r->base) {
                sh->behalf[s]++;    /* complete but not counted */
            }
            close(fd);
        }
        r->state = 0;
        cachelock_release(lock);
    }
    for (int s = 0; s < SOURCES; s++)
        __atomic_store_n(&sh->debris[s], 0, __ATOMIC_SEQ_CST);
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : getenv("TORTURE_SECONDS") ? atoi(getenv("TORTURE_SECONDS")) : 10;
    pid_t workers[PROCS], pruner;

    snprintf(dir, sizeof dir, "%s/cachelock-torture.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!mkdtemp(dir) || sh == MAP_FAILED) {
        perror("torture: setup");
        return 2;
    }
    for (int s = 0; s < SOURCES; s++) {
        char p[512];
        data_path(s, p, sizeof p);
        int fd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0666);
        write_half(fd, 0, 0);
        write_half(fd, 1, 0);
        close(fd);
    }
    printf("torture: %d processes (some with %d threads, half in fair mode) on %d sources for %d "
           "s, with a pruner and a killer, in %s\n", PROCS, MAX_THREADS, SOURCES, seconds, dir);
    fflush(stdout);

    for (int i = 0; i < PROCS; i++)
        workers[i] = spawn_worker(i);
    pruner = fork();
    if (pruner == 0) {
        while (!__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST)) {
            int n = cachelock_prune(dir, 0, 0, NULL, NULL);
            if (n > 0)
                __atomic_add_fetch(&sh->prunes, n, __ATOMIC_SEQ_CST);
            usleep(200);
        }
        _exit(0);
    }

    /* This process is the killer. */
    unsigned seed = (unsigned)getpid();
    int64_t end = now_ms() + seconds * 1000L;
    while (now_ms() < end) {
        usleep(5000 + rand_r(&seed) % 20000);
        /* Pick a worker that is writing right now, or any holder. */
        int victim_index = -1;
        for (int tries = 0; tries < 50 && victim_index < 0; tries++) {
            int i = (int)(rand_r(&seed) % (unsigned)(sh->next_slot < SLOTS ? sh->next_slot : SLOTS));
            struct record *r = &sh->rec[i];
            if (r->state == 0)
                continue;
            for (int w = 0; w < PROCS; w++)
                if (workers[w] == r->pid)
                    victim_index = w;
        }
        if (victim_index < 0)
            continue;
        pid_t victim = workers[victim_index];
        for (int s = 0; s < SOURCES; s++)
            __atomic_store_n(&sh->debris[s], 1, __ATOMIC_SEQ_CST);
        kill(victim, SIGKILL);
        waitpid(victim, NULL, 0);
        sh->kills++;
        recover(victim);
        workers[victim_index] = spawn_worker(victim_index);
    }

    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
    int hung = 0;
    int64_t deadline = now_ms() + 10000;
    for (int i = 0; i < PROCS + 1; i++) {
        pid_t p = i < PROCS ? workers[i] : pruner;
        int status;
        while (waitpid(p, &status, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                fprintf(stderr, "torture: VIOLATION: pid %d hung\n", (int)p);
                hung++;
                kill(p, SIGKILL);
                waitpid(p, &status, 0);
                break;
            }
            usleep(1000);
        }
    }
    sh->violations += hung;

    long acquires = 0, reads = 0, fair = 0;
    for (int i = 0; i < sh->next_slot && i < SLOTS; i++) {
        acquires += sh->rec[i].acquires;
        reads += sh->rec[i].reads;
        fair += sh->rec[i].fair ? sh->rec[i].acquires : 0;
    }
    for (int s = 0; s < SOURCES; s++) {
        long counted = sh->behalf[s], v = -1;
        for (int i = 0; i < sh->next_slot && i < SLOTS; i++)
            counted += sh->rec[i].count[s];
        char p[512];
        data_path(s, p, sizeof p);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || !read_record(fd, &v, 0))
            violation("torn record at the end", s);
        if (fd >= 0)
            close(fd);
        printf("torture: %-5s value %ld, completed increments %ld: %s\n", names[s], v, counted,
               v == counted ? "ok" : "MISMATCH");
        if (v != counted)
            sh->violations++;
    }
    printf("torture: %ld acquisitions (%ld shared reads, %ld in fair mode), %ld prunes, %ld kills "
           "(%ld torn records rolled back, %ld seen as crash debris), %d hung, %ld violations\n",
           acquires, reads, fair, sh->prunes, sh->kills, sh->rolled_back, sh->torn_with_debris,
           hung, sh->violations);
    if (fair == 0) {
        fprintf(stderr, "torture: VIOLATION: no acquisition in fair mode\n");
        sh->violations++;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {}
    return sh->violations == 0 ? 0 : 1;
}
