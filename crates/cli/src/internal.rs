//! Hidden helper modes of the `berth` binary (argv[1] starting with `__`). They run in a
//! single-threaded process because youki's libcontainer forks and must not run inside tokio.

use std::path::Path;

/// Runs a hidden helper mode if argv[1] names one, and exits; otherwise returns.
pub fn dispatch_hidden() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a.starts_with("__")) {
        // Helpers log to their stderr (monitor.log for monitors) when BERTH_DEBUG is set.
        if std::env::var_os("BERTH_DEBUG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
                .try_init();
        }
    }
    let code = match args.get(1).map(String::as_str) {
        Some("__monitor") if args.len() == 3 => berth_engine::monitor::main(Path::new(&args[2])),
        Some("__exec") if args.len() == 5 => {
            berth_engine::exec_helper::main(Path::new(&args[2]), &args[3], &args[4], None)
        }
        Some("__exec") if args.len() == 6 => berth_engine::exec_helper::main(
            Path::new(&args[2]),
            &args[3],
            &args[4],
            Some(Path::new(&args[5])),
        ),
        Some(other) if other.starts_with("__") => {
            eprintln!("berth: unknown or malformed internal command {other}");
            2
        }
        _ => return,
    };
    std::process::exit(code);
}
