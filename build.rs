//! Release link of the `lookout` binary on x86-64 Linux: place the functions a running exporter
//! executes (link-order.txt, made by bench/link_order.py) side by side at the start of the code,
//! and pack the start-up relocations where the C library can read them packed.
//!
//! Code is mapped in as it is touched, a few neighbouring pages at a time; spread over the whole
//! binary, the few functions a probe runs keep most of it resident. Laid out together they keep
//! about half as much (README, "Where `/probe`'s memory goes"). Both are options of LLD, the
//! linker rustc uses on this target from 1.90 on; any other toolchain or linker links as before.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let target = env::var("TARGET").unwrap_or_default();
    let own_linker = env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|flags| flags.contains("linker"));
    if !release || target != "x86_64-unknown-linux-gnu" || own_linker || !rustc_links_with_lld() {
        return;
    }
    let order = concat!(env!("CARGO_MANIFEST_DIR"), "/link-order.txt");
    if std::path::Path::new(order).exists() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={order}");
        // Names the list has and this build lacks (renamed functions, another compiler) are
        // skipped: their code is laid out as if no list were given.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    // Relative relocations packed (DT_RELR) are 0.7 MiB fewer bytes to read at start-up; glibc
    // applies them from 2.36 on, and the binary then needs a glibc that does.
    if glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the C library this build links against is glibc `major.minor` or later.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    // "glibc 2.36"
    reported_version("getconf", "GNU_LIBC_VERSION") >= (major, minor)
}

/// rustc links x86_64-unknown-linux-gnu with its own LLD from 1.90.0 on.
fn rustc_links_with_lld() -> bool {
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    reported_version(&rustc, "--version") >= (1, 90)
}

/// The first two numbers of the version a command prints as its second word; (0, 0) when it
/// cannot be run or prints none.
fn reported_version(command: &str, arg: &str) -> (u32, u32) {
    let Ok(out) = Command::new(command).arg(arg).output() else {
        return (0, 0);
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let dotted = text.split_whitespace().nth(1).unwrap_or("");
    let mut numbers = dotted.split('.').map(|n| n.parse().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}
