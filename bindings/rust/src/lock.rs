//! `CacheLock`, the held lock, and `Options`, the builder of acquires.

use std::fmt;
use std::os::raw::c_long;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::time::Duration;

use crate::wait::{Step, Wait, Waiting};
use crate::{args, ffi, Error, Result};

/// How a lock is held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One holder, which excludes every other holder (a writer).  The
    /// original's only mode, and the default.
    #[default]
    Exclusive,
    /// Any number of shared holders together, excluded by an exclusive one
    /// (readers).
    Shared,
}

impl Mode {
    fn raw(self) -> ffi::cachelock_mode_t {
        match self {
            Mode::Exclusive => ffi::CACHELOCK_EXCLUSIVE,
            Mode::Shared => ffi::CACHELOCK_SHARED,
        }
    }

    pub(crate) fn from_raw(mode: ffi::cachelock_mode_t) -> Mode {
        if mode == ffi::CACHELOCK_SHARED {
            Mode::Shared
        } else {
            Mode::Exclusive
        }
    }
}

/// A file lock for cache operations: one source of a cache directory,
/// held until dropped.
///
/// The lock is an `flock(2)` lock on `{cache_dir}/.locks/{source_name}.lock`,
/// the file and the lock of the original `CacheLock` of ccpm/agpm, so
/// programs using either exclude each other.  The kernel releases it when
/// the holder drops it, exits or crashes: there are no stale locks.
///
/// A `CacheLock` is [`Send`] and [`Sync`]: it is declared to the library as
/// owned by no thread (`CACHELOCK_F_UNOWNED`), because a tokio task moves
/// between worker threads, so it may be dropped on any thread and no
/// thread's later acquire of the same source is mistaken for a deadlock.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachelock::Error> {
/// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-type-{}", std::process::id()));
/// use cachelock::CacheLock;
///
/// let lock = CacheLock::acquire(&cache_dir, "community").await?;
/// // ... read and write {cache_dir}/community ...
/// drop(lock); // released
/// # std::fs::remove_dir_all(&cache_dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the CacheLock is dropped"]
pub struct CacheLock {
    raw: NonNull<ffi::cachelock_t>,
    mode: Mode,
}

// SAFETY: the handle is a token into the library's table, guarded by its
// mutex, and the lock was acquired with CACHELOCK_F_UNOWNED: any thread may
// release it (see OWNERSHIP in cachelock.h).
unsafe impl Send for CacheLock {}
// SAFETY: `&self` gives access to nothing but the mode, stored here.
unsafe impl Sync for CacheLock {}

