//! The design of the Rust original's `CacheLock::acquire` (ccpm, now agpm),
//! timed for bench_peers.
//!
//! ```text
//! ccpm_lock DIRECTORY ITERATIONS
//! ```
//!
//! Each iteration takes and drops the lock of source "rust" in the cache
//! directory DIRECTORY, that is DIRECTORY/.locks/rust.lock, the way the
//! original does (src/cache/lock.rs): an async fn makes the .locks directory
//! with `tokio::fs::create_dir_all`, then hands the open (without
//! truncating) and the flock to tokio's blocking pool with `spawn_blocking`
//! and awaits the result; dropping the handle closes the file.  The
//! runtime is the one `#[tokio::main]` builds, so every acquire crosses
//! from the main thread to a pool thread and back, twice.  Prints the nanoseconds per acquire+release of the fastest of
//! ROUNDS chunks, as the C benchmarks do (ITERATIONS is rounded down to a
//! multiple of ROUNDS).

use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

const ROUNDS: u32 = 10;

/// An exclusive lock on one source of a cache directory, held until dropped.
struct CacheLock {
    _file: File,
}

impl CacheLock {
    /// Waits for the exclusive lock of `source` in `cache_dir`, making the
    /// lock file (and its directory) when missing.
    async fn acquire(cache_dir: &Path, source: &str) -> io::Result<CacheLock> {
        let locks = cache_dir.join(".locks");
        // As the original: tokio::fs::create_dir_all (one trip to the
        // blocking pool), then the open and the flock in a second trip, since
        // flock(2) blocks the calling thread, which must not be a runtime
        // worker.
        tokio::fs::create_dir_all(&locks).await?;
        let path = locks.join(format!("{source}.lock"));
        let file = tokio::task::spawn_blocking(move || -> io::Result<File> {
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            file.lock_exclusive()?;
            Ok(file)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(CacheLock { _file: file })
    }
}

// Dropping the handle closes the file, which releases the lock: the
// original's CacheLock has no Drop of its own.

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = match args.get(2).map(|s| s.parse()) {
        Some(Ok(n)) if args.len() == 3 && n >= ROUNDS => n,
        _ => {
            eprintln!("usage: ccpm_lock DIRECTORY ITERATIONS");
            return ExitCode::from(2);
        }
    };
    let dir = Path::new(&args[1]);
    let chunk = n / ROUNDS;
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..chunk {
            match CacheLock::acquire(dir, "rust").await {
                Ok(lock) => drop(lock),
                Err(e) => {
                    eprintln!("cannot lock '{}': {e}", dir.display());
                    return ExitCode::FAILURE;
                }
            }
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(chunk));
    }
    println!("{best:.1}");
    ExitCode::SUCCESS
}
