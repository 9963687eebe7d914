//! Parsing of flag values the way Docker's CLI reads them: memory sizes (`64m`), CPU counts
//! (`0.5`), Go durations (`1m30s`), restart policies, env files, `-v` bind specs, ulimits,
//! `--add-host`, `key=value` pairs and `--since`/`--until` timestamps.
//!
//! Every function is pure (the environment and the clock are passed in) and returns an error
//! naming the bad value.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use berth_engine_client::{RestartPolicy, Ulimit};

/// `64m`, `1g`, `512k`, `100` (bytes), `1.5g`, `64MB`, `64MiB` -> bytes (binary multiples, as
/// Docker's `RAMInBytes`).
pub fn parse_memory(s: &str) -> Result<i64> {
    let err = || {
        anyhow!("invalid memory size {s:?}: expected a number with an optional b, k, m or g suffix")
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(err());
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024f64.powi(4),
        "p" | "pb" | "pib" => 1024f64.powi(5),
        _ => return Err(err()),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(anyhow!("invalid memory size {s:?}: too large"));
    }
    Ok(bytes as i64)
}

/// `--cpus 0.5` -> NanoCpus 500000000.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let v: f64 = s.trim().parse().map_err(|_| {
        anyhow!(
            "invalid argument {s:?} for \"--cpus\" flag: expected a number of CPUs like 0.5 or 2"
        )
    })?;
    if !v.is_finite() || v < 0.0 {
        bail!("invalid argument {s:?} for \"--cpus\" flag: the number of CPUs must be positive");
    }
    let nanos = (v * 1e9).round();
    if nanos > i64::MAX as f64 {
        bail!("invalid argument {s:?} for \"--cpus\" flag: too large");
    }
    Ok(nanos as i64)
}

/// Go's `time.ParseDuration`: `30s`, `1m30s`, `500ms`, `1.5h`, `0` -> nanoseconds.
/// Negative durations are refused.
pub fn parse_duration(s: &str) -> Result<u64> {
    let err = || {
        anyhow!("invalid duration {s:?}: expected a number with a unit such as 30s, 1m30s or 500ms")
    };
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(err());
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let mut total: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if n == 0 {
            return Err(err());
        }
        let value: f64 = rest[..n].parse().map_err(|_| err())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        total += value * mult;
        rest = &rest[u..];
    }
    if total > u64::MAX as f64 {
        return Err(err());
    }
    Ok(total.round() as u64)
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let err = || {
        anyhow!(
            "invalid restart policy {s:?}: expected no, always, unless-stopped or on-failure[:max-retries]"
        )
    };
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    match (name, count) {
        ("no" | "", None) => Ok(RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        }),
        ("always" | "unless-stopped", None) => Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count: 0,
        }),
        ("always" | "unless-stopped" | "no", Some(_)) => Err(anyhow!(
            "invalid restart policy {s:?}: maximum retry count can only be used with 'on-failure'"
        )),
        ("on-failure", count) => {
            let n = match count {
                None => 0,
                Some(c) => c.parse::<u32>().map_err(|_| {
                    anyhow!("invalid restart policy {s:?}: maximum retry count must be a non-negative integer")
                })?,
            };
            Ok(RestartPolicy {
                name: "on-failure".into(),
                maximum_retry_count: n,
            })
        }
        _ => Err(err()),
    }
}

/// One `-e` value: `KEY=VAL` as is; `KEY` alone takes the value from `lookup` (and is dropped
/// when unset, as Docker does).
pub fn parse_env_arg(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let key = s.split_once('=').map(|(k, _)| k).unwrap_or(s);
    if key.is_empty() {
        bail!("invalid environment variable {s:?}: the name is empty");
    }
    if key.chars().any(char::is_whitespace) {
        bail!("invalid environment variable {s:?}: variable '{key}' contains whitespaces");
    }
    if s.contains('=') {
        return Ok(Some(s.to_string()));
    }
    Ok(lookup(s).map(|v| format!("{s}={v}")))
}

/// The lines of an `--env-file`: `KEY=VAL`, `KEY` alone (from `lookup`), `#` comments and blank
/// lines skipped. `file` names the file in errors.
pub fn parse_env_file(
    file: &str,
    content: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, raw) in content.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = if line.contains('=') {
            line
        } else {
            line.trim_end()
        };
        match parse_env_arg(line, lookup) {
            Ok(Some(v)) => out.push(v),
            Ok(None) => {}
            Err(e) => bail!("{file}, line {}: {e}", n + 1),
        }
    }
    Ok(out)
}

