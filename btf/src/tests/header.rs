//! Header, section layout and string section errors.

use super::{base_builder, set_u32};
use crate::builder::{patch_header, Builder};
use crate::{Btf, BtfError, Header, Section, HEADER_LEN, MAX_NAME_OFFSET};

fn blob() -> Vec<u8> {
    base_builder().build()
}

fn parse_patched(f: impl FnOnce(&mut Header)) -> Result<Btf, BtfError> {
    let mut b = blob();
    patch_header(&mut b, f);
    Btf::parse(&b)
}

#[test]
fn header_roundtrip() {
    let b = blob();
    let hdr = Header::decode(&b).unwrap();
    assert_eq!(hdr.to_bytes()[..], b[..24]);
    let btf = Btf::parse(&b).unwrap();
    assert_eq!(*btf.header(), hdr);
    assert_eq!(btf.header().type_off, 0);
    assert_eq!(btf.header().str_off, btf.header().type_len);
}

#[test]
fn too_short() {
    assert_eq!(
        Btf::parse(&[]),
        Err(BtfError::TooShort { len: 0, needed: 24 })
    );
    assert_eq!(
        Btf::parse(&blob()[..23]),
        Err(BtfError::TooShort {
            len: 23,
            needed: 24
        })
    );
}

#[test]
fn bad_magic() {
    let err = parse_patched(|h| h.magic = 0x1234).unwrap_err();
    assert_eq!(err, BtfError::BadMagic { found: 0x1234 });
    assert_eq!(err.to_string(), "bad magic 0x1234, expected 0xeb9f");
    let err = parse_patched(|h| h.magic = 0x9feb).unwrap_err();
    assert!(err.to_string().contains("big-endian"), "{err}");
}

#[test]
fn bad_version_and_flags() {
    assert_eq!(
        parse_patched(|h| h.version = 2),
        Err(BtfError::BadVersion { found: 2 })
    );
    assert_eq!(
        parse_patched(|h| h.flags = 1),
        Err(BtfError::BadFlags { found: 1 })
    );
}

#[test]
fn hdr_len_too_small_or_past_end() {
    assert_eq!(
        parse_patched(|h| h.hdr_len = 16),
        Err(BtfError::HdrLenTooSmall {
            hdr_len: 16,
            min: 24
        })
    );
    let len = blob().len();
    assert_eq!(
        parse_patched(|h| h.hdr_len = 100_000),
        Err(BtfError::HdrLenPastEnd {
            hdr_len: 100_000,
            len
        })
    );
}

/// A header extended by `extra` bytes, sections unchanged.
fn extended_header(extra: &[u8]) -> Vec<u8> {
    let b = blob();
    let mut out = b[..24].to_vec();
    out.extend_from_slice(extra);
    out.extend_from_slice(&b[24..]);
    patch_header(&mut out, |h| h.hdr_len = HEADER_LEN + extra.len() as u32);
    out
}

#[test]
fn longer_header_with_zero_extension_is_accepted() {
    let btf = Btf::parse(&extended_header(&[0; 8])).unwrap();
    assert_eq!(btf.header().hdr_len, 32);
    assert_eq!(btf.types().len(), 5);
    // Record offsets count from the start of the blob.
    assert_eq!(btf.types()[0].offset, 32);
}

#[test]
fn longer_header_with_nonzero_extension() {
    let err = Btf::parse(&extended_header(&[0, 0, 7, 0])).unwrap_err();
    assert_eq!(
        err,
        BtfError::HdrNonZeroExtra {
            offset: 26,
            value: 7,
            hdr_len: 28
        }
    );
}

#[test]
fn misaligned_type_section() {
    assert_eq!(
        parse_patched(|h| h.type_off = 2),
        Err(BtfError::TypeOffMisaligned { type_off: 2 })
    );
    assert_eq!(
        parse_patched(|h| h.type_len -= 2),
        Err(BtfError::TypeLenMisaligned {
            type_len: blob_hdr().type_len - 2
        })
    );
}

fn blob_hdr() -> Header {
    Header::decode(&blob()).unwrap()
}

