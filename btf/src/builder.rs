//! Hand assembly of BTF blobs, for tests: add strings and types, get bytes
//! laid out as pahole does (header, type section, string section). Nothing
//! is checked, so it can also build invalid BTF; [`patch_header`] and
//! [`Builder::raw`] help corrupt it deliberately.

use crate::btf::Btf;
use crate::header::{Header, BTF_MAGIC, BTF_VERSION, HEADER_LEN};
use crate::types::{int_encoding, Kind};

/// Something that yields a name offset: a `&str` (added to the builder's
/// strings, `""` is offset 0) or a raw `u32` offset (e.g. a base string).
pub trait IntoName {
    fn name_off(self, b: &mut Builder) -> u32;
}

impl IntoName for &str {
    fn name_off(self, b: &mut Builder) -> u32 {
        b.add_str(self)
    }
}

impl IntoName for u32 {
    fn name_off(self, _: &mut Builder) -> u32 {
        self
    }
}

/// Accumulates types and strings of one BTF object.
#[derive(Debug, Clone)]
pub struct Builder {
    first_id: u32,
    start_str_off: u32,
    nr_types: u32,
    types: Vec<u8>,
    strings: Vec<u8>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A base BTF: first type ID 1, strings start with the empty string.
    pub fn new() -> Builder {
        Builder {
            first_id: 1,
            start_str_off: 0,
            nr_types: 0,
            types: Vec::new(),
            strings: vec![0],
        }
    }

    /// Split BTF over `base`: IDs continue after the base's, own strings
    /// start at the base's `str_len`, and the string section starts empty.
    pub fn split(base: &Btf) -> Builder {
        Self::split_raw(base.last_type_id().wrapping_add(1), base.str_len())
    }

    /// Split BTF with an explicit first ID and string offset.
    pub fn split_raw(first_id: u32, start_str_off: u32) -> Builder {
        Builder {
            first_id,
            start_str_off,
            nr_types: 0,
            types: Vec::new(),
            strings: Vec::new(),
        }
    }

