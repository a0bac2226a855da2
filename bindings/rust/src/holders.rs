//! Who holds a source, and who is blocked waiting for it: diagnostics.

use std::path::Path;
use std::ptr;

use crate::{args, ffi, Error, Mode, Result};

/// One process holding a source, or blocked waiting for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Holder {
    /// The process, numbered in this process's PID namespace; 0 for one
    /// that holds the lock but cannot be named here (in another PID
    /// namespace, on another machine, or one that inherited the lock from
    /// a process now gone and cannot be found).
    pub pid: u32,
    /// How it holds the lock, or wants it.
    pub mode: Mode,
    /// Whether it is blocked in `flock(2)` waiting for the lock rather
    /// than holding it.
    pub waiting: bool,
    /// Its command line, arguments separated by spaces; empty when it
    /// cannot be read.
    pub command: String,
}

/// Who holds a source of a cache, and who is blocked waiting for it:
/// holders first, then waiters, one entry per process and mode.
///
/// On Linux this reads the kernel's lock table, `/proc/locks`, so it sees
/// every `flock(2)` user (the original, `flock(1)`, other programs of this
/// library), not only this process.  Waiters in asynchronous waits (this
/// crate's) and timed waits of the library do not block in the kernel and
/// are not listed.  The kernel gives no atomic view of its table: while
/// other locks come and go, a holder may be missed or one that has just
/// left listed.  Any valid file name is accepted as `source_name`, and
/// nothing is created.
///
/// # Errors
///
/// Kind `Io(NotFound)` when there is no lock file (nobody ever locked the
/// source), [`InvalidName`](crate::ErrorKind::InvalidName), `Io(Unsupported)`
/// where the system has no lock table, or another system error.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), cachelock::Error> {
/// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-holders-{}", std::process::id()));
/// use cachelock::{holders, CacheLock, Mode};
///
/// let lock = CacheLock::try_acquire(&cache_dir, "registry")?;
/// for h in holders(&cache_dir, "registry")? {
///     let how = if h.mode == Mode::Shared { "shared" } else { "exclusive" };
///     let state = if h.waiting { "waiting" } else { "holding" };
///     println!("{state} {how}: pid {} ({})", h.pid, h.command);
/// }
/// # drop(lock);
/// # std::fs::remove_dir_all(&cache_dir).unwrap();
/// # Ok(())
/// # }
/// ```
pub fn holders(cache_dir: &Path, source_name: &str) -> Result<Vec<Holder>> {
    let dir = args::dir(cache_dir)?;
    let source = args::source(source_name)?;
    let mut out = ptr::null_mut();
    let mut count = 0;
    // SAFETY: the strings are NUL-terminated and live through the call;
    // out and count are valid for it.
    let rc = unsafe { ffi::cachelock_holders(dir.as_ptr(), source.as_ptr(), &mut out, &mut count) };
    if rc < 0 {
        return Err(Error::last_for(rc, &source, ffi::CACHELOCK_F_ANYNAME));
    }
    let entries: &[ffi::cachelock_holder_t] = if out.is_null() {
        &[]
    } else {
        // SAFETY: on success out points to count initialised entries, which
        // stay valid until the free(3) below.
        unsafe { std::slice::from_raw_parts(out, count) }
    };
    let list = entries.iter().map(Holder::from_raw).collect();
    // SAFETY: out came from malloc(3) in the library (or is NULL), and
    // nothing refers to it any more.
    unsafe { libc::free(out.cast()) };
    Ok(list)
}

impl Holder {
    fn from_raw(h: &ffi::cachelock_holder_t) -> Holder {
        // The command is NUL-terminated inside its array; read no further
        // than the array even if it were not.
        let bytes: Vec<u8> = h
            .command
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Holder {
            pid: u32::try_from(h.pid).unwrap_or(0),
            mode: Mode::from_raw(h.mode),
            waiting: h.waiting != 0,
            command: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}
