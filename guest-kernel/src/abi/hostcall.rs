//! The KVM platform's host ABI: the fixed low guest-physical layout, the boot
//! handoff page, the notification ports, the host-call queue and the ring
//! of signals from the host.
//!
//! Both sides (the ring-0 sentry image and the VMM's `vcpu` crate) include
//! this module. It is plain data: every shared structure is described by
//! byte offsets of little-endian `u64`/`u32` fields, so neither side needs to
//! trust the other's struct layout, and the host reads each field through
//! vm-memory with bounds checks.
//!
//! # Layout of guest-physical memory
//!
//! ```text
//! 0x0000_0000  unused (null page)
//! 0x0000_1000  boot info page (VMM -> sentry; panic text sentry -> VMM)
//! 0x0000_2000  vIF page of vCPU 0 (one page per vCPU up to MAX_VCPUS)
//! 0x0000_a000  boot PGD pair (kernel PGD, user PGD), 8 KiB aligned
//! 0x0000_c000  PDPT of the kernel image slot (511), PDPT of the direct map
//! 0x0000_e000  GDT, TSS, IDT (one page each)
//! 0x0001_1000  direct-map page directories (one per GiB of RAM)
//! 0x0002_0000  trap stacks (IST1 = TSS.RSP0, IST2 for #DF/#NMI/#MC)
//! 0x0004_0000  host-call queue (header, slots, data arena)
//! 0x0004_0800    ring of host signals (inside the queue's header page)
//! 0x0010_0000  boot parameter blob
//! 0x0020_0000  the sentry image (p_paddr), then free RAM
//! ```
//!
//! The whole of RAM is mapped twice in the upper half: at [`KERNEL_BASE`]
//! (the first GiB, where the image is linked) and at [`DIRECT_MAP`].

/// Where the sentry image is linked: GPA `x` is at `KERNEL_BASE + x`.
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
/// The direct map of all guest RAM: GPA `x` is at `DIRECT_MAP + x`.
pub const DIRECT_MAP: u64 = 0xffff_8880_0000_0000;
/// Most vCPUs the fixed layout has room for.
pub const MAX_VCPUS: u64 = 8;
/// Largest guest RAM the boot page tables can map (one PD page per GiB).
pub const MAX_RAM: u64 = 15 << 30;
/// Smallest guest RAM the layout works with.
pub const MIN_RAM: u64 = 32 << 20;

/// Fixed guest-physical addresses.
pub mod gpa {
    /// The boot info page.
    pub const BOOT_INFO: u64 = 0x1000;
    /// The vIF page of vCPU `n` is `VIF + n * 0x1000`.
    pub const VIF: u64 = 0x2000;
    /// Kernel PGD of the boot page tables (the user PGD is the next page).
    pub const BOOT_PGD: u64 = 0xa000;
    /// PDPT for PML4 slot 511 (the image at `KERNEL_BASE`).
    pub const PDPT_KERNEL: u64 = 0xc000;
    /// PDPT for the direct map.
    pub const PDPT_DIRECT: u64 = 0xd000;
    /// The GDT (the VMM writes it; see [`super::gdt`]).
    pub const GDT: u64 = 0xe000;
    /// The TSS of vCPU `n` is at `TSS + n * 0x80`.
    pub const TSS: u64 = 0xf000;
    /// The IDT (the sentry fills it).
    pub const IDT: u64 = 0x10000;
    /// Direct-map page directories: page `i` maps GiB `i`.
    pub const PD_DIRECT: u64 = 0x11000;
    /// Trap stacks: vCPU `n` owns `[TRAP_STACKS + n*TRAP_STACK_SIZE, +TRAP_STACK_SIZE)`:
    /// the IST1 stack in the upper part, the IST2 stack in the lower part.
    pub const TRAP_STACKS: u64 = 0x20000;
    /// Size of one vCPU's trap stacks.
    pub const TRAP_STACK_SIZE: u64 = 0x4000;
    /// The host-call queue.
    pub const QUEUE: u64 = 0x40000;
    /// Size of the host-call queue area.
    pub const QUEUE_SIZE: u64 = 0xc0000;
    /// The ring of signals from the host (see [`super::signals`]), in the
    /// unused part of the queue's header page.
    pub const SIGNALS: u64 = QUEUE + 0x800;
    /// Size of the signal ring area.
    pub const SIGNALS_SIZE: u64 = 0x800;
    /// The boot parameter blob.
    pub const PARAMS: u64 = 0x100000;
    /// Largest boot parameter blob.
    pub const PARAMS_MAX: u64 = 0x100000;
    /// Where the image's first segment is loaded (its `p_paddr`).
    pub const IMAGE: u64 = 0x200000;
}

