//! Rendering Docker's JSON progress lines (pull, push): on a terminal one line per layer,
//! redrawn in place with a bar; otherwise plain lines, one per change of a layer's status
//! (byte counts are not repeated), so logs stay short.

use std::collections::HashMap;
use std::io::Write as _;

use berth_engine_client::JsonMessage;

/// Prints progress messages; remembers where each layer's line is.
pub struct ProgressPrinter {
    tty: bool,
    quiet: bool,
    /// Lines printed so far (terminal mode).
    printed: usize,
    /// Layer id -> (line index, last status).
    layers: HashMap<String, (usize, String)>,
    /// Print to stderr (a pull made by `run`/`create`, whose stdout is the container's).
    stderr: bool,
}

impl ProgressPrinter {
    pub fn new(tty: bool, quiet: bool) -> Self {
        Self {
            tty,
            quiet,
            printed: 0,
            layers: HashMap::new(),
            stderr: false,
        }
    }

    /// The same, printing to stderr.
    pub fn on_stderr(mut self) -> Self {
        self.stderr = true;
        self
    }

    fn emit(&self, bytes: &[u8]) {
        if self.stderr {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(bytes).and_then(|_| e.flush());
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(bytes).and_then(|_| o.flush());
        }
    }

    /// Shows one message; an error message is returned as `Err` (the operation failed).
    pub fn show(&mut self, m: &JsonMessage) -> Result<(), String> {
        if let Some(e) = &m.error_detail {
            return Err(if e.message.is_empty() {
                m.error.clone()
            } else {
                e.message.clone()
            });
        }
        if !m.error.is_empty() {
            return Err(m.error.clone());
        }
        if self.quiet || (m.status.is_empty() && m.id.is_empty()) {
            return Ok(());
        }
        let mut out = Vec::new();
        if m.id.is_empty() {
            let _ = writeln!(out, "{}", m.status);
            self.printed += 1;
            self.emit(&out);
            return Ok(());
        }
        let text = render(m, self.tty);
        match self.layers.get_mut(&m.id) {
            Some((index, last)) if self.tty => {
                let up = self.printed - *index;
                let _ = write!(out, "\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r");
                *last = m.status.clone();
            }
            Some((_, last)) => {
                if *last != m.status {
                    let _ = writeln!(out, "{text}");
                    *last = m.status.clone();
                }
            }
            None => {
                let _ = writeln!(out, "{text}");
                self.layers
                    .insert(m.id.clone(), (self.printed, m.status.clone()));
                self.printed += 1;
            }
        }
        self.emit(&out);
        Ok(())
    }
}

/// `id: status [bar] current/total`.
fn render(m: &JsonMessage, tty: bool) -> String {
    let mut s = format!("{}: {}", m.id, m.status);
    if let Some(d) = &m.progress_detail {
        if let (Some(cur), true) = (d.current, tty) {
            match d.total.filter(|t| *t > 0) {
                Some(total) => {
                    let width = 40usize;
                    let filled = ((cur.min(total) as f64 / total as f64) * width as f64) as usize;
                    let bar = if filled >= width {
                        "=".repeat(width)
                    } else {
                        format!("{}>{}", "=".repeat(filled), " ".repeat(width - filled - 1))
                    };
                    s.push_str(&format!(" [{bar}] {}/{}", human(cur), human(total)));
                }
                None => s.push_str(&format!(" {}", human(cur))),
            }
        }
    }
    s
}

/// Docker's byte units (powers of 1000, as `docker pull` shows them).
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine_client::ProgressDetail;

    #[test]
    fn renders_bars_only_on_a_terminal() {
        let m = JsonMessage {
            id: "abc".into(),
            status: "Downloading".into(),
            progress_detail: Some(ProgressDetail {
                current: Some(500_000),
                total: Some(1_000_000),
            }),
            ..Default::default()
        };
        let t = render(&m, true);
        assert!(t.starts_with("abc: Downloading ["), "{t}");
        assert!(t.ends_with("] 500.0kB/1.0MB"), "{t}");
        assert_eq!(render(&m, false), "abc: Downloading");
        assert_eq!(human(999), "999B");
    }
}
