//! Per-source locks for a cache directory shared by many processes and
//! tasks: the `CacheLock` of the package manager ccpm/agpm, on top of the C
//! library libcachelock.
//!
//! Every named entry of a cache, a *source*, has a lock file
//! `{cache_dir}/.locks/{source}.lock`, locked with `flock(2)`: the same file
//! and the same lock as the original's, so programs using either (and
//! `flock(1)`, and Python's filelock) exclude each other on one cache.  The
//! kernel drops a lock when its holder exits or crashes: there are no stale
//! locks.
//!
//! # Switching from the original
//!
//! One line:
//!
//! ```text
//! -use agpm_cli::cache::lock::CacheLock;
//! +use cachelock::CacheLock;
//! ```
//!
//! `CacheLock::acquire(&Path, &str)` is an `async fn` with the same paths
//! and the same meaning (exclusive, waits as long as it takes, released on
//! drop), and [`Error`] converts into `anyhow::Error` with `?` like the
//! original's errors.  Underneath:
//!
//! - no thread blocks: an uncontended acquire takes the lock at once, and
//!   a wait parks the task in tokio's reactor (on the library's inotify
//!   descriptor, with a re-check timer) instead of holding a thread of the
//!   blocking pool in `flock(2)`;
//! - dropping the future cancels the wait completely: a
//!   `tokio::time::timeout` around an acquire never leaves a thread behind
//!   that takes the lock later;
//! - the lock file is checked after every grant: a file pruned, renamed or
//!   replaced meanwhile is never held;
//! - source names are validated, so `../x` cannot escape `.locks/`
//!   ([`Options::any_name`] accepts other tools' names);
//! - lock files are kept open between acquires of the same source, so a
//!   repeated acquire is several times cheaper than the original's.
//!
//! Beyond the original: [`CacheLock::try_acquire`], shared locks and
//! timeouts through [`Options`], [`holders()`] to say who holds a source, and
//! [`prune()`] to remove unused lock files safely (never delete them by
//! hand, and never with the original's `cleanup_stale_locks`, which deletes
//! held ones).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-crate-{}", std::process::id()));
//! use cachelock::{CacheLock, ErrorKind, Options};
//! use std::time::Duration;
//!
//! // Exclusive, waiting as long as it takes: the original's call.
//! let lock = CacheLock::acquire(&cache_dir, "community").await?;
//! // ... update {cache_dir}/community ...
//! drop(lock);
//!
//! // Shared, giving up after 5 s.
//! let lock = Options::new()
//!     .shared()
//!     .timeout(Duration::from_secs(5))
//!     .acquire(&cache_dir, "community")
//!     .await?;
//!
//! // A try while it is held.
//! let err = CacheLock::try_acquire(&cache_dir, "community").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Busy);
//! println!("{err}"); // cannot lock '/tmp/.../.locks/community.lock': held by another owner
//! # drop(lock);
//! # std::fs::remove_dir_all(&cache_dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Runtime
//!
//! Waiting needs a tokio runtime with I/O and time enabled (what
//! `#[tokio::main]` and `#[tokio::test]` build), current-thread or
//! multi-thread.  An acquire that does not wait touches no runtime.
//!
//! # Building
//!
//! The crate links the static library `libcachelock.a`: from the directory
//! in `CACHELOCK_LIB_DIR` (what `make rust` in the repository sets), else
//! built with `make` from the repository around the crate, else found
//! through `pkg-config cachelock` when the library is installed.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod args;
mod error;
mod ffi;
mod holders;
mod lock;
mod prune;
mod wait;

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use crate::error::{Error, ErrorKind};
pub use crate::holders::{holders, Holder};
pub use crate::lock::{CacheLock, Mode, Options};
pub use crate::prune::{prune, prune_dry_run, PruneStatus, Pruned};

/// The result of this crate's fallible calls.
pub type Result<T> = std::result::Result<T, Error>;

/// The lock file of a source: `{cache_dir}/.locks/{source_name}.lock`.
/// Touches nothing on disk.
///
/// # Errors
///
/// [`InvalidName`](ErrorKind::InvalidName) for a name that an acquire
/// refuses (portable names only), `Io(InvalidFilename)` or another
/// `Io` kind for a path longer than the system allows.
///
/// # Examples
///
/// ```
/// use cachelock::lock_path;
/// use std::path::Path;
///
/// let path = lock_path(Path::new("/home/user/.agpm/cache"), "community")?;
/// assert_eq!(path, Path::new("/home/user/.agpm/cache/.locks/community.lock"));
/// # Ok::<(), cachelock::Error>(())
/// ```
pub fn lock_path(cache_dir: &Path, source_name: &str) -> Result<PathBuf> {
    let dir = args::dir(cache_dir)?;
    let source = args::source(source_name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: the strings are NUL-terminated and live through the call; buf
    // has buf.len() writable bytes.
    let rc = unsafe {
        ffi::cachelock_path_ex(
            dir.as_ptr(),
            source.as_ptr(),
            0,
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match usize::try_from(rc) {
        Ok(len) if len < buf.len() => {
            buf.truncate(len);
            Ok(PathBuf::from(OsStr::from_bytes(&buf)))
        }
        _ => Err(Error::last_for(rc, &source, 0)),
    }
}

/// Closes the descriptors the library keeps open between acquires in
/// this process: released lock files (at most 64), the `.locks`
/// directories they were opened through, and idle inotify instances of
/// waits.  Held locks are not affected.  Returns the number of lock files
/// closed.
///
/// Useful before counting or closing descriptors, or so that the cache's
/// filesystem can be unmounted.  It may take tens of milliseconds when it
/// closes inotify instances (the kernel waits for an RCU grace period).
///
/// ```
/// # fn main() -> Result<(), cachelock::Error> {
/// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-idle-{}", std::process::id()));
/// use cachelock::{close_idle, CacheLock};
///
/// drop(CacheLock::try_acquire(&cache_dir, "registry")?); // its file stays open
/// close_idle();
/// # std::fs::remove_dir_all(&cache_dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub fn close_idle() -> usize {
    // SAFETY: no arguments; the library serialises it with its other calls.
    let n = unsafe { ffi::cachelock_close_idle() };
    usize::try_from(n).unwrap_or(0)
}

/// The version of the C library linked in, e.g. `"0.3.0"`.
///
/// ```
/// assert!(cachelock::version().starts_with("0."));
/// ```
pub fn version() -> &'static str {
    // SAFETY: cachelock_version() returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(ffi::cachelock_version()) };
    v.to_str().unwrap_or("")
}
