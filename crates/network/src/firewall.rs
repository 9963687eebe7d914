//! nftables rules of one engine, all in one table it owns (`inet <prefix>`), rebuilt whole
//! from the list of networks on every change (`nft -f`, atomic), deleted whole on cleanup.
//!
//! Rules: traffic routed from one of the engine's bridges to any other of its bridges is
//! dropped (networks are isolated); an internal network's bridge forwards nothing in or out;
//! other networks' traffic leaving the host is masqueraded.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{NetworkError, Result};
use crate::ipam::Subnet;

/// What the rules need to know about one network.
pub struct BridgeRule {
    pub bridge: String,
    pub subnet: Subnet,
    pub internal: bool,
}

/// The nft script that replaces the table `inet <table>` with rules for `bridges`.
pub fn script(table: &str, link_prefix: &str, bridges: &[BridgeRule]) -> String {
    let mut s = format!("table inet {table} {{}}\ndelete table inet {table}\n");
    if bridges.is_empty() {
        return s;
    }
    s.push_str(&format!("table inet {table} {{\n"));
    s.push_str(
        "  chain forward {\n    type filter hook forward priority filter - 1; policy accept;\n",
    );
    for b in bridges {
        let br = &b.bridge;
        if b.internal {
            s.push_str(&format!("    iifname \"{br}\" oifname != \"{br}\" drop\n"));
            s.push_str(&format!("    oifname \"{br}\" iifname != \"{br}\" drop\n"));
        } else {
            s.push_str(&format!(
                "    iifname \"{br}\" oifname != \"{br}\" oifname \"{link_prefix}*\" drop\n"
            ));
        }
    }
    s.push_str("  }\n");
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for b in bridges.iter().filter(|b| !b.internal) {
        s.push_str(&format!(
            "    ip saddr {} oifname != \"{}\" masquerade\n",
            b.subnet, b.bridge
        ));
    }
    s.push_str("  }\n}\n");
    s
}

/// Applies a script with `nft -f -`.
pub fn apply(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetworkError::System(format!("cannot run nft (install nftables): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(NetworkError::System(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Deletes the engine's table (no error if it does not exist).
pub fn delete_table(table: &str) -> Result<()> {
    apply(&format!(
        "table inet {table} {{}}\ndelete table inet {table}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_isolates_and_masquerades() {
        let s = script(
            "berth",
            "berth",
            &[
                BridgeRule {
                    bridge: "berth0".into(),
                    subnet: "172.28.0.0/16".parse().unwrap(),
                    internal: false,
                },
                BridgeRule {
                    bridge: "berthbr1".into(),
                    subnet: "10.1.0.0/24".parse().unwrap(),
                    internal: true,
                },
            ],
        );
        assert!(s.contains("iifname \"berth0\" oifname != \"berth0\" oifname \"berth*\" drop"));
        assert!(s.contains("oifname \"berthbr1\" iifname != \"berthbr1\" drop"));
        assert!(s.contains("ip saddr 172.28.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(!s.contains("10.1.0.0/24 oifname"));
        assert!(script("t", "t", &[]).ends_with("delete table inet t\n"));
    }
}
