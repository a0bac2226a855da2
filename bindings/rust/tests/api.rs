//! What the crate adds to the original: tries, shared locks, timeouts,
//! name rules, errors, holders, prune, and the thread-safety of its types.

mod common;

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use cachelock::{
    holders, lock_path, prune, prune_dry_run, CacheLock, Error, ErrorKind, Holder, Mode, Options,
    PruneStatus,
};
use common::{runtime, Flavor, TempDir};

fn kind<T>(result: Result<T, Error>) -> ErrorKind {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

#[test]
fn types_are_send_and_sync_where_they_should_be() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    send_sync::<CacheLock>();
    send_sync::<Options>();
    error::<Error>();
    // The futures can be spawned on a multi-thread runtime.
    let dir = Path::new("/nonexistent");
    send(&CacheLock::acquire(dir, "x"));
    send(&Options::new().acquire(dir, "x"));
}

#[test]
fn try_acquire_is_busy_while_held_in_this_process() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path();
    let lock = CacheLock::try_acquire(dir, "s").unwrap();
    let err = CacheLock::try_acquire(dir, "s").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy);
    assert_eq!(err.raw_os_error(), libc::EWOULDBLOCK);
    let path = dir.join(".locks/s.lock");
    assert!(
        err.to_string().contains(&format!("'{}'", path.display())),
        "{err}"
    );
    drop(lock);
    drop(CacheLock::try_acquire(dir, "s").unwrap());
}

#[test]
fn shared_locks_coexist_and_exclude_exclusive_ones() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path();
    let shared = Options::new().shared();
    let a = shared.try_acquire(dir, "s").unwrap();
    let b = shared.try_acquire(dir, "s").unwrap();
    assert_eq!(a.mode(), Mode::Shared);
    assert_eq!(kind(CacheLock::try_acquire(dir, "s")), ErrorKind::Busy);
    drop(a);
    assert_eq!(kind(CacheLock::try_acquire(dir, "s")), ErrorKind::Busy);
    drop(b);
    let x = CacheLock::try_acquire(dir, "s").unwrap();
    assert_eq!(x.mode(), Mode::Exclusive);
    assert_eq!(kind(shared.try_acquire(dir, "s")), ErrorKind::Busy);
}

#[test]
fn timeouts_give_up_and_waits_end_at_the_release() {
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        runtime(flavor).block_on(async {
            let temp_dir = TempDir::new().unwrap();
            let dir = temp_dir.path();
            let held = CacheLock::acquire(dir, "s").await.unwrap();

            // Zero: one try.
            let zero = Options::new().timeout(Duration::ZERO);
            assert_eq!(kind(zero.acquire(dir, "s").await), ErrorKind::Busy);

            // Never early.
            let start = Instant::now();
            let timed = Options::new().timeout(Duration::from_millis(30));
            let err = timed.acquire(dir, "s").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
            assert_eq!(err.raw_os_error(), libc::ETIMEDOUT);
            assert!(start.elapsed() >= Duration::from_millis(30));
            assert!(
                err.to_string().starts_with("timed out after 30 ms"),
                "{err}"
            );

            // A timed wait gets the lock when it is released in time.
            let dir2 = dir.to_path_buf();
            let waiter = tokio::spawn(async move {
                Options::new()
                    .timeout(Duration::from_secs(10))
                    .acquire(&dir2, "s")
                    .await
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiter.is_finished());
            let released = Instant::now();
            drop(held);
            let lock = waiter.await.unwrap().unwrap();
            // Woken by the release (the library closes a file that a waiter
            // marked), not by the timeout.
            assert!(released.elapsed() < Duration::from_secs(5));
            drop(lock);
        });
    }
}

#[test]
fn a_lock_may_be_released_on_another_thread() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path();
    let lock = CacheLock::try_acquire(dir, "s").unwrap();
    std::thread::spawn(move || drop(lock)).join().unwrap();
    drop(CacheLock::try_acquire(dir, "s").unwrap());
}

#[test]
fn names_that_could_escape_or_are_not_portable_are_refused() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path().join("cache");
    let rt = runtime(Flavor::CurrentThread);
    for name in [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "a\\b",
        "a\0b",
        "tools:beta",
        "aux",
        "con.txt",
        "trailing.",
        "trailing ",
        "tab\there",
        &"n".repeat(251),
    ] {
        let err = rt.block_on(CacheLock::acquire(&dir, name)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidName, "{name:?}: {err}");
        assert!(
            err.to_string().starts_with("invalid source name"),
            "{name:?}: {err}"
        );
        assert_eq!(
            kind(CacheLock::try_acquire(&dir, name)),
            ErrorKind::InvalidName
        );
        assert!(!dir.exists(), "{name:?} created the cache directory");
    }
    // 250 bytes is the longest name.
    drop(CacheLock::try_acquire(&dir, &"n".repeat(250)).unwrap());
}

#[test]
fn any_name_accepts_other_tools_names_but_never_an_escape() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path();
    let any = Options::new().any_name(true);
    for name in ["tools:beta", "aux", "trailing."] {
        let lock = any.try_acquire(dir, name).unwrap();
        assert!(dir.join(".locks").join(format!("{name}.lock")).is_file());
        drop(lock);
    }
    for name in ["", "..", "a/b"] {
        assert_eq!(kind(any.try_acquire(dir, name)), ErrorKind::InvalidName);
    }
}

