//! Type records (`struct btf_type` plus kind-specific trailing data) and the
//! decoding of the type section.

use std::fmt;

use crate::error::BtfError;

/// `BTF_INT_SIGNED`, `BTF_INT_CHAR`, `BTF_INT_BOOL`: INT encoding bits.
pub const INT_SIGNED: u8 = 1;
pub const INT_CHAR: u8 = 2;
pub const INT_BOOL: u8 = 4;

/// The u32 that follows an INT record: encoding in bits 24-27, bit offset in
/// bits 16-23, number of bits in bits 0-7.
pub fn int_encoding(encoding: u8, offset: u8, bits: u8) -> u32 {
    (u32::from(encoding) << 24) | (u32::from(offset) << 16) | u32::from(bits)
}

/// Bits of `btf_type.info` that may be set: vlen 0-15, kind 24-28, kind_flag
/// 31. The kernel rejects anything else ("Invalid btf_info").
pub(crate) const INFO_MASK: u32 = 0x9f00_ffff;

const TYPE_HDR_LEN: usize = 12;

/// A BTF kind (`BTF_KIND_*`). Kind 0 (`BTF_KIND_UNKN`) is never valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

const KINDS: [Kind; 19] = [
    Kind::Int,
    Kind::Ptr,
    Kind::Array,
    Kind::Struct,
    Kind::Union,
    Kind::Enum,
    Kind::Fwd,
    Kind::Typedef,
    Kind::Volatile,
    Kind::Const,
    Kind::Restrict,
    Kind::Func,
    Kind::FuncProto,
    Kind::Var,
    Kind::Datasec,
    Kind::Float,
    Kind::DeclTag,
    Kind::TypeTag,
    Kind::Enum64,
];

impl Kind {
    /// The kind for a raw `BTF_KIND_*` number, `None` for 0 and unknown kinds.
    pub fn from_raw(raw: u8) -> Option<Kind> {
        KINDS.get(usize::from(raw).checked_sub(1)?).copied()
    }

    /// The raw `BTF_KIND_*` number.
    pub fn raw(self) -> u8 {
        self as u8 + 1
    }

    /// The kernel's name for the kind, e.g. `"STRUCT"`, `"FUNC_PROTO"`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Int => "INT",
            Kind::Ptr => "PTR",
            Kind::Array => "ARRAY",
            Kind::Struct => "STRUCT",
            Kind::Union => "UNION",
            Kind::Enum => "ENUM",
            Kind::Fwd => "FWD",
            Kind::Typedef => "TYPEDEF",
            Kind::Volatile => "VOLATILE",
            Kind::Const => "CONST",
            Kind::Restrict => "RESTRICT",
            Kind::Func => "FUNC",
            Kind::FuncProto => "FUNC_PROTO",
            Kind::Var => "VAR",
            Kind::Datasec => "DATASEC",
            Kind::Float => "FLOAT",
            Kind::DeclTag => "DECL_TAG",
            Kind::TypeTag => "TYPE_TAG",
            Kind::Enum64 => "ENUM64",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `struct btf_array`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Array {
    pub type_id: u32,
    pub index_type: u32,
    pub nelems: u32,
}

/// `struct btf_member`. `offset` is raw: see [`Member::bit_offset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub name_off: u32,
    pub type_id: u32,
    pub offset: u32,
}

impl Member {
    /// Bit offset of the member. With the parent's kind_flag set, `offset`
    /// packs the bitfield size into bits 24-31 (`BTF_MEMBER_BIT_OFFSET`).
    pub fn bit_offset(&self, kind_flag: bool) -> u32 {
        if kind_flag {
            self.offset & 0x00ff_ffff
        } else {
            self.offset
        }
    }

    /// Bitfield size in bits, 0 if not a bitfield (`BTF_MEMBER_BITFIELD_SIZE`).
    pub fn bitfield_size(&self, kind_flag: bool) -> u32 {
        if kind_flag {
            self.offset >> 24
        } else {
            0
        }
    }
}

/// `struct btf_enum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumValue {
    pub name_off: u32,
    pub val: i32,
}

/// `struct btf_enum64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enum64Value {
    pub name_off: u32,
    pub val_lo32: u32,
    pub val_hi32: u32,
}

impl Enum64Value {
    pub fn value(&self) -> u64 {
        (u64::from(self.val_hi32) << 32) | u64::from(self.val_lo32)
    }
}

/// `struct btf_param`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name_off: u32,
    pub type_id: u32,
}

/// `struct btf_var_secinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarSecinfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// The data that follows `struct btf_type`, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeData {
    /// PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG.
    None,
    Int {
        encoding: u32,
    },
    Array(Array),
    /// STRUCT and UNION.
    Members(Vec<Member>),
    Enum(Vec<EnumValue>),
    /// FUNC_PROTO.
    Params(Vec<Param>),
    Var {
        linkage: u32,
    },
    Datasec(Vec<VarSecinfo>),
    DeclTag {
        component_idx: i32,
    },
    Enum64(Vec<Enum64Value>),
}

/// One decoded type record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type {
    pub id: u32,
    pub kind: Kind,
    pub name_off: u32,
    /// Entry count for vlen kinds; linkage for FUNC.
    pub vlen: u16,
    pub kind_flag: bool,
    /// Size for INT, ENUM, STRUCT, UNION, DATASEC, FLOAT, ENUM64; a type ID
    /// for the others.
    pub size_or_type: u32,
    /// Byte offset of the record from the start of the blob.
    pub offset: usize,
    pub data: TypeData,
}

