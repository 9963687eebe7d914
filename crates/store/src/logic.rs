//! Backend-independent rules every backend applies the same way.

use std::collections::HashSet;

use crate::{
    Compare, CompareOp, CompareTarget, EventKind, KeyValue, Op, OpResult, Revision, StoreError,
    Txn, TxnResponse, WatchEvent,
};

/// The keys a backend holds, as [`apply_txn`] needs to see and change them.
pub trait KeySpace {
    fn get(&mut self, key: &str) -> Result<Option<KeyValue>, StoreError>;
    fn put(&mut self, kv: KeyValue) -> Result<(), StoreError>;
    fn remove(&mut self, key: &str) -> Result<(), StoreError>;
    /// Every key starting with `prefix`, in key order.
    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<KeyValue>, StoreError>;
}

/// Applies a validated transaction to `space` whose current revision is `current`: evaluates
/// the compares, runs the chosen branch under revision `current + 1` (if it writes) and
/// returns the response and the watch events it produced, in op order.
pub fn apply_txn(
    space: &mut impl KeySpace,
    current: Revision,
    txn: &Txn,
) -> Result<(TxnResponse, Vec<WatchEvent>), StoreError> {
    validate_txn(txn)?;
    let mut succeeded = true;
    for compare in &txn.compares {
        let kv = space.get(&compare.key)?;
        if !compare_holds(kv.as_ref(), compare) {
            succeeded = false;
            break;
        }
    }
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    // Writes take the next revision; a branch that changed nothing (reads, deletes of
    // missing keys) leaves the revision where it was, as etcd does.
    let revision = current + 1;
    let mut results = Vec::with_capacity(ops.len());
    let mut events = Vec::new();
    for op in ops {
        match op {
            Op::Get { key } => results.push(OpResult::Get {
                kv: space.get(key)?,
            }),
            Op::Put { key, value } => {
                let prev = space.get(key)?;
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                    mod_revision: revision,
                    version: prev.as_ref().map_or(0, |p| p.version) + 1,
                };
                space.put(kv.clone())?;
                events.push(WatchEvent {
                    kind: EventKind::Put,
                    kv,
                    prev_kv: prev.clone(),
                });
                results.push(OpResult::Put { prev });
            }
            Op::Delete { key } => {
                let deleted: Vec<KeyValue> = space.get(key)?.into_iter().collect();
                for kv in &deleted {
                    space.remove(&kv.key)?;
                    events.push(delete_event(kv, revision));
                }
                results.push(OpResult::Delete { deleted });
            }
            Op::DeletePrefix { prefix } => {
                let deleted = space.keys_with_prefix(prefix)?;
                for kv in &deleted {
                    space.remove(&kv.key)?;
                    events.push(delete_event(kv, revision));
                }
                results.push(OpResult::Delete { deleted });
            }
        }
    }
    let revision = if events.is_empty() { current } else { revision };
    Ok((
        TxnResponse {
            succeeded,
            revision,
            results,
        },
        events,
    ))
}

fn delete_event(prev: &KeyValue, revision: Revision) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: prev.key.clone(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
        },
        prev_kv: Some(prev.clone()),
    }
}

