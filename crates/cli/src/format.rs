//! Output formatting shared by the commands, matching Docker's CLI: tables laid out like Go's
//! `tabwriter` with Docker's settings (minimum cell width 10, padding 3), human sizes
//! (`4.26MB`, SI units, 3 significant digits; `1.5MiB` binary ones for memory), "2 minutes ago",
//! 12-character ids and quoted, truncated commands.

use std::io::{self, Write};

/// A table printed with Docker's column layout.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
    min_width: usize,
}

impl Table {
    /// A table with a header row.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            rows: vec![headers.iter().map(|s| s.to_string()).collect()],
            min_width: 10,
        }
    }

    /// Sets the minimum cell width (Docker uses 10 for most tables, 20 for `top`).
    pub fn min_width(mut self, w: usize) -> Self {
        self.min_width = w;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table: every column but the last is padded to `max(width + 3, min_width)`.
    pub fn render(&self) -> String {
        let ncols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; ncols];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let w = (widths[i] + 3).max(self.min_width);
                    let pad = w - cell.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Writes the table to stdout.
    pub fn print(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(self.render().as_bytes())?;
        out.flush()
    }
}

/// Go's `%.{prec}g` formatting.
fn format_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{v:.decimals$}"))
    }
}

fn strip_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn custom_size(size: f64, base: f64, units: &[&str], prec: usize) -> String {
    let mut size = size;
    let mut i = 0;
    while size >= base && i + 1 < units.len() {
        size /= base;
        i += 1;
    }
    format!("{}{}", format_g(size, prec), units[i])
}

/// Docker's `HumanSize`: SI units, 3 significant digits (`4.26MB`, `0B`, `1.23kB`).
pub fn human_size(bytes: f64) -> String {
    custom_size(
        bytes,
        1000.0,
        &["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"],
        3,
    )
}

/// Docker's `BytesSize`: binary units, 4 significant digits (`1.5MiB`), for memory in `stats`.
pub fn bytes_size(bytes: f64) -> String {
    custom_size(
        bytes,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"],
        4,
    )
}

/// Docker's `HumanDuration` of a number of seconds.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = secs / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs + 1800) / 3600;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", secs / 3600 / 24 / 365)
}

/// "2 minutes ago" for a unix timestamp.
pub fn ago(unix: i64, now: i64) -> String {
    format!("{} ago", human_duration(now - unix))
}

/// The current unix time in seconds.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `sha256:abc...` -> the first 12 hex digits.
pub fn short_id(id: &str) -> String {
    let bare = id.strip_prefix("sha256:").unwrap_or(id);
    bare.chars().take(12).collect()
}

/// Go's `stringutils.Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The COMMAND column of `ps`: quoted, cut to 20 characters unless `no_trunc`.
pub fn quote_command(cmd: &str, no_trunc: bool) -> String {
    if no_trunc {
        format!("\"{cmd}\"")
    } else {
        format!("\"{}\"", ellipsis(cmd, 20))
    }
}

/// Pretty JSON with 4-space indentation, as `docker inspect` prints it.
pub fn pretty_json(value: &serde_json::Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if value.serialize(&mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8(buf).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1234.0), "1.23kB");
        assert_eq!(human_size(4_260_000.0), "4.26MB");
        assert_eq!(human_size(4_264_999.0), "4.26MB");
        assert_eq!(human_size(7_800_000.0), "7.8MB");
        assert_eq!(human_size(100_000_000.0), "100MB");
        assert_eq!(human_size(1_500_000_000.0), "1.5GB");
        assert_eq!(bytes_size(1024.0 * 1024.0 * 1.5), "1.5MiB");
        assert_eq!(bytes_size(512.0), "512B");
        assert_eq!(bytes_size(2.0 * 1024.0 * 1024.0 * 1024.0), "2GiB");
        assert_eq!(format_g(999.6, 3), "1e+03");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(150), "2 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
        assert_eq!(ago(100, 160), "About a minute ago");
    }

    #[test]
    fn ids_and_commands() {
        assert_eq!(short_id("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(quote_command("sleep 100", false), "\"sleep 100\"");
        assert_eq!(
            quote_command("/bin/sh -c 'while true; do date; done'", false),
            "\"/bin/sh -c 'while t…\""
        );
        assert_eq!(
            quote_command("a b c d e f g h i j k", true),
            "\"a b c d e f g h i j k\""
        );
        assert_eq!(ellipsis("héllo", 3), "hé…");
    }

    #[test]
    fn tables_like_docker() {
        let mut t = Table::new(&["CONTAINER ID", "IMAGE", "NAMES"]);
        t.row(vec!["0123456789ab".into(), "alpine".into(), "web".into()]);
        assert_eq!(
            t.render(),
            "CONTAINER ID   IMAGE     NAMES\n0123456789ab   alpine    web\n"
        );
        let mut t = Table::new(&["DRIVER", "VOLUME NAME"]);
        t.row(vec!["local".into(), "data".into()]);
        assert_eq!(t.render(), "DRIVER    VOLUME NAME\nlocal     data\n");
    }

    #[test]
    fn inspect_json_indent() {
        let v = serde_json::json!([{"Id": "x"}]);
        assert_eq!(pretty_json(&v), "[\n    {\n        \"Id\": \"x\"\n    }\n]");
    }
}