/// True for a valid local volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn is_volume_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    s.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `-v SRC:DST[:MODE]` -> the bind string for HostConfig.Binds. SRC is an absolute host path or
/// a volume name; DST must be absolute; MODE is `ro`/`rw` plus optional propagation/SELinux
/// options.
pub fn parse_volume(spec: &str) -> Result<String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        // An anonymous volume: the engine creates it and removes it with the container
        // (`rm -v`, `--rm`).
        [dst] if dst.starts_with('/') => return Ok(dst.to_string()),
        [_] => bail!(
            "invalid volume specification {spec:?}: an anonymous volume needs an absolute \
             container path, e.g. -v /data"
        ),
        [src, dst] => (*src, *dst, None),
        [src, dst, mode] => (*src, *dst, Some(*mode)),
        _ => bail!("invalid volume specification {spec:?}: expected SRC:DST[:ro|rw]"),
    };
    if src.is_empty() || dst.is_empty() {
        bail!("invalid volume specification {spec:?}: expected SRC:DST[:ro|rw]");
    }
    if !dst.starts_with('/') {
        bail!("invalid volume specification {spec:?}: invalid mount config: the mount destination {dst:?} must be an absolute path");
    }
    if !src.starts_with('/') && !is_volume_name(src) {
        bail!(
            "create {src}: {src:?} includes invalid characters for a local volume name, only \
             \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
    }
    if let Some(mode) = mode {
        let mut rw_seen = false;
        for opt in mode.split(',') {
            match opt {
                "ro" | "rw" => {
                    if rw_seen {
                        bail!("invalid volume specification {spec:?}: invalid mode: {mode}");
                    }
                    rw_seen = true;
                }
                "z" | "Z" | "nocopy" | "shared" | "rshared" | "slave" | "rslave" | "private"
                | "rprivate" => {}
                _ => bail!("invalid volume specification {spec:?}: invalid mode: {mode}"),
            }
        }
    }
    Ok(spec.to_string())
}

