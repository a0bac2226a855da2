//! Uncontended acquire+release of one source, the same source again, in one
//! run: through this crate, through the C library directly, and the
//! original's design (`tokio::fs::create_dir_all`, then `spawn_blocking`
//! around open + flock, as bench/peers/ccpm_lock does it).
//!
//! ```text
//! cargo bench --offline --bench acquire [-- ITERATIONS]
//! ```
//!
//! Each variant runs ITERATIONS (default 100,000) acquire+release pairs in
//! ROUNDS chunks; the variants take turns chunk by chunk, so that a slow
//! stretch of a shared machine spoils one chunk of each rather than one
//! variant, and each reports the nanoseconds per pair of its fastest chunk,
//! as the C benchmarks do.  Then the handoff from a holder's release to a
//! waiter parked in its wait on another thread: the crate's asynchronous
//! wait, the C library's blocking one, and the original's.  With
//! CACHELOCK_BENCH_SYSCALLS set to the path
//! of bench/bench_syscalls (`make bench` sets it), its `same-source` and
//! `open-flock-close` variants are run too, as separate C programs.  With
//! BENCH_JSON set, one JSON line with the results is appended to that file.
//!
//! The goal: the crate's acquire within 1.5x of the C library's.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::raw::{c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cachelock::CacheLock;

const ROUNDS: usize = 10;
const SOURCE: &str = "s";
const HANDOFF: &str = "handoff";
const HANDOFFS: usize = 300;

// The C library's own calls, for the loop a C program would run.  The
// crate links the library, so these resolve against the same code.
#[repr(C)]
struct RawLock {
    _opaque: [u8; 0],
}
extern "C" {
    fn cachelock_acquire(
        cache_dir: *const c_char,
        source: *const c_char,
        out: *mut *mut RawLock,
    ) -> c_int;
    fn cachelock_release(lock: *mut RawLock);
}

/// A lock of the C library, released on drop.
struct RawGuard(*mut RawLock);

impl Drop for RawGuard {
    fn drop(&mut self) {
        // SAFETY: a held lock from cachelock_acquire, released only here.
        unsafe { cachelock_release(self.0) }
    }
}

/// From "the holder releases" to "the waiter holds", p50 and p90 in
/// microseconds over HANDOFFS handoffs.  Each time this thread takes the
/// lock, lets the waiter thread start `wait`, gives it 2 ms to park in its
/// wait, and releases; the waiter notes the time it holds the lock, then
/// releases it.
fn handoff<G, F>(dir: &Path, mut wait: F) -> (f64, f64)
where
    G: 'static,
    F: FnMut() -> G + Send + 'static,
{
    let (go, go_rx) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel::<Instant>();
    let waiter = std::thread::spawn(move || {
        while go_rx.recv().is_ok() {
            let guard = wait();
            let held = Instant::now();
            drop(guard);
            if done_tx.send(held).is_err() {
                break;
            }
        }
    });
    let mut us = Vec::with_capacity(HANDOFFS);
    for _ in 0..HANDOFFS {
        let holder = CacheLock::try_acquire(dir, HANDOFF).unwrap();
        go.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let released = Instant::now();
        drop(holder);
        let held = done.recv().unwrap();
        us.push(held.saturating_duration_since(released).as_nanos() as f64 / 1e3);
    }
    drop(go);
    waiter.join().unwrap();
    us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (us[us.len() / 2], us[us.len() * 9 / 10])
}

fn flock(file: &File, operation: c_int) -> io::Result<()> {
    // SAFETY: flock(2) on a descriptor that file owns for the call.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
}

/// The original's CacheLock::acquire, with fs4's lock_exclusive as the
/// flock(2) it is on Unix.
async fn original_acquire(cache_dir: &Path, source_name: &str) -> io::Result<File> {
    let locks_dir = cache_dir.join(".locks");
    tokio::fs::create_dir_all(&locks_dir).await?;
    let lock_path = locks_dir.join(format!("{source_name}.lock"));
    tokio::task::spawn_blocking(move || -> io::Result<File> {
        let file = open_lock_file(&lock_path)?;
        flock(&file, libc::LOCK_EX)?;
        Ok(file)
    })
    .await
    .map_err(|e| io::Error::new(io::ErrorKind::Other, e))?
}

