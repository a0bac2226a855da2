//! The crate's one error type, made from the library's codes and messages.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::raw::c_int;

use crate::ffi;

/// What an [`Error`] means, to match on (as [`std::io::Error::kind`]).
///
/// Busy and timed out are outcomes, not failures of the system: someone
/// else holds the lock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("cachelock-doc-kind-{}", std::process::id()));
/// use cachelock::{CacheLock, ErrorKind};
///
/// let held = CacheLock::acquire(&dir, "registry").await?;
/// match CacheLock::try_acquire(&dir, "registry") {
///     Ok(_lock) => println!("got it"),
///     Err(e) if e.kind() == ErrorKind::Busy => println!("busy: {e}"),
///     Err(e) => return Err(e.into()),
/// }
/// # drop(held);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The lock is held by someone else and the call was not to wait: a
    /// try, or a zero timeout (the library's `-EWOULDBLOCK`).
    Busy,
    /// The lock was still held by someone else when the timeout ran out
    /// (`-ETIMEDOUT`).
    TimedOut,
    /// The library refused a wait that could never end, because the
    /// calling thread itself holds the lock in a conflicting mode
    /// (`-EDEADLK`).  This crate declares every lock it takes as owned by
    /// no thread (a task moves between threads), and its waits are
    /// asynchronous, so its acquires do not return this kind; it is here so
    /// that every code of the library has a kind.
    WouldDeadlock,
    /// The source name is refused (`-EINVAL` or `-ENAMETOOLONG` for the
    /// name), and nothing was created: empty, `.` or `..`, a `/` or `\`,
    /// control characters, `< > : " | ? *`, a trailing dot or space, a
    /// Windows device name, a NUL byte, or longer than 250 bytes.  See
    /// [`Options::any_name`](crate::Options::any_name) for caches shared with
    /// tools that use such names.
    InvalidName,
    /// Anything else: the error of the system call that failed (or an
    /// invalid argument other than the name), as [`std::io::ErrorKind`];
    /// [`Error::raw_os_error`] has the errno.
    Io(io::ErrorKind),
}

/// The error of every fallible call of this crate: the library's one-line
/// message, which names the operation and the path, and a
/// [`kind`](Error::kind) to match on.
///
/// It implements [`std::error::Error`] (so `?` turns it into
/// `anyhow::Error` or `Box<dyn Error>`, as with the original) and converts
/// into [`std::io::Error`], keeping the message.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let dir = std::env::temp_dir();
/// use cachelock::{CacheLock, ErrorKind};
///
/// let err = CacheLock::acquire(&dir, "../escape").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidName);
/// assert_eq!(err.raw_os_error(), libc::EINVAL);
/// assert!(err.to_string().starts_with("invalid source name '../escape'"));
/// # }
/// ```
pub struct Error {
    kind: ErrorKind,
    errno: i32,
    message: String,
}

impl Error {
    /// What the error means.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The errno of the failure, positive (`libc::EWOULDBLOCK` for busy,
    /// `libc::ETIMEDOUT` for timed out, and so on): the library's negative
    /// code, negated.
    pub fn raw_os_error(&self) -> i32 {
        self.errno
    }

    /// The error of the library's last failure in this thread, which
    /// returned `code` (negative).  Must be called right after that call,
    /// on the same thread: the message is per thread.
    pub(crate) fn last(code: c_int) -> Error {
        // SAFETY: cachelock_errmsg() never returns NULL; the string lives
        // in a buffer of the calling thread until its next failing call,
        // and is copied out here before anything else calls the library.
        let message = unsafe { CStr::from_ptr(ffi::cachelock_errmsg()) }
            .to_string_lossy()
            .into_owned();
        Error::new(code, message)
    }

    /// As [`Error::last`], but an invalid argument is the name's fault when
    /// the library refuses the name alone.
    pub(crate) fn last_for(code: c_int, source: &CStr, flags: u32) -> Error {
        let mut err = Error::last(code);
        if code == -libc::EINVAL || code == -libc::ENAMETOOLONG {
            // SAFETY: source is a valid NUL-terminated string; the call
            // only reads it.  (Its message, if any, replaces the one copied
            // above in the thread's buffer, which is no longer needed.)
            let name = unsafe {
                ffi::cachelock_check_name_ex(source.as_ptr(), flags & ffi::CACHELOCK_F_ANYNAME)
            };
            if name < 0 {
                err.kind = ErrorKind::InvalidName;
            }
        }
        err
    }

    /// An error found by the crate itself, with the library's conventions
    /// (lowercase, no full stop, what failed first).
    pub(crate) fn new(code: c_int, message: String) -> Error {
        let errno = code.checked_neg().unwrap_or(libc::EINVAL).max(0);
        let message = if message.is_empty() {
            // SAFETY: cachelock_strerror() returns a static string, never
            // NULL, for any code.
            unsafe { CStr::from_ptr(ffi::cachelock_strerror(code)) }
                .to_string_lossy()
                .into_owned()
        } else {
            message
        };
        let kind = match errno {
            libc::EWOULDBLOCK => ErrorKind::Busy,
            libc::ETIMEDOUT => ErrorKind::TimedOut,
            libc::EDEADLK => ErrorKind::WouldDeadlock,
            _ => ErrorKind::Io(io::Error::from_raw_os_error(errno).kind()),
        };
        Error {
            kind,
            errno,
            message,
        }
    }

    pub(crate) fn invalid_name(message: String) -> Error {
        let mut err = Error::new(-libc::EINVAL, message);
        err.kind = ErrorKind::InvalidName;
        err
    }
}

impl fmt::Display for Error {
    /// The library's message, e.g. `cannot create lock directory
    /// '/x/.locks': Permission denied`: lowercase, no full stop, ready to
    /// be prefixed with a program's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("errno", &self.errno)
            .field("message", &self.message)
            .finish()
    }
}

/// The message already includes the system's text for the errno, so there
/// is no separate source.
impl std::error::Error for Error {}

impl From<Error> for io::Error {
    /// An [`std::io::Error`] of the errno's kind (`WouldBlock` for busy,
    /// `TimedOut`, `InvalidInput` for a name, ...) carrying the message.
    fn from(err: Error) -> io::Error {
        let kind = match err.kind {
            ErrorKind::Busy => io::ErrorKind::WouldBlock,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::InvalidName => io::ErrorKind::InvalidInput,
            ErrorKind::WouldDeadlock => io::Error::from_raw_os_error(err.errno).kind(),
            ErrorKind::Io(kind) => kind,
        };
        io::Error::new(kind, err)
    }
}
