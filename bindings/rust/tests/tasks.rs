//! 8 tasks take turns on one source, on both runtimes: the lock is never
//! held by two at once, no increment of a shared counter is lost, and no
//! acquire fails (in particular none with "would deadlock", which a lock
//! owned by a thread would give when a worker thread runs a second task of
//! the same source).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use cachelock::CacheLock;
use common::{runtime, Flavor, TempDir};

const TASKS: u64 = 8;
const ROUNDS: u64 = 200;

/// A future that counts how often it had to wait (returned Pending).
struct CountWaits<F> {
    inner: Pin<Box<F>>,
    waits: Arc<AtomicU64>,
}

impl<F: Future> Future for CountWaits<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let poll = self.inner.as_mut().poll(cx);
        if poll.is_pending() {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        poll
    }
}

async fn eight_tasks_share_one_source() {
    let temp_dir = TempDir::new().unwrap();
    let cache_dir = Arc::new(temp_dir.path().to_path_buf());
    let inside = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let waits = Arc::new(AtomicU64::new(0));

    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let cache_dir = cache_dir.clone();
        let inside = inside.clone();
        let counter = counter.clone();
        let waits = waits.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let acquire = CountWaits {
                    inner: Box::pin(CacheLock::acquire(&cache_dir, "counter")),
                    waits: waits.clone(),
                };
                let lock = match acquire.await {
                    Ok(lock) => lock,
                    Err(e) => panic!("acquire failed ({:?}): {e}", e.kind()),
                };
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                // A read-modify-write split by a yield, so that another task
                // (or thread) runs in between: without exclusion, updates
                // are lost.
                let value = counter.load(Ordering::SeqCst);
                tokio::task::yield_now().await;
                counter.store(value + 1, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                drop(lock);
                tokio::task::yield_now().await;
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(counter.load(Ordering::SeqCst), TASKS * ROUNDS);
    // The tasks did contend: acquires waited, asynchronously.
    assert!(waits.load(Ordering::Relaxed) > 0, "no acquire ever waited");
    eprintln!(
        "{} acquires, {} waits",
        TASKS * ROUNDS,
        waits.load(Ordering::Relaxed)
    );
}

#[test]
fn eight_tasks_one_source_current_thread() {
    runtime(Flavor::CurrentThread).block_on(eight_tasks_share_one_source());
}

#[test]
fn eight_tasks_one_source_multi_thread() {
    runtime(Flavor::MultiThread).block_on(eight_tasks_share_one_source());
}
