//! The C API of libcachelock, declared by hand from `include/cachelock.h`
//! (version 0.3.0).  Only what the crate calls is declared; every item keeps
//! its C name so that the header is the manual for it.
//!
//! Layouts follow the C compiler's: an enum is an `int`, `long` is
//! `c_long`; the unit test at the end checks the sizes on LP64 systems.

#![allow(non_camel_case_types)]

use libc::{c_char, c_int, c_long, c_uint, c_void, size_t};

/// `cachelock_t`: a held lock, opaque.  Pointers to it are tokens, never
/// dereferenced.
#[repr(C)]
pub struct cachelock_t {
    _opaque: [u8; 0],
}

/// `cachelock_wait_t`: an acquire in progress, opaque.
#[repr(C)]
pub struct cachelock_wait_t {
    _opaque: [u8; 0],
}

/// `cachelock_mode_t`, an enum: `int` in the C ABI.
pub type cachelock_mode_t = c_int;
pub const CACHELOCK_EXCLUSIVE: cachelock_mode_t = 0;
pub const CACHELOCK_SHARED: cachelock_mode_t = 1;

pub const CACHELOCK_OPTIONS_VERSION: c_int = 1;
pub const CACHELOCK_F_NOCREATE: c_uint = 0x1;
pub const CACHELOCK_F_UNOWNED: c_uint = 0x2;
pub const CACHELOCK_F_ANYNAME: c_uint = 0x4;
pub const CACHELOCK_F_FAIR: c_uint = 0x10;

/// `cachelock_options_t`; always built with every field set (the
/// equivalent of starting from `CACHELOCK_OPTIONS_INIT`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct cachelock_options_t {
    pub version: c_int,
    pub mode: cachelock_mode_t,
    pub timeout_ms: c_long,
    pub flags: c_uint,
}

/// `cachelock_holder_t`.
#[repr(C)]
pub struct cachelock_holder_t {
    pub pid: c_int,
    pub mode: cachelock_mode_t,
    pub waiting: c_int,
    pub command: [c_char; 256],
}

/// `cachelock_prune_status_t`, an enum: `int` in the C ABI.
pub type cachelock_prune_status_t = c_int;
pub const CACHELOCK_PRUNE_REMOVED: cachelock_prune_status_t = 0;
pub const CACHELOCK_PRUNE_BUSY: cachelock_prune_status_t = 1;
pub const CACHELOCK_PRUNE_RECENT: cachelock_prune_status_t = 2;

pub const CACHELOCK_PRUNE_DRY_RUN: c_uint = 0x1;

/// `cachelock_prune_fn`.
pub type cachelock_prune_fn = Option<
    unsafe extern "C" fn(
        source: *const c_char,
        status: cachelock_prune_status_t,
        err: c_int,
        ctx: *mut c_void,
    ),
>;

extern "C" {
    pub fn cachelock_acquire_ex(
        cache_dir: *const c_char,
        source: *const c_char,
        opts: *const cachelock_options_t,
        out: *mut *mut cachelock_t,
    ) -> c_int;
    pub fn cachelock_release(lock: *mut cachelock_t);
    pub fn cachelock_close_idle() -> c_int;

    pub fn cachelock_wait_start(
        cache_dir: *const c_char,
        source: *const c_char,
        opts: *const cachelock_options_t,
        out: *mut *mut cachelock_wait_t,
    ) -> c_int;
    pub fn cachelock_wait_step(wait: *mut cachelock_wait_t, out: *mut *mut cachelock_t) -> c_int;
    pub fn cachelock_wait_fd(wait: *const cachelock_wait_t) -> c_int;
    pub fn cachelock_wait_timeout(wait: *const cachelock_wait_t) -> c_int;
    pub fn cachelock_wait_free(wait: *mut cachelock_wait_t);

    pub fn cachelock_check_name_ex(source: *const c_char, flags: c_uint) -> c_int;
    pub fn cachelock_path_ex(
        cache_dir: *const c_char,
        source: *const c_char,
        flags: c_uint,
        buf: *mut c_char,
        size: size_t,
    ) -> c_int;
    pub fn cachelock_strerror(err: c_int) -> *const c_char;
    pub fn cachelock_errmsg() -> *const c_char;
    pub fn cachelock_version() -> *const c_char;

    pub fn cachelock_prune(
        cache_dir: *const c_char,
        older_than_ms: c_long,
        flags: c_uint,
        report: cachelock_prune_fn,
        ctx: *mut c_void,
    ) -> c_int;
    pub fn cachelock_holders(
        cache_dir: *const c_char,
        source: *const c_char,
        out: *mut *mut cachelock_holder_t,
        count: *mut size_t,
    ) -> c_int;
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_c_layouts_on_lp64() {
        // int, enum, (padding), long, unsigned, (padding)
        assert_eq!(std::mem::size_of::<cachelock_options_t>(), 24);
        // int, enum, int, char[256]
        assert_eq!(std::mem::size_of::<cachelock_holder_t>(), 268);
    }
}
