//! The vDSO: `clock_gettime`, `gettimeofday`, `time` and `clock_getres`
//! without a system call; `getcpu` makes one (only the sentry knows the vCPU).
//!
//! Every address space gets two pages, mapped read-only by the loader
//! (`AT_SYSINFO_EHDR` points at the second):
//!
//! ```text
//!   base - 4096  vvar   the clock parameters, written once per sandbox
//!   base         vDSO   an ELF shared object ("linux-vdso.so.1")
//! ```
//!
//! Both are generated here at sentry start (no prebuilt blob): [`image`]
//! writes the ELF (header, `PT_LOAD`, `PT_DYNAMIC`, `.hash`, `.dynsym`,
//! `.dynstr`, `.gnu.version`, `.gnu.version_d` with version `LINUX_2.6`,
//! `.text`, section headers) around x86-64 machine code assembled by the
//! small [`Asm`] below from hand-checked encodings, one commented line per
//! instruction. glibc's `dl_vdso_vsym` finds `__vdso_clock_gettime` and the
//! rest through `DT_HASH`, `DT_VERSYM` and `DT_VERDEF` exactly as it finds
//! Linux's.
//!
//! Time: `ns = mono_base + (rdtsc - tsc_base) * 1e9 / tsc_hz`, the
//! multiplication split into an integer part and a 64-bit binary fraction
//! (rounded up, so the vDSO never reads earlier than the platform's own
//! clock, and at most 1 ns later). REALTIME adds `realtime - monotonic`.
//! The parameters come from [`Platform::tsc_clock`]; without them there is
//! no vDSO and every clock read stays a system call. Clocks the vDSO does
//! not serve (CPU-time clocks, bad ids) fall back to the real `syscall`,
//! as Linux's vDSO does.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::abi::{Errno, KResult, PAGE_SIZE};
use crate::kernel::Kernel;
use crate::mm::{FrameAllocator, MmStruct, Vma, VmaKind};
use crate::platform::{PhysAddr, Platform, Prot, TscClock};

/// The vDSO's soname.
pub const SONAME: &[u8] = b"linux-vdso.so.1";
/// The version every symbol carries, as on Linux.
pub const VERSION: &[u8] = b"LINUX_2.6";
/// The functions, each exported as `__vdso_NAME` and as a weak `NAME`.
pub const FUNCTIONS: [&str; 5] = [
    "clock_gettime",
    "gettimeofday",
    "time",
    "getcpu",
    "clock_getres",
];

/// Offsets of the vvar page's fields (all `u64`).
pub mod vvar {
    /// TSC value the other fields refer to.
    pub const TSC_BASE: u64 = 0x00;
    /// Fractional nanoseconds per tick, times 2^64 (rounded up).
    pub const MULT_FRAC: u64 = 0x08;
    /// Whole nanoseconds per tick (0 for a TSC faster than 1 GHz).
    pub const MULT_INT: u64 = 0x10;
    /// CLOCK_MONOTONIC at `TSC_BASE`, ns.
    pub const MONO_BASE: u64 = 0x18;
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, ns (wrapping).
    pub const REAL_OFFSET: u64 = 0x20;
    /// "RFVVAR01", for anyone reading the page.
    pub const MAGIC: u64 = 0x28;
    /// Bytes used.
    pub const LEN: usize = 0x30;
    pub const MAGIC_VALUE: u64 = u64::from_le_bytes(*b"RFVVAR01");
}

/// Linux's clock ids the vDSO serves: REALTIME (0), MONOTONIC (1),
/// MONOTONIC_RAW (4), REALTIME_COARSE (5), MONOTONIC_COARSE (6) and
/// BOOTTIME (7), the same grouping the sentry's `clock_gettime` uses.
const SERVED_CLOCKS: u8 = 0b1111_0011;
/// Those of them that read the wall clock: REALTIME and REALTIME_COARSE.
const REALTIME_CLOCKS: u8 = 0b0010_0001;