impl CacheLock {
    /// Acquires an exclusive lock for a specific source in the cache
    /// directory.
    ///
    /// This async method creates and acquires an exclusive file lock for
    /// the specified source name, waiting as long as another holder keeps
    /// it.  It never blocks a thread: an uncontended acquire takes the lock
    /// at once, and a wait parks the task until the lock file is closed by
    /// its holder (inotify, through tokio's reactor) or a re-check timer
    /// fires.
    ///
    /// # Lock File Management
    ///
    /// The method performs several setup operations:
    /// 1. **Locks directory creation**: Creates the cache directory and
    ///    `.locks/` if needed (like `mkdir -p`, mode 0777 minus the umask)
    /// 2. **Lock file creation**: Creates `{source_name}.lock` (0666 minus
    ///    the umask), never truncating it and never following a symbolic
    ///    link
    /// 3. **Exclusive locking**: Acquires exclusive access with `flock(2)`,
    ///    then checks that the path still names the file it locked (a lock
    ///    file pruned or renamed meanwhile is never held)
    /// 4. **Handle retention**: The returned `CacheLock` keeps the lock
    ///    until it is dropped
    ///
    /// # Async and Waiting Behavior
    ///
    /// If another process or task already holds a lock for the same source:
    /// - **Async**: The task waits in tokio's reactor; no thread is blocked
    ///   and no `spawn_blocking` is used
    /// - **No timeout**: The task waits until the lock is free; use
    ///   [`Options::timeout`] to give up after a while
    /// - **Cancellable**: Dropping the future (for example with
    ///   `tokio::time::timeout` around it) cancels the wait completely: no
    ///   lock is taken later
    /// - **No queue**: Waiters are woken together when the lock is
    ///   released and one of them gets it, as with the kernel's own
    ///   `flock(2)` waiters
    ///
    /// A task that already holds the source and acquires it again waits for
    /// itself forever, as with the original.
    ///
    /// # Lock File Location
    ///
    /// Lock files are created in a dedicated subdirectory:
    /// ```text
    /// {cache_dir}/.locks/{source_name}.lock
    /// ```
    ///
    /// Examples:
    /// - `~/.agpm/cache/.locks/community.lock`
    /// - `~/.agpm/cache/.locks/work-tools.lock`
    /// - `~/.agpm/cache/.locks/my-project.lock`
    ///
    /// # Parameters
    ///
    /// * `cache_dir` - Root cache directory path
    /// * `source_name` - Unique identifier for the source being locked; a
    ///   portable file name (see [`ErrorKind::InvalidName`](crate::ErrorKind::InvalidName))
    ///
    /// # Returns
    ///
    /// Returns a `CacheLock` instance that holds the exclusive lock. The
    /// lock remains active until the returned instance is dropped.
    ///
    /// # Errors
    ///
    /// The error's [`kind`](Error::kind) says what failed and its message
    /// names the path, e.g. `cannot create lock directory
    /// '/home/user/.agpm/cache/.locks': Permission denied`:
    /// - [`InvalidName`](crate::ErrorKind::InvalidName): the source name
    ///   could escape `.locks/` or is not portable; nothing was created
    /// - [`Io`](crate::ErrorKind::Io): permission denied, disk full, a
    ///   path too long, `.locks` or the lock file a symbolic link or not a
    ///   directory or regular file, out of descriptors, ...
    ///
    /// # Platform Considerations
    ///
    /// - **Linux and other Unix systems**: `flock(2)`, as the original;
    ///   `flock(1)` and Python's filelock use the same lock
    /// - **NFS/Network**: Locks work between clients if the server keeps
    ///   them; a wait notices a release at its next re-check (at most 20
    ///   ms).  Prefer a local directory
    /// - **Docker**: Works within containers with proper volume mounts
    /// - **Runtime**: Must be awaited within a tokio runtime with I/O and
    ///   time enabled (as `#[tokio::main]` and `#[tokio::test]` build it)
    ///   when it has to wait
    ///
    /// # Examples
    ///
    /// Simple lock acquisition:
    ///
    /// ```
    /// use cachelock::CacheLock;
    /// use std::path::PathBuf;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let home = std::env::temp_dir().join(format!("cachelock-doc-acquire-{}", std::process::id()));
    /// let cache_dir = PathBuf::from(&home).join(".agpm/cache");
    ///
    /// // This will wait if another process has the lock
    /// let lock = CacheLock::acquire(&cache_dir, "my-source").await?;
    ///
    /// // Perform cache operations safely...
    /// println!("Lock acquired successfully!");
    ///
    /// // Lock is released when 'lock' variable is dropped
    /// drop(lock);
    /// # std::fs::remove_dir_all(&home)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(cache_dir: &Path, source_name: &str) -> Result<CacheLock> {
        let options = Options::new();
        options.acquire(cache_dir, source_name).await
    }

    /// Acquires the exclusive lock of a source if it is free now; never
    /// waits.
    ///
    /// The same paths and setup as [`CacheLock::acquire`].  A lock held by
    /// anyone, this process included, gives an error of kind
    /// [`Busy`](crate::ErrorKind::Busy).  Not async: it never waits, so it
    /// can be called from synchronous code too.
    ///
    /// # Errors
    ///
    /// [`Busy`](crate::ErrorKind::Busy) when someone holds the lock, else
    /// those of [`CacheLock::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), cachelock::Error> {
    /// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-try-{}", std::process::id()));
    /// use cachelock::{CacheLock, ErrorKind};
    ///
    /// let first = CacheLock::try_acquire(&cache_dir, "registry")?;
    /// let second = CacheLock::try_acquire(&cache_dir, "registry");
    /// assert_eq!(second.unwrap_err().kind(), ErrorKind::Busy);
    /// drop(first);
    /// assert!(CacheLock::try_acquire(&cache_dir, "registry").is_ok());
    /// # std::fs::remove_dir_all(&cache_dir).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(cache_dir: &Path, source_name: &str) -> Result<CacheLock> {
        Options::new().try_acquire(cache_dir, source_name)
    }

    /// The mode the lock is held in.
    ///
    /// ```
    /// # fn main() -> Result<(), cachelock::Error> {
    /// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-mode-{}", std::process::id()));
    /// use cachelock::{Mode, Options};
    ///
    /// let lock = Options::new().shared().try_acquire(&cache_dir, "index")?;
    /// assert_eq!(lock.mode(), Mode::Shared);
    /// # drop(lock);
    /// # std::fs::remove_dir_all(&cache_dir).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Takes over a held lock that the library handed out.
    ///
    /// # Safety
    ///
    /// `raw` must be a held lock acquired with CACHELOCK_F_UNOWNED, in
    /// `mode`, not owned by anything else (it is released on drop).
    pub(crate) unsafe fn from_raw(raw: NonNull<ffi::cachelock_t>, mode: Mode) -> CacheLock {
        CacheLock { raw, mode }
    }
}

