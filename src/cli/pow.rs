//! `pow`, linked into the binary so that it does not load glibc's libm.
//!
//! The only function lookout calls from libm is `pow` (tokio's scheduler uses `f64::powf` to
//! weigh its poll-time average). Loading libm.so.6 for it cost 0.55 MiB of resident memory in
//! every process: the loader relocates the library and runs the CPU-feature resolvers of its
//! hundreds of functions. A definition in the executable takes precedence over any shared
//! library's, so the linker (`--as-needed`) then leaves libm out. The `libm` crate (the
//! rust-lang port of musl's math library) computes it as FreeBSD's `e_pow.c` does: nearly
//! correctly rounded, and exact for integer powers that are representable, which is more than a
//! scheduler's running average needs.

/// C's `double pow(double, double)`, for the calls LLVM emits for `f64::powf`.
#[no_mangle]
pub extern "C" fn pow(base: f64, exponent: f64) -> f64 {
    libm::pow(base, exponent)
}