/// GDT selectors and descriptors (index * 8).
pub mod gdt {
    /// Kernel code (L=1, DPL 0).
    pub const KERNEL_CS: u16 = 0x10;
    /// Kernel data.
    pub const KERNEL_SS: u16 = 0x18;
    /// The TSS descriptor (16 bytes).
    pub const TSS_SEL: u16 = 0x40;
    /// Descriptors by index: null, null, kcode, kdata, ucode32, udata, ucode64.
    pub const ENTRIES: [u64; 7] = [
        0,
        0,
        0x00af_9b00_0000_ffff,
        0x00cf_9300_0000_ffff,
        0x00cf_fb00_0000_ffff,
        0x00cf_f300_0000_ffff,
        0x00af_fb00_0000_ffff,
    ];
    /// TSS layout offsets.
    pub const TSS_RSP0: u64 = 4;
    /// IST1 (the IST slots follow at 8-byte steps).
    pub const TSS_IST1: u64 = 0x24;
    /// IST2.
    pub const TSS_IST2: u64 = 0x2c;
    /// I/O map base (set past the limit: no I/O bitmap).
    pub const TSS_IOMAP: u64 = 0x66;
    /// Limit of the TSS.
    pub const TSS_LIMIT: u32 = 0x67;
}

/// The boot info page at [`gpa::BOOT_INFO`]: `u64` fields at these offsets.
pub mod boot_info {
    /// [`MAGIC`].
    pub const MAGIC_OFF: u64 = 0x00;
    /// ABI version ([`VERSION`]).
    pub const VERSION_OFF: u64 = 0x08;
    /// Guest RAM size in bytes.
    pub const MEM_SIZE: u64 = 0x10;
    /// Flavour: [`FLAVOUR_PVM`] or [`FLAVOUR_HW`].
    pub const FLAVOUR: u64 = 0x18;
    /// First byte past the loaded image (GPA, including `.bss`).
    pub const IMAGE_END: u64 = 0x20;
    /// Length of the boot parameter blob at [`super::gpa::PARAMS`].
    pub const PARAMS_LEN: u64 = 0x28;
    /// TSC frequency in kHz.
    pub const TSC_KHZ: u64 = 0x30;
    /// Wall-clock time (ns since the epoch) when the VMM wrote this page.
    pub const REALTIME_NS: u64 = 0x38;
    /// Number of vCPUs.
    pub const NR_VCPUS: u64 = 0x40;
    /// 32 bytes of host entropy (seed for the sentry's generator).
    pub const SEED: u64 = 0x48;
    /// Self-test selector: 0 runs the sentry, other values run an arch self-test.
    pub const SELFTEST: u64 = 0x68;
    /// Self-test argument (an iteration count).
    pub const SELFTEST_ARG: u64 = 0x70;
    /// Set to [`BOOTED`] by the sentry once its arch layer is up (the VMM's
    /// boot watchdog reads it).
    pub const BOOT_STATE: u64 = 0x78;
    /// Self-test results written by the sentry (8 `u64`s).
    pub const RESULTS: u64 = 0x80;
    /// Length of the encoded `ExitStatus` the sentry leaves at
    /// [`super::gpa::PARAMS`] (the boot parameters are consumed by then)
    /// before it writes [`super::port::EXIT`]; 0 if there is none.
    pub const EXIT_LEN: u64 = 0xc0;
    /// Length of the panic text (sentry -> VMM).
    pub const PANIC_LEN: u64 = 0xf8;
    /// The panic text (UTF-8, at most [`PANIC_MAX`] bytes).
    pub const PANIC_TEXT: u64 = 0x100;
    /// Bound on the panic text.
    pub const PANIC_MAX: u64 = 0xf00;

    /// "RFBOOTI\0".
    pub const MAGIC: u64 = 0x0049_544f_4f42_4652;
    /// Layout version.
    pub const VERSION: u64 = 1;
    /// PVM flavour (paravirtual KVM, kernel at hardware CPL 3).
    pub const FLAVOUR_PVM: u64 = 1;
    /// Hardware flavour (VT-x/AMD-V, real ring 0). Not supported yet.
    pub const FLAVOUR_HW: u64 = 2;
    /// Value of [`BOOT_STATE`] once the arch layer is up.
    pub const BOOTED: u64 = 0x00b0_07ed;
}