impl Drop for CacheLock {
    /// Releases the lock: it is unlocked at once (even if a forked child
    /// still has a copy of the descriptor), and the file stays on disk.
    fn drop(&mut self) {
        // SAFETY: self.raw is a held lock owned by this value alone, and is
        // released only here.
        unsafe { ffi::cachelock_release(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for CacheLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLock")
            .field("mode", &self.mode)
            .finish()
    }
}

/// How to acquire: mode, timeout and the rules for names and files.
///
/// Start from [`Options::new`] (exclusive, wait as long as it takes,
/// portable names, create what is missing), change what you need, then
/// [`acquire`](Options::acquire) or [`try_acquire`](Options::try_acquire).
/// Options are `Copy`: one value can serve any number of acquires.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachelock::Error> {
/// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-options-{}", std::process::id()));
/// use cachelock::{ErrorKind, Options};
/// use std::time::Duration;
///
/// // Readers share the lock; give up after 5 s.
/// let read = Options::new().shared().timeout(Duration::from_secs(5));
/// let a = read.acquire(&cache_dir, "registry").await?;
/// let b = read.acquire(&cache_dir, "registry").await?;
///
/// // A writer waits for both; here it gives up after 10 ms.
/// let write = Options::new().timeout(Duration::from_millis(10));
/// let err = write.acquire(&cache_dir, "registry").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TimedOut);
/// # drop((a, b));
/// # std::fs::remove_dir_all(&cache_dir).unwrap();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    mode: Mode,
    timeout: Option<Duration>,
    any_name: bool,
    no_create: bool,
    fair: bool,
}

impl Options {
    /// Exclusive, waiting as long as it takes, portable names, creating
    /// the cache directory, `.locks` and the lock file when missing: what
    /// [`CacheLock::acquire`] does.
    ///
    /// ```
    /// use cachelock::{Mode, Options};
    /// assert_eq!(Options::new(), Options::new().mode(Mode::Exclusive));
    /// ```
    #[must_use]
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets the mode: [`Mode::Exclusive`] (the default) or
    /// [`Mode::Shared`].
    ///
    /// ```
    /// use cachelock::{Mode, Options};
    /// assert_eq!(Options::new().mode(Mode::Shared), Options::new().shared());
    /// ```
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Options {
        self.mode = mode;
        self
    }

    /// Shared: any number of shared holders together, excluded by an
    /// exclusive one.  The same as `.mode(Mode::Shared)`.
    ///
    /// ```
    /// use cachelock::Options;
    /// let readers = Options::new().shared();
    /// # let _ = readers;
    /// ```
    #[must_use]
    pub fn shared(self) -> Options {
        self.mode(Mode::Shared)
    }

