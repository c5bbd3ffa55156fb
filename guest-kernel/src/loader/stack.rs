//! The initial process stack: argc, argv, envp, auxv and the strings.

use alloc::vec;
use alloc::vec::Vec;

use crate::abi::linux::{AT_EXECFN, AT_NULL, AT_PLATFORM, AT_RANDOM};
use crate::abi::{Errno, KResult};

/// Linux's limit on a single argument or environment string.
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// The bytes to place at `[sp, top)` and the resulting stack pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackImage {
    pub sp: u64,
    pub bytes: Vec<u8>,
}

/// Inputs for [`build`].
#[derive(Clone, Copy, Debug)]
pub struct StackInputs<'a> {
    pub argv: &'a [&'a [u8]],
    pub envp: &'a [&'a [u8]],
    /// Auxiliary entries other than `AT_RANDOM`, `AT_PLATFORM`, `AT_EXECFN`
    /// and `AT_NULL`, which are added here.
    pub auxv: &'a [(u64, u64)],
    pub random: [u8; 16],
    pub platform: &'a [u8],
    pub execfn: &'a [u8],
    /// Bound on the whole image (a quarter of the stack limit on Linux).
    pub max_bytes: usize,
}

/// Lay out the initial stack below `top`, as the kernel does: strings at the
/// top, then the 16 random bytes, then (16-byte aligned) argc, argv, envp
/// and auxv, with `sp` pointing at argc.
pub fn build(top: u64, inp: &StackInputs<'_>) -> KResult<StackImage> {
    if inp
        .argv
        .iter()
        .chain(inp.envp)
        .any(|s| s.len() >= MAX_ARG_STRLEN)
    {
        return Err(Errno::E2BIG);
    }
    // Strings grow down from just below the top: execfn, envp, argv, platform.
    let order: Vec<&[u8]> = core::iter::once(inp.execfn)
        .chain(inp.envp.iter().copied())
        .chain(inp.argv.iter().copied())
        .chain(core::iter::once(inp.platform))
        .collect();
    let strtab_len: u64 = order.iter().map(|s| s.len() as u64 + 1).sum();
    if strtab_len as usize > inp.max_bytes || strtab_len + 4096 > top {
        return Err(Errno::E2BIG);
    }
    let str_base = top - 8 - strtab_len;
    let mut region = vec![0u8; strtab_len as usize];
    let mut starts = Vec::with_capacity(order.len());
    let mut cursor = strtab_len as usize;
    for s in &order {
        cursor -= s.len() + 1;
        region[cursor..cursor + s.len()].copy_from_slice(s);
        starts.push(str_base + cursor as u64);
    }
    let execfn_addr = starts[0];
    let env_addrs = &starts[1..1 + inp.envp.len()];
    let arg_addrs = &starts[1 + inp.envp.len()..1 + inp.envp.len() + inp.argv.len()];
    let platform_addr = starts[starts.len() - 1];

    let random_addr = (str_base - 16) & !15;
    let mut auxv: Vec<(u64, u64)> = inp.auxv.to_vec();
    auxv.push((AT_RANDOM, random_addr));
    auxv.push((AT_PLATFORM, platform_addr));
    auxv.push((AT_EXECFN, execfn_addr));
    auxv.push((AT_NULL, 0));

    let words = 1 + arg_addrs.len() + 1 + env_addrs.len() + 1 + auxv.len() * 2;
    // A low `top` may leave no room for the vectors below the strings.
    let sp = random_addr
        .checked_sub((words as u64) * 8)
        .ok_or(Errno::E2BIG)?
        & !15;
    let total = (top - sp) as usize;
    if total > inp.max_bytes {
        return Err(Errno::E2BIG);
    }
    let mut bytes = vec![0u8; total];
    let at = |a: u64| (a - sp) as usize;
    let put = |bytes: &mut Vec<u8>, a: u64, v: u64| {
        bytes[at(a)..at(a) + 8].copy_from_slice(&v.to_le_bytes());
    };
    let mut w = sp;
    put(&mut bytes, w, arg_addrs.len() as u64);
    w += 8;
    for &a in arg_addrs {
        put(&mut bytes, w, a);
        w += 8;
    }
    w += 8; // argv NULL
    for &a in env_addrs {
        put(&mut bytes, w, a);
        w += 8;
    }
    w += 8; // envp NULL
    for &(k, v) in &auxv {
        put(&mut bytes, w, k);
        put(&mut bytes, w + 8, v);
        w += 16;
    }
    bytes[at(random_addr)..at(random_addr) + 16].copy_from_slice(&inp.random);
    bytes[at(str_base)..at(str_base) + region.len()].copy_from_slice(&region);
    Ok(StackImage { sp, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::linux::{AT_PAGESZ, AT_PHNUM};

    fn word(img: &StackImage, addr: u64) -> u64 {
        let o = (addr - img.sp) as usize;
        u64::from_le_bytes(img.bytes[o..o + 8].try_into().unwrap())
    }

    fn cstr(img: &StackImage, addr: u64) -> Vec<u8> {
        let o = (addr - img.sp) as usize;
        img.bytes[o..]
            .iter()
            .take_while(|b| **b != 0)
            .copied()
            .collect()
    }

    #[test]
    fn layout_matches_the_kernel_abi() {
        let top = 0x7fff_ffff_e000;
        let inp = StackInputs {
            argv: &[b"/bin/prog", b"one", b""],
            envp: &[b"A=1", b"PATH=/bin"],
            auxv: &[(AT_PAGESZ, 4096), (AT_PHNUM, 7)],
            random: [7; 16],
            platform: b"x86_64",
            execfn: b"/bin/prog",
            max_bytes: 1 << 20,
        };
        let img = build(top, &inp).unwrap();
        assert_eq!(img.sp % 16, 0);
        assert_eq!(img.sp + img.bytes.len() as u64, top);
        assert_eq!(word(&img, img.sp), 3);
        let argv: Vec<Vec<u8>> = (0..3)
            .map(|i| cstr(&img, word(&img, img.sp + 8 + i * 8)))
            .collect();
        assert_eq!(argv, [b"/bin/prog".to_vec(), b"one".to_vec(), b"".to_vec()]);
        assert_eq!(word(&img, img.sp + 32), 0);
        let envp: Vec<Vec<u8>> = (0..2)
            .map(|i| cstr(&img, word(&img, img.sp + 40 + i * 8)))
            .collect();
        assert_eq!(envp, [b"A=1".to_vec(), b"PATH=/bin".to_vec()]);
        assert_eq!(word(&img, img.sp + 56), 0);
        let mut a = img.sp + 64;
        let mut aux = Vec::new();
        loop {
            let (k, v) = (word(&img, a), word(&img, a + 8));
            aux.push((k, v));
            a += 16;
            if k == AT_NULL {
                break;
            }
        }
        assert_eq!(aux[0], (AT_PAGESZ, 4096));
        assert_eq!(aux[1], (AT_PHNUM, 7));
        let random = aux.iter().find(|e| e.0 == AT_RANDOM).unwrap().1;
        let o = (random - img.sp) as usize;
        assert_eq!(&img.bytes[o..o + 16], &[7; 16]);
        let plat = aux.iter().find(|e| e.0 == AT_PLATFORM).unwrap().1;
        assert_eq!(cstr(&img, plat), b"x86_64");
        let execfn = aux.iter().find(|e| e.0 == AT_EXECFN).unwrap().1;
        assert_eq!(cstr(&img, execfn), b"/bin/prog");
        // Strings never overlap the pointer area.
        assert!(a <= random);
    }

    #[test]
    fn oversized_arguments_are_e2big() {
        let big = vec![b'x'; MAX_ARG_STRLEN];
        let inp = StackInputs {
            argv: &[&big],
            envp: &[],
            auxv: &[],
            random: [0; 16],
            platform: b"x86_64",
            execfn: b"x",
            max_bytes: 1 << 30,
        };
        assert_eq!(build(0x7fff_0000_0000, &inp), Err(Errno::E2BIG));
        let small = [b"abc".as_slice(); 100];
        let inp = StackInputs {
            argv: &small,
            max_bytes: 512,
            ..inp
        };
        assert_eq!(build(0x7fff_0000_0000, &inp), Err(Errno::E2BIG));
        // Room for the strings below `top` but not for the pointers to them.
        let empty = [b"".as_slice(); 600];
        let inp = StackInputs {
            argv: &empty,
            max_bytes: 1 << 20,
            ..inp
        };
        assert_eq!(build(5000, &inp), Err(Errno::E2BIG));
    }
}