/// Whether `compare` holds for the key's current state (`None` = missing key).
pub fn compare_holds(current: Option<&KeyValue>, compare: &Compare) -> bool {
    use std::cmp::Ordering;
    let ordering = match (&compare.target, current) {
        (CompareTarget::Version(v), kv) => kv.map_or(0, |kv| kv.version).cmp(v),
        (CompareTarget::CreateRevision(r), kv) => kv.map_or(0, |kv| kv.create_revision).cmp(r),
        (CompareTarget::ModRevision(r), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(r),
        (CompareTarget::Value(v), Some(kv)) => kv.value.as_slice().cmp(v.as_slice()),
        // A missing key has no value: only "not equal" holds.
        (CompareTarget::Value(_), None) => return compare.op == CompareOp::NotEqual,
    };
    match compare.op {
        CompareOp::Equal => ordering == Ordering::Equal,
        CompareOp::NotEqual => ordering != Ordering::Equal,
        CompareOp::Greater => ordering == Ordering::Greater,
        CompareOp::Less => ordering == Ordering::Less,
    }
}

/// Rejects malformed transactions before anything is applied: empty keys, and a branch that
/// writes one key twice (or a key and a prefix covering it).
pub fn validate_txn(txn: &Txn) -> Result<(), StoreError> {
    for compare in &txn.compares {
        if compare.key.is_empty() {
            return Err(StoreError::InvalidRequest("compare on an empty key".into()));
        }
    }
    validate_branch(&txn.success)?;
    validate_branch(&txn.failure)
}

fn validate_branch(ops: &[Op]) -> Result<(), StoreError> {
    let mut written = HashSet::new();
    let mut prefixes = Vec::new();
    for op in ops {
        match op {
            Op::Put { key, .. } | Op::Delete { key } => {
                if key.is_empty() {
                    return Err(StoreError::InvalidRequest("write to an empty key".into()));
                }
                if !written.insert(key.as_str()) {
                    return Err(StoreError::InvalidRequest(format!(
                        "key {key:?} is written twice in one transaction"
                    )));
                }
            }
            Op::DeletePrefix { prefix } => prefixes.push(prefix.as_str()),
            Op::Get { key } => {
                if key.is_empty() {
                    return Err(StoreError::InvalidRequest("read of an empty key".into()));
                }
            }
        }
    }
    for prefix in &prefixes {
        if let Some(key) = written.iter().find(|k| k.starts_with(prefix)) {
            return Err(StoreError::InvalidRequest(format!(
                "key {key:?} is written and deleted by prefix {prefix:?} in one transaction"
            )));
        }
    }
    Ok(())
}

/// The next key after every key starting with `prefix` (exclusive range end), or `None` when
/// the prefix is empty or all 0xff (the range runs to the end).
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return Some(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(version: i64) -> KeyValue {
        KeyValue {
            key: "k".into(),
            value: b"v".to_vec(),
            create_revision: 3,
            mod_revision: 5,
            version,
        }
    }

    #[test]
    fn missing_and_exists() {
        assert!(compare_holds(None, &Compare::missing("k")));
        assert!(!compare_holds(Some(&kv(1)), &Compare::missing("k")));
        assert!(compare_holds(Some(&kv(2)), &Compare::exists("k")));
        assert!(!compare_holds(None, &Compare::exists("k")));
    }

    #[test]
    fn mod_revision_and_value() {
        assert!(compare_holds(Some(&kv(1)), &Compare::mod_revision("k", 5)));
        assert!(!compare_holds(Some(&kv(1)), &Compare::mod_revision("k", 4)));
        let value_is = |v: &[u8], op| Compare {
            key: "k".into(),
            op,
            target: CompareTarget::Value(v.to_vec()),
        };
        assert!(compare_holds(
            Some(&kv(1)),
            &value_is(b"v", CompareOp::Equal)
        ));
        assert!(compare_holds(
            Some(&kv(1)),
            &value_is(b"a", CompareOp::Greater)
        ));
        assert!(!compare_holds(None, &value_is(b"v", CompareOp::Equal)));
        assert!(compare_holds(None, &value_is(b"v", CompareOp::NotEqual)));
    }

    #[test]
    fn duplicate_writes_are_rejected() {
        let txn = Txn::new()
            .and_then(Op::put("a", "1"))
            .and_then(Op::delete("a"));
        assert!(matches!(
            validate_txn(&txn),
            Err(StoreError::InvalidRequest(_))
        ));
        let txn = Txn::new()
            .and_then(Op::put("a/1", "1"))
            .and_then(Op::DeletePrefix {
                prefix: "a/".into(),
            });
        assert!(validate_txn(&txn).is_err());
        let txn = Txn::new()
            .and_then(Op::put("a", "1"))
            .or_else(Op::put("a", "2"));
        assert!(validate_txn(&txn).is_ok());
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("tasks/"), Some("tasks0".into()));
        assert_eq!(prefix_end(""), None);
    }
}