    /// Gives up when the lock is still held by someone else after
    /// `timeout`, with an error of kind
    /// [`TimedOut`](crate::ErrorKind::TimedOut).  Rounded up to whole
    /// milliseconds; zero tries once (kind [`Busy`](crate::ErrorKind::Busy)
    /// when held).  Without it, [`acquire`](Options::acquire) waits as long
    /// as it takes.
    ///
    /// The deadline is kept by the library, so a timed-out acquire leaves
    /// nothing behind; `tokio::time::timeout` around an acquire is just as
    /// clean.
    ///
    /// ```
    /// use cachelock::Options;
    /// use std::time::Duration;
    /// let patient = Options::new().timeout(Duration::from_secs(30));
    /// # let _ = patient;
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Options {
        self.timeout = Some(timeout);
        self
    }

    /// Accepts any source name that is one valid file name on this system
    /// (not empty, `.`, `..`, with a `/`, or over 250 bytes), not only the
    /// portable ones: for caches shared with the original or `flock(1)`,
    /// which use names such as `tools:beta` or `aux`.  Off by default.
    ///
    /// ```
    /// # fn main() -> Result<(), cachelock::Error> {
    /// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-anyname-{}", std::process::id()));
    /// use cachelock::{CacheLock, ErrorKind, Options};
    ///
    /// let refused = CacheLock::try_acquire(&cache_dir, "tools:beta").unwrap_err();
    /// assert_eq!(refused.kind(), ErrorKind::InvalidName);
    /// let lock = Options::new().any_name(true).try_acquire(&cache_dir, "tools:beta")?;
    /// # drop(lock);
    /// # std::fs::remove_dir_all(&cache_dir).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn any_name(mut self, any_name: bool) -> Options {
        self.any_name = any_name;
        self
    }

    /// Whether to create the cache directory, `.locks` and the lock file
    /// when missing (the default).  With `false`, a missing lock file gives
    /// an error of kind `Io(NotFound)` and nothing is created.
    ///
    /// ```
    /// # fn main() {
    /// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-create-{}", std::process::id()));
    /// use cachelock::{ErrorKind, Options};
    /// use std::io;
    ///
    /// let err = Options::new().create(false).try_acquire(&cache_dir, "new").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Io(io::ErrorKind::NotFound));
    /// assert!(!cache_dir.exists());
    /// # }
    /// ```
    #[must_use]
    pub fn create(mut self, create: bool) -> Options {
        self.no_create = !create;
        self
    }