/// I/O ports the sentry writes (32-bit `out`).
pub mod port {
    /// Host-call doorbell, served by a `KVM_IOEVENTFD` (no exit to the VMM).
    pub const NOTIFY: u16 = 0x510;
    /// The sentry is done; the value written is the exit status.
    pub const EXIT: u16 = 0x511;
    /// The sentry panicked or took a kernel-mode fault; the text is in the
    /// boot info page.
    pub const PANIC: u16 = 0x512;
    /// Debug text in the boot info panic area, printed by the VMM (rare, sync).
    pub const DEBUG: u16 = 0x513;
    /// A request has waited unclaimed: the vCPU's thread serves the file
    /// operations at the head of the queue itself, if the I/O thread is
    /// not serving (an exit to the VMM, about 25 µs; the value is unused).
    pub const SERVE: u16 = 0x514;
    /// The sentry has work for a second CPU: the VMM lets the other vCPUs
    /// enter the guest (they wait until then; an exit, once).
    pub const START_CPUS: u16 = 0x515;
}

/// The host-call queue at [`gpa::QUEUE`].
///
/// A single-producer (the sentry) single-consumer (the VMM: its I/O
/// thread, or a vCPU thread, one at a time) ring of [`NR_SLOTS`] fixed
/// slots, served strictly in order, followed by a byte arena that holds
/// the payload of asynchronous writes.
///
/// Protocol:
/// 1. The sentry fills the slot at `head % NR_SLOTS` (which must be
///    [`STATE_FREE`]), stores [`STATE_POSTED`] into its state word with
///    release ordering, then increments [`HEAD`].
/// 2. After a full fence it reads [`HOST_WAITING`]; only if it is non-zero
///    does it ring [`super::port::NOTIFY`]. The host sets `HOST_WAITING`,
///    fences and re-checks the ring before it sleeps, so no request is lost
///    and a busy host is never notified twice.
/// 3. The host serves slots in order: it claims a slot by changing its state
///    from [`STATE_POSTED`] to [`STATE_TAKEN`] (compare-and-exchange), reads
///    the request, writes [`SLOT_RESULT`] (a byte count or `-errno`), then
///    stores [`STATE_DONE`] with release ordering.
/// 4. The sentry reclaims done slots (sets them free) in order.
/// 5. Batching: while the newest slot is an asynchronous write that the
///    host has not claimed, the sentry may append to it instead of posting
///    a new slot: it changes the state from `STATE_POSTED` to
///    [`STATE_BUSY`] (compare-and-exchange), places the bytes right after
///    the slot's payload in the arena, grows [`SLOT_LEN`], stores
///    `STATE_POSTED` again and then checks [`HOST_WAITING`] as in step 2.
///    A host that finds `STATE_BUSY` waits for it to end.
/// 6. Waiting: the sentry spins briefly for a completion; a request still
///    `STATE_POSTED` after a few microseconds makes it write
///    [`super::port::SERVE`], an exit on which its vCPU's thread serves the
///    file operations at the head of the queue (unless the I/O thread is
///    serving). It then sets
///    [`GUEST_WAITING`], fences, checks again and halts (with a timer as a
///    backstop). The host fences after each completion and, if
///    `GUEST_WAITING` is set, sends [`WAKE_VECTOR`]. A request the host
///    has claimed may block for as long as its host call does (a read of
///    stdin); only a request never claimed means the host is gone.
///
/// All guest addresses in a request are GPAs; the host validates each range
/// against guest memory and never trusts lengths.
pub mod queue {
    /// Header: the sentry's count of posted requests.
    pub const HEAD: u64 = 0x00;
    /// Header: the host's count of served requests.
    pub const TAIL: u64 = 0x08;
    /// Header: non-zero while the host thread sleeps (the sentry must notify).
    pub const HOST_WAITING: u64 = 0x10;
    /// Header: number of doorbells rung (statistics).
    pub const NOTIFIES: u64 = 0x18;
    /// Header (u32): the mask of vCPUs (bit n: vCPU n) halted waiting for a
    /// completion; the host then sends [`WAKE_VECTOR`] to each of them
    /// after completing a slot.
    pub const GUEST_WAITING: u64 = 0x20;
    /// The interrupt vector of that wake-up (an MSI to the in-kernel LAPIC,
    /// no exit to the VMM).
    pub const WAKE_VECTOR: u32 = 0xed;
    /// Offset of the slot array.
    pub const SLOTS: u64 = 0x1000;
    /// Bytes per slot.
    pub const SLOT_SIZE: u64 = 64;
    /// Number of slots.
    pub const NR_SLOTS: u64 = 256;
    /// Offset of the data arena (after the slots).
    pub const ARENA: u64 = SLOTS + SLOT_SIZE * NR_SLOTS;
    /// Size of the data arena.
    pub const ARENA_SIZE: u64 = super::gpa::QUEUE_SIZE - ARENA;