    /// Name offset of `s`, adding it unless already present. `""` is 0,
    /// which for split BTF is the base's empty string.
    pub fn add_str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let mut needle = s.as_bytes().to_vec();
        needle.push(0);
        let own = self
            .strings
            .windows(needle.len())
            .enumerate()
            .find(|&(i, w)| w == needle && (i == 0 || self.strings[i - 1] == 0))
            .map(|(i, _)| i);
        let own = own.unwrap_or_else(|| {
            let at = self.strings.len();
            self.strings.extend_from_slice(&needle);
            at
        });
        self.start_str_off.wrapping_add(own as u32)
    }

    /// Appends raw bytes to the string section (for corrupting it).
    pub fn raw_strings(&mut self, bytes: &[u8]) {
        self.strings.extend_from_slice(bytes);
    }

    /// ID the next type will get.
    pub fn next_id(&self) -> u32 {
        self.first_id.wrapping_add(self.nr_types)
    }

    /// Appends a record with a raw kind number and trailing u32 words, and
    /// returns its ID. Nothing is checked.
    pub fn raw(
        &mut self,
        name_off: u32,
        kind: u8,
        vlen: u16,
        kind_flag: bool,
        size_or_type: u32,
        extra: &[u32],
    ) -> u32 {
        let info = (u32::from(kind_flag) << 31) | (u32::from(kind) << 24) | u32::from(vlen);
        for w in [name_off, info, size_or_type].iter().chain(extra) {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        let id = self.next_id();
        self.nr_types += 1;
        id
    }

    /// Appends raw bytes to the type section without counting a type.
    pub fn raw_bytes(&mut self, bytes: &[u8]) {
        self.types.extend_from_slice(bytes);
    }

    fn add(
        &mut self,
        name: impl IntoName,
        kind: Kind,
        vlen: usize,
        sot: u32,
        extra: &[u32],
    ) -> u32 {
        let name_off = name.name_off(self);
        self.raw(name_off, kind.raw(), vlen as u16, false, sot, extra)
    }

    fn no_name(&mut self, kind: Kind, target: u32) -> u32 {
        self.add(0, kind, 0, target, &[])
    }

    /// INT with `encoding` a combination of `INT_SIGNED`, `INT_CHAR`, `INT_BOOL`.
    pub fn int(&mut self, name: impl IntoName, size: u32, encoding: u8, bits: u8) -> u32 {
        self.add(name, Kind::Int, 0, size, &[int_encoding(encoding, 0, bits)])
    }

    pub fn ptr(&mut self, target: u32) -> u32 {
        self.no_name(Kind::Ptr, target)
    }

    pub fn const_(&mut self, target: u32) -> u32 {
        self.no_name(Kind::Const, target)
    }

    pub fn volatile(&mut self, target: u32) -> u32 {
        self.no_name(Kind::Volatile, target)
    }

    pub fn restrict(&mut self, target: u32) -> u32 {
        self.no_name(Kind::Restrict, target)
    }

    pub fn typedef(&mut self, name: impl IntoName, target: u32) -> u32 {
        self.add(name, Kind::Typedef, 0, target, &[])
    }

    pub fn type_tag(&mut self, name: impl IntoName, target: u32) -> u32 {
        self.add(name, Kind::TypeTag, 0, target, &[])
    }

    pub fn array(&mut self, elem: u32, index_type: u32, nelems: u32) -> u32 {
        self.add(0, Kind::Array, 0, 0, &[elem, index_type, nelems])
    }

    /// STRUCT with members `(name, type, bit offset)`.
    pub fn struct_<N: IntoName + Copy>(
        &mut self,
        name: impl IntoName,
        size: u32,
        members: &[(N, u32, u32)],
    ) -> u32 {
        self.composite(Kind::Struct, name, size, members)
    }

    /// UNION with members `(name, type, bit offset)`.
    pub fn union_<N: IntoName + Copy>(
        &mut self,
        name: impl IntoName,
        size: u32,
        members: &[(N, u32, u32)],
    ) -> u32 {
        self.composite(Kind::Union, name, size, members)
    }

    fn composite<N: IntoName + Copy>(
        &mut self,
        kind: Kind,
        name: impl IntoName,
        size: u32,
        members: &[(N, u32, u32)],
    ) -> u32 {
        let mut extra = Vec::with_capacity(members.len() * 3);
        for &(n, ty, off) in members {
            extra.extend([n.name_off(self), ty, off]);
        }
        self.add(name, kind, members.len(), size, &extra)
    }

    /// ENUM of `size` bytes with values `(name, value)`.
    pub fn enum_<N: IntoName + Copy>(
        &mut self,
        name: impl IntoName,
        size: u32,
        values: &[(N, i32)],
    ) -> u32 {
        let mut extra = Vec::with_capacity(values.len() * 2);
        for &(n, v) in values {
            extra.extend([n.name_off(self), v as u32]);
        }
        self.add(name, Kind::Enum, values.len(), size, &extra)
    }

    /// ENUM64 of `size` bytes with values `(name, value)`.
    pub fn enum64<N: IntoName + Copy>(
        &mut self,
        name: impl IntoName,
        size: u32,
        values: &[(N, u64)],
    ) -> u32 {
        let mut extra = Vec::with_capacity(values.len() * 3);
        for &(n, v) in values {
            extra.extend([n.name_off(self), v as u32, (v >> 32) as u32]);
        }
        self.add(name, Kind::Enum64, values.len(), size, &extra)
    }

    /// FWD declaration of a struct, or of a union if `union` is set.
    pub fn fwd(&mut self, name: impl IntoName, union: bool) -> u32 {
        let name_off = name.name_off(self);
        self.raw(name_off, Kind::Fwd.raw(), 0, union, 0, &[])
    }

    /// FUNC_PROTO with parameters `(name, type)`; a last `("", 0)` is varargs.
    pub fn func_proto<N: IntoName + Copy>(&mut self, ret: u32, params: &[(N, u32)]) -> u32 {
        let mut extra = Vec::with_capacity(params.len() * 2);
        for &(n, ty) in params {
            extra.extend([n.name_off(self), ty]);
        }
        self.add(0, Kind::FuncProto, params.len(), ret, &extra)
    }

    /// FUNC of type `proto`; `linkage` goes in vlen (0 static, 1 global).
    pub fn func(&mut self, name: impl IntoName, proto: u32, linkage: u16) -> u32 {
        let name_off = name.name_off(self);
        self.raw(name_off, Kind::Func.raw(), linkage, false, proto, &[])
    }

    pub fn var(&mut self, name: impl IntoName, ty: u32, linkage: u32) -> u32 {
        self.add(name, Kind::Var, 0, ty, &[linkage])
    }

    /// DATASEC with entries `(var type, offset, size)`.
    pub fn datasec(&mut self, name: impl IntoName, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let extra: Vec<u32> = vars.iter().flat_map(|&(t, o, s)| [t, o, s]).collect();
        self.add(name, Kind::Datasec, vars.len(), size, &extra)
    }

    pub fn float(&mut self, name: impl IntoName, size: u32) -> u32 {
        self.add(name, Kind::Float, 0, size, &[])
    }

    /// DECL_TAG on `target`; `component_idx` -1 tags the type itself.
    pub fn decl_tag(&mut self, name: impl IntoName, target: u32, component_idx: i32) -> u32 {
        self.add(name, Kind::DeclTag, 0, target, &[component_idx as u32])
    }

    pub fn type_bytes(&self) -> &[u8] {
        &self.types
    }

    pub fn string_bytes(&self) -> &[u8] {
        &self.strings
    }

    /// The header [`Builder::build`] writes.
    pub fn header(&self) -> Header {
        let type_len = self.types.len() as u32;
        Header {
            magic: BTF_MAGIC,
            version: BTF_VERSION,
            flags: 0,
            hdr_len: HEADER_LEN,
            type_off: 0,
            type_len,
            str_off: type_len,
            str_len: self.strings.len() as u32,
        }
    }

    /// Header, type section, string section.
    pub fn build(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_LEN as usize + self.types.len() + self.strings.len());
        out.extend_from_slice(&self.header().to_bytes());
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// Decodes the header of `blob`, lets `f` change it and writes it back. The
/// sections are not moved. Does nothing if `blob` is shorter than a header.
pub fn patch_header(blob: &mut [u8], f: impl FnOnce(&mut Header)) {
    let Some(mut hdr) = Header::decode(blob) else {
        return;
    };
    f(&mut hdr);
    blob[..HEADER_LEN as usize].copy_from_slice(&hdr.to_bytes());
}

/// A small valid base BTF: `[1] INT "int" size 4 signed 32 bits` and
/// `[2] PTR -> [1]`, suitable for `BPF_BTF_LOAD`.
pub fn minimal_blob() -> Vec<u8> {
    let mut b = Builder::new();
    let int = b.int("int", 4, crate::types::INT_SIGNED, 32);
    b.ptr(int);
    b.build()
}