/// The vvar page's contents for `clock`.
pub fn vvar_page(clock: &TscClock) -> [u8; vvar::LEN] {
    let hz = clock.tsc_hz.max(1);
    let int = 1_000_000_000 / hz;
    let rem = 1_000_000_000 % hz;
    // ceil(rem / hz * 2^64); rem < hz, so it fits in 64 bits.
    let frac = ((u128::from(rem) << 64).div_ceil(u128::from(hz))) as u64;
    let mut page = [0u8; vvar::LEN];
    let mut put = |off: u64, v: u64| {
        page[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    };
    put(vvar::TSC_BASE, clock.tsc_base);
    put(vvar::MULT_FRAC, frac);
    put(vvar::MULT_INT, int);
    put(vvar::MONO_BASE, clock.mono_base_ns);
    put(
        vvar::REAL_OFFSET,
        clock.realtime_base_ns.wrapping_sub(clock.mono_base_ns),
    );
    put(vvar::MAGIC, vvar::MAGIC_VALUE);
    page
}

/// What the vDSO code computes from a vvar page for a TSC reading (the
/// model the unit tests check the parameters with).
pub fn monotonic_at(page: &[u8; vvar::LEN], tsc: u64) -> u64 {
    let get = |off: u64| {
        u64::from_le_bytes(
            page[off as usize..off as usize + 8]
                .try_into()
                .unwrap_or([0; 8]),
        )
    };
    let d = tsc.saturating_sub(get(vvar::TSC_BASE));
    let hi = ((u128::from(d) * u128::from(get(vvar::MULT_FRAC))) >> 64) as u64;
    d.wrapping_mul(get(vvar::MULT_INT))
        .wrapping_add(hi)
        .wrapping_add(get(vvar::MONO_BASE))
}

// ---------------------------------------------------------------------------
// A tiny assembler: raw encodings plus label, call and RIP-relative fixups.

/// Machine code being assembled at virtual address `base` of the image
/// (the image is linked at 0; the vvar page sits at `-PAGE_SIZE`).
struct Asm {
    base: u64,
    code: Vec<u8>,
    labels: BTreeMap<&'static str, usize>,
    /// (position of a rel8/rel32 field, its width, target label)
    fixups: Vec<(usize, usize, &'static str)>,
}

impl Asm {
    fn new(base: u64) -> Asm {
        Asm {
            base,
            code: Vec::new(),
            labels: BTreeMap::new(),
            fixups: Vec::new(),
        }
    }

    /// One instruction, fully encoded.
    fn op(&mut self, bytes: &[u8]) {
        self.code.extend_from_slice(bytes);
    }

    fn label(&mut self, name: &'static str) {
        self.labels.insert(name, self.code.len());
    }

    /// A short conditional (or unconditional, 0xeb) jump: `opcode rel8`.
    fn jump8(&mut self, opcode: u8, target: &'static str) {
        self.code.push(opcode);
        self.fixups.push((self.code.len(), 1, target));
        self.code.push(0);
    }

    /// `call rel32` (e8).
    fn call(&mut self, target: &'static str) {
        self.code.push(0xe8);
        self.fixups.push((self.code.len(), 4, target));
        self.code.extend_from_slice(&[0; 4]);
    }

    /// An instruction whose last field is a RIP-relative disp32 naming the
    /// vvar field at `field`: `prefix` is everything before the disp32.
    fn vvar(&mut self, prefix: &[u8], field: u64) {
        self.code.extend_from_slice(prefix);
        let end = self.base as i64 + self.code.len() as i64 + 4;
        let target = -(PAGE_SIZE as i64) + field as i64;
        let disp = (target - end) as i32;
        self.code.extend_from_slice(&disp.to_le_bytes());
    }

    /// Resolve the fixups. Labels are this module's own, so a missing one
    /// or an out-of-range short jump is a bug here, caught by the tests.
    fn finish(mut self) -> (Vec<u8>, BTreeMap<&'static str, usize>) {
        for &(at, width, target) in &self.fixups {
            let to = self.labels.get(target).copied().unwrap_or(at) as i64;
            let rel = to - (at + width) as i64;
            if width == 1 {
                self.code[at] = i8::try_from(rel).unwrap_or(0) as u8;
            } else {
                self.code[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes());
            }
        }
        (self.code, self.labels)
    }
}

/// `movabs rdx, 0x0044_b82f_a09b_5a53`: with `shr rax, 9; mul rdx;
/// shr rdx, 11` it divides rax by 1e9 (the reciprocal gcc uses for u64).
const MOVABS_RDX_DIV1E9: [u8; 10] = [0x48, 0xba, 0x53, 0x5a, 0x9b, 0xa0, 0x2f, 0xb8, 0x44, 0x00];

/// The code, assembled at `base`. Returns the bytes and the offset of each
/// function (by name, without `__vdso_`). Registers: only rax, rcx, rdx, r8
/// and (on the fallback `syscall`) r11 change, all call-clobbered; the
/// stack holds one return address of the internal `call`.
fn code(base: u64) -> (Vec<u8>, BTreeMap<&'static str, usize>) {
    let mut a = Asm::new(base);

    // int clock_gettime(clockid_t id /* edi */, struct timespec *ts /* rsi */)
    a.label("clock_gettime");
    a.op(&[0x83, 0xff, 0x07]); // cmp edi, 7
    a.jump8(0x77, "cgt_syscall"); // ja cgt_syscall (unsigned: negative ids too)
    a.op(&[0xb8, SERVED_CLOCKS, 0, 0, 0]); // mov eax, SERVED_CLOCKS
    a.op(&[0x0f, 0xa3, 0xf8]); // bt eax, edi
    a.jump8(0x73, "cgt_syscall"); // jnc cgt_syscall
    a.call("mono"); // call mono            ; rax = CLOCK_MONOTONIC ns
    a.op(&[0xb9, REALTIME_CLOCKS, 0, 0, 0]); // mov ecx, REALTIME_CLOCKS
    a.op(&[0x0f, 0xa3, 0xf9]); // bt ecx, edi
    a.jump8(0x73, "cgt_split"); // jnc cgt_split
    a.vvar(&[0x48, 0x03, 0x05], vvar::REAL_OFFSET); // add rax, [rip + vvar.real_offset]
    a.label("cgt_split");
    a.op(&[0x48, 0x89, 0xc1]); // mov rcx, rax         ; ns
    a.op(&[0x48, 0xc1, 0xe8, 0x09]); // shr rax, 9
    a.op(&MOVABS_RDX_DIV1E9); // movabs rdx, 0x44b82fa09b5a53
    a.op(&[0x48, 0xf7, 0xe2]); // mul rdx               ; rdx:rax = (ns >> 9) * m
    a.op(&[0x48, 0xc1, 0xea, 0x0b]); // shr rdx, 11      ; rdx = ns / 1e9
    a.op(&[0x48, 0x69, 0xc2, 0x00, 0xca, 0x9a, 0x3b]); // imul rax, rdx, 1000000000
    a.op(&[0x48, 0x29, 0xc1]); // sub rcx, rax          ; rcx = ns % 1e9
    a.op(&[0x48, 0x89, 0x16]); // mov [rsi], rdx        ; tv_sec
    a.op(&[0x48, 0x89, 0x4e, 0x08]); // mov [rsi + 8], rcx ; tv_nsec
    a.op(&[0x31, 0xc0]); // xor eax, eax
    a.op(&[0xc3]); // ret
    a.label("cgt_syscall");
    a.op(&[0xb8, 0xe4, 0x00, 0x00, 0x00]); // mov eax, 228 (SYS_clock_gettime)
    a.op(&[0x0f, 0x05]); // syscall
    a.op(&[0xc3]); // ret

    // int gettimeofday(struct timeval *tv /* rdi */, struct timezone *tz /* rsi */)
    a.label("gettimeofday");
    a.op(&[0x48, 0x85, 0xff]); // test rdi, rdi
    a.jump8(0x74, "gtod_tz"); // jz gtod_tz
    a.call("mono"); // call mono
    a.vvar(&[0x48, 0x03, 0x05], vvar::REAL_OFFSET); // add rax, [rip + vvar.real_offset]
    a.op(&[0x48, 0x89, 0xc1]); // mov rcx, rax
    a.op(&[0x48, 0xc1, 0xe8, 0x09]); // shr rax, 9
    a.op(&MOVABS_RDX_DIV1E9); // movabs rdx, 0x44b82fa09b5a53
    a.op(&[0x48, 0xf7, 0xe2]); // mul rdx
    a.op(&[0x48, 0xc1, 0xea, 0x0b]); // shr rdx, 11      ; rdx = seconds
    a.op(&[0x48, 0x69, 0xc2, 0x00, 0xca, 0x9a, 0x3b]); // imul rax, rdx, 1000000000
    a.op(&[0x48, 0x29, 0xc1]); // sub rcx, rax          ; rcx = ns % 1e9
    a.op(&[0x48, 0x89, 0x17]); // mov [rdi], rdx        ; tv_sec
    a.op(&[0x48, 0x69, 0xc9, 0xd3, 0x4d, 0x62, 0x10]); // imul rcx, rcx, 0x10624dd3
    a.op(&[0x48, 0xc1, 0xe9, 0x26]); // shr rcx, 38       ; rcx = (ns % 1e9) / 1000
    a.op(&[0x48, 0x89, 0x4f, 0x08]); // mov [rdi + 8], rcx ; tv_usec
    a.label("gtod_tz");
    a.op(&[0x48, 0x85, 0xf6]); // test rsi, rsi
    a.jump8(0x74, "gtod_done"); // jz gtod_done
    a.op(&[0x48, 0xc7, 0x06, 0, 0, 0, 0]); // mov qword [rsi], 0 ; UTC, no DST (as the sentry's syscall)
    a.label("gtod_done");
    a.op(&[0x31, 0xc0]); // xor eax, eax
    a.op(&[0xc3]); // ret

    // time_t time(time_t *t /* rdi */)
    a.label("time");
    a.call("mono"); // call mono
    a.vvar(&[0x48, 0x03, 0x05], vvar::REAL_OFFSET); // add rax, [rip + vvar.real_offset]
    a.op(&[0x48, 0xc1, 0xe8, 0x09]); // shr rax, 9
    a.op(&MOVABS_RDX_DIV1E9); // movabs rdx, 0x44b82fa09b5a53
    a.op(&[0x48, 0xf7, 0xe2]); // mul rdx
    a.op(&[0x48, 0x89, 0xd0]); // mov rax, rdx
    a.op(&[0x48, 0xc1, 0xe8, 0x0b]); // shr rax, 11      ; rax = seconds
    a.op(&[0x48, 0x85, 0xff]); // test rdi, rdi
    a.jump8(0x74, "time_done"); // jz time_done
    a.op(&[0x48, 0x89, 0x07]); // mov [rdi], rax
    a.label("time_done");
    a.op(&[0xc3]); // ret

    // int getcpu(unsigned *cpu /* rdi */, unsigned *node /* rsi */, void *cache)
    // Only the sentry knows which vCPU runs the task (user mode sees the
    // host's TSC_AUX, not the vCPU's): the system call.
    a.label("getcpu");
    a.op(&[0xb8, 0x35, 0x01, 0, 0]); // mov eax, 309 (getcpu)
    a.op(&[0x0f, 0x05]); // syscall
    a.op(&[0xc3]); // ret

    // int clock_getres(clockid_t id /* edi */, struct timespec *res /* rsi */)
    a.label("clock_getres");
    a.op(&[0x83, 0xff, 0x07]); // cmp edi, 7
    a.jump8(0x77, "cgr_syscall"); // ja cgr_syscall
    a.op(&[0xb8, SERVED_CLOCKS, 0, 0, 0]); // mov eax, SERVED_CLOCKS
    a.op(&[0x0f, 0xa3, 0xf8]); // bt eax, edi
    a.jump8(0x73, "cgr_syscall"); // jnc cgr_syscall
    a.op(&[0x48, 0x85, 0xf6]); // test rsi, rsi
    a.jump8(0x74, "cgr_done"); // jz cgr_done
    a.op(&[0x48, 0xc7, 0x06, 0, 0, 0, 0]); // mov qword [rsi], 0      ; 0 s
    a.op(&[0x48, 0xc7, 0x46, 0x08, 1, 0, 0, 0]); // mov qword [rsi + 8], 1 ; 1 ns
    a.label("cgr_done");
    a.op(&[0x31, 0xc0]); // xor eax, eax
    a.op(&[0xc3]); // ret
    a.label("cgr_syscall");
    a.op(&[0xb8, 0xe5, 0x00, 0x00, 0x00]); // mov eax, 229 (SYS_clock_getres)
    a.op(&[0x0f, 0x05]); // syscall
    a.op(&[0xc3]); // ret

    // mono: rax = CLOCK_MONOTONIC in ns. Clobbers rcx, rdx, r8.
    a.label("mono");
    a.op(&[0x0f, 0xae, 0xe8]); // lfence              ; rdtsc not before earlier loads
    a.op(&[0x0f, 0x31]); // rdtsc                      ; edx:eax = TSC
    a.op(&[0x48, 0xc1, 0xe2, 0x20]); // shl rdx, 32
    a.op(&[0x48, 0x09, 0xd0]); // or rax, rdx           ; rax = TSC
    a.op(&[0x31, 0xc9]); // xor ecx, ecx
    a.vvar(&[0x48, 0x2b, 0x05], vvar::TSC_BASE); // sub rax, [rip + vvar.tsc_base]
    a.op(&[0x48, 0x0f, 0x42, 0xc1]); // cmovb rax, rcx  ; before the base: 0
    a.op(&[0x49, 0x89, 0xc0]); // mov r8, rax           ; d = ticks since the base
    a.vvar(&[0x4c, 0x0f, 0xaf, 0x05], vvar::MULT_INT); // imul r8, [rip + vvar.mult_int]
    a.vvar(&[0x48, 0xf7, 0x25], vvar::MULT_FRAC); // mul qword [rip + vvar.mult_frac]
    a.op(&[0x4a, 0x8d, 0x04, 0x02]); // lea rax, [rdx + r8] ; d*int + hi64(d*frac)
    a.vvar(&[0x48, 0x03, 0x05], vvar::MONO_BASE); // add rax, [rip + vvar.mono_base]
    a.op(&[0xc3]); // ret

    a.finish()
}

// ---------------------------------------------------------------------------
// The ELF writer.

/// The standard SysV ELF hash (`DT_HASH`, `vd_hash`).
pub fn elf_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// A string table under construction.
struct StrTab(Vec<u8>);

impl StrTab {
    fn new() -> StrTab {
        StrTab(vec![0])
    }
    fn add(&mut self, s: &[u8]) -> u32 {
        let at = self.0.len() as u32;
        self.0.extend_from_slice(s);
        self.0.push(0);
        at
    }
}

fn align(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

fn p16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn p32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn p64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

// ELF constants (the subset used here).
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PF_X: u32 = 1;
const PF_R: u32 = 4;
const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHT_HASH: u32 = 5;
const SHT_DYNAMIC: u32 = 6;
const SHT_DYNSYM: u32 = 11;
const SHT_GNU_VERDEF: u32 = 0x6fff_fffd;
const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_SONAME: u64 = 14;
const DT_VERSYM: u64 = 0x6fff_fff0;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const STT_FUNC: u8 = 2;
const VER_FLG_BASE: u16 = 1;

/// Section indices of the ones referred to, in the order the section
/// headers are written (address order): null, .hash, .dynsym, .dynstr,
/// .gnu.version, .gnu.version_d, .dynamic, .text, .shstrtab.
const SEC_DYNSYM: u16 = 2;
const SEC_DYNSTR: u16 = 3;
const SEC_TEXT: u16 = 7;
const SEC_SHSTRTAB: u16 = 8;
const NSECTIONS: u16 = 9;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;
const NPHDRS: usize = 2;

/// The vDSO image: an ELF shared object linked at 0, one page long.
pub fn image() -> Vec<u8> {
    // Symbols: null, then for each function `__vdso_NAME` (global) and
    // `NAME` (weak), all at version index 2 (LINUX_2.6).
    let mut dynstr = StrTab::new();
    let soname = dynstr.add(SONAME);
    let version = dynstr.add(VERSION);
    let mut names: Vec<(u32, bool, &'static str)> = Vec::new();
    for f in FUNCTIONS {
        let mut full = Vec::from(&b"__vdso_"[..]);
        full.extend_from_slice(f.as_bytes());
        names.push((dynstr.add(&full), true, f));
        names.push((dynstr.add(f.as_bytes()), false, f));
    }
    let nsyms = names.len() + 1;

    // Layout: headers, then the tables, then the code, then the section
    // headers; everything inside the first page.
    let hash_off = EHDR_SIZE + NPHDRS * PHDR_SIZE;
    let nbuckets = nsyms.next_power_of_two() / 2 + 1;
    let hash_len = 4 * (2 + nbuckets + nsyms);
    let dynsym_off = align(hash_off + hash_len, 8);
    let dynstr_off = dynsym_off + nsyms * SYM_SIZE;
    let versym_off = align(dynstr_off + dynstr.0.len(), 2);
    let verdef_off = align(versym_off + 2 * nsyms, 4);
    let verdef_len = 2 * 28;
    let dynamic_off = align(verdef_off + verdef_len, 8);
    let ndyn = 10;
    let text_off = align(dynamic_off + ndyn * 16, 16);
    let (text, entries) = code(text_off as u64);
    let mut shstr = StrTab::new();
    let sec_names: Vec<u32> = [
        &b".hash"[..],
        b".dynsym",
        b".dynstr",
        b".gnu.version",
        b".gnu.version_d",
        b".dynamic",
        b".text",
        b".shstrtab",
    ]
    .iter()
    .map(|n| shstr.add(n))
    .collect();
    let shstr_off = text_off + text.len();
    let shdr_off = align(shstr_off + shstr.0.len(), 8);
    let total = shdr_off + NSECTIONS as usize * SHDR_SIZE;
    debug_assert!(total <= PAGE_SIZE as usize);

    // Function sizes: up to the next function (or the end of the code).
    let mut starts: Vec<usize> = FUNCTIONS.iter().map(|f| entries[f]).collect();
    starts.push(entries["mono"]);
    starts.sort_unstable();
    let size_of = |at: usize| -> u64 {
        let next = starts
            .iter()
            .copied()
            .find(|&s| s > at)
            .unwrap_or(text.len());
        (next - at) as u64
    };

    let mut out: Vec<u8> = Vec::with_capacity(PAGE_SIZE as usize);
    // ELF header.
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    p16(&mut out, ET_DYN);
    p16(&mut out, EM_X86_64);
    p32(&mut out, 1); // e_version
    p64(&mut out, 0); // e_entry
    p64(&mut out, EHDR_SIZE as u64); // e_phoff
    p64(&mut out, shdr_off as u64); // e_shoff
    p32(&mut out, 0); // e_flags
    p16(&mut out, EHDR_SIZE as u16);
    p16(&mut out, PHDR_SIZE as u16);
    p16(&mut out, NPHDRS as u16);
    p16(&mut out, SHDR_SIZE as u16);
    p16(&mut out, NSECTIONS);
    p16(&mut out, SEC_SHSTRTAB);
    // Program headers: the whole page, read + execute; the dynamic section.
    let phdr = |out: &mut Vec<u8>, ty: u32, flags: u32, off: usize, len: usize, al: u64| {
        p32(out, ty);
        p32(out, flags);
        p64(out, off as u64); // p_offset
        p64(out, off as u64); // p_vaddr
        p64(out, off as u64); // p_paddr
        p64(out, len as u64); // p_filesz
        p64(out, len as u64); // p_memsz
        p64(out, al);
    };
    phdr(&mut out, PT_LOAD, PF_R | PF_X, 0, total, PAGE_SIZE);
    phdr(&mut out, PT_DYNAMIC, PF_R, dynamic_off, ndyn * 16, 8);

    // .hash: nbucket, nchain, buckets, chains.
    debug_assert_eq!(out.len(), hash_off);
    let mut buckets = vec![0u32; nbuckets];
    let mut chains = vec![0u32; nsyms];
    for (i, (_, global, f)) in names.iter().enumerate() {
        let sym = (i + 1) as u32;
        let name = if *global {
            let mut n = Vec::from(&b"__vdso_"[..]);
            n.extend_from_slice(f.as_bytes());
            n
        } else {
            Vec::from(f.as_bytes())
        };
        let b = elf_hash(&name) as usize % nbuckets;
        chains[sym as usize] = buckets[b];
        buckets[b] = sym;
    }
    p32(&mut out, nbuckets as u32);
    p32(&mut out, nsyms as u32);
    for b in buckets {
        p32(&mut out, b);
    }
    for c in chains {
        p32(&mut out, c);
    }
    out.resize(dynsym_off, 0);

    // .dynsym
    out.extend_from_slice(&[0; SYM_SIZE]);
    for (name, global, f) in &names {
        let bind = if *global { STB_GLOBAL } else { STB_WEAK };
        let at = entries[f];
        p32(&mut out, *name);
        out.push(bind << 4 | STT_FUNC); // st_info
        out.push(0); // st_other: default visibility
        p16(&mut out, SEC_TEXT);
        p64(&mut out, (text_off + at) as u64);
        p64(&mut out, size_of(at));
    }
    // .dynstr
    debug_assert_eq!(out.len(), dynstr_off);
    out.extend_from_slice(&dynstr.0);
    out.resize(versym_off, 0);
    // .gnu.version: 0 (local) for the null symbol, 2 for the rest.
    p16(&mut out, 0);
    for _ in &names {
        p16(&mut out, 2);
    }
    out.resize(verdef_off, 0);
    // .gnu.version_d: the base definition (the soname), then LINUX_2.6.
    for (ndx, flags, name, hash, last) in [
        (1u16, VER_FLG_BASE, soname, elf_hash(SONAME), false),
        (2u16, 0, version, elf_hash(VERSION), true),
    ] {
        p16(&mut out, 1); // vd_version
        p16(&mut out, flags);
        p16(&mut out, ndx);
        p16(&mut out, 1); // vd_cnt
        p32(&mut out, hash);
        p32(&mut out, 20); // vd_aux: the Verdaux follows
        p32(&mut out, if last { 0 } else { 28 }); // vd_next
        p32(&mut out, name); // vda_name
        p32(&mut out, 0); // vda_next
    }
    out.resize(dynamic_off, 0);
    // .dynamic
    for (tag, val) in [
        (DT_SONAME, u64::from(soname)),
        (DT_HASH, hash_off as u64),
        (DT_STRTAB, dynstr_off as u64),
        (DT_SYMTAB, dynsym_off as u64),
        (DT_STRSZ, dynstr.0.len() as u64),
        (DT_SYMENT, SYM_SIZE as u64),
        (DT_VERSYM, versym_off as u64),
        (DT_VERDEF, verdef_off as u64),
        (DT_VERDEFNUM, 2),
        (DT_NULL, 0),
    ] {
        p64(&mut out, tag);
        p64(&mut out, val);
    }
    out.resize(text_off, 0);
    out.extend_from_slice(&text);
    out.extend_from_slice(&shstr.0);
    out.resize(shdr_off, 0);

    // Section headers.
    #[allow(clippy::too_many_arguments)]
    fn shdr(
        out: &mut Vec<u8>,
        name: u32,
        ty: u32,
        flags: u64,
        off: usize,
        size: usize,
        link: u32,
        info: u32,
        align: u64,
        entsize: u64,
    ) {
        p32(out, name);
        p32(out, ty);
        p64(out, flags);
        p64(
            out,
            if flags & SHF_ALLOC != 0 {
                off as u64
            } else {
                0
            },
        ); // sh_addr
        p64(out, off as u64);
        p64(out, size as u64);
        p32(out, link);
        p32(out, info);
        p64(out, align);
        p64(out, entsize);
    }
    out.extend_from_slice(&[0; SHDR_SIZE]);
    let dynsym = u32::from(SEC_DYNSYM);
    let dynstr_ix = u32::from(SEC_DYNSTR);
    let a = SHF_ALLOC;
    let s = &sec_names;
    shdr(
        &mut out, s[0], SHT_HASH, a, hash_off, hash_len, dynsym, 0, 8, 4,
    );
    shdr(
        &mut out,
        s[1],
        SHT_DYNSYM,
        a,
        dynsym_off,
        nsyms * SYM_SIZE,
        dynstr_ix,
        1,
        8,
        SYM_SIZE as u64,
    );
    shdr(
        &mut out,
        s[2],
        SHT_STRTAB,
        a,
        dynstr_off,
        dynstr.0.len(),
        0,
        0,
        1,
        0,
    );
    shdr(
        &mut out,
        s[3],
        SHT_GNU_VERSYM,
        a,
        versym_off,
        2 * nsyms,
        dynsym,
        0,
        2,
        2,
    );
    shdr(
        &mut out,
        s[4],
        SHT_GNU_VERDEF,
        a,
        verdef_off,
        verdef_len,
        dynstr_ix,
        2,
        4,
        0,
    );
    shdr(
        &mut out,
        s[5],
        SHT_DYNAMIC,
        a,
        dynamic_off,
        ndyn * 16,
        dynstr_ix,
        0,
        8,
        16,
    );
    shdr(
        &mut out,
        s[6],
        SHT_PROGBITS,
        a | SHF_EXECINSTR,
        text_off,
        text.len(),
        0,
        0,
        16,
        0,
    );
    shdr(
        &mut out,
        s[7],
        SHT_STRTAB,
        0,
        shstr_off,
        shstr.0.len(),
        0,
        0,
        1,
        0,
    );
    debug_assert_eq!(out.len(), total);
    out
}

// ---------------------------------------------------------------------------
// Per-sandbox frames and the mapping into address spaces.

/// The vDSO of one sandbox: its two frames, filled once and shared
/// read-only (copy-on-write) by every address space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VdsoState {
    /// Not set up yet.
    #[default]
    Unset,
    /// The platform cannot give the application the TSC: no vDSO.
    Absent,
    /// The vvar page's frame and the image's frame.
    Ready { vvar: PhysAddr, text: PhysAddr },
}

impl<P: Platform> Kernel<'_, P> {
    /// The vDSO's frames, allocated and written on first use.
    pub fn vdso_frames(&mut self) -> Option<(PhysAddr, PhysAddr)> {
        match self.vdso {
            VdsoState::Ready { vvar, text } => return Some((vvar, text)),
            VdsoState::Absent => return None,
            VdsoState::Unset => {}
        }
        self.vdso = VdsoState::Absent;
        let clock = self.plat.tsc_clock()?;
        let vvar = self.frames.alloc_run(1)?;
        let Some(text) = self.frames.alloc_run(1) else {
            self.frames.free_frame(vvar.pa);
            return None;
        };
        for run in [vvar, text] {
            if run.dirty {
                self.plat.phys_zero(run.pa, PAGE_SIZE);
            }
        }
        self.plat.phys_write(vvar.pa, &vvar_page(&clock));
        self.plat.phys_write(text.pa, &image());
        log::debug!(
            "vDSO: TSC {} Hz, vvar frame {:#x}, image frame {:#x}",
            clock.tsc_hz,
            vvar.pa,
            text.pa
        );
        self.vdso = VdsoState::Ready {
            vvar: vvar.pa,
            text: text.pa,
        };
        Some((vvar.pa, text.pa))
    }
}

/// Map the vvar page and the vDSO below `mm.mmap_base` (where an unhinted
/// mmap would go, as Linux places them); returns the vDSO's address for
/// `AT_SYSINFO_EHDR`.
pub fn map_into<P: Platform>(
    mm: &mut MmStruct<P>,
    plat: &P,
    frames: &mut FrameAllocator,
    (vvar_pa, text_pa): (PhysAddr, PhysAddr),
) -> KResult<u64> {
    let base = mm
        .find_free(2 * PAGE_SIZE, mm.mmap_base)
        .ok_or(Errno::ENOMEM)?;
    let vma = |start: u64, prot: Prot| Vma {
        start,
        end: start + PAGE_SIZE,
        prot,
        kind: VmaKind::Image,
        shared: false,
        backing: None,
    };
    let r = Prot {
        read: true,
        write: false,
        exec: false,
    };
    let rx = Prot { exec: true, ..r };
    mm.map_frames(plat, frames, vma(base, r), vvar_pa)?;
    mm.map_frames(plat, frames, vma(base + PAGE_SIZE, rx), text_pa)?;
    Ok(base + PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::elf::FileHeader64;
    use object::read::elf::{FileHeader, Sym};
    use object::{LittleEndian as LE, Object, ObjectSection, ObjectSymbol};

    /// `VDSO_DUMP=/tmp/vdso.so cargo test -p guest-kernel --lib dump_image
    /// -- --ignored` writes the image for `readelf -a` / `objdump -d`.
    #[test]
    #[ignore]
    fn dump_image() {
        if let Some(path) = std::env::var_os("VDSO_DUMP") {
            std::fs::write(path, image()).expect("write the image");
        }
    }

    #[test]
    fn version_hash_is_the_one_glibc_asks_for() {
        assert_eq!(elf_hash(b"LINUX_2.6"), 0x3ae75f6);
    }

    #[test]
    fn image_fits_a_page_and_parses() {
        let img = image();
        assert!(img.len() <= PAGE_SIZE as usize, "{} bytes", img.len());
        let file = object::read::elf::ElfFile64::<LE>::parse(&img[..]).expect("parses");
        assert_eq!(file.kind(), object::ObjectKind::Dynamic);
        let text = file.section_by_name(".text").expect(".text");
        assert_eq!(text.address() % 16, 0);
        // Every function under both names, inside .text, with a size.
        for f in FUNCTIONS {
            let vdso_name = alloc::format!("__vdso_{f}");
            for (name, weak) in [(vdso_name.as_str(), false), (f, true)] {
                let sym = file
                    .dynamic_symbols()
                    .find(|s| s.name() == Ok(name))
                    .unwrap_or_else(|| panic!("no symbol {name}"));
                assert!(sym.is_definition(), "{name}");
                assert_eq!(sym.is_weak(), weak, "{name}");
                assert_eq!(sym.kind(), object::SymbolKind::Text, "{name}");
                assert!(sym.size() > 0);
                assert!(
                    sym.address() >= text.address()
                        && sym.address() + sym.size() <= text.address() + text.size()
                );
            }
        }
    }

    /// Look every symbol up the way ld.so does: `DT_HASH` chains, then the
    /// version through `.gnu.version` and `.gnu.version_d`.
    #[test]
    fn hash_and_versions_resolve_like_the_dynamic_linker() {
        let img = image();
        let data = &img[..];
        let hdr = FileHeader64::<LE>::parse(data).expect("header");
        let endian = hdr.endian().expect("endian");
        let sections = hdr.sections(endian, data).expect("sections");
        let symbols = sections
            .symbols(endian, data, object::elf::SHT_DYNSYM)
            .expect("dynsym");
        let versions = sections
            .versions(endian, data)
            .expect("versions")
            .expect("versym and verdef");
        let hash = sections
            .hash(endian, data)
            .expect("hash")
            .expect("a .hash section")
            .0;
        // Definition 2 is LINUX_2.6, with the hash glibc compares.
        let want = versions
            .version(object::elf::VersionIndex(2))
            .expect("index 2")
            .expect("defined");
        assert_eq!((want.name(), want.hash()), (VERSION, 0x3ae75f6));

        for f in FUNCTIONS {
            for name in [alloc::format!("__vdso_{f}"), f.into()] {
                let (index, sym) = hash
                    .find(
                        endian,
                        name.as_bytes(),
                        elf_hash(name.as_bytes()),
                        Some(want),
                        &symbols,
                        &versions,
                    )
                    .unwrap_or_else(|| panic!("{name} not found through DT_HASH"));
                assert_eq!(symbols.symbol_name(endian, sym), Ok(name.as_bytes()));
                let v = versions
                    .version(versions.version_index(endian, index).index())
                    .expect("valid version index")
                    .expect("a named version");
                assert_eq!(v.name(), VERSION, "{name}");
                assert_ne!(sym.st_value(endian), 0);
            }
        }
        // The dynamic section names the same tables.
        let file = object::read::elf::ElfFile64::<LE>::parse(data).expect("parses");
        let dynamic = file.section_by_name(".dynamic").expect(".dynamic");
        let bytes = dynamic.data().expect("data");
        let tags: Vec<u64> = bytes
            .chunks(16)
            .map(|c| u64::from_le_bytes(c[..8].try_into().unwrap()))
            .collect();
        for t in [
            DT_HASH,
            DT_STRTAB,
            DT_SYMTAB,
            DT_SONAME,
            DT_VERSYM,
            DT_VERDEF,
            DT_VERDEFNUM,
        ] {
            assert!(tags.contains(&t), "dynamic tag {t:#x}");
        }
        assert_eq!(tags.last(), Some(&DT_NULL));
    }

    #[test]
    fn program_headers_load_the_page_and_the_dynamic_section() {
        let img = image();
        let hdr = FileHeader64::<LE>::parse(&img[..]).expect("header");
        let endian = hdr.endian().expect("endian");
        let phdrs = hdr.program_headers(endian, &img[..]).expect("phdrs");
        use object::read::elf::ProgramHeader;
        let load = phdrs
            .iter()
            .find(|p| p.p_type(endian) == object::elf::PT_LOAD)
            .expect("PT_LOAD");
        assert_eq!(load.p_vaddr(endian), 0);
        assert_eq!(load.p_offset(endian), 0);
        assert_eq!(load.p_filesz(endian), img.len() as u64);
        assert_eq!(
            load.p_flags(endian).0 & object::elf::PF_W.0,
            0,
            "PT_LOAD must not be writable"
        );
        let dynamic = phdrs
            .iter()
            .find(|p| p.p_type(endian) == object::elf::PT_DYNAMIC)
            .expect("PT_DYNAMIC");
        // glibc relocates a writable dynamic section in place: keep it read-only.
        assert_eq!(dynamic.p_flags(endian), object::elf::PF_R);
    }

    #[test]
    fn code_references_the_vvar_page_and_resolves_every_label() {
        let (text, labels) = code(0x400);
        for f in FUNCTIONS {
            assert!(labels.contains_key(f));
        }
        // `sub rax, [rip + d]` in mono: d points at the vvar's TSC base.
        let at = text
            .windows(3)
            .position(|w| w == [0x48, 0x2b, 0x05])
            .expect("sub rax, [rip+d]");
        let disp = i32::from_le_bytes(text[at + 3..at + 7].try_into().unwrap()) as i64;
        assert_eq!(0x400 + at as i64 + 7 + disp, -(PAGE_SIZE as i64));
        // The calls land on mono.
        let mono = labels["mono"] as i64;
        let mut calls = 0;
        for f in ["clock_gettime", "gettimeofday", "time"] {
            let mut i = labels[f];
            while text[i] != 0xe8 {
                i += 1;
            }
            let rel = i32::from_le_bytes(text[i + 1..i + 5].try_into().unwrap()) as i64;
            assert_eq!(i as i64 + 5 + rel, mono, "{f}");
            calls += 1;
        }
        assert_eq!(calls, 3);
    }

    #[test]
    fn vvar_math_matches_the_platform_clock() {
        // KVM's clock: floor(d * 1e6 / khz) since the boot TSC.
        for khz in [
            2_596_130u64,
            1_000_000,
            3_000_000,
            999_999,
            2_400_000,
            123_457,
        ] {
            let clock = TscClock {
                tsc_hz: khz * 1000,
                tsc_base: 1_000_000,
                mono_base_ns: 5,
                realtime_base_ns: 1_700_000_000_000_000_000,
            };
            let page = vvar_page(&clock);
            for d in [
                0u64,
                1,
                999,
                2_596_130,
                1 << 32,
                3_600 * khz * 1000,
                1 << 50,
            ] {
                let exact = (u128::from(d) * 1_000_000 / u128::from(khz)) as u64 + 5;
                let got = monotonic_at(&page, clock.tsc_base + d);
                assert!(
                    got == exact || got == exact + 1,
                    "khz {khz} d {d}: {got} vs {exact}"
                );
            }
            // Before the base: the base time, never a wrapped value.
            assert_eq!(monotonic_at(&page, 0), 5);
            let off =
                u64::from_le_bytes(page[vvar::REAL_OFFSET as usize..][..8].try_into().unwrap());
            assert_eq!(off, 1_700_000_000_000_000_000 - 5);
        }
    }
}
