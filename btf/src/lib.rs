//! A strict reader for little-endian BTF (BPF Type Format), base and split.
//!
//! [`Btf::parse`] reads a base BTF such as `/sys/kernel/btf/vmlinux`;
//! [`Btf::parse_split`] reads module BTF on top of it. Both check the whole
//! blob up front (header, section layout, string section, every type record,
//! every type reference and name offset) and fail with a [`BtfError`] that
//! says what is wrong and where. [`check_split`] does the split parse and
//! reports how much of the module points into the base.
//!
//! The checks follow the kernel's `btf_parse_hdr`, `btf_check_sec_info`,
//! `btf_parse_str_sec` and `btf_check_meta`, plus reference and name range
//! checks and the kinds a reference may point at (FUNC to FUNC_PROTO, ARRAY
//! index to an integer, no FUNC as a member type, ...). Split BTF names that
//! land in the base's strings must start a string. The kernel's other
//! per-kind semantic checks (sizes, int encodings, member offsets, cycles)
//! are not repeated here.
//!
//! No input can make the reader panic, and nothing is allocated from a count
//! in the data before the data has been checked to hold that many entries.

mod btf;
pub mod builder;
mod error;
mod header;
mod split;
mod strings;
mod types;

#[cfg(test)]
mod tests;

pub use btf::{Btf, MemberInfo};
pub use builder::minimal_blob;
pub use error::{BtfError, NameSite, RefSite, Section};
pub use header::{Header, BTF_MAGIC, BTF_VERSION, HEADER_LEN};
pub use split::{check_split, SplitReport};
pub use strings::MAX_NAME_OFFSET;
pub use types::{
    int_encoding, Array, Enum64Value, EnumValue, Kind, Member, Param, Type, TypeData, VarSecinfo,
    INT_BOOL, INT_CHAR, INT_SIGNED,
};
