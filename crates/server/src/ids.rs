//! Identifiers: task and container-instance ids (32 hex digits, as ECS) and request ids
//! (UUID v4 text).

use rand::RngCore;

/// 32 lowercase hex digits.
pub fn hex_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let mut s = String::with_capacity(32);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// A task id: 32 lowercase hex digits like ECS's, the first 12 the creation time in
/// milliseconds since the epoch and the other 20 random (80 bits).
///
/// Time first keeps a cluster's new tasks next to each other in the store's key order (tasks
/// are keyed `tasks/CLUSTER/ID`): a burst of RunTasks appends to the same few B-tree pages
/// instead of touching one page per task, which is most of what each write costs the disk
/// (docs/benchmarks.md, "Store"). It also lists tasks oldest first.
pub fn task_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        & 0xffff_ffff_ffff;
    format!("{millis:012x}{}", &hex_id()[12..])
}

/// A random UUID (version 4) in its hyphenated form.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `i-` and 17 hex digits, for instances registered without an identity document.
pub fn ec2_instance_id() -> String {
    format!("i-{}", &hex_id()[..17])
}

/// A random seed for placement.
pub fn seed() -> u64 {
    rand::thread_rng().next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(hex_id().len(), 32);
        assert_ne!(hex_id(), hex_id());
        assert_eq!(ec2_instance_id().len(), 19);
    }

    #[test]
    fn task_ids_are_ecs_shaped_unique_and_in_creation_order() {
        let first = task_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = task_id();
        for id in [&first, &second] {
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        assert!(first < second, "{first} !< {second}");
        let same_millisecond: std::collections::HashSet<_> = (0..1000).map(|_| task_id()).collect();
        assert_eq!(same_millisecond.len(), 1000);
    }
}
