//! Links the `berth` binary as a position-dependent executable (`-no-pie`).
//!
//! `berth` execs itself for every container (the monitor, `berth __monitor`) and for every CLI
//! call, and a PIE build of this size carries ~39,000 relative relocations that the dynamic
//! loader applies (touching their pages) at each exec. Measured here: `berth --version` went
//! from 4.1 ms to 2.0 ms of CPU and from 467 to 292 page faults. The cost is ASLR for the
//! binary's own image (shared libraries, stack and heap stay randomised); see
//! docs/benchmarks.md, "Engine: container start".

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