    /// Fair mode: when the lock is taken, or others are queued for it, wait
    /// in a queue and be granted the lock in the order of joining, among
    /// every user of the source that queues (this option, the C library's
    /// `CACHELOCK_F_FAIR`, `cachelock run --fair`, or a cache made fair with
    /// `cachelock fair on`), in every process.  Readers queued back to back
    /// share; a writer is never overtaken by readers that came later.  Other
    /// users of the lock (plain ones, `flock(1)`, the original) still
    /// exclude and are excluded, but do not queue.  Off by default.
    ///
    /// Fair mode needs Linux 3.15 or later, a local filesystem and write
    /// access to the lock file; elsewhere acquiring fails with an error
    /// whose [`raw_os_error`](crate::Error::raw_os_error) is `ENOTSUP` (and
    /// whose message says why) rather than wait unfairly.  A
    /// try never joins the queue: it is [`Busy`](crate::ErrorKind::Busy)
    /// while anyone is queued, and a cancelled wait gives its place up.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachelock::Error> {
    /// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-fair-{}", std::process::id()));
    /// use cachelock::Options;
    ///
    /// let lock = Options::new().fair(true).acquire(&cache_dir, "registry").await?;
    /// # drop(lock);
    /// # std::fs::remove_dir_all(&cache_dir).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn fair(mut self, fair: bool) -> Options {
        self.fair = fair;
        self
    }

    /// Acquires the lock of a source with these options: as
    /// [`CacheLock::acquire`], in this mode, giving up after the timeout if
    /// there is one.
    ///
    /// # Errors
    ///
    /// Those of [`CacheLock::acquire`], and
    /// [`TimedOut`](crate::ErrorKind::TimedOut) when the lock is still held
    /// by someone else when the timeout runs out
    /// ([`Busy`](crate::ErrorKind::Busy) for a zero timeout);
    /// `Io(NotFound)` without [`create`](Options::create) when the lock file
    /// does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cachelock::Error> {
    /// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-oacquire-{}", std::process::id()));
    /// use cachelock::Options;
    /// use std::time::Duration;
    ///
    /// let lock = Options::new()
    ///     .shared()
    ///     .timeout(Duration::from_secs(5))
    ///     .acquire(&cache_dir, "registry")
    ///     .await?;
    /// # drop(lock);
    /// # std::fs::remove_dir_all(&cache_dir).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(&self, cache_dir: &Path, source_name: &str) -> Result<CacheLock> {
        let wait = {
            let dir = args::dir(cache_dir)?;
            let source = args::source(source_name)?;
            let mut wait = Wait::start(&dir, &source, &self.raw(self.timeout_ms()), self.mode)?;
            match wait.step() {
                Step::Held(lock) => return Ok(lock),
                Step::Failed(err) => return Err(err),
                Step::InProgress => wait,
            }
        };
        Waiting::new(wait).await
    }

    /// Acquires the lock of a source if it is free now, with these options
    /// (the timeout is ignored); never waits.  As
    /// [`CacheLock::try_acquire`], in this mode.
    ///
    /// # Errors
    ///
    /// [`Busy`](crate::ErrorKind::Busy) when someone holds the lock in a
    /// conflicting mode, else those of [`Options::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), cachelock::Error> {
    /// # let cache_dir = std::env::temp_dir().join(format!("cachelock-doc-otry-{}", std::process::id()));
    /// use cachelock::Options;
    ///
    /// let shared = Options::new().shared();
    /// let a = shared.try_acquire(&cache_dir, "index")?;
    /// let b = shared.try_acquire(&cache_dir, "index")?;
    /// assert!(Options::new().try_acquire(&cache_dir, "index").is_err());
    /// # drop((a, b));
    /// # std::fs::remove_dir_all(&cache_dir).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_acquire(&self, cache_dir: &Path, source_name: &str) -> Result<CacheLock> {
        let dir = args::dir(cache_dir)?;
        let source = args::source(source_name)?;
        let opts = self.raw(0);
        let mut raw = ptr::null_mut();
        // SAFETY: the strings are NUL-terminated and live through the call;
        // opts and raw are valid for it.
        let rc =
            unsafe { ffi::cachelock_acquire_ex(dir.as_ptr(), source.as_ptr(), &opts, &mut raw) };
        match NonNull::new(raw) {
            // SAFETY: 0 hands out a held lock, acquired unowned in self.mode.
            Some(raw) if rc == 0 => Ok(unsafe { CacheLock::from_raw(raw, self.mode) }),
            _ => Err(Error::last_for(rc, &source, opts.flags)),
        }
    }

    /// The timeout in the library's terms: -1 forever, else milliseconds
    /// rounded up, saturated.
    fn timeout_ms(&self) -> c_long {
        match self.timeout {
            None => -1,
            Some(t) => {
                let ms = t.as_millis() + u128::from(t.subsec_nanos() % 1_000_000 != 0);
                c_long::try_from(ms).unwrap_or(c_long::MAX)
            }
        }
    }

    /// The library's options; every lock is unowned (see [`CacheLock`]).
    fn raw(&self, timeout_ms: c_long) -> ffi::cachelock_options_t {
        let mut flags = ffi::CACHELOCK_F_UNOWNED;
        if self.any_name {
            flags |= ffi::CACHELOCK_F_ANYNAME;
        }
        if self.no_create {
            flags |= ffi::CACHELOCK_F_NOCREATE;
        }
        if self.fair {
            flags |= ffi::CACHELOCK_F_FAIR;
        }
        ffi::cachelock_options_t {
            version: ffi::CACHELOCK_OPTIONS_VERSION,
            mode: self.mode.raw(),
            timeout_ms,
            flags,
        }
    }
}
