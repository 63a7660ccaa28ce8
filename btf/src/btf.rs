//! A parsed and fully checked BTF object, base or split.

use crate::error::BtfError;
use crate::header::{self, Header};
use crate::split::{self, Counts};
use crate::strings::{self, StrSpace};
use crate::types::{self, Kind, Type, TypeData};

/// A validated BTF object. It owns copies of its types and strings; a split
/// object does not hold its base, so lookups that may land in the base take
/// it as an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Btf {
    header: Header,
    types: Vec<Type>,
    strings: Vec<u8>,
    first_id: u32,
    /// Base's string length for split BTF (where own offsets start), else 0.
    start_str_off: u32,
    split: bool,
}

/// A STRUCT/UNION member with its name resolved and offset unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberInfo<'a> {
    /// `None` if the name does not resolve or is not UTF-8; `Some("")` for
    /// an anonymous member.
    pub name: Option<&'a str>,
    pub type_id: u32,
    pub bit_offset: u32,
    /// 0 unless the member is a bitfield of a kind_flag struct.
    pub bitfield_size: u32,
}

impl Btf {
    /// Parses and checks a base BTF blob (e.g. `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        Ok(Self::parse_counted(data, None)?.0)
    }

    /// Parses and checks split BTF (e.g. `/sys/kernel/btf/<module>`) on top
    /// of `base`, which must itself be a base BTF.
    pub fn parse_split(data: &[u8], base: &Btf) -> Result<Btf, BtfError> {
        Ok(Self::parse_counted(data, Some(base))?.0)
    }

    pub(crate) fn parse_counted(
        data: &[u8],
        base: Option<&Btf>,
    ) -> Result<(Btf, Counts), BtfError> {
        if base.is_some_and(Btf::is_split) {
            return Err(BtfError::BaseIsSplit);
        }
        let (header, layout) = header::parse(data)?;
        // The ranges were checked against data.len() by header::parse.
        let type_bytes = data.get(layout.types.clone()).unwrap_or_default();
        let str_bytes = data.get(layout.strings).unwrap_or_default();
        strings::check_section(str_bytes, base.is_some())?;
        let first_id = match base {
            None => 1,
            Some(b) => b
                .last_type_id()
                .checked_add(1)
                .ok_or(BtfError::TooManyTypes {
                    first_id: b.last_type_id(),
                })?,
        };
        let types = types::parse_types(type_bytes, layout.types.start, first_id)?;
        let btf = Btf {
            header,
            types,
            strings: str_bytes.to_vec(),
            first_id,
            start_str_off: base.map_or(0, Btf::str_len),
            split: base.is_some(),
        };
        let counts = split::check_refs_and_names(&btf, base)?;
        Ok((btf, counts))
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// True for split BTF parsed with [`Btf::parse_split`].
    pub fn is_split(&self) -> bool {
        self.split
    }

    /// ID of this object's first type: 1 for base BTF, one past the base's
    /// last ID for split BTF (even if this object has no types).
    pub fn first_type_id(&self) -> u32 {
        self.first_id
    }

    /// ID of this object's last type; `first_type_id() - 1` if it has none.
    pub fn last_type_id(&self) -> u32 {
        // Fits: parse_types assigned an ID to every type.
        let n = u32::try_from(self.types.len()).unwrap_or(u32::MAX);
        self.first_id.saturating_sub(1).saturating_add(n)
    }

    /// This object's own types, in ID order.
    pub fn types(&self) -> &[Type] {
        &self.types
    }

    /// One of this object's own types; `None` for IDs in the base or beyond.
    pub fn type_by_id(&self, id: u32) -> Option<&Type> {
        let idx = id.checked_sub(self.first_id)?;
        self.types.get(usize::try_from(idx).ok()?)
    }

    /// A type of this object or of `base` (void, ID 0, is `None`).
    pub fn resolve_type<'a>(&'a self, base: Option<&'a Btf>, id: u32) -> Option<&'a Type> {
        if id < self.first_id {
            return base.filter(|_| self.split)?.type_by_id(id);
        }
        self.type_by_id(id)
    }

    /// Length of this object's own string section.
    pub fn str_len(&self) -> u32 {
        self.header.str_len
    }

    /// Name offset where this object's own strings start: the base's
    /// `str_len` for split BTF, 0 for base BTF.
    pub fn start_str_off(&self) -> u32 {
        self.start_str_off
    }

    /// This object's own string section.
    pub fn string_bytes(&self) -> &[u8] {
        &self.strings
    }

    /// The string space as validated: only meaningful with the base this
    /// object was parsed over.
    pub(crate) fn str_space<'a>(&'a self, base: Option<&'a Btf>) -> StrSpace<'a> {
        let base = base
            .filter(|_| self.split)
            .map_or(&[][..], |b| &b.strings[..]);
        StrSpace {
            base,
            own: &self.strings,
        }
    }

    /// The raw bytes (without NUL) of the string at `name_off`. Split BTF
    /// needs its `base` for offsets below [`Btf::start_str_off`].
    pub fn name_bytes<'a>(&'a self, base: Option<&'a Btf>, name_off: u32) -> Option<&'a [u8]> {
        let (strings, off) = match name_off.checked_sub(self.start_str_off) {
            Some(own_off) => (&self.strings, own_off),
            // A base other than the one parsed over would give wrong names.
            None => {
                let b = base.filter(|b| self.split && b.str_len() == self.start_str_off)?;
                (&b.strings, name_off)
            }
        };
        StrSpace {
            base: &[],
            own: strings,
        }
        .lookup(off)
        .ok()
    }

    /// The string at `name_off` as UTF-8 (`Some("")` for offset 0, the empty
    /// name of anonymous types). See [`Btf::name_bytes`].
    pub fn name_of<'a>(&'a self, base: Option<&'a Btf>, name_off: u32) -> Option<&'a str> {
        std::str::from_utf8(self.name_bytes(base, name_off)?).ok()
    }

    /// The first of this object's own types (not the base's) with this kind
    /// and name. Split BTF needs `base` to match names stored in the base.
    pub fn find_by_name<'a>(
        &'a self,
        base: Option<&'a Btf>,
        kind: Kind,
        name: &str,
    ) -> Option<&'a Type> {
        self.types
            .iter()
            .find(|t| t.kind == kind && self.name_bytes(base, t.name_off) == Some(name.as_bytes()))
    }

    /// Members of a STRUCT/UNION `t` (of this object or of `base`); `None`
    /// for other kinds.
    pub fn members<'a>(
        &'a self,
        base: Option<&'a Btf>,
        t: &'a Type,
    ) -> Option<impl Iterator<Item = MemberInfo<'a>> + 'a> {
        let TypeData::Members(members) = &t.data else {
            return None;
        };
        let kind_flag = t.kind_flag;
        Some(members.iter().map(move |m| MemberInfo {
            name: self.name_of(base, m.name_off),
            type_id: m.type_id,
            bit_offset: m.bit_offset(kind_flag),
            bitfield_size: m.bitfield_size(kind_flag),
        }))
    }
}