impl Type {
    /// STRUCT/UNION members; empty for other kinds.
    pub fn members(&self) -> &[Member] {
        match &self.data {
            TypeData::Members(m) => m,
            _ => &[],
        }
    }

    /// FUNC_PROTO parameters; empty for other kinds.
    pub fn params(&self) -> &[Param] {
        match &self.data {
            TypeData::Params(p) => p,
            _ => &[],
        }
    }
}

fn word(b: &[u8], i: usize) -> u32 {
    // Callers pass chunks of a length checked against the record size, so
    // the fallback is never taken; it keeps this total for fuzzed input.
    b.get(i * 4..i * 4 + 4)
        .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

/// Bytes of trailing data for `kind` with `vlen` entries.
fn extra_len(kind: Kind, vlen: u16) -> usize {
    let n = usize::from(vlen);
    match kind {
        Kind::Int | Kind::Var | Kind::DeclTag => 4,
        Kind::Array => 12,
        Kind::Struct | Kind::Union | Kind::Datasec | Kind::Enum64 => n * 12,
        Kind::Enum | Kind::FuncProto => n * 8,
        Kind::Ptr
        | Kind::Fwd
        | Kind::Typedef
        | Kind::Volatile
        | Kind::Const
        | Kind::Restrict
        | Kind::Func
        | Kind::Float
        | Kind::TypeTag => 0,
    }
}

fn decode_extra(kind: Kind, extra: &[u8]) -> TypeData {
    fn list<T>(extra: &[u8], size: usize, f: impl Fn(&[u8]) -> T) -> Vec<T> {
        extra.chunks_exact(size).map(f).collect()
    }
    match kind {
        Kind::Int => TypeData::Int {
            encoding: word(extra, 0),
        },
        Kind::Var => TypeData::Var {
            linkage: word(extra, 0),
        },
        Kind::DeclTag => TypeData::DeclTag {
            component_idx: word(extra, 0) as i32,
        },
        Kind::Array => TypeData::Array(Array {
            type_id: word(extra, 0),
            index_type: word(extra, 1),
            nelems: word(extra, 2),
        }),
        Kind::Struct | Kind::Union => TypeData::Members(list(extra, 12, |c| Member {
            name_off: word(c, 0),
            type_id: word(c, 1),
            offset: word(c, 2),
        })),
        Kind::Enum => TypeData::Enum(list(extra, 8, |c| EnumValue {
            name_off: word(c, 0),
            val: word(c, 1) as i32,
        })),
        Kind::FuncProto => TypeData::Params(list(extra, 8, |c| Param {
            name_off: word(c, 0),
            type_id: word(c, 1),
        })),
        Kind::Datasec => TypeData::Datasec(list(extra, 12, |c| VarSecinfo {
            type_id: word(c, 0),
            offset: word(c, 1),
            size: word(c, 2),
        })),
        Kind::Enum64 => TypeData::Enum64(list(extra, 12, |c| Enum64Value {
            name_off: word(c, 0),
            val_lo32: word(c, 1),
            val_hi32: word(c, 2),
        })),
        _ => TypeData::None,
    }
}

/// Decodes the whole type section, which must hold whole records only.
/// `sec_offset` is the section's byte offset in the blob, for messages.
pub(crate) fn parse_types(
    sec: &[u8],
    sec_offset: usize,
    first_id: u32,
) -> Result<Vec<Type>, BtfError> {
    // Bounded by the input size, not by any count read from it.
    let mut types = Vec::with_capacity(sec.len() / TYPE_HDR_LEN);
    let mut pos = 0;
    while let Some(rest) = sec.get(pos..).filter(|r| !r.is_empty()) {
        let id = u32::try_from(types.len())
            .ok()
            .and_then(|n| first_id.checked_add(n))
            .ok_or(BtfError::TooManyTypes { first_id })?;
        let offset = sec_offset.saturating_add(pos);
        if rest.len() < TYPE_HDR_LEN {
            return Err(BtfError::TruncatedType {
                id,
                kind: None,
                offset,
                needed: TYPE_HDR_LEN,
                available: rest.len(),
            });
        }
        let (name_off, info, size_or_type) = (word(rest, 0), word(rest, 1), word(rest, 2));
        if info & !INFO_MASK != 0 {
            return Err(BtfError::ReservedInfoBits { id, offset, info });
        }
        let raw_kind = ((info >> 24) & 0x1f) as u8;
        let kind = Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind {
            id,
            offset,
            kind: raw_kind,
        })?;
        let vlen = (info & 0xffff) as u16;
        let needed = TYPE_HDR_LEN + extra_len(kind, vlen);
        let Some(extra) = rest.get(TYPE_HDR_LEN..needed) else {
            return Err(BtfError::TruncatedType {
                id,
                kind: Some(kind),
                offset,
                needed,
                available: rest.len(),
            });
        };
        types.push(Type {
            id,
            kind,
            name_off,
            vlen,
            kind_flag: info >> 31 != 0,
            size_or_type,
            offset,
            data: decode_extra(kind, extra),
        });
        pos += needed;
    }
    Ok(types)
}
