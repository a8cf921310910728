//! Link flags for the two binaries; the library is untouched.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    // Every command is a short process, and the dynamic loader's first job is to patch
    // the binary's 11k absolute addresses (vtables, string tables) for where it was
    // mapped. As 24-byte RELA entries that is 280 KB read and 0.17M instructions per
    // start; packed (DT_RELR, glibc 2.36) it is a few KB and a tight loop. A linker
    // without the option (binutils < 2.38) warns and links as before.
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
