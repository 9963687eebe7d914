//! The pause image of awsvpc tasks: a 216-byte static x86_64 ELF, assembled by hand below, that
//! installs a SIGTERM/SIGINT handler calling `exit_group(0)` and then loops on `pause(2)`. It
//! holds the task's network namespace while the task's containers come and go.
//!
//! There is no registry, so the agent imports it into the engine as [`PAUSE_IMAGE`] (a rootfs
//! tar with `/pause`) the first time an awsvpc task needs it.

use berth_engine_client::client::{stream_body, ClientError};
use berth_engine_client::EngineClient;

/// The engine image holding [`PAUSE_ELF`] as `/pause`.
pub const PAUSE_IMAGE: &str = "berth/pause:latest";

/// The pause program. Layout: ELF header (0x00..0x40), one program header (0x40..0x78), code
/// (0x78..0xb1), padding, the `struct kernel_sigaction` (0xb8..0xd8).
#[rustfmt::skip]
pub const PAUSE_ELF: [u8; 0xd8] = [
    // ---- ELF header -------------------------------------------------------------------------
    0x7f, b'E', b'L', b'F', // magic
    0x02,                   // EI_CLASS: 64-bit
    0x01,                   // EI_DATA: little endian
    0x01,                   // EI_VERSION: 1
    0x00,                   // EI_OSABI: System V
    0, 0, 0, 0, 0, 0, 0, 0, // EI_ABIVERSION + padding
    0x02, 0x00,             // e_type: ET_EXEC
    0x3e, 0x00,             // e_machine: EM_X86_64
    0x01, 0x00, 0x00, 0x00, // e_version
    0x78, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // e_entry: 0x400078 (the code below)
    0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // e_phoff: 64
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // e_shoff: no sections
    0x00, 0x00, 0x00, 0x00, // e_flags
    0x40, 0x00,             // e_ehsize: 64
    0x38, 0x00,             // e_phentsize: 56
    0x01, 0x00,             // e_phnum: 1
    0x40, 0x00,             // e_shentsize
    0x00, 0x00,             // e_shnum
    0x00, 0x00,             // e_shstrndx
    // ---- program header: PT_LOAD the whole file at 0x400000, read + execute ---------------
    0x01, 0x00, 0x00, 0x00, // p_type: PT_LOAD
    0x05, 0x00, 0x00, 0x00, // p_flags: PF_R | PF_X
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // p_offset: 0
    0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // p_vaddr: 0x400000
    0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // p_paddr: 0x400000
    0xd8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // p_filesz: 216
    0xd8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // p_memsz: 216
    0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // p_align: 4096
    // ---- code (0x78) ------------------------------------------------------------------------
    0xb8, 0x0d, 0x00, 0x00, 0x00,             // 0x78 mov eax, 13       ; rt_sigaction
    0xbf, 0x0f, 0x00, 0x00, 0x00,             // 0x7d mov edi, 15       ; SIGTERM
    0x48, 0x8d, 0x35, 0x2f, 0x00, 0x00, 0x00, // 0x82 lea rsi, [rip+0x2f] ; &act (0x89+0x2f = 0xb8)
    0x31, 0xd2,                               // 0x89 xor edx, edx      ; no old action
    0x41, 0xba, 0x08, 0x00, 0x00, 0x00,       // 0x8b mov r10d, 8       ; sizeof(sigset_t)
    0x0f, 0x05,                               // 0x91 syscall
    0xb8, 0x0d, 0x00, 0x00, 0x00,             // 0x93 mov eax, 13       ; rt_sigaction again
    0xbf, 0x02, 0x00, 0x00, 0x00,             // 0x98 mov edi, 2        ; SIGINT (rsi, rdx, r10 kept)
    0x0f, 0x05,                               // 0x9d syscall
    0xb8, 0x22, 0x00, 0x00, 0x00,             // 0x9f loop: mov eax, 34 ; pause
    0x0f, 0x05,                               // 0xa4 syscall
    0xeb, 0xf7,                               // 0xa6 jmp loop          ; 0xa8 - 9 = 0x9f
    0xb8, 0xe7, 0x00, 0x00, 0x00,             // 0xa8 handler: mov eax, 231 ; exit_group
    0x31, 0xff,                               // 0xad xor edi, edi      ; status 0
    0x0f, 0x05,                               // 0xaf syscall           ; never returns
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0xb1 padding to 0xb8
    // ---- struct kernel_sigaction act (0xb8) -------------------------------------------------
    0xa8, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // sa_handler: 0x4000a8
    0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // sa_flags: SA_RESTORER (x86_64 needs one)
    0xa8, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // sa_restorer: the handler (never reached)
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // sa_mask: empty
];

/// The image's root filesystem as a tar: `/pause` and the directories containers need.
pub fn rootfs_tar() -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["dev", "proc", "sys", "etc", "tmp"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, dir, std::io::empty())?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_size(PAUSE_ELF.len() as u64);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, "pause", &PAUSE_ELF[..])?;
    b.into_inner()
}

/// Imports [`PAUSE_IMAGE`] into the engine unless it is there.
pub async fn ensure_image(engine: &EngineClient) -> Result<(), ClientError> {
    match engine.inspect_image(PAUSE_IMAGE).await {
        Ok(_) => return Ok(()),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let tar = rootfs_tar().map_err(|e| ClientError::Upload(e.to_string()))?;
    let body = stream_body(futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(bytes::Bytes::from(tar))
    }));
    engine.import_image(PAUSE_IMAGE, body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Virtual address the single segment is loaded at.
    const BASE: u64 = 0x40_0000;

    #[test]
    fn header_fields_match_the_layout() {
        let u64_at = |o: usize| u64::from_le_bytes(PAUSE_ELF[o..o + 8].try_into().unwrap());
        assert_eq!(u64_at(24), BASE + 0x78, "e_entry");
        assert_eq!(u64_at(64 + 32), PAUSE_ELF.len() as u64, "p_filesz");
        assert_eq!(u64_at(0xb8), BASE + 0xa8, "sa_handler");
        // The code's jump and lea land where the comments say.
        assert_eq!(PAUSE_ELF[0xa8], 0xb8);
        assert_eq!(0x89 + PAUSE_ELF[0x85] as usize, 0xb8);
    }

    /// Runs the program: it waits until SIGTERM, then exits 0.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn pauses_until_sigterm() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pause");
        std::fs::write(&path, PAUSE_ELF).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = std::process::Command::new(&path).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "still paused");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0));
    }

    #[test]
    fn the_rootfs_holds_pause() {
        let tar = rootfs_tar().unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&"pause".to_string()), "{names:?}");
    }
}
