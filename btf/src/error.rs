//! Everything that can be wrong with a BTF blob, with enough context (type
//! ID, kind, byte offset, bad value, allowed range) to find it in a hexdump.

use std::fmt;

use crate::types::Kind;

/// One of the two sections a BTF header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The type section (`type_off`, `type_len`).
    Types,
    /// The string section (`str_off`, `str_len`).
    Strings,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Types => "type",
            Section::Strings => "string",
        })
    }
}

/// Which field of a type record holds a type reference. Indexes are 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefSite {
    /// The `type` field of PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG,
    /// FUNC, VAR and DECL_TAG.
    Target,
    /// ARRAY element type.
    ArrayElem,
    /// ARRAY index type.
    ArrayIndex,
    /// STRUCT/UNION member.
    Member(u32),
    /// FUNC_PROTO return type.
    Return,
    /// FUNC_PROTO parameter.
    Param(u32),
    /// DATASEC `btf_var_secinfo` entry.
    Secinfo(u32),
}

impl fmt::Display for RefSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefSite::Target => f.write_str("target"),
            RefSite::ArrayElem => f.write_str("element type"),
            RefSite::ArrayIndex => f.write_str("index type"),
            RefSite::Member(i) => write!(f, "member {i}"),
            RefSite::Return => f.write_str("return type"),
            RefSite::Param(i) => write!(f, "param {i}"),
            RefSite::Secinfo(i) => write!(f, "var_secinfo {i}"),
        }
    }
}

/// Which field of a type record holds a name offset. Indexes are 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameSite {
    /// The type's own `name_off`.
    Type,
    /// STRUCT/UNION member name.
    Member(u32),
    /// ENUM/ENUM64 value name.
    EnumValue(u32),
    /// FUNC_PROTO parameter name.
    Param(u32),
}

impl fmt::Display for NameSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameSite::Type => f.write_str("name"),
            NameSite::Member(i) => write!(f, "member {i} name"),
            NameSite::EnumValue(i) => write!(f, "value {i} name"),
            NameSite::Param(i) => write!(f, "param {i} name"),
        }
    }
}