    /// Slot: state word (`u32`).
    pub const SLOT_STATE: u64 = 0x00;
    /// Slot: operation (`u32`, one of the `OP_*`).
    pub const SLOT_OP: u64 = 0x04;
    /// Slot: host handle (`u32`).
    pub const SLOT_HANDLE: u64 = 0x08;
    /// Slot: buffer GPA (`u64`).
    pub const SLOT_ADDR: u64 = 0x10;
    /// Slot: buffer length (`u64`).
    pub const SLOT_LEN: u64 = 0x18;
    /// Slot: file offset (`u64`).
    pub const SLOT_OFFSET: u64 = 0x20;
    /// Slot: result (`i64`): a count or handle, or `-errno`.
    pub const SLOT_RESULT: u64 = 0x28;
    /// Slot: sentry-private bookkeeping (arena end of an async write).
    pub const SLOT_PRIV: u64 = 0x30;

    /// Slot state: free for the sentry.
    pub const STATE_FREE: u32 = 0;
    /// Slot state: posted, waiting for the host.
    pub const STATE_POSTED: u32 = 1;
    /// Slot state: served; the result is valid.
    pub const STATE_DONE: u32 = 2;
    /// Slot state: the sentry is appending to this posted write.
    pub const STATE_BUSY: u32 = 3;
    /// Slot state: claimed by the host, being served.
    pub const STATE_TAKEN: u32 = 4;
    /// Largest payload an appended-to asynchronous write grows to.
    pub const BATCH_MAX: u64 = 64 << 10;

    /// Open the path at `addr`/`len` read-only; result is the handle.
    pub const OP_OPEN: u32 = 1;
    /// Read into `addr`/`len` at the current offset.
    pub const OP_READ: u32 = 2;
    /// Read into `addr`/`len` at `offset`.
    pub const OP_PREAD: u32 = 3;
    /// Write `addr`/`len` at the current offset.
    pub const OP_WRITE: u32 = 4;
    /// Write a struct stat (144 bytes) to `addr`.
    pub const OP_FSTAT: u32 = 5;
    /// Write the termios (`len` bytes) to `addr`, or fail with `ENOTTY`.
    pub const OP_TCGETS: u32 = 6;
    /// Close the handle.
    pub const OP_CLOSE: u32 = 7;
    /// No operation (a barrier / latency probe).
    pub const OP_NOP: u32 = 8;
    /// A sentry log record: the UTF-8 text at `addr`/`len` (in the arena),
    /// the `log` level (1 error .. 5 trace) in the handle field.
    pub const OP_LOG: u32 = 9;
    /// `getdents64` on a directory handle into `addr`/`len`.
    pub const OP_GETDENTS64: u32 = 10;
    /// `readlink` of the path in `addr[..offset]`; the target is written
    /// over the buffer (`len` bytes at most) and its length returned.
    pub const OP_READLINK: u32 = 11;
    /// Copy the next `exec` request (an encoded `ExecRequest`) into
    /// `addr`/`len`; its length, or 0 when none is waiting.
    pub const OP_TAKE_EXEC: u32 = 12;
    /// An `exec`'d process ended: id in `handle`, exit code in `offset`.
    pub const OP_EXEC_EXIT: u32 = 13;
    /// A terminal ioctl on a handle: the request code in `offset`, its
    /// argument in `addr`/`len` (read, and written back for queries).
    /// Only `TTY_IOCTLS` are served.
    pub const OP_TTY_IOCTL: u32 = 14;
    /// The terminal ioctls the host serves, with their argument sizes.
    pub const TTY_IOCTLS: [(u32, u64); 5] = [
        (0x5402, 36), // TCSETS
        (0x5403, 36), // TCSETSW
        (0x5404, 36), // TCSETSF
        (0x5413, 8),  // TIOCGWINSZ
        (0x5414, 8),  // TIOCSWINSZ
    ];

