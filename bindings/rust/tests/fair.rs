//! Fair mode (`Options::fair`): tasks are granted the lock in the order they
//! joined the queue, a try never joins, a cancelled wait gives its place
//! up, and the lock works as before for plain users.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachelock::{ErrorKind, Options};
use common::{runtime, Flavor, TempDir};

/// The queue's places: an OFD write lock at byte 2^62 + ticket of the lock
/// file for every waiter (exclusive ones hold a second one, 2^60 further).
const QUEUE_BASE: u64 = 1 << 62;
const QUEUE_END: u64 = QUEUE_BASE + (1 << 60);

/// How many hold a place in the fair queue of `lock_file`, from the
/// kernel's lock table.
fn places(lock_file: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(lock_file).unwrap().ino().to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() >= 8
                && !f.contains(&"->")
                && f[1] == "OFDLCK"
                && f[3] == "WRITE"
                && f[5].rsplit(':').next() == Some(ino.as_str())
                && f[6]
                    .parse::<u64>()
                    .map_or(false, |at| (QUEUE_BASE..QUEUE_END).contains(&at))
        })
        .count()
}

async fn places_reach(lock_file: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while places(lock_file) < n {
        assert!(Instant::now() < deadline, "{n} places never showed");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// None, or why fair mode cannot run here.
fn refused(dir: &Path) -> Option<String> {
    match Options::new().fair(true).try_acquire(dir, "probe") {
        Ok(_) => None,
        Err(e) if e.raw_os_error() == libc::ENOTSUP => Some(e.to_string()),
        Err(e) => panic!("{e}"),
    }
}

async fn tasks_are_granted_in_the_order_they_queued() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path().to_path_buf();
    if let Some(why) = refused(&dir) {
        eprintln!("skipped: {why}");
        return;
    }
    let fair = Options::new().fair(true);
    let file = dir.join(".locks/s.lock");
    let holder = fair.acquire(&dir, "s").await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (dir, order) = (dir.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let lock = fair.acquire(&dir, "s").await.unwrap();
            order.lock().unwrap().push(i);
            drop(lock);
        }));
        places_reach(&file, i + 1).await;
    }
    // A try never joins: busy while others are queued.
    let err = fair.try_acquire(&dir, "s").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy);
    assert_eq!(places(&file), 4);
    drop(holder);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(places(&file), 0);
}

async fn a_cancelled_wait_leaves_no_place() {
    let temp_dir = TempDir::new().unwrap();
    let dir = temp_dir.path();
    if let Some(why) = refused(dir) {
        eprintln!("skipped: {why}");
        return;
    }
    let fair = Options::new().fair(true);
    let file = dir.join(".locks/s.lock");
    let holder = fair.acquire(dir, "s").await.unwrap();
    let timed = fair.timeout(Duration::from_millis(50));
    let err = timed.acquire(dir, "s").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(places(&file), 0);
    {
        let fut = fair.acquire(dir, "s");
        tokio::pin!(fut);
        // Polled until it has joined, then dropped.
        tokio::select! {
            _ = &mut fut => panic!("granted while held"),
            _ = places_reach(&file, 1) => {}
        }
    }
    assert_eq!(places(&file), 0);
    drop(holder);
    drop(Options::new().try_acquire(dir, "s").unwrap());
}

#[test]
fn tasks_are_granted_in_the_order_they_queued_on_both_runtimes() {
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        runtime(flavor).block_on(tasks_are_granted_in_the_order_they_queued());
    }
}

#[test]
fn a_cancelled_wait_leaves_no_place_on_both_runtimes() {
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread] {
        runtime(flavor).block_on(a_cancelled_wait_leaves_no_place());
    }
}