/// Why a blob is not valid BTF. Byte offsets called `offset` are from the
/// start of the blob; section offsets (`off`, `start`, `end`) are relative to
/// the end of the header, like the header's own fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BtfError {
    #[error("BTF data is {len} bytes, shorter than the {needed}-byte header")]
    TooShort { len: usize, needed: usize },
    #[error("bad magic {found:#06x}, expected 0xeb9f{}", magic_hint(*found))]
    BadMagic { found: u16 },
    #[error("unsupported BTF version {found}, expected 1")]
    BadVersion { found: u8 },
    #[error("unsupported header flags {found:#04x}, expected 0")]
    BadFlags { found: u8 },
    #[error("hdr_len {hdr_len} is smaller than the {min}-byte header")]
    HdrLenTooSmall { hdr_len: u32, min: u32 },
    #[error("hdr_len {hdr_len} is past the end of the {len}-byte BTF data")]
    HdrLenPastEnd { hdr_len: u32, len: usize },
    /// `hdr_len` > 24 and a byte the kernel does not know about is set.
    #[error("header extension byte at offset {offset} is {value:#04x}; bytes 24..{hdr_len} must be zero")]
    HdrNonZeroExtra {
        offset: usize,
        value: u8,
        hdr_len: u32,
    },
    #[error("type_off {type_off} is not 4-byte aligned")]
    TypeOffMisaligned { type_off: u32 },
    #[error("type_len {type_len} is not a multiple of 4")]
    TypeLenMisaligned { type_len: u32 },
    #[error("{section} section (off {off}, len {len}) extends past the {available} bytes after the header")]
    SectionOutOfBounds {
        section: Section,
        off: u32,
        len: u32,
        available: usize,
    },
    #[error(
        "type section [{type_off}, +{type_len}) and string section [{str_off}, +{str_len}) overlap"
    )]
    SectionOverlap {
        type_off: u32,
        type_len: u32,
        str_off: u32,
        str_len: u32,
    },
    /// The kernel rejects unused bytes between sections ("Unsupported section
    /// found").
    #[error("bytes {start}..{end} after the header belong to no section")]
    SectionGap { start: u64, end: u64 },
    #[error("{len} bytes of trailing data at offset {offset} follow the last section")]
    TrailingData { offset: usize, len: usize },
    /// The kernel requires the string section to end the blob.
    #[error("string section (off {str_off}, len {str_len}) is not the last section; data after the header is {available} bytes")]
    StringsNotLast {
        str_off: u32,
        str_len: u32,
        available: usize,
    },
    #[error("string section is empty; base BTF needs at least the empty string")]
    StringsEmpty,
    #[error("string section starts with byte {found:#04x}; base BTF must start with NUL")]
    StringsNoLeadingNul { found: u8 },
    #[error("string section (len {str_len}) ends with byte {last:#04x}, not NUL")]
    StringsNotNulTerminated { str_len: u32, last: u8 },
    /// Longer than `BTF_MAX_NAME_OFFSET + 1`; `max` is that length.
    #[error("string section length {str_len} exceeds the maximum {max}")]
    StringsTooLong { str_len: u32, max: u32 },
    #[error("type {id} at offset {offset}: unknown kind {kind} (known kinds are 1..=19)")]
    UnknownKind { id: u32, offset: usize, kind: u8 },
    /// Bits 16-23 or 29-30 of `btf_type.info` are set.
    #[error("type {id} at offset {offset}: info {info:#010x} sets reserved bits (mask {:#010x})", !crate::types::INFO_MASK)]
    ReservedInfoBits { id: u32, offset: usize, info: u32 },
    /// The last record runs past the type section. `kind` is `None` if not
    /// even the 12-byte `struct btf_type` fits.
    #[error("type {id} ({}) at offset {offset} needs {needed} bytes but only {available} remain in the type section", kind_label(*kind))]
    TruncatedType {
        id: u32,
        kind: Option<Kind>,
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// Type IDs would not fit in u32; impossible for blobs under 4 GiB.
    #[error("type IDs starting at {first_id} overflow u32")]
    TooManyTypes { first_id: u32 },
    #[error("type {id} ({kind}) {site}: type id {target} is past the last type id {last_id}")]
    DanglingRef {
        id: u32,
        kind: Kind,
        site: RefSite,
        target: u32,
        last_id: u32,
    },
    /// Void (ID 0) where C has no void: anywhere but PTR, TYPEDEF,
    /// VOLATILE, CONST, RESTRICT, TYPE_TAG targets, a FUNC_PROTO return, and
    /// a last unnamed FUNC_PROTO parameter (varargs).
    #[error("type {id} ({kind}) {site}: type id 0 (void) is not allowed here")]
    VoidRef { id: u32, kind: Kind, site: RefSite },
    /// `limit` is the size of the string space: base `str_len` plus own
    /// `str_len` for split BTF.
    #[error("type {id} ({kind}) {site}: name offset {name_off} is past the end of the string space ({limit} bytes)")]
    NameOutOfRange {
        id: u32,
        kind: Kind,
        site: NameSite,
        name_off: u32,
        limit: u64,
    },
    /// Cannot happen once the string section checks passed (sections end
    /// with NUL); kept so that lookups never need to panic.
    #[error("type {id} ({kind}) {site}: string at name offset {name_off} has no terminating NUL")]
    NameNotTerminated {
        id: u32,
        kind: Kind,
        site: NameSite,
        name_off: u32,
    },
    /// A reference points at a type of a kind that cannot appear there
    /// (e.g. a FUNC whose type is not a FUNC_PROTO, a member of FUNC type),
    /// following the kernel's `btf.c`. For an ARRAY index type, `target` is
    /// where the TYPEDEF/modifier chain ends: the offending type, or the
    /// modifier pointing at void, or the one at the chain bound (a cycle).
    #[error("type {id} ({kind}) {site}: type {target} is {} {target_kind}, expected {expected}", article(*target_kind))]
    IncompatibleRef {
        id: u32,
        kind: Kind,
        site: RefSite,
        target: u32,
        target_kind: Kind,
        expected: &'static str,
    },
    /// Split BTF only: a name offset into the base's string section is not
    /// at the start of a string (the byte before it is not NUL). Real
    /// modules only use whole base strings; offsets landing mid-string mean
    /// the module was built against a different base.
    #[error("type {id} ({kind}) {site}: name offset {name_off} is inside a base string, not at its start (module built against a different vmlinux?)")]
    NameNotAtStringStart {
        id: u32,
        kind: Kind,
        site: NameSite,
        name_off: u32,
    },
    #[error("the base BTF is itself split BTF; only one level of splitting is supported")]
    BaseIsSplit,
}

fn magic_hint(found: u16) -> &'static str {
    if found == crate::header::BTF_MAGIC.swap_bytes() {
        " (big-endian BTF is not supported)"
    } else {
        ""
    }
}

/// "an INT", "a STRUCT".
fn article(kind: Kind) -> &'static str {
    match kind {
        Kind::Int | Kind::Array | Kind::Enum | Kind::Enum64 => "an",
        _ => "a",
    }
}

fn kind_label(kind: Option<Kind>) -> &'static str {
    kind.map_or("kind unknown", Kind::name)
}