/// `--tmpfs PATH[:OPTS]`.
pub fn parse_tmpfs(spec: &str) -> Result<(String, String)> {
    let (path, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !path.starts_with('/') {
        bail!("invalid tmpfs specification {spec:?}: the mount path must be absolute");
    }
    Ok((path.to_string(), opts.to_string()))
}

/// `--ulimit nofile=1024:2048` (or `nofile=1024`, soft = hard).
pub fn parse_ulimit(spec: &str) -> Result<Ulimit> {
    let (name, value) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid ulimit argument {spec:?}: expected NAME=SOFT[:HARD]"))?;
    if !berth_runtime::spec::ULIMIT_NAMES.contains(&name) {
        bail!("invalid ulimit type: {name}");
    }
    let num = |v: &str| -> Result<u64> {
        if v == "-1" || v == "unlimited" {
            return Ok(u64::MAX);
        }
        v.parse::<u64>()
            .map_err(|_| anyhow!("invalid ulimit argument {spec:?}: {v:?} is not a number"))
    };
    let (soft, hard) = match value.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => {
            let v = num(value)?;
            (v, v)
        }
    };
    if soft > hard {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--add-host host:ip` (also `host=ip`).
pub fn parse_add_host(spec: &str) -> Result<String> {
    let (host, ip) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .ok_or_else(|| {
            anyhow!("invalid argument {spec:?} for \"--add-host\" flag: expected HOST:IP")
        })?;
    if host.is_empty() {
        bail!("invalid argument {spec:?} for \"--add-host\" flag: the host name is empty");
    }
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip != "host-gateway" && ip.parse::<IpAddr>().is_err() {
        bail!("invalid argument {spec:?} for \"--add-host\" flag: invalid IP address {ip:?}");
    }
    Ok(format!("{host}:{ip}"))
}

/// `--dns IP`.
pub fn parse_ip(flag: &str, s: &str) -> Result<String> {
    s.parse::<IpAddr>().map(|ip| ip.to_string()).map_err(|_| {
        anyhow!("invalid argument {s:?} for \"{flag}\" flag: {s} is not an ip address")
    })
}

/// `k=v` pairs (`--sysctl`, `--label`). `allow_bare` lets `k` stand for `k=`.
pub fn parse_key_values(
    flag: &str,
    items: &[String],
    allow_bare: bool,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, v),
            None if allow_bare => (item.as_str(), ""),
            None => bail!("invalid argument {item:?} for \"{flag}\" flag: expected KEY=VALUE"),
        };
        if k.is_empty() {
            bail!("invalid argument {item:?} for \"{flag}\" flag: the key is empty");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// `--since`/`--until` values as Docker accepts them: unix seconds (`1700000000[.5]`), an
/// RFC 3339 time (`2024-01-02T15:04:05Z`), a date (`2024-01-02`), or a duration before `now`
/// (`10m`, `1h30m`). Returns unix seconds.
pub fn parse_timestamp(flag: &str, s: &str, now: i64) -> Result<i64> {
    let t = s.trim();
    if let Ok(f) = t.parse::<f64>() {
        if f.is_finite() {
            return Ok(f.floor() as i64);
        }
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp());
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S") {
        return Ok(dt.and_utc().timestamp());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        if let Some(dt) = d.and_hms_opt(0, 0, 0) {
            return Ok(dt.and_utc().timestamp());
        }
    }
    if let Ok(ns) = parse_duration(t) {
        return Ok(now - (ns / 1_000_000_000) as i64);
    }
    bail!(
        "invalid value {s:?} for \"{flag}\": expected a unix timestamp, an RFC 3339 time or a duration such as 10m"
    )
}

/// `-f key=value` filters -> the engine's filter map.
pub fn parse_filters(items: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value): {item}"))?;
        out.entry(k.trim().to_lowercase())
            .or_default()
            .push(v.to_string());
    }
    Ok(out)
}

/// `--stop-signal` / `kill -s`: a signal name (`TERM`, `SIGTERM`) or number.
pub fn parse_signal(s: &str) -> Result<String> {
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "KILL", "PIPE",
        "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN",
        "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    if let Ok(n) = s.parse::<u32>() {
        if (1..=64).contains(&n) {
            return Ok(s.to_string());
        }
        bail!("invalid signal: {s}");
    }
    let up = s.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    if NAMES.contains(&bare) || bare.starts_with("RTMIN") || bare.starts_with("RTMAX") {
        return Ok(format!("SIG{bare}"));
    }
    bail!("invalid signal: {s}")
}

/// `-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]` -> (`"PORT/PROTO"`, binding).
pub fn parse_publish(spec: &str) -> anyhow::Result<(String, berth_engine_client::PortBinding)> {
    let bad = || {
        anyhow::anyhow!(
            "invalid publish spec {spec:?}: expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp]"
        )
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts[..] {
        [c] => ("", "", c),
        [h, c] => ("", h, c),
        [i, h, c] => (i, h, c),
        _ => return Err(bad()),
    };
    let port_ok = |p: &str| p.parse::<u16>().map(|n| n > 0).unwrap_or(false);
    if !matches!(proto.as_str(), "tcp" | "udp") {
        return Err(bad());
    }
    if !port_ok(ctr) || (!host.is_empty() && !port_ok(host)) {
        return Err(bad());
    }
    if !ip.is_empty() && ip.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(bad());
    }
    Ok((
        format!("{ctr}/{proto}"),
        berth_engine_client::PortBinding {
            host_ip: ip.to_string(),
            host_port: host.to_string(),
        },
    ))
}

/// `--expose PORT[-PORT][/PROTO]` -> `"PORT/proto"` keys.
pub fn parse_expose(spec: &str) -> anyhow::Result<Vec<String>> {
    let bad = || anyhow::anyhow!("invalid --expose {spec:?}: expected PORT[-PORT][/tcp|/udp]");
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp") {
        return Err(bad());
    }
    let port = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(bad);
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if lo > hi || hi - lo > 1000 {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("64m").unwrap(), 64 * 1024 * 1024);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_memory("100").unwrap(), 100);
        assert_eq!(parse_memory("100b").unwrap(), 100);
        assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_memory("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64MiB").unwrap(), 64 << 20);
        let e = parse_memory("64q").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid memory size \"64q\": expected a number with an optional b, k, m or g suffix"
        );
        assert!(parse_memory("").is_err());
        assert!(parse_memory("m").is_err());
        assert!(parse_memory("-5m").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_cpus("2").unwrap(), 2_000_000_000);
        assert_eq!(parse_cpus("1.25").unwrap(), 1_250_000_000);
        assert!(parse_cpus("abc").is_err());
        assert!(parse_cpus("-1").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("10us").unwrap(), 10_000);
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart("no").unwrap().name, "no");
        assert_eq!(parse_restart("always").unwrap().name, "always");
        assert_eq!(
            parse_restart("unless-stopped").unwrap().name,
            "unless-stopped"
        );
        let p = parse_restart("on-failure:3").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 3));
        let p = parse_restart("on-failure").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 0));
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("on-failure:x").is_err());
        assert!(parse_restart("always:3").is_err());
    }

    #[test]
    fn env_files_and_args() {
        let lookup = |k: &str| (k == "HOME_X").then(|| "/root".to_string());
        let content = "# comment\n\nA=1\n  B=two words \nHOME_X\nMISSING\nC=\n";
        assert_eq!(
            parse_env_file("f.env", content, &lookup).unwrap(),
            vec!["A=1", "B=two words ", "HOME_X=/root", "C="]
        );
        let e = parse_env_file("f.env", "A=1\nBAD KEY=2\n", &lookup).unwrap_err();
        assert!(e.to_string().starts_with("f.env, line 2:"), "{e}");
        assert_eq!(
            parse_env_arg("HOME_X", &lookup).unwrap(),
            Some("HOME_X=/root".into())
        );
        assert_eq!(parse_env_arg("NOPE", &lookup).unwrap(), None);
        assert_eq!(
            parse_env_arg("K=a=b", &lookup).unwrap(),
            Some("K=a=b".into())
        );
        assert!(parse_env_arg("=x", &lookup).is_err());
    }

    #[test]
    fn volumes() {
        assert_eq!(parse_volume("/host:/ctr").unwrap(), "/host:/ctr");
        assert_eq!(parse_volume("data:/ctr:ro").unwrap(), "data:/ctr:ro");
        assert_eq!(parse_volume("/h:/c:rw,z").unwrap(), "/h:/c:rw,z");
        let e = parse_volume("./x:/c").unwrap_err().to_string();
        assert!(
            e.contains("includes invalid characters for a local volume name")
                && e.contains("use absolute path"),
            "{e}"
        );
        assert!(parse_volume("data:relative").is_err());
        assert_eq!(parse_volume("/data").unwrap(), "/data");
        assert!(parse_volume("data").is_err());
        assert!(parse_volume("/h:/c:rx").is_err());
        assert!(parse_volume("/h:/c:ro:x").is_err());
    }

    #[test]
    fn small_specs() {
        assert_eq!(
            parse_tmpfs("/run:size=64m").unwrap(),
            ("/run".into(), "size=64m".into())
        );
        assert_eq!(parse_tmpfs("/tmp").unwrap(), ("/tmp".into(), "".into()));
        assert!(parse_tmpfs("tmp").is_err());
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        let u = parse_ulimit("nproc=100").unwrap();
        assert_eq!((u.soft, u.hard), (100, 100));
        assert!(parse_ulimit("nofile=2048:1024").is_err());
        assert_eq!(
            parse_ulimit("bogus=1").unwrap_err().to_string(),
            "invalid ulimit type: bogus"
        );
        assert_eq!(parse_add_host("db:10.0.0.2").unwrap(), "db:10.0.0.2");
        assert_eq!(parse_add_host("db=::1").unwrap(), "db:::1");
        assert!(parse_add_host("db:notanip").is_err());
        assert!(parse_ip("--dns", "1.1.1.1").is_ok());
        assert!(parse_ip("--dns", "x").is_err());
        let kv = parse_key_values("--label", &["a=1".into(), "b".into()], true).unwrap();
        assert_eq!(kv.get("a").map(String::as_str), Some("1"));
        assert_eq!(kv.get("b").map(String::as_str), Some(""));
        assert!(parse_key_values("--sysctl", &["b".into()], false).is_err());
    }

    #[test]
    fn timestamps_and_filters() {
        assert_eq!(
            parse_timestamp("--since", "1700000000", 0).unwrap(),
            1_700_000_000
        );
        assert_eq!(parse_timestamp("--since", "10m", 1000).unwrap(), 400);
        assert_eq!(
            parse_timestamp("--since", "2024-01-02T00:00:00Z", 0).unwrap(),
            1_704_153_600
        );
        assert_eq!(
            parse_timestamp("--since", "2024-01-02", 0).unwrap(),
            1_704_153_600
        );
        assert!(parse_timestamp("--since", "yesterday", 0).is_err());
        let f = parse_filters(&["status=running".into(), "label=a=b".into()]).unwrap();
        assert_eq!(f["status"], vec!["running"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert!(parse_filters(&["nope".into()]).is_err());
        assert_eq!(parse_signal("term").unwrap(), "SIGTERM");
        assert_eq!(parse_signal("SIGKILL").unwrap(), "SIGKILL");
        assert_eq!(parse_signal("9").unwrap(), "9");
        assert!(parse_signal("FOO").is_err());
    }

    #[test]
    fn publish_specs() {
        let (k, b) = parse_publish("127.0.0.1:8080:80").unwrap();
        assert_eq!(
            (k.as_str(), b.host_ip.as_str(), b.host_port.as_str()),
            ("80/tcp", "127.0.0.1", "8080")
        );
        let (k, b) = parse_publish("8080:80/udp").unwrap();
        assert_eq!(
            (k.as_str(), b.host_ip.as_str(), b.host_port.as_str()),
            ("80/udp", "", "8080")
        );
        let (k, b) = parse_publish("80").unwrap();
        assert_eq!((k.as_str(), b.host_port.as_str()), ("80/tcp", ""));
        assert_eq!(parse_publish("127.0.0.1::80").unwrap().1.host_port, "");
        for bad in ["", "x", "0", "1:2:3:4", "70000:80", "host:80:80", "80/sctp"] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_expose("53/udp").unwrap(), vec!["53/udp"]);
        assert_eq!(parse_expose("80-81").unwrap(), vec!["80/tcp", "81/tcp"]);
        assert!(parse_expose("81-80").is_err() && parse_expose("x").is_err());
    }
}
