//! What the test files share: temporary directories, the two runtimes, and
//! the loop that runs a test body many times.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system's temporary directory, removed with
/// everything in it on drop (the original's tests use tempfile's TempDir,
/// which is not among Debian's packaged crates).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> std::io::Result<TempDir> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "cachelock-rs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The two runtimes a test runs on: what `#[tokio::test]` builds, and
/// what `#[tokio::test(flavor = "multi_thread")]` builds.
#[derive(Clone, Copy, Debug)]
pub enum Flavor {
    CurrentThread,
    MultiThread,
}

pub fn runtime(flavor: Flavor) -> tokio::runtime::Runtime {
    match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Flavor::MultiThread => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            // At least 2 workers, so that tasks do move between threads.
            let n = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
            b.worker_threads(n);
            b
        }
    }
    .enable_all()
    .build()
    .expect("build a tokio runtime")
}

/// How many times each looped test runs: CACHELOCK_TEST_RUNS, default 100.
pub fn runs() -> usize {
    std::env::var("CACHELOCK_TEST_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// Runs `body` runs() times, each time on a new runtime of `flavor`, as
/// each run of a `#[tokio::test]` would; a failing run panics with its
/// number.
pub fn repeat<F, Fut>(flavor: Flavor, body: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let n = runs();
    for run in 1..=n {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime(flavor).block_on(body());
        }));
        if let Err(panic) = result {
            eprintln!("failed in run {run} of {n} on the {flavor:?} runtime");
            std::panic::resume_unwind(panic);
        }
    }
}
