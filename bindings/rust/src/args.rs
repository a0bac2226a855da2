//! Rust arguments to C strings, refused the library's way when they cannot
//! be one (a NUL byte inside).

use std::ffi::CString;
use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::{Error, Result};

/// The cache directory as a C string.
pub(crate) fn dir(cache_dir: &Path) -> Result<CString> {
    CString::new(cache_dir.as_os_str().as_bytes()).map_err(|_| {
        Error::new(
            -libc::EINVAL,
            format!(
                "invalid cache directory '{}': contains a NUL byte",
                shown(cache_dir.as_os_str().as_bytes())
            ),
        )
    })
}

/// The source name as a C string.
pub(crate) fn source(source_name: &str) -> Result<CString> {
    CString::new(source_name).map_err(|_| {
        Error::invalid_name(format!(
            "invalid source name '{}': contains a NUL byte",
            shown(source_name.as_bytes())
        ))
    })
}

/// Bytes as the library's messages show them: UTF-8 as is, but control
/// characters and bytes that are not UTF-8 as `\xNN`.
fn shown(mut bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    loop {
        let (valid, invalid) = match std::str::from_utf8(bytes) {
            Ok(valid) => (valid, 0),
            Err(e) => {
                let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("");
                let rest = bytes.len() - e.valid_up_to();
                (valid, e.error_len().unwrap_or(rest))
            }
        };
        for c in valid.chars() {
            if c < ' ' || c == '\x7f' {
                let _ = write!(s, "\\x{:02x}", u32::from(c));
            } else {
                s.push(c);
            }
        }
        bytes = &bytes[valid.len()..];
        if invalid == 0 {
            return s;
        }
        for b in &bytes[..invalid] {
            let _ = write!(s, "\\x{b:02x}");
        }
        bytes = &bytes[invalid..];
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shown_escapes_control_characters_and_what_is_not_utf8() {
        assert_eq!(
            super::shown(b"a\0b\xc3\xa9 \\c\x7f\xff\xc3"),
            "a\\x00b\u{e9} \\c\\x7f\\xff\\xc3"
        );
    }
}
