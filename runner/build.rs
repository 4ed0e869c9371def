//! Links the `stockade` binary for a short process: its code laid out in the order a run
//! executes it, no unwinder to load, and its relocations packed.
//!
//! A cached `stockade run` is over in a couple of milliseconds, and most of them went to page
//! faults: the functions it executes (about 950, 1.5 MB) were spread over 120 of the 64 KiB
//! windows the kernel maps per fault, 7.5 MB of text mapped and torn down for each run. The
//! linker places the functions listed in `link/startup-order.txt` first, in that order, so the
//! code a run, a vet and a conformance worker execute is contiguous. The list is made by
//! `scripts/order-startup-symbols.sh` (callgrind over those commands); a symbol it names that
//! no longer exists is skipped, so a stale list costs speed, never correctness.

fn main() {
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/startup-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    // rust-lld, the default linker of this target since Rust 1.90 (the workspace needs 1.95),
    // reads the list; the other targets, and a build told to link with another linker, link as
    // they always did. Debug builds are left alone: nobody times them.
    let target = std::env::var("TARGET").unwrap_or_default();
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = flags.contains("linker-features") || flags.contains("fuse-ld") || flags.contains("link-self-contained");
    if target != "x86_64-unknown-linux-gnu" || !release || other_linker {
        return;
    }
    if order.exists() {
        println!("cargo:rustc-link-arg-bin=stockade=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bin=stockade=-Wl,--no-warn-symbol-ordering");
    }
    // The unwinder linked in (libgcc_eh) instead of loaded (libgcc_s): one shared object fewer
    // to map and relocate at every start, and libgcc_s's constructor asks `cpuid` twelve times,
    // each a trap to the hypervisor on a virtual machine (3.6 µs apiece here). A cached run was
    // 4-5% faster. Where the C compiler has no libgcc_eh, libgcc_s is loaded as before.
    if libgcc_eh_available() {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
    // Relative relocations packed (DT_RELR): the loader reads 8 KB of them at every start
    // instead of 700 KB of RELA entries (176 pages mapped for nothing but that): a cached run
    // 0.93-0.97x, later 0.96-1.01x. The binary then needs glibc 2.36 (the linker records the need, so an
    // older loader refuses it by name), so only where the glibc that builds it has it.
    if glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bin=stockade=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc (the one a native build runs on) is at least `major.minor`.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output() else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().strip_prefix("glibc ").unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    matches!((parts.next(), parts.next()), (Some(Some(a)), Some(Some(b))) if (a, b) >= (major, minor))
}

/// Whether the C compiler that links (`cc` unless cargo was told otherwise) has the static
/// unwinder: it prints the archive's full path when it does, its bare name when it does not.
fn libgcc_eh_available() -> bool {
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into());
    std::process::Command::new(linker)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .is_ok_and(|out| out.status.success() && std::path::Path::new(String::from_utf8_lossy(&out.stdout).trim()).is_absolute())
}
