//! Hidden helper modes of the `berth` binary (argv[1] starting with `__`). They run in a
//! single-threaded process because youki's libcontainer forks and must not run inside tokio.

/// Runs a hidden helper mode if argv[1] names one, and exits; otherwise returns.
pub fn dispatch_hidden() {}
