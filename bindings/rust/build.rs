//! Finds libcachelock for the crate to link, in this order:
//!
//! 1. `CACHELOCK_LIB_DIR`: a directory with `libcachelock.a` (what the
//!    repository's `make rust` and its tests set, to the build directory);
//! 2. the repository around the crate (`../../Makefile` and
//!    `../../include/cachelock.h`): `make` builds the static library into
//!    `OUT_DIR`, so `cargo build` works from a fresh checkout;
//! 3. `pkg-config cachelock`, for an installed library.
//!
//! The static library needs the thread library.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CACHELOCK_LIB_DIR");

    if let Some(dir) = env::var_os("CACHELOCK_LIB_DIR") {
        let dir = PathBuf::from(dir);
        let lib = dir.join("libcachelock.a");
        if !lib.is_file() {
            panic!(
                "CACHELOCK_LIB_DIR is {}, which has no libcachelock.a (run make there)",
                dir.display()
            );
        }
        println!("cargo:rerun-if-changed={}", lib.display());
        link_static(&dir);
        return;
    }

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let repo = manifest.join("../..");
    if repo.join("Makefile").is_file() && repo.join("include/cachelock.h").is_file() {
        build_in_repository(&repo);
        return;
    }

    if pkg_config() {
        return;
    }
    panic!(
        "libcachelock not found: set CACHELOCK_LIB_DIR to the directory of libcachelock.a, \
         build the crate inside the cachelock repository, or install the library \
         (make install) so that pkg-config finds cachelock"
    );
}

fn link_static(dir: &Path) {
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=cachelock");
    println!("cargo:rustc-link-lib=pthread");
}

/// `make BUILD=$OUT_DIR/c $OUT_DIR/c/libcachelock.a` in the repository.
fn build_in_repository(repo: &Path) {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("c");
    for dir in ["src", "include"] {
        println!("cargo:rerun-if-changed={}", repo.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", repo.join("Makefile").display());
    let make = env::var_os("MAKE").unwrap_or_else(|| "make".into());
    let status = Command::new(&make)
        .arg("-C")
        .arg(repo)
        .arg(format!("BUILD={}", out.display()))
        .arg(out.join("libcachelock.a"))
        // Cargo's own jobserver variables are not for this make.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {make:?} to build libcachelock: {e}"));
    if !status.success() {
        panic!("building libcachelock with make failed ({status})");
    }
    link_static(&out);
}

/// The installed library, as `pkg-config --libs --static cachelock` says.
fn pkg_config() -> bool {
    let output = match Command::new("pkg-config")
        .args(["--libs", "--static", "cachelock"])
        .output()
    {
        Ok(output) if output.status.success() => output,
        _ => return false,
    };
    let libs = String::from_utf8_lossy(&output.stdout);
    let mut dirs = Vec::new();
    for flag in libs.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
            dirs.push(PathBuf::from(dir));
        } else if let Some(lib) = flag.strip_prefix("-l") {
            // The static library where it is installed, as from the build
            // directory: the program then needs no loader path to run.
            let archive = format!("lib{lib}.a");
            if lib == "cachelock" && dirs.iter().any(|d| d.join(&archive).is_file()) {
                println!("cargo:rustc-link-lib=static={lib}");
            } else {
                println!("cargo:rustc-link-lib={lib}");
            }
        } else if flag == "-pthread" {
            println!("cargo:rustc-link-lib=pthread");
        }
    }
    true
}
