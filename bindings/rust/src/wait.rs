//! The asynchronous acquire: the library's wait machine
//! (`cachelock_wait_start()` and friends) driven by tokio.
//!
//! ```text
//!   start ──> step ──held──────> CacheLock
//!              │  └──final─────> Error (busy, timed out, a system error)
//!              │ in progress
//!              v
//!   arm: register cachelock_wait_fd() with tokio's reactor (AsyncFd), set
//!        a timer to cachelock_wait_timeout()
//!              │
//!              v
//!   Pending until the descriptor is readable or the timer fires, then
//!   deregister and step again
//! ```
//!
//! The first step runs before anything is registered, so an uncontended
//! acquire costs the library's calls and nothing of tokio.  No thread ever
//! blocks: a step never does, and between steps the task is parked in the
//! reactor like any socket read.  Dropping the future frees the wait, which
//! cancels it completely: the library holds nothing for it afterwards and
//! no lock can arrive later.
//!
//! The descriptor is deregistered before every step because a step may
//! close it or give it back to the library's pool of idle inotify
//! instances, where another wait (on another worker thread) can take it at
//! once: a registration left behind would then make that wait's
//! registration fail, or be removed by ours.  Registering again costs two
//! `epoll_ctl` calls per wake-up of a contended wait, and loses nothing:
//! the step tries the lock before it drains the descriptor, and epoll
//! reports a descriptor that is readable when it is added.

use std::ffi::CStr;
use std::future::Future;
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::{Instant, Sleep};

use crate::{ffi, CacheLock, Error, Mode, Result};

/// Steps one poll may take before it yields to the scheduler, should the
/// library ask for step after step (a re-check due at once).
const STEPS_PER_POLL: u32 = 8;

/// A `cachelock_wait_t`, freed (and so cancelled) on drop.
pub(crate) struct Wait {
    raw: NonNull<ffi::cachelock_wait_t>,
    mode: Mode,
}

// SAFETY: a wait has no thread affinity: the library keeps nothing of it per
// thread (it checks the process, not the thread, that steps it), and locks
// it hands out are acquired with CACHELOCK_F_UNOWNED.  Steps and the free
// take `&mut self` or `self`, so they never run concurrently.
unsafe impl Send for Wait {}
// SAFETY: through `&self` only cachelock_wait_fd() and
// cachelock_wait_timeout() are called, which only read the wait.
unsafe impl Sync for Wait {}

/// What a step came to.
pub(crate) enum Step {
    Held(CacheLock),
    InProgress,
    Failed(Error),
}

impl Wait {
    /// Starts a wait; `opts` carries CACHELOCK_F_UNOWNED.
    pub(crate) fn start(
        dir: &CStr,
        source: &CStr,
        opts: &ffi::cachelock_options_t,
        mode: Mode,
    ) -> Result<Wait> {
        let mut raw = ptr::null_mut();
        // SAFETY: the strings are NUL-terminated and outlive the call (the
        // wait keeps its own copy of the path); opts and raw are valid for
        // the call.
        let rc =
            unsafe { ffi::cachelock_wait_start(dir.as_ptr(), source.as_ptr(), opts, &mut raw) };
        match NonNull::new(raw) {
            Some(raw) if rc == 0 => Ok(Wait { raw, mode }),
            _ => Err(Error::last_for(rc, source, opts.flags)),
        }
    }

    /// One step; never blocks.
    pub(crate) fn step(&mut self) -> Step {
        let mut lock = ptr::null_mut();
        // SAFETY: self.raw is a live wait (freed only on drop); lock is
        // valid for the call.
        let rc = unsafe { ffi::cachelock_wait_step(self.raw.as_ptr(), &mut lock) };
        if rc == -libc::EINPROGRESS {
            return Step::InProgress;
        }
        match NonNull::new(lock) {
            // SAFETY: a step that returns 0 hands out a held lock, acquired
            // unowned (the flag was in the options of the start).
            Some(lock) if rc == 0 => Step::Held(unsafe { CacheLock::from_raw(lock, self.mode) }),
            _ => Step::Failed(Error::last(rc)),
        }
    }

    /// The descriptor to wait on for readability, if there is one.
    fn fd(&self) -> Option<RawFd> {
        // SAFETY: self.raw is a live wait.
        let fd = unsafe { ffi::cachelock_wait_fd(self.raw.as_ptr()) };
        if fd >= 0 {
            Some(fd)
        } else {
            None
        }
    }

    /// How long until the next step is due at the latest.
    fn timeout(&self) -> Duration {
        // SAFETY: self.raw is a live wait.
        let ms = unsafe { ffi::cachelock_wait_timeout(self.raw.as_ptr()) };
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        // SAFETY: self.raw is a live wait, freed only here.  A lock that a
        // step already handed out is not touched.
        unsafe { ffi::cachelock_wait_free(self.raw.as_ptr()) }
    }
}

/// The wait's descriptor, borrowed: the library owns and closes it.
struct WatchFd(RawFd);

impl AsRawFd for WatchFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The rest of an acquire whose first step found the lock busy.
pub(crate) struct Waiting {
    // Fields drop in this order: the reactor's registration of the wait's
    // descriptor goes before the wait that owns the descriptor.
    watch: Option<AsyncFd<WatchFd>>,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// False once the reactor failed the registration (it is shutting
    /// down): the timer alone then drives the wait.
    use_watch: bool,
    wait: Wait,
}

impl Waiting {
    pub(crate) fn new(wait: Wait) -> Waiting {
        Waiting {
            watch: None,
            timer: None,
            armed: false,
            use_watch: true,
            wait,
        }
    }

    /// Registers the descriptor and sets the timer for the next step.
    fn arm(&mut self) {
        // Registration fails only when the reactor cannot take the
        // descriptor; the timer, at most CACHELOCK_RECHECK_MAX_MS away, is
        // the library's own fallback for a wait without inotify.
        self.watch = match self.wait.fd() {
            Some(fd) if self.use_watch => {
                AsyncFd::with_interest(WatchFd(fd), Interest::READABLE).ok()
            }
            _ => None,
        };
        let deadline = Instant::now() + self.wait.timeout();
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.armed = true;
    }

    /// Whether the next step is due; if not, both wake-ups are registered
    /// with `cx`.
    fn due(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(watch) = &self.watch {
            match watch.poll_read_ready(cx) {
                Poll::Ready(Ok(_)) => return true,
                Poll::Ready(Err(_)) => {
                    self.watch = None;
                    self.use_watch = false;
                }
                Poll::Pending => {}
            }
        }
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().poll(cx).is_ready(),
            None => true,
        }
    }
}

impl Future for Waiting {
    type Output = Result<CacheLock>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<CacheLock>> {
        let this = &mut *self;
        for _ in 0..STEPS_PER_POLL {
            if !this.armed {
                this.arm();
            }
            if !this.due(cx) {
                return Poll::Pending;
            }
            // Deregister before stepping: see the top of this file.
            this.watch = None;
            this.armed = false;
            match this.wait.step() {
                Step::Held(lock) => return Poll::Ready(Ok(lock)),
                Step::Failed(err) => return Poll::Ready(Err(err)),
                Step::InProgress => {}
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
