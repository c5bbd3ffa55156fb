//! `loader::stack::build` with any number and sizes of arguments and
//! environment strings, any stack top and any bound: never panics; `E2BIG`
//! when a string or the whole image is too large; what it builds is the
//! layout the kernel ABI describes.

#![no_main]

use guest_kernel::abi::linux::{AT_EXECFN, AT_NULL, AT_PLATFORM, AT_RANDOM, TASK_SIZE};
use guest_kernel::abi::{Errno, PAGE_SIZE};
use guest_kernel::loader::stack::{build, StackImage, StackInputs, MAX_ARG_STRLEN};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Keeps one execution cheap.
const MAX_TOTAL: usize = 8 << 20;

fn length(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(match u.int_in_range(0u8..=7)? {
        0..=3 => usize::from(u.arbitrary::<u8>()?),
        4 => usize::from(u.arbitrary::<u16>()?),
        5 => MAX_ARG_STRLEN - 2 + usize::from(u.int_in_range(0u8..=3)?),
        _ => u.int_in_range(0..=MAX_ARG_STRLEN + 4096)?,
    })
}

fn strings(u: &mut Unstructured<'_>, budget: &mut usize) -> Result<Vec<Vec<u8>>> {
    let n = match u.int_in_range(0u8..=3)? {
        0 => usize::from(u.arbitrary::<u8>()?),
        1 => u.int_in_range(0..=20_000)?,
        _ => usize::from(u.int_in_range(0u8..=8)?),
    };
    let mut v = Vec::new();
    for i in 0..n {
        let len = if u.is_empty() { i % 3 } else { length(u)? };
        let len = len.min(*budget);
        *budget -= len;
        let byte = u.int_in_range(1u8..=255).unwrap_or(b'a');
        v.push(vec![byte; len]);
    }
    Ok(v)
}

fn word(img: &StackImage, top: u64, addr: u64) -> u64 {
    assert!(
        addr >= img.sp && addr + 8 <= top,
        "word {addr:#x} outside the image"
    );
    let o = (addr - img.sp) as usize;
    u64::from_le_bytes(img.bytes[o..o + 8].try_into().unwrap())
}

fn cstr(img: &StackImage, top: u64, addr: u64) -> &[u8] {
    assert!(
        addr >= img.sp && addr < top,
        "string {addr:#x} outside the image"
    );
    let o = (addr - img.sp) as usize;
    let s = &img.bytes[o..];
    &s[..s.iter().position(|b| *b == 0).expect("unterminated string")]
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let top: u64 = match u.int_in_range(0u8..=4)? {
        0 | 1 => TASK_SIZE - 2 * PAGE_SIZE,
        2 => u64::from(u.arbitrary::<u16>()?),
        3 => u64::from(u.arbitrary::<u32>()?),
        _ => u.arbitrary()?,
    };
    let max_bytes: usize = match u.int_in_range(0u8..=3)? {
        0 => 2 << 20, // an 8 MiB stack
        1 => usize::from(u.arbitrary::<u16>()?),
        2 => u.arbitrary::<u32>()? as usize,
        _ => u.arbitrary()?,
    };
    let mut budget = MAX_TOTAL;
    let argv = strings(&mut u, &mut budget)?;
    let envp = strings(&mut u, &mut budget)?;
    let naux = u.int_in_range(0u8..=40)?;
    let auxv: Vec<(u64, u64)> = (0..naux)
        .map(|_| Ok((u.int_in_range(1u64..=50)?, u.arbitrary()?)))
        .collect::<Result<_>>()?;
    let execfn = vec![b'e'; length(&mut u).unwrap_or(4).min(budget)];
    let platform: &[u8] = b"x86_64";
    let argv_refs: Vec<&[u8]> = argv.iter().map(|s| s.as_slice()).collect();
    let envp_refs: Vec<&[u8]> = envp.iter().map(|s| s.as_slice()).collect();
    let inp = StackInputs {
        argv: &argv_refs,
        envp: &envp_refs,
        auxv: &auxv,
        random: [0xa5; 16],
        platform,
        execfn: &execfn,
        max_bytes,
    };
    let too_long = argv.iter().chain(&envp).any(|s| s.len() >= MAX_ARG_STRLEN);
    let img = match build(top, &inp) {
        Ok(img) => img,
        Err(e) => {
            assert_eq!(e, Errno::E2BIG);
            return Ok(());
        }
    };
    assert!(!too_long, "a string of MAX_ARG_STRLEN or more was accepted");
    assert_eq!(img.sp % 16, 0);
    assert_eq!(img.sp + img.bytes.len() as u64, top);
    assert!(img.bytes.len() <= max_bytes);
    assert_eq!(word(&img, top, img.sp), argv.len() as u64);
    let mut w = img.sp + 8;
    for a in &argv {
        assert_eq!(cstr(&img, top, word(&img, top, w)), a.as_slice());
        w += 8;
    }
    assert_eq!(word(&img, top, w), 0);
    w += 8;
    for e in &envp {
        assert_eq!(cstr(&img, top, word(&img, top, w)), e.as_slice());
        w += 8;
    }
    assert_eq!(word(&img, top, w), 0);
    w += 8;
    for &(k, v) in &auxv {
        assert_eq!((word(&img, top, w), word(&img, top, w + 8)), (k, v));
        w += 16;
    }
    let mut seen = 0;
    loop {
        let (k, v) = (word(&img, top, w), word(&img, top, w + 8));
        w += 16;
        match k {
            AT_RANDOM => {
                let o = (v - img.sp) as usize;
                assert!(v >= w, "AT_RANDOM overlaps the vectors");
                assert_eq!(img.bytes[o..o + 16], [0xa5; 16]);
            }
            AT_PLATFORM => assert_eq!(cstr(&img, top, v), platform),
            AT_EXECFN => assert_eq!(cstr(&img, top, v), execfn.as_slice()),
            AT_NULL => break,
            _ => panic!("unexpected auxv entry {k}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 3);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
