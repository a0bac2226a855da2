//! Removing lock files that nobody holds, safely.

use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::os::raw::{c_char, c_int, c_long, c_uint, c_void};
use std::os::unix::ffi::OsStrExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use crate::{args, ffi, Error, Result};

/// What [`prune()`] did with one lock file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PruneStatus {
    /// Removed (or, by [`prune_dry_run()`], would be).
    Removed,
    /// Someone holds it: left alone.
    Busy,
    /// Changed more recently than `older_than`: left alone.
    Recent,
    /// A failure (in [`Pruned::error`]): left alone.
    Failed,
}

/// One lock file that [`prune()`] considered.
#[derive(Debug)]
#[non_exhaustive]
pub struct Pruned {
    /// The source name: the file name without `.lock`.  Any valid file
    /// name, not only portable ones (other tools may have made it).
    pub source: OsString,
    /// What was done with it.
    pub status: PruneStatus,
    /// The error the library reported with it: why it failed for
    /// [`PruneStatus::Failed`], `WouldBlock` for [`PruneStatus::Busy`],
    /// `None` otherwise.
    pub error: Option<io::Error>,
}

/// Removes the lock files of a cache that nobody holds and that were
/// created at least `older_than` ago (zero for all), and says what it did
/// with each.
///
/// The safe replacement for the original's `cleanup_stale_locks`, which
/// deletes lock files older than a TTL even while they are held, so that
/// two holders can then get one source.  Here each file is locked without
/// waiting, removed while held, and released; a busy file is skipped, so
/// pruning never blocks the cache's users (their own try may see a file
/// busy for those microseconds).  Users of this library re-check the path
/// after every grant, so one that was waiting on a pruned file moves to
/// the new one.  The original and `flock(1)` do not: prune only caches
/// whose users are all this library, or while they are idle.  Nothing is
/// created.
///
/// # Errors
///
/// When `.locks` cannot be listed: `Io(PermissionDenied)`, or another
/// `Io` kind with errno `ENOTDIR`, ...  A cache that does not exist, or has
/// no `.locks`, has nothing to prune (an empty list).  Failures on single
/// files are reported in the list and do not stop it.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), cachelock::Error> {
/// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-prune-{}", std::process::id()));
/// use cachelock::{prune, CacheLock, PruneStatus};
/// use std::time::Duration;
///
/// drop(CacheLock::try_acquire(&cache_dir, "old")?);
/// let held = CacheLock::try_acquire(&cache_dir, "in-use")?;
///
/// let mut report = prune(&cache_dir, Duration::ZERO)?;
/// report.sort_by(|a, b| a.source.cmp(&b.source));
/// assert_eq!(report[0].source, "in-use");
/// assert_eq!(report[0].status, PruneStatus::Busy);
/// assert_eq!(report[1].source, "old");
/// assert_eq!(report[1].status, PruneStatus::Removed);
/// assert!(!cache_dir.join(".locks/old.lock").exists());
/// # drop(held);
/// # std::fs::remove_dir_all(&cache_dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub fn prune(cache_dir: &Path, older_than: Duration) -> Result<Vec<Pruned>> {
    run(cache_dir, older_than, 0)
}

/// What [`prune()`] would do, removing nothing: the files it would remove
/// are reported as [`PruneStatus::Removed`].
///
/// # Errors
///
/// Those of [`prune()`].
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), cachelock::Error> {
/// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-dry-{}", std::process::id()));
/// use cachelock::{prune_dry_run, CacheLock, PruneStatus};
/// use std::time::Duration;
///
/// drop(CacheLock::try_acquire(&cache_dir, "old")?);
/// let report = prune_dry_run(&cache_dir, Duration::ZERO)?;
/// assert_eq!(report[0].status, PruneStatus::Removed);
/// assert!(cache_dir.join(".locks/old.lock").exists());
/// # std::fs::remove_dir_all(&cache_dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub fn prune_dry_run(cache_dir: &Path, older_than: Duration) -> Result<Vec<Pruned>> {
    run(cache_dir, older_than, ffi::CACHELOCK_PRUNE_DRY_RUN)
}

fn run(cache_dir: &Path, older_than: Duration, flags: c_uint) -> Result<Vec<Pruned>> {
    let dir = args::dir(cache_dir)?;
    let older_than_ms = c_long::try_from(older_than.as_millis()).unwrap_or(c_long::MAX);
    let mut report: Vec<Pruned> = Vec::new();
    // SAFETY: dir is NUL-terminated and lives through the call; ctx points
    // to report, which outlives the call and is used by nothing else while
    // the library calls back (only from this thread, during the call).
    let rc = unsafe {
        ffi::cachelock_prune(
            dir.as_ptr(),
            older_than_ms,
            flags,
            Some(record),
            (&mut report as *mut Vec<Pruned>).cast(),
        )
    };
    if rc < 0 {
        return Err(Error::last(rc));
    }
    Ok(report)
}

/// The callback of cachelock_prune(): appends one entry to the report.
extern "C" fn record(
    source: *const c_char,
    status: ffi::cachelock_prune_status_t,
    err: c_int,
    ctx: *mut c_void,
) {
    // A panic must not unwind into C; the entry is lost then (allocation
    // failure is the only way this can panic).
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: ctx is the report that run() passed, borrowed by nothing
        // else while the library calls back.
        let report = unsafe { &mut *ctx.cast::<Vec<Pruned>>() };
        // SAFETY: the library passes a NUL-terminated name, valid during
        // this callback (it is copied out below).
        let name = unsafe { CStr::from_ptr(source) };
        let status = match status {
            ffi::CACHELOCK_PRUNE_REMOVED => PruneStatus::Removed,
            ffi::CACHELOCK_PRUNE_BUSY => PruneStatus::Busy,
            ffi::CACHELOCK_PRUNE_RECENT => PruneStatus::Recent,
            _ => PruneStatus::Failed,
        };
        report.push(Pruned {
            source: OsStr::from_bytes(name.to_bytes()).to_owned(),
            status,
            error: if err < 0 {
                Some(io::Error::from_raw_os_error(
                    err.checked_neg().unwrap_or(libc::EINVAL),
                ))
            } else {
                None
            },
        });
    }));
}
