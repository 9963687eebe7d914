//! Giving memory back when a long-lived process goes idle: the container monitor (one thread)
//! and the node agent with its in-process engine (a tokio runtime) both spend most of their
//! life waiting, holding pages that only starting up or a burst of work touched.
//!
//! What can be given back without changing behaviour:
//! - the pages of the binary's and the libraries' code and read-only data (libcontainer,
//!   serde, hyper, the image store...) leave this process's page tables (`MADV_DONTNEED`: they
//!   stay in the page cache, shared with the other Berth processes, and fault back in when
//!   used again);
//! - free heap in every malloc arena (`malloc_trim`);
//! - in a single-threaded process only, the stack below the current frame.
//!
//! [`shed_when_idle`] runs the multi-threaded variant a moment after each burst of work.

use std::time::Duration;

/// How often [`shed_when_idle`] looks at the process's CPU time.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

/// CPU time below which a [`IDLE_CHECK`] period counts as idle (timers, heartbeats).
const IDLE_CPU: Duration = Duration::from_millis(2);

/// CPU time since the last shed after which there is something worth giving back.
const WORK_CPU: Duration = Duration::from_millis(5);

/// Gives memory back (see the module docs) in a single-threaded process, stack included. The
/// ranges are collected first and dropped last, with nothing allocated or freed in between:
/// whatever code runs after the drop faults its pages back in.
pub fn shed_single_threaded() {
    shed(true);
}

/// Gives memory back (see the module docs) while other threads run: heap and clean file
/// pages, no stacks (another thread's frames may live anywhere in them).
pub fn shed_multi_threaded() {
    shed(false);
}

fn shed(with_stack: bool) {
    let mut ranges = [(0usize, 0usize); 128];
    let mut count = 0;
    if let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") {
        let here = 0u8;
        let sp = std::ptr::addr_of!(here) as usize;
        for m in mappings(&smaps) {
            let range = if m.name == "[stack]" && with_stack {
                // Everything more than 16 KiB below this frame is unused stack (the calls
                // made from here need far less).
                (m.start, (sp.saturating_sub(16 << 10)) & !(page_size() - 1))
            } else if m.name.starts_with('/') && !m.writable && m.anonymous_kb == 0 {
                // Clean file pages only: a read-only mapping holding no private (relocated,
                // copy-on-write) pages is the file's content, which a refault reads again.
                (m.start, m.end)
            } else {
                continue;
            };
            if range.1 > range.0 && count < ranges.len() {
                ranges[count] = range;
                count += 1;
            }
        }
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    for &(start, end) in &ranges[..count] {
        dont_need(start, end);
    }
}

/// Forever: every [`IDLE_CHECK`], if the process used (almost) no CPU in the last period but
/// did work since it last gave memory back, gives it back ([`shed_multi_threaded`], on a
/// blocking thread). So memory is returned 1-2 s after starting and after each burst of work,
/// and never while one is under way. Spawn it on the process's runtime.
pub async fn shed_when_idle() {
    let mut last = cpu_time();
    // Starting up (parsing flags, connecting, registering) counts as a burst of work.
    let mut since_shed = WORK_CPU;
    let mut tick = tokio::time::interval(IDLE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = cpu_time();
        let used = now.saturating_sub(last);
        last = now;
        since_shed += used;
        if used < IDLE_CPU && since_shed >= WORK_CPU {
            // Off the async workers: reading smaps and trimming take a few milliseconds.
            let _ = tokio::task::spawn_blocking(shed_multi_threaded).await;
            last = cpu_time();
            since_shed = Duration::ZERO;
        }
    }
}

/// User + system CPU time of the whole process.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// One mapping of `/proc/self/smaps`.
struct Mapping<'a> {
    start: usize,
    end: usize,
    writable: bool,
    name: &'a str,
    anonymous_kb: u64,
}

/// The mappings listed in `smaps` text, with their `Anonymous:` sizes.
fn mappings(smaps: &str) -> Vec<Mapping<'_>> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("Anonymous:") {
            if let Some(m) = out.last_mut() {
                m.anonymous_kb = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(1);
            }
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        out.push(Mapping {
            start,
            end,
            writable: perms.contains('w'),
            name: fields.nth(3).unwrap_or(""),
            // Unknown until its `Anonymous:` line: assume private pages.
            anonymous_kb: u64::MAX,
        });
    }
    out
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as usize
    } else {
        4096
    }
}

fn dont_need(start: usize, end: usize) {
    // SAFETY: callers pass only ranges whose contents may be dropped: clean file-backed
    // mappings (refaulted from the file) and unused stack below the current frame of the only
    // thread (refaulted as zero pages).
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_file_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn shedding_drops_file_pages_and_keeps_data() {
        // Other test threads may run: the multi-threaded variant must be safe with them.
        let data: Vec<u64> = (0..100_000).collect();
        let text = String::from("still here");
        let before = rss_file_kb();
        shed_multi_threaded();
        let after = rss_file_kb();
        assert!(
            after < before,
            "file-backed RSS did not drop: {before} kB -> {after} kB"
        );
        assert_eq!(data.iter().sum::<u64>(), 99_999 * 100_000 / 2);
        assert_eq!(text, "still here");
    }

    #[test]
    fn smaps_mappings_carry_their_anonymous_size() {
        let smaps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fe:01 123 /usr/bin/berth
Size:               1024 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
55d0c0100000-55d0c0200000 r--p 00100000 fe:01 123 /usr/bin/berth
Anonymous:            12 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Anonymous:           132 kB
7ffd00100000-7ffd00101000 rw-p 00000000 00:00 0
";
        let m = mappings(smaps);
        assert_eq!(m.len(), 4);
        assert_eq!((m[0].start, m[0].end), (0x55d0c0000000, 0x55d0c0100000));
        assert_eq!(
            (m[0].name, m[0].writable, m[0].anonymous_kb),
            ("/usr/bin/berth", false, 0)
        );
        assert_eq!(m[1].anonymous_kb, 12);
        assert_eq!((m[2].name, m[2].writable), ("[stack]", true));
        // No Anonymous line seen: treated as holding private pages.
        assert_eq!((m[3].name, m[3].anonymous_kb), ("", u64::MAX));
    }
}
