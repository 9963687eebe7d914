//! The `berth` binary: a thin layer of clap structs over the Berth crates.

mod internal;

fn main() {
    // Hidden helper modes (container monitor, exec helper) must run single-threaded, before any
    // async runtime exists; they are dispatched here by argv[1] and never return.
    internal::dispatch_hidden();
    println!("berth: not built yet");
}