    /// The argument size of terminal ioctl `cmd`, if the host serves it.
    pub fn tty_ioctl_size(cmd: u32) -> Option<u64> {
        TTY_IOCTLS
            .iter()
            .find(|(c, _)| *c == cmd)
            .map(|(_, size)| *size)
    }
    /// `lstat` of the path in `addr[..offset]` (the last component is not
    /// followed); the 144-byte stat is written over the buffer.
    pub const OP_LSTAT: u32 = 15;
    /// Open the path at `addr`/`len` beneath a read-write bind mount with
    /// the `O_*` flags in the low half of `offset` (only [`OPEN_RW_FLAGS`])
    /// and the creation mode in the high half; result is the handle.
    /// (The ops for read-write binds start at 35, apart from the others,
    /// to keep merges with other branches' new ops simple.)
    pub const OP_OPEN_RW: u32 = 35;
    /// Write `addr`/`len` at `offset` (a handle opened with `OP_OPEN_RW`).
    pub const OP_PWRITE: u32 = 36;
    /// Set the size of the file to `offset`.
    pub const OP_FTRUNCATE: u32 = 37;
    /// Flush the file to the host's storage.
    pub const OP_FSYNC: u32 = 38;
    /// A change of the namespace beneath a read-write bind mount: the
    /// `PATH_*` operation in the handle field, the path then a NUL then
    /// the operation's extra bytes at `addr`/`len`, its argument in
    /// `offset` (see [`path_op`]).
    pub const OP_PATH: u32 = 39;
    /// The flags `OP_OPEN_RW` accepts: `O_ACCMODE`, `O_CREAT`, `O_EXCL`,
    /// `O_TRUNC`, `O_APPEND`, `O_DIRECTORY`, `O_NOFOLLOW`.
    pub const OPEN_RW_FLAGS: u32 = 0o3 | 0o100 | 0o200 | 0o1000 | 0o2000 | 0o200000 | 0o400000;

    /// The payload of an `OP_PATH`: the path, a NUL, the extra bytes.
    pub fn path_payload(path: &[u8], extra: &[u8]) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec::Vec::with_capacity(path.len() + 1 + extra.len());
        out.extend_from_slice(path);
        out.push(0);
        out.extend_from_slice(extra);
        out
    }

    /// Split an `OP_PATH` payload into the path and the extra bytes.
    pub fn split_path_payload(payload: &[u8]) -> Option<(&[u8], &[u8])> {
        let nul = payload.iter().position(|b| *b == 0)?;
        Some((&payload[..nul], &payload[nul + 1..]))
    }

    /// The operations of `OP_PATH`. Paths are container paths, which the
    /// host resolves beneath the bind's source.
    pub mod path_op {
        /// `mkdir`; the argument is the mode.
        pub const MKDIR: u32 = 1;
        /// `unlink` of a non-directory.
        pub const UNLINK: u32 = 2;
        /// `rmdir`.
        pub const RMDIR: u32 = 3;
        /// `renameat2` to the path in the extra bytes (same bind mount);
        /// the argument is `RENAME_NOREPLACE` or `RENAME_EXCHANGE` or 0.
        pub const RENAME: u32 = 4;
        /// `symlink` at the path, whose target is the extra bytes.
        pub const SYMLINK: u32 = 5;
        /// `chmod` (following a final symlink, beneath the bind); the
        /// argument is the mode.
        pub const CHMOD: u32 = 6;
        /// `utimensat`: the extra bytes are two `struct timespec` (32
        /// bytes, `UTIME_NOW`/`UTIME_OMIT` allowed); the argument is 0 or
        /// `AT_SYMLINK_NOFOLLOW`.
        pub const UTIMENS: u32 = 7;
        /// `linkat` (no symlink followed) to the path in the extra bytes
        /// (same bind mount).
        pub const LINK: u32 = 8;
        /// `chown` (following a final symlink, beneath the bind); the
        /// argument is the uid in the low half, the gid in the high half,
        /// `u32::MAX` for "unchanged".
        pub const CHOWN: u32 = 9;
        /// `lchown`: as [`CHOWN`], a final symlink itself.
        pub const LCHOWN: u32 = 10;
    }
    /// Longest encoded `exec` request: the host refuses longer ones.
    pub const EXEC_MAX: u64 = 256 << 10;
    /// Longest log record the host accepts.
    pub const LOG_MAX: u64 = 4096;

    /// Longest path an `OP_OPEN` may carry.
    pub const PATH_MAX: u64 = 4096;
    /// Largest single transfer.
    pub const IO_MAX: u64 = 1 << 30;
}

