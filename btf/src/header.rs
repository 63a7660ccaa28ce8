//! The 24-byte BTF header and the section layout it describes.

use std::ops::Range;

use crate::error::{BtfError, Section};

/// `BTF_MAGIC` as stored little-endian.
pub const BTF_MAGIC: u16 = 0xeb9f;
/// The only BTF version there is.
pub const BTF_VERSION: u8 = 1;
/// Size of `struct btf_header`.
pub const HEADER_LEN: u32 = 24;

/// `struct btf_header`. Section offsets are relative to the end of the header
/// (`hdr_len`), not to the start of the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub magic: u16,
    pub version: u8,
    pub flags: u8,
    pub hdr_len: u32,
    pub type_off: u32,
    pub type_len: u32,
    pub str_off: u32,
    pub str_len: u32,
}

impl Header {
    /// Decodes the first 24 bytes without checking anything; `None` if
    /// `data` is shorter than that.
    pub fn decode(data: &[u8]) -> Option<Header> {
        let u32_at = |pos: usize| -> Option<u32> {
            let b = data.get(pos..pos + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let magic = data.get(0..2)?;
        Some(Header {
            magic: u16::from_le_bytes([magic[0], magic[1]]),
            version: *data.get(2)?,
            flags: *data.get(3)?,
            hdr_len: u32_at(4)?,
            type_off: u32_at(8)?,
            type_len: u32_at(12)?,
            str_off: u32_at(16)?,
            str_len: u32_at(20)?,
        })
    }

    /// Encodes the header as its 24 little-endian bytes (`hdr_len` is written
    /// as is, even if it is not 24).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[0..2].copy_from_slice(&self.magic.to_le_bytes());
        out[2] = self.version;
        out[3] = self.flags;
        let words = [
            self.hdr_len,
            self.type_off,
            self.type_len,
            self.str_off,
            self.str_len,
        ];
        for (chunk, w) in out[4..].chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Where the sections are, as byte ranges of the whole blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub types: Range<usize>,
    pub strings: Range<usize>,
}

/// Validates the header and the section layout the way the kernel's
/// `btf_parse_hdr` and `btf_check_sec_info` do.
pub(crate) fn parse(data: &[u8]) -> Result<(Header, Layout), BtfError> {
    let too_short = BtfError::TooShort {
        len: data.len(),
        needed: HEADER_LEN as usize,
    };
    let hdr = Header::decode(data).ok_or(too_short)?;
    // Magic first: for data that is not BTF at all it is the useful message.
    if hdr.magic != BTF_MAGIC {
        return Err(BtfError::BadMagic { found: hdr.magic });
    }
    if hdr.version != BTF_VERSION {
        return Err(BtfError::BadVersion { found: hdr.version });
    }
    if hdr.flags != 0 {
        return Err(BtfError::BadFlags { found: hdr.flags });
    }
    // The kernel tolerates a shorter hdr_len (missing fields read as zero);
    // libbpf does not, and no producer writes one, so we do not either.
    if hdr.hdr_len < HEADER_LEN {
        return Err(BtfError::HdrLenTooSmall {
            hdr_len: hdr.hdr_len,
            min: HEADER_LEN,
        });
    }
    let hdr_len = usize::try_from(hdr.hdr_len).unwrap_or(usize::MAX);
    let past_end = BtfError::HdrLenPastEnd {
        hdr_len: hdr.hdr_len,
        len: data.len(),
    };
    let extension = data.get(HEADER_LEN as usize..hdr_len).ok_or(past_end)?;
    // A longer header is a newer format; the kernel accepts it only if every
    // field it does not know about is zero (bpf_check_uarg_tail_zero style).
    if let Some(pos) = extension.iter().position(|&b| b != 0) {
        return Err(BtfError::HdrNonZeroExtra {
            offset: HEADER_LEN as usize + pos,
            value: extension[pos],
            hdr_len: hdr.hdr_len,
        });
    }
    let available = data.len() - hdr_len;
    let layout = check_sections(&hdr, hdr_len, available)?;
    Ok((
        hdr,
        Layout {
            types: shift(layout.types, hdr_len),
            strings: shift(layout.strings, hdr_len),
        },
    ))
}

fn shift(r: Range<usize>, by: usize) -> Range<usize> {
    // Both ends are <= data.len() - by, so this cannot overflow.
    r.start + by..r.end + by
}

/// Section checks on offsets relative to the end of the header.
fn check_sections(hdr: &Header, hdr_len: usize, available: usize) -> Result<Layout, BtfError> {
    if hdr.type_off & 3 != 0 {
        return Err(BtfError::TypeOffMisaligned {
            type_off: hdr.type_off,
        });
    }
    // Every type record is a whole number of u32 words.
    if hdr.type_len & 3 != 0 {
        return Err(BtfError::TypeLenMisaligned {
            type_len: hdr.type_len,
        });
    }
    let secs = [
        (Section::Types, hdr.type_off, hdr.type_len),
        (Section::Strings, hdr.str_off, hdr.str_len),
    ];
    for (section, off, len) in secs {
        if u64::from(off) + u64::from(len) > available as u64 {
            return Err(BtfError::SectionOutOfBounds {
                section,
                off,
                len,
                available,
            });
        }
    }
    // Like btf_check_sec_info: sorted by offset, the sections must tile the
    // data after the header exactly, with no gap, overlap or trailing bytes.
    // Empty sections sort first so an empty type section may share an offset.
    let mut sorted = secs;
    sorted.sort_by_key(|&(_, off, len)| (off, len));
    let mut total: u64 = 0;
    for (_, off, len) in sorted {
        let off = u64::from(off);
        if off > total {
            return Err(BtfError::SectionGap {
                start: total,
                end: off,
            });
        }
        if off < total {
            return Err(BtfError::SectionOverlap {
                type_off: hdr.type_off,
                type_len: hdr.type_len,
                str_off: hdr.str_off,
                str_len: hdr.str_len,
            });
        }
        total = off + u64::from(len);
    }
    // total <= available: both sections were checked to be in bounds.
    let total = usize::try_from(total).unwrap_or(available);
    if total < available {
        return Err(BtfError::TrailingData {
            offset: hdr_len + total,
            len: available - total,
        });
    }
    let range = |off: u32, len: u32| -> Range<usize> {
        // In bounds (checked above), so these fit in usize.
        let start = off as usize;
        start..start + len as usize
    };
    let layout = Layout {
        types: range(hdr.type_off, hdr.type_len),
        strings: range(hdr.str_off, hdr.str_len),
    };
    // btf_parse_str_sec: "String section is not at the end".
    if layout.strings.end != available {
        return Err(BtfError::StringsNotLast {
            str_off: hdr.str_off,
            str_len: hdr.str_len,
            available,
        });
    }
    Ok(layout)
}