/// One variant: a name, a key for the JSON line, and a chunk of n pairs.
struct Variant<'a> {
    what: &'static str,
    key: &'static str,
    chunk: Box<dyn FnMut(usize) + 'a>,
    best_ns: f64,
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let per_chunk = (iterations / ROUNDS).max(1);

    let dir = std::env::temp_dir().join(format!("cachelock-bench-rs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Made once, so that no variant pays for creating it.
    drop(CacheLock::try_acquire(&dir, SOURCE).expect("create the lock file"));
    let lock_path = dir.join(".locks").join(format!("{SOURCE}.lock"));
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    let c_source = std::ffi::CString::new(SOURCE).unwrap();

    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // What #[tokio::main] builds: the original's programs run this.
    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut variants = vec![
        Variant {
            what: "C library: cachelock_acquire + cachelock_release",
            key: "c_library",
            chunk: Box::new(|n| {
                for _ in 0..n {
                    let mut lock = std::ptr::null_mut();
                    // SAFETY: valid strings and out pointer; the lock is
                    // released right away.
                    unsafe {
                        assert_eq!(
                            cachelock_acquire(c_dir.as_ptr(), c_source.as_ptr(), &mut lock),
                            0
                        );
                        cachelock_release(lock);
                    }
                }
            }),
            best_ns: f64::INFINITY,
        },
        Variant {
            what: "crate: CacheLock::acquire().await + drop (multi-thread runtime)",
            key: "crate_acquire_multi_thread",
            chunk: Box::new(|n| {
                multi.block_on(async {
                    for _ in 0..n {
                        drop(CacheLock::acquire(&dir, SOURCE).await.unwrap());
                    }
                })
            }),
            best_ns: f64::INFINITY,
        },
        Variant {
            what: "crate: CacheLock::acquire().await + drop (current-thread runtime)",
            key: "crate_acquire_current_thread",
            chunk: Box::new(|n| {
                current.block_on(async {
                    for _ in 0..n {
                        drop(CacheLock::acquire(&dir, SOURCE).await.unwrap());
                    }
                })
            }),
            best_ns: f64::INFINITY,
        },
        Variant {
            what: "crate: CacheLock::try_acquire + drop",
            key: "crate_try_acquire",
            chunk: Box::new(|n| {
                for _ in 0..n {
                    drop(CacheLock::try_acquire(&dir, SOURCE).unwrap());
                }
            }),
            best_ns: f64::INFINITY,
        },
        Variant {
            what: "open+flock+close (what flock(1) does)",
            key: "open_flock_close",
            chunk: Box::new(|n| {
                for _ in 0..n {
                    let file = open_lock_file(&lock_path).unwrap();
                    flock(&file, libc::LOCK_EX).unwrap();
                }
            }),
            best_ns: f64::INFINITY,
        },
        Variant {
            what: "the original's design: create_dir_all + spawn_blocking(open+flock)",
            key: "original_design",
            chunk: Box::new(|n| {
                multi.block_on(async {
                    for _ in 0..n {
                        drop(original_acquire(&dir, SOURCE).await.unwrap());
                    }
                })
            }),
            best_ns: f64::INFINITY,
        },
    ];

    // Warm up every variant (the runtimes' threads, the kept descriptors).
    for v in &mut variants {
        (v.chunk)(per_chunk.min(1000));
    }
    for _ in 0..ROUNDS {
        for v in &mut variants {
            let start = Instant::now();
            (v.chunk)(per_chunk);
            let ns = start.elapsed().as_nanos() as f64 / per_chunk as f64;
            v.best_ns = v.best_ns.min(ns);
        }
    }

    // The C programs of bench/bench_syscalls, when make bench gave them.
    let mut programs = Vec::new();
    if let Some(path) = std::env::var_os("CACHELOCK_BENCH_SYSCALLS") {
        for (variant, what) in [
            ("same-source", "bench_syscalls same-source (a C program)"),
            (
                "open-flock-close",
                "bench_syscalls open-flock-close (a C program)",
            ),
        ] {
            match bench_syscalls(Path::new(&path), variant, &dir, iterations) {
                Ok(ns) => programs.push((what, ns)),
                Err(e) => eprintln!("{}: {e}", Path::new(&path).display()),
            }
        }
    }
    // Handoffs: the holder (this thread) releases through the library; a
    // waiter parked in its wait on another thread takes the lock.
    let handoffs = [
        (
            "crate: CacheLock::acquire().await (current-thread runtime)",
            handoff(&dir, {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let d = dir.clone();
                move || rt.block_on(CacheLock::acquire(&d, HANDOFF)).unwrap()
            }),
        ),
        (
            "C library: cachelock_acquire, blocking in flock(2)",
            handoff(&dir, {
                let d = c_dir.clone();
                let s = std::ffi::CString::new(HANDOFF).unwrap();
                move || {
                    let mut lock = std::ptr::null_mut();
                    // SAFETY: valid strings and out pointer; the guard
                    // releases the lock.
                    let rc = unsafe { cachelock_acquire(d.as_ptr(), s.as_ptr(), &mut lock) };
                    assert_eq!(rc, 0);
                    RawGuard(lock)
                }
            }),
        ),
        (
            "the original's design: spawn_blocking(open+flock)",
            handoff(&dir, {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let d = dir.clone();
                move || rt.block_on(original_acquire(&d, HANDOFF)).unwrap()
            }),
        ),
    ];
    let _ = std::fs::remove_dir_all(&dir);

    let c_ns = variants[0].best_ns;
    println!("Rust crate, uncontended acquire+release of one source ({iterations} pairs, best of {ROUNDS} chunks)\n");
    println!("{:<70} {:>8} {:>10}", "what", "us", "vs C lib");
    for v in &variants {
        println!(
            "{:<70} {:>8.2} {:>9.2}x",
            v.what,
            v.best_ns / 1e3,
            v.best_ns / c_ns
        );
    }
    for (what, ns) in &programs {
        println!("{:<70} {:>8.2} {:>9.2}x", what, ns / 1e3, ns / c_ns);
    }
    println!("\nhandoff: from \"the holder releases\" to \"the waiter holds\", {HANDOFFS} times\n");
    println!("{:<70} {:>8} {:>8}", "waiter", "p50 us", "p90 us");
    for (what, (p50, p90)) in &handoffs {
        println!("{:<70} {:>8.1} {:>8.1}", what, p50, p90);
    }
    let crate_ns = variants[1].best_ns;
    let original_ns = variants[5].best_ns;
    let ratio = crate_ns / c_ns;
    println!();
    println!(
        "crate acquire (multi-thread) vs the C library: {ratio:.2}x (goal: within 1.5x) {}",
        if ratio <= 1.5 { "met" } else { "NOT MET" }
    );
    println!(
        "the original's design vs the crate: {:.1}x slower",
        original_ns / crate_ns
    );

    if let Some(path) = std::env::var_os("BENCH_JSON") {
        let mut line = String::from("{\"bench\":\"rust_crate\"");
        for v in &variants {
            line.push_str(&format!(",\"{}_us\":{:.3}", v.key, v.best_ns / 1e3));
        }
        let keys = ["crate_async", "c_blocking", "original_design"];
        for (key, (_, (p50, _))) in keys.iter().zip(&handoffs) {
            line.push_str(&format!(",\"handoff_{key}_p50_us\":{p50:.2}"));
        }
        line.push_str(&format!(
            ",\"crate_to_c_library\":{ratio:.3},\"original_to_crate\":{:.3}}}\n",
            original_ns / crate_ns
        ));
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(PathBuf::from(path))
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot write BENCH_JSON: {e}");
        }
    }
}

/// Runs bench_syscalls VARIANT DIR N: it prints nanoseconds per pair.  It
/// uses DIR/.locks/s.lock, the file of this benchmark's source.
fn bench_syscalls(program: &Path, variant: &str, dir: &Path, n: usize) -> io::Result<f64> {
    let out = Command::new(program)
        .arg(variant)
        .arg(dir)
        .arg(n.to_string())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::new(
            io::ErrorKind::Other,
            format!("{variant} failed: {}", String::from_utf8_lossy(&out.stderr)),
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::Other, format!("{variant}: {e}")))
}
