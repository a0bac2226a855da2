//! Cancellation: `tokio::time::timeout` around an acquire that waits for a
//! held lock, 1,000 times on each runtime.  Afterwards the lock is free (no
//! cancelled wait took it later), no waiter mark is left on the file, and no
//! descriptor leaked (counted after `close_idle`, which closes what the
//! library keeps open on purpose).
//!
//! Alone in its test binary, so that no other test opens descriptors in the
//! process while this one counts them.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use cachelock::{CacheLock, ErrorKind, Options};
use common::{runtime, Flavor, TempDir};

const CANCELS: u64 = 1000;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
}

/// The locks this process holds on the file with this inode, from the
/// `lock:` lines of /proc/self/fdinfo (the library's waiter marks are OFD
/// locks, held through the waiter's descriptor).  Unlike /proc/locks, which
/// is read in page-sized chunks while other processes' locks come and go,
/// this view cannot skip or repeat an entry.
fn our_locks_on(ino: u64) -> Vec<String> {
    let needle = format!(":{ino} ");
    let mut locks = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd") {
        let fd = entry.unwrap().file_name();
        let fd = fd.to_string_lossy();
        // Gone meanwhile: the descriptor of the listing itself.
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
        for line in info.lines() {
            if line.starts_with("lock:") && line.contains(&needle) {
                locks.push(format!("fd {fd}: {line}"));
            }
        }
    }
    locks
}

async fn cancelled_waits_leave_nothing(flavor: Flavor) {
    let temp_dir = TempDir::new().unwrap();
    let cache_dir = temp_dir.path();

    cachelock::close_idle();
    let before = open_descriptors();

    let holder = CacheLock::acquire(cache_dir, "busy").await.unwrap();
    let ino = std::fs::metadata(cache_dir.join(".locks/busy.lock"))
        .unwrap()
        .ino();
    for i in 0..CANCELS {
        // 0 ms cancels at the first await (the wait registered, never
        // woken); longer ones after one or more re-check steps.
        let ms = [0, 1, 2, 5, 7][(i % 5) as usize];
        let attempt = tokio::time::timeout(
            Duration::from_millis(ms),
            CacheLock::acquire(cache_dir, "busy"),
        );
        assert!(
            attempt.await.is_err(),
            "{flavor:?}: acquire {i} got a lock that is held"
        );
        // And a future dropped without ever being polled.
        drop(CacheLock::acquire(cache_dir, "busy"));
    }
    // Shared waits are cancelled the same way.
    let shared = Options::new().shared();
    for _ in 0..10 {
        let attempt =
            tokio::time::timeout(Duration::from_millis(1), shared.acquire(cache_dir, "busy"));
        assert!(attempt.await.is_err());
    }

    // While the holder still holds it: only its own lock is on the file,
    // no waiter mark of the 1,010 cancelled waits.
    let locks = our_locks_on(ino);
    assert_eq!(
        locks.len(),
        1,
        "{flavor:?}: locks on the file, first 5: {:?}",
        &locks[..locks.len().min(5)]
    );
    assert!(locks[0].contains("FLOCK"), "{locks:?}");
    drop(holder);

    // No cancelled wait takes the lock later: this process holds nothing
    // on the file, and a try gets it.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(our_locks_on(ino), Vec::<String>::new());
    let again = CacheLock::try_acquire(cache_dir, "busy")
        .unwrap_or_else(|e| panic!("{flavor:?}: not free after the cancelled waits: {e}"));
    assert_eq!(our_locks_on(ino).len(), 1);
    assert!(matches!(
        CacheLock::try_acquire(cache_dir, "busy").map_err(|e| e.kind()),
        Err(ErrorKind::Busy)
    ));
    drop(again);

    cachelock::close_idle();
    let after = open_descriptors();
    assert_eq!(before, after, "{flavor:?}: descriptors before and after");
}

#[test]
fn cancelled_acquires_leave_nothing_behind() {
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        let rt = runtime(flavor);
        rt.block_on(cancelled_waits_leave_nothing(flavor));
    }
}
