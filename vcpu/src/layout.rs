//! The guest's boot state in memory: page tables, GDT, TSS and the boot
//! info page, at the fixed addresses of the KVM platform ABI.

use memory::GuestRam;

use crate::abi::{boot_info, gdt, gpa, DIRECT_MAP, KERNEL_BASE, MAX_VCPUS};
use crate::VcpuError;

const P: u64 = 1;
const W: u64 = 2;
const U: u64 = 4;
const PS: u64 = 1 << 7;
/// Every kernel entry carries U: under PVM the guest kernel runs at CPL 3.
const TABLE: u64 = P | W | U;

fn pml4_index(va: u64) -> u64 {
    (va >> 39) & 511
}

fn pdpt_index(va: u64) -> u64 {
    (va >> 30) & 511
}

/// Write the boot page tables: the kernel PGD maps the first GiB at
/// `KERNEL_BASE` and all of RAM at `DIRECT_MAP` with 2 MiB pages; the user
/// PGD (the next page) is empty.
pub fn write_page_tables(ram: &GuestRam) -> Result<(), VcpuError> {
    let size = ram.size();
    let gibs = size.div_ceil(1 << 30);
    for i in 0..gibs {
        let pd = gpa::PD_DIRECT + i * 0x1000;
        for j in 0..512u64 {
            let pa = (i << 30) + (j << 21);
            let e = if pa < size { pa | TABLE | PS } else { 0 };
            ram.write_u64(pd + j * 8, e)?;
        }
        ram.write_u64(
            gpa::PDPT_DIRECT + (pdpt_index(DIRECT_MAP) + i) * 8,
            pd | TABLE,
        )?;
    }
    // KERNEL_BASE: PML4 511, PDPT 510 -> the first GiB of the direct map.
    ram.write_u64(
        gpa::PDPT_KERNEL + pdpt_index(KERNEL_BASE) * 8,
        gpa::PD_DIRECT | TABLE,
    )?;
    ram.write_u64(
        gpa::BOOT_PGD + pml4_index(KERNEL_BASE) * 8,
        gpa::PDPT_KERNEL | TABLE,
    )?;
    ram.write_u64(
        gpa::BOOT_PGD + pml4_index(DIRECT_MAP) * 8,
        gpa::PDPT_DIRECT | TABLE,
    )?;
    Ok(())
}

/// Write the GDT and one TSS per vCPU (RSP0 = IST1 top, IST2 below it).
pub fn write_gdt_tss(ram: &GuestRam, nr_vcpus: u64) -> Result<(), VcpuError> {
    for cpu in 0..nr_vcpus.min(MAX_VCPUS) {
        let tss = tss_gpa(cpu);
        let stacks = gpa::TRAP_STACKS + cpu * gpa::TRAP_STACK_SIZE;
        let ist1_top = KERNEL_BASE + stacks + gpa::TRAP_STACK_SIZE;
        let ist2_top = KERNEL_BASE + stacks + gpa::TRAP_STACK_SIZE / 4;
        ram.write_u64(tss + gdt::TSS_RSP0, ist1_top)?;
        ram.write_u64(tss + gdt::TSS_IST1, ist1_top)?;
        ram.write_u64(tss + gdt::TSS_IST2, ist2_top)?;
        ram.write_bytes(tss + gdt::TSS_IOMAP, &0x68u16.to_le_bytes())?;
    }
    // Each vCPU has its own GDT copy, whose TSS descriptor names its TSS
    // (a loaded TSS is marked busy, so they cannot share one descriptor).
    for cpu in 0..nr_vcpus.min(MAX_VCPUS) {
        let g = gdt_gpa(cpu);
        for (i, e) in gdt::ENTRIES.iter().enumerate() {
            ram.write_u64(g + i as u64 * 8, *e)?;
        }
        let base = KERNEL_BASE + tss_gpa(cpu);
        let limit = u64::from(gdt::TSS_LIMIT);
        let lo = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((base >> 24) & 0xff) << 56);
        ram.write_u64(g + u64::from(gdt::TSS_SEL), lo)?;
        ram.write_u64(g + u64::from(gdt::TSS_SEL) + 8, base >> 32)?;
    }
    Ok(())
}

/// GPA of vCPU `cpu`'s GDT copy (0x80 bytes each in the GDT page).
pub fn gdt_gpa(cpu: u64) -> u64 {
    gpa::GDT + cpu * 0x80
}

/// GPA of vCPU `cpu`'s TSS.
pub fn tss_gpa(cpu: u64) -> u64 {
    gpa::TSS + cpu * 0x80
}

/// What goes into the boot info page.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    pub mem_size: u64,
    pub image_end: u64,
    pub params_len: u64,
    pub tsc_khz: u64,
    pub realtime_ns: u64,
    pub nr_vcpus: u64,
    pub seed: [u64; 4],
    pub selftest: u64,
    pub selftest_arg: u64,
}

/// Write the boot info page.
pub fn write_boot_info(ram: &GuestRam, b: &BootInfo) -> Result<(), VcpuError> {
    let base = gpa::BOOT_INFO;
    let fields = [
        (boot_info::MAGIC_OFF, boot_info::MAGIC),
        (boot_info::VERSION_OFF, boot_info::VERSION),
        (boot_info::MEM_SIZE, b.mem_size),
        (boot_info::FLAVOUR, boot_info::FLAVOUR_PVM),
        (boot_info::IMAGE_END, b.image_end),
        (boot_info::PARAMS_LEN, b.params_len),
        (boot_info::TSC_KHZ, b.tsc_khz),
        (boot_info::REALTIME_NS, b.realtime_ns),
        (boot_info::NR_VCPUS, b.nr_vcpus),
        (boot_info::SELFTEST, b.selftest),
        (boot_info::SELFTEST_ARG, b.selftest_arg),
        (boot_info::BOOT_STATE, 0),
        (boot_info::EXIT_LEN, 0),
    ];
    for (off, v) in fields {
        ram.write_u64(base + off, v)?;
    }
    for (i, s) in b.seed.iter().enumerate() {
        ram.write_u64(base + boot_info::SEED + i as u64 * 8, *s)?;
    }
    Ok(())
}
