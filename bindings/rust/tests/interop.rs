//! Interop with the original: another process locks the way the original's
//! `CacheLock::acquire` does (`create_dir_all` of `.locks`, then
//! `OpenOptions` create + write without truncating, then an exclusive
//! `flock(2)`, which is what fs4's `lock_exclusive` and std's `File::lock`
//! do on Unix), and it and the crate exclude each other both ways.
//!
//! The other process is this test binary again, running only
//! `child_process_locking_like_the_original` with CACHELOCK_TEST_ORIGINAL
//! set to its role; it reports on stderr, one `original: ...` line per
//! step, and waits for a line on stdin where it must.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use cachelock::{holders, CacheLock, ErrorKind, Mode, Options};
use common::{runtime, Flavor, TempDir};

const ROLE: &str = "CACHELOCK_TEST_ORIGINAL";
const DIR: &str = "CACHELOCK_TEST_ORIGINAL_DIR";
const SOURCE: &str = "shared-with-original";

/// Opens the lock file the way the original does.
fn open_like_the_original(cache_dir: &Path, source_name: &str) -> File {
    let locks_dir = cache_dir.join(".locks");
    std::fs::create_dir_all(&locks_dir).unwrap();
    let lock_path = locks_dir.join(format!("{source_name}.lock"));
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(lock_path)
        .unwrap()
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: flock(2) on a descriptor that file owns and keeps open for
    // the call.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The other process.  Without CACHELOCK_TEST_ORIGINAL (a normal test
/// run) it does nothing.
#[test]
fn child_process_locking_like_the_original() {
    let role = match std::env::var(ROLE) {
        Ok(role) => role,
        Err(_) => return,
    };
    let cache_dir = PathBuf::from(std::env::var_os(DIR).unwrap());
    let file = open_like_the_original(&cache_dir, SOURCE);
    match role.as_str() {
        // Take the lock, hold it until told, then let go by closing.
        "hold" => {
            flock(&file, libc::LOCK_EX).unwrap();
            eprintln!("original: locked");
            let mut line = String::new();
            io::stdin().read_line(&mut line).unwrap();
            drop(file);
            eprintln!("original: released");
        }
        // Find it busy, then wait for it in flock(2), as the original.
        "wait" => {
            let err = flock(&file, libc::LOCK_EX | libc::LOCK_NB).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EWOULDBLOCK));
            eprintln!("original: busy");
            eprintln!("original: waiting");
            flock(&file, libc::LOCK_EX).unwrap();
            eprintln!("original: locked");
        }
        other => panic!("unknown role {other}"),
    }
}

/// The other process, seen from the test.
struct Original {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: BufReader<ChildStderr>,
}

impl Original {
    fn spawn(role: &str, cache_dir: &Path) -> Original {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_process_locking_like_the_original",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE, role)
            .env(DIR, cache_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Original {
            stdin: child.stdin.take(),
            stderr: BufReader::new(child.stderr.take().unwrap()),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads its reports up to `original: {what}`.
    fn expect(&mut self, what: &str) {
        let want = format!("original: {what}");
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if self.stderr.read_line(&mut line).unwrap() == 0 {
                panic!("the original ended before saying '{want}'; it said:\n{seen}");
            }
            if line.trim_end() == want {
                return;
            }
            seen.push_str(&line);
        }
    }

    /// Tells a holder to let go.
    fn release(&mut self) {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"release\n").unwrap();
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

#[test]
fn the_original_holding_excludes_the_crate() {
    let temp_dir = TempDir::new().unwrap();
    let cache_dir = temp_dir.path();
    let mut original = Original::spawn("hold", cache_dir);
    original.expect("locked");

    // Tries, exclusive and shared, find it busy.
    let busy = CacheLock::try_acquire(cache_dir, SOURCE).unwrap_err();
    assert_eq!(busy.kind(), ErrorKind::Busy);
    let busy = Options::new()
        .shared()
        .try_acquire(cache_dir, SOURCE)
        .unwrap_err();
    assert_eq!(busy.kind(), ErrorKind::Busy);

    let rt = runtime(Flavor::MultiThread);
    rt.block_on(async {
        // A timed acquire runs out.
        let timed = Options::new()
            .timeout(Duration::from_millis(50))
            .acquire(cache_dir, SOURCE)
            .await
            .unwrap_err();
        assert_eq!(timed.kind(), ErrorKind::TimedOut);

        // An acquire waits until the original closes its file, then gets it.
        let dir = cache_dir.to_path_buf();
        let waiter = tokio::spawn(async move { CacheLock::acquire(&dir, SOURCE).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "the crate got a lock the original holds"
        );
        original.release();
        let lock = waiter.await.unwrap().unwrap();
        assert_eq!(lock.mode(), Mode::Exclusive);
        original.expect("released");
    });
    original.finish();
}

/// Waits until the kernel's lock table shows `pid` blocked on the source
/// behind this process, which holds it in `mode`.  (One reading of the
/// table may miss an entry while other processes' locks come and go: look
/// again until both are seen.)
fn wait_until_blocked(cache_dir: &Path, pid: u32, mode: Mode) {
    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let who = holders(cache_dir, SOURCE).unwrap();
        let blocked = who.iter().any(|h| h.pid == pid && h.waiting);
        let holding = who
            .iter()
            .any(|h| h.pid == me && h.mode == mode && !h.waiting);
        if blocked && holding {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the original is not seen waiting behind us: {who:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn the_crate_holding_excludes_the_original() {
    let temp_dir = TempDir::new().unwrap();
    let cache_dir = temp_dir.path();
    let rt = runtime(Flavor::CurrentThread);
    for mode in [Mode::Exclusive, Mode::Shared] {
        let lock = rt
            .block_on(Options::new().mode(mode).acquire(cache_dir, SOURCE))
            .unwrap();
        let mut original = Original::spawn("wait", cache_dir);
        original.expect("busy");
        original.expect("waiting");
        // Blocked in flock(2) on our lock file, behind our lock.
        wait_until_blocked(cache_dir, original.pid(), mode);
        drop(lock);
        original.expect("locked");
        original.finish();
    }
}