/// The ring of signals from the host at [`gpa::SIGNALS`]: `kill` from the
/// control server, or a signal the sandbox process forwards.
///
/// A single-producer (the VMM, whose senders serialise among themselves)
/// single-consumer (the sentry) ring of [`NR_ENTRIES`] fixed entries.
///
/// Protocol:
/// 1. The host keeps its own count of posted signals (it never trusts
///    [`HEAD`] as read back from guest memory). It reads [`TAIL`]; if the
///    ring is full, or `TAIL` is past its count (a broken guest), it drops
///    the signal, logs it and counts it in [`DROPPED`]. It never waits.
/// 2. Otherwise it fills the entry at `head % NR_ENTRIES`, stores
///    `head + 1` into `HEAD` with release ordering, and sends
///    [`SIGNAL_VECTOR`] to vCPU 0 (an MSI to the in-kernel LAPIC, no exit
///    to the VMM). The interrupt wakes a halted sentry and preempts user
///    code into the sentry (`Trap::Interrupt`); a sentry busy in kernel
///    mode takes it, or polls the ring, when it next looks for work.
/// 3. The sentry keeps its own count of taken signals. It reads `HEAD`
///    (acquire); while it differs from its count it reads the entry at
///    `tail % NR_ENTRIES`, then stores `tail + 1` into `TAIL` (release),
///    which gives the entry back to the host. A `HEAD` behind its count or
///    more than `NR_ENTRIES` ahead of it means a broken host: the sentry
///    skips to `HEAD`. An entry with a signal outside `1..=MAX_SIGNAL`, a
///    negative pid or unknown flags is skipped.
pub mod signals {
    /// Header: the host's count of posted signals (`u64`).
    pub const HEAD: u64 = 0x00;
    /// Header: the sentry's count of taken signals (`u64`).
    pub const TAIL: u64 = 0x08;
    /// Header: signals the host dropped (`u64`, statistics).
    pub const DROPPED: u64 = 0x10;
    /// Header: the host's count of `exec` requests posted (`u64`); the
    /// sentry fetches each with `OP_TAKE_EXEC`.
    pub const EXEC_POSTED: u64 = 0x18;
    /// The interrupt vector that announces a signal.
    pub const SIGNAL_VECTOR: u32 = 0xee;
    /// Offset of the entry array.
    pub const ENTRIES: u64 = 0x40;
    /// Bytes per entry.
    pub const ENTRY_SIZE: u64 = 16;
    /// Number of entries.
    pub const NR_ENTRIES: u64 = 32;
    /// Entry: container pid of the target, 0 for the init (`i32`).
    pub const ENTRY_PID: u64 = 0x00;
    /// Entry: signal number (`i32`).
    pub const ENTRY_SIG: u64 = 0x04;
    /// Entry: flags (`u32`, the `FLAG_*`).
    pub const ENTRY_FLAGS: u64 = 0x08;
    /// Entry: the pod container it is for (`u32`, `HostSignal::container`).
    pub const ENTRY_CONTAINER: u64 = 0x0c;
    /// Flag: signal every process of the container.
    pub const FLAG_ALL: u32 = 1;
    /// Flag: `pid` is a process group.
    pub const FLAG_PGRP: u32 = 2;
    /// Flag: `pid` is an `exec` id; for its terminal's foreground group.
    pub const FLAG_EXEC: u32 = 4;
    /// The highest signal number (`SIGRTMAX`).
    pub const MAX_SIGNAL: i32 = 64;

    const _: () = assert!(ENTRIES + NR_ENTRIES * ENTRY_SIZE <= super::gpa::SIGNALS_SIZE);
    // The ring lies in the queue's header page, past its header fields.
    const _: () =
        assert!(super::gpa::SIGNALS >= super::gpa::QUEUE + super::queue::GUEST_WAITING + 8);
    const _: () = assert!(
        super::gpa::SIGNALS + super::gpa::SIGNALS_SIZE <= super::gpa::QUEUE + super::queue::SLOTS
    );
}