#[test]
fn sections_out_of_bounds() {
    let h = blob_hdr();
    let available = blob().len() - 24;
    assert_eq!(
        parse_patched(|h| h.str_len += 1),
        Err(BtfError::SectionOutOfBounds {
            section: Section::Strings,
            off: h.str_off,
            len: h.str_len + 1,
            available,
        })
    );
    // Offsets near u32::MAX must not wrap around.
    assert_eq!(
        parse_patched(|h| h.type_off = 0xffff_fffc),
        Err(BtfError::SectionOutOfBounds {
            section: Section::Types,
            off: 0xffff_fffc,
            len: h.type_len,
            available,
        })
    );
}

#[test]
fn sections_overlap() {
    let h = blob_hdr();
    let err = parse_patched(|h| h.str_off -= 4).unwrap_err();
    assert_eq!(
        err,
        BtfError::SectionOverlap {
            type_off: 0,
            type_len: h.type_len,
            str_off: h.str_off - 4,
            str_len: h.str_len,
        }
    );
}

#[test]
fn gap_between_sections() {
    let b = blob();
    let h = blob_hdr();
    let split_at = 24 + h.type_len as usize;
    let mut out = b[..split_at].to_vec();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&b[split_at..]);
    patch_header(&mut out, |h| h.str_off += 4);
    assert_eq!(
        Btf::parse(&out),
        Err(BtfError::SectionGap {
            start: u64::from(h.type_len),
            end: u64::from(h.type_len) + 4,
        })
    );
}

#[test]
fn trailing_data() {
    let mut b = blob();
    let len = b.len();
    b.extend_from_slice(&[0; 3]);
    assert_eq!(
        Btf::parse(&b),
        Err(BtfError::TrailingData {
            offset: len,
            len: 3
        })
    );
}

#[test]
fn strings_before_types() {
    let builder = base_builder();
    let mut strings = builder.string_bytes().to_vec();
    strings.resize(strings.len().next_multiple_of(4), 0);
    let types = builder.type_bytes();
    let hdr = Header {
        type_off: strings.len() as u32,
        str_off: 0,
        str_len: strings.len() as u32,
        ..builder.header()
    };
    let mut out = hdr.to_bytes().to_vec();
    out.extend_from_slice(&strings);
    out.extend_from_slice(types);
    assert_eq!(
        Btf::parse(&out),
        Err(BtfError::StringsNotLast {
            str_off: 0,
            str_len: strings.len() as u32,
            available: out.len() - 24,
        })
    );
}

#[test]
fn strings_not_nul_terminated() {
    let mut b = base_builder();
    b.raw_strings(b"oops");
    let str_len = b.header().str_len;
    assert_eq!(
        Btf::parse(&b.build()),
        Err(BtfError::StringsNotNulTerminated {
            str_len,
            last: b's'
        })
    );
}

#[test]
fn base_strings_must_start_with_nul() {
    let mut b = blob();
    let h = blob_hdr();
    b[24 + h.str_off as usize] = b'x';
    assert_eq!(
        Btf::parse(&b),
        Err(BtfError::StringsNoLeadingNul { found: b'x' })
    );
}

#[test]
fn base_strings_must_not_be_empty() {
    // A split-style builder has an empty string section.
    let mut b = Builder::split_raw(1, 0);
    b.raw(0, 1, 0, false, 4, &[32]);
    assert_eq!(Btf::parse(&b.build()), Err(BtfError::StringsEmpty));
    // Nothing at all after the header ("No data" in the kernel).
    let empty = Builder::split_raw(1, 0).build();
    assert_eq!(Btf::parse(&empty), Err(BtfError::StringsEmpty));
}

#[test]
fn string_section_too_long() {
    let len = MAX_NAME_OFFSET as usize + 2;
    let mut b = Builder::new();
    b.raw_strings(&vec![0; len - 1]);
    assert_eq!(
        Btf::parse(&b.build()),
        Err(BtfError::StringsTooLong {
            str_len: len as u32,
            max: MAX_NAME_OFFSET + 1
        })
    );
}

#[test]
fn type_section_only_empty_is_valid() {
    let b = Builder::new().build();
    let btf = Btf::parse(&b).unwrap();
    assert_eq!(btf.types().len(), 0);
    assert_eq!(btf.first_type_id(), 1);
    assert_eq!(btf.last_type_id(), 0);
}

#[test]
fn header_fields_at_kernel_offsets() {
    let mut b = blob();
    // str_len lives at byte 20.
    set_u32(&mut b, 20, 0);
    assert!(matches!(Btf::parse(&b), Err(BtfError::TrailingData { .. })));
}
