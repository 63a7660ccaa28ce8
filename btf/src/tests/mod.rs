//! Unit tests. Blobs are assembled with the builder and then corrupted.

mod header;
mod refkinds;
mod split;
mod types;

use crate::builder::Builder;
use crate::{Btf, INT_SIGNED};

/// IDs of the fixture base BTF.
const INT: u32 = 1;
const PTR_INT: u32 = 2;
const TASK: u32 = 3;
const PROTO: u32 = 4;
const FUNC: u32 = 5;
const BASE_LAST: u32 = 5;

/// A small vmlinux-like base: int, int *, struct task, a varargs prototype
/// and a function.
fn base_builder() -> Builder {
    let mut b = Builder::new();
    assert_eq!(b.int("int", 4, INT_SIGNED, 32), INT);
    assert_eq!(b.ptr(INT), PTR_INT);
    assert_eq!(
        b.struct_("task", 16, &[("pid", INT, 0), ("next", PTR_INT, 64)]),
        TASK
    );
    assert_eq!(b.func_proto(INT, &[("fmt", PTR_INT), ("", 0)]), PROTO);
    assert_eq!(b.func("printk", PROTO, 1), FUNC);
    b
}

fn base() -> Btf {
    Btf::parse(&base_builder().build()).expect("fixture base is valid")
}

/// Offset of `s` in the base's string section.
fn base_str(base: &Btf, s: &str) -> u32 {
    let mut needle = s.as_bytes().to_vec();
    needle.push(0);
    let pos = base
        .string_bytes()
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("string is in the base");
    pos as u32
}

fn set_u32(blob: &mut [u8], offset: usize, value: u32) {
    blob[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}
