//! `loader::elf::parse` (and `parse_shebang`) on any bytes: never panics,
//! and what it accepts is safe to map.

#![no_main]

use guest_kernel::abi::linux::TASK_SIZE;
use guest_kernel::abi::Errno;
use guest_kernel::loader::{elf, parse_shebang};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match elf::parse(data) {
        Ok(info) => {
            assert!(!info.segments.is_empty());
            let mut end = 0;
            for s in &info.segments {
                assert!(s.memsz > 0);
                let seg_end = s.vaddr.checked_add(s.memsz).expect("segment wraps");
                assert!(seg_end <= TASK_SIZE, "segment above TASK_SIZE: {s:?}");
                assert!(s.filesz <= s.memsz, "filesz > memsz: {s:?}");
                let file_end = s.offset.checked_add(s.filesz).expect("file range wraps");
                assert!(
                    file_end <= data.len() as u64,
                    "file range outside the input: {s:?}"
                );
                end = end.max(seg_end);
            }
            assert_eq!(info.end, end);
            assert!(
                info.segments
                    .iter()
                    .any(|s| s.prot.exec && (s.vaddr..s.vaddr + s.memsz).contains(&info.entry)),
                "entry {:#x} outside every executable segment",
                info.entry
            );
            if let Some(interp) = &info.interp {
                assert!(!interp.is_empty() && !interp.contains(&0));
            }
        }
        Err(e) => assert_eq!(e, Errno::ENOEXEC),
    }
    if let Some((interp, arg)) = parse_shebang(data) {
        assert!(!interp.is_empty());
        assert!(interp.len() < 256);
        if let Some(arg) = arg {
            assert!(!arg.is_empty());
        }
    }
});