#[test]
fn create_false_creates_nothing() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path().join("cache");
    let no_create = Options::new().create(false);
    let err = no_create.try_acquire(&dir, "s").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io(io::ErrorKind::NotFound), "{err}");
    assert!(!dir.exists());
    drop(CacheLock::try_acquire(&dir, "s").unwrap());
    drop(no_create.try_acquire(&dir, "s").unwrap());
}

#[test]
fn system_errors_carry_the_errno_and_the_path() {
    let temp_dir = TempDir::new().unwrap();
    let file = temp_dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = CacheLock::try_acquire(&file, "s").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Io(_)), "{err:?}");
    assert_eq!(err.raw_os_error(), libc::ENOTDIR, "{err}");
    assert!(err.to_string().contains(&*file.to_string_lossy()), "{err}");

    // Into std::io::Error, keeping the message.
    let io_err: io::Error = err.into();
    assert_eq!(
        io_err.kind(),
        io::Error::from_raw_os_error(libc::ENOTDIR).kind()
    );
    assert!(io_err.to_string().contains(&*file.to_string_lossy()));

    let busy: io::Error = {
        let _held = CacheLock::try_acquire(temp_dir.path(), "s").unwrap();
        CacheLock::try_acquire(temp_dir.path(), "s")
            .unwrap_err()
            .into()
    };
    assert_eq!(busy.kind(), io::ErrorKind::WouldBlock);

    // A NUL byte in the directory: invalid input, said the library's way.
    let err = CacheLock::try_acquire(Path::new("/tmp/a\0b"), "s").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io(io::ErrorKind::InvalidInput));
    assert_eq!(
        err.to_string(),
        "invalid cache directory '/tmp/a\\x00b': contains a NUL byte"
    );
}

/// holders() until `ok` accepts what it says, for at most 5 s: the kernel's
/// lock table is read in chunks while other processes' locks come and go,
/// so one reading may miss a holder or list one that has just left.
fn holders_until(dir: &Path, source: &str, ok: impl Fn(&[Holder]) -> bool) -> Vec<Holder> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let who = holders(dir, source).unwrap();
        if ok(&who) || Instant::now() > deadline {
            return who;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn holders_names_this_process_and_its_mode() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path();
    let err = holders(dir, "never").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io(io::ErrorKind::NotFound), "{err}");

    let shared = Options::new().shared();
    let a = shared.try_acquire(dir, "s").unwrap();
    let b = shared.try_acquire(dir, "s").unwrap();
    let me = std::process::id();
    let who = holders_until(dir, "s", |who| who.iter().any(|h| h.pid == me));
    let mine: Vec<&Holder> = who.iter().filter(|h| h.pid == me).collect();
    assert_eq!(mine.len(), 1, "one entry per process and mode: {who:?}");
    assert_eq!(mine[0].mode, Mode::Shared);
    assert!(!mine[0].waiting);
    assert!(!mine[0].command.is_empty());
    drop((a, b));
    let who = holders_until(dir, "s", |who| who.is_empty());
    assert!(who.is_empty(), "{who:?}");
}

#[test]
fn prune_removes_only_what_nobody_holds() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path();
    assert!(prune(dir, Duration::ZERO).unwrap().is_empty());
    drop(CacheLock::try_acquire(dir, "free").unwrap());
    let held = CacheLock::try_acquire(dir, "held").unwrap();

    // Everything is newer than an hour (and a held one is busy anyway).
    let mut recent = prune(dir, Duration::from_secs(3600)).unwrap();
    recent.sort_by(|a, b| a.source.cmp(&b.source));
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].status, PruneStatus::Recent, "{recent:?}");
    assert_eq!(recent[1].status, PruneStatus::Busy, "{recent:?}");
    let busy = recent[1].error.as_ref().unwrap();
    assert_eq!(busy.kind(), io::ErrorKind::WouldBlock);

    let mut dry = prune_dry_run(dir, Duration::ZERO).unwrap();
    dry.sort_by(|a, b| a.source.cmp(&b.source));
    assert_eq!(dry[0].source, "free");
    assert_eq!(dry[0].status, PruneStatus::Removed);
    assert!(dir.join(".locks/free.lock").exists());

    let mut done = prune(dir, Duration::ZERO).unwrap();
    done.sort_by(|a, b| a.source.cmp(&b.source));
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].status, PruneStatus::Removed);
    assert!(done[0].error.is_none());
    assert_eq!(done[1].source, "held");
    assert_eq!(done[1].status, PruneStatus::Busy);
    assert!(!dir.join(".locks/free.lock").exists());
    assert!(dir.join(".locks/held.lock").exists());
    drop(held);

    // Nothing to prune in a missing cache; a file is not a cache.
    assert!(prune(&dir.join("missing"), Duration::ZERO)
        .unwrap()
        .is_empty());
    let file = dir.join("file");
    std::fs::write(&file, b"").unwrap();
    let err = prune(&file, Duration::ZERO).unwrap_err();
    assert_eq!(err.raw_os_error(), libc::ENOTDIR, "{err}");
}

#[test]
fn lock_path_is_the_originals_path() {
    let dir = Path::new("/home/user/.agpm/cache");
    for name in ["community", "source@special", "source.with.dots"] {
        assert_eq!(
            lock_path(dir, name).unwrap(),
            dir.join(".locks").join(format!("{name}.lock"))
        );
    }
    assert_eq!(kind(lock_path(dir, "../x")), ErrorKind::InvalidName);
}

#[test]
fn version_is_the_librarys() {
    assert_eq!(cachelock::version(), env!("CARGO_PKG_VERSION"));
}
