//! Linux capabilities: Docker's default set and `--cap-add` / `--cap-drop` resolution.
//!
//! Names are accepted the way `docker run` accepts them: any case, with or without the
//! `CAP_` prefix, and the special word `ALL`. Resolved sets always use the canonical
//! `CAP_XXX` spelling and are ordered by capability number, so the output is deterministic.
//!
//! Rules (the same as Docker's `TweakCapabilities`):
//! - privileged containers get every capability;
//! - `ALL` in the add list: every capability except the dropped ones;
//! - `ALL` in the drop list: only the added ones;
//! - otherwise: the defaults minus the dropped ones, plus the added ones.
//!
//! Unknown names are rejected with [`SpecError::UnknownCapability`] naming the bad value
//! (also for privileged containers, so a typo never goes unnoticed).

use std::str::FromStr;

use oci_spec::runtime::Capability;

use crate::spec::SpecError;

/// Every Linux capability, in kernel number order (0 = `CAP_CHOWN` ... 40 =
/// `CAP_CHECKPOINT_RESTORE`).
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set (the 14 capabilities `docker run` grants).
pub fn default_capabilities() -> Vec<&'static str> {
    vec![
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
}

/// One entry of an add or drop list after normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    All,
    /// Index into [`ALL_CAPABILITIES`].
    Cap(usize),
}

/// Normalizes a user-supplied capability name (`sys_admin`, `CAP_SYS_ADMIN`, `all`, ...).
fn normalize(raw: &str) -> Result<Name, SpecError> {
    let upper = raw.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(Name::All);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    ALL_CAPABILITIES
        .iter()
        .position(|c| *c == full)
        .map(Name::Cap)
        .ok_or_else(|| SpecError::UnknownCapability(raw.to_string()))
}

fn normalize_all(list: &[String]) -> Result<Vec<Name>, SpecError> {
    list.iter().map(|s| normalize(s)).collect()
}

/// Canonical name (`CAP_SYS_ADMIN`) of a user-supplied capability name, or an error naming it.
/// `ALL` is not a capability and is rejected here.
pub fn canonical_name(raw: &str) -> Result<&'static str, SpecError> {
    match normalize(raw)? {
        Name::Cap(i) => Ok(ALL_CAPABILITIES[i]),
        Name::All => Err(SpecError::UnknownCapability(raw.to_string())),
    }
}

/// Resolves the capability set of a container from Docker's defaults and the user's
/// `--cap-add` / `--cap-drop` lists (see the module docs for the rules).
///
/// Returns canonical names (`CAP_XXX`), deduplicated, in kernel number order.
pub fn resolve(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, SpecError> {
    let add = normalize_all(add)?;
    let drop = normalize_all(drop)?;

    let mut set = [false; ALL_CAPABILITIES.len()];
    if privileged || add.contains(&Name::All) {
        set = [true; ALL_CAPABILITIES.len()];
        if !privileged {
            for name in &drop {
                if let Name::Cap(i) = name {
                    set[*i] = false;
                }
            }
        }
    } else {
        if !drop.contains(&Name::All) {
            for cap in default_capabilities() {
                if let Some(i) = ALL_CAPABILITIES.iter().position(|c| *c == cap) {
                    set[i] = true;
                }
            }
            for name in &drop {
                if let Name::Cap(i) = name {
                    set[*i] = false;
                }
            }
        }
        for name in &add {
            if let Name::Cap(i) = name {
                set[*i] = true;
            }
        }
    }

    Ok(ALL_CAPABILITIES
        .iter()
        .zip(set)
        .filter(|(_, on)| *on)
        .map(|(name, _)| (*name).to_string())
        .collect())
}

/// Converts a canonical or user-supplied name to the `oci-spec` capability type.
pub fn to_oci(name: &str) -> Result<Capability, SpecError> {
    let canonical = canonical_name(name)?;
    // oci-spec's `FromStr` uses the name without the `CAP_` prefix (`SYS_ADMIN`).
    let bare = canonical.trim_start_matches("CAP_");
    Capability::from_str(bare).map_err(|_| SpecError::UnknownCapability(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn defaults_are_dockers_fourteen() {
        let d = default_capabilities();
        assert_eq!(d.len(), 14);
        let resolved = resolve(&[], &[], false).unwrap();
        let mut expected: Vec<String> = d.iter().map(|c| c.to_string()).collect();
        expected.sort();
        assert_eq!(sorted(resolved), expected);
        assert!(!d.contains(&"CAP_SYS_ADMIN"));
        assert!(!d.contains(&"CAP_NET_ADMIN"));
    }

    #[test]
    fn add_and_drop_accept_any_spelling() {
        let caps = resolve(
            &s(&["net_admin", "Cap_Sys_Ptrace"]),
            &s(&["mknod", "CAP_NET_RAW"]),
            false,
        )
        .unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_SYS_PTRACE".to_string()));
        assert!(!caps.contains(&"CAP_MKNOD".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert_eq!(caps.len(), 14);
    }

    #[test]
    fn drop_all_keeps_only_added() {
        let caps = resolve(&s(&["chown", "kill"]), &s(&["all"]), false).unwrap();
        assert_eq!(caps, s(&["CAP_CHOWN", "CAP_KILL"]));
        assert!(resolve(&[], &s(&["ALL"]), false).unwrap().is_empty());
    }

    #[test]
    fn add_all_minus_drops() {
        let caps = resolve(&s(&["ALL"]), &s(&["sys_admin"]), false).unwrap();
        assert_eq!(caps.len(), ALL_CAPABILITIES.len() - 1);
        assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn privileged_gets_everything() {
        let caps = resolve(&[], &s(&["chown"]), true).unwrap();
        assert_eq!(caps.len(), 41);
        assert_eq!(caps.last().unwrap(), "CAP_CHECKPOINT_RESTORE");
    }

    #[test]
    fn unknown_names_are_rejected_by_name() {
        let err = resolve(&s(&["CAP_FOO"]), &[], false).unwrap_err();
        assert!(err.to_string().contains("\"CAP_FOO\""), "{err}");
        let err = resolve(&[], &s(&["bogus"]), false).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        assert!(resolve(&s(&["nope"]), &[], true).is_err());
    }

    #[test]
    fn every_name_maps_to_oci_spec() {
        for name in ALL_CAPABILITIES {
            to_oci(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(to_oci("sys_admin").unwrap(), Capability::SysAdmin);
    }

    #[test]
    fn duplicates_collapse() {
        let caps = resolve(&s(&["chown", "CAP_CHOWN"]), &[], false).unwrap();
        assert_eq!(caps.len(), 14);
    }
}
