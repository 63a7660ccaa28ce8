//! Type records: decoding every kind, unknown kinds, truncation, and a
//! crude no-panic sweep.

use super::{base, base_builder, BASE_LAST, FUNC, INT, PROTO, PTR_INT, TASK};
use crate::builder::{minimal_blob, Builder};
use crate::{
    int_encoding, Array, Btf, BtfError, Kind, MemberInfo, TypeData, VarSecinfo, INT_SIGNED,
};

#[test]
fn valid_base() {
    let btf = base();
    assert!(!btf.is_split());
    assert_eq!(btf.first_type_id(), 1);
    assert_eq!(btf.last_type_id(), BASE_LAST);
    assert_eq!(btf.types().len(), 5);
    assert_eq!(btf.start_str_off(), 0);
    assert_eq!(btf.type_by_id(0), None);
    assert_eq!(btf.type_by_id(BASE_LAST + 1), None);

    let int = btf.type_by_id(INT).unwrap();
    assert_eq!((int.id, int.kind, int.size_or_type), (INT, Kind::Int, 4));
    assert_eq!(int.offset, 24);
    assert_eq!(
        int.data,
        TypeData::Int {
            encoding: int_encoding(INT_SIGNED, 0, 32)
        }
    );
    assert_eq!(btf.name_of(None, int.name_off), Some("int"));
    assert_eq!(btf.name_of(None, 0), Some(""));

    let task = btf.find_by_name(None, Kind::Struct, "task").unwrap();
    assert_eq!(task.id, TASK);
    assert_eq!(btf.find_by_name(None, Kind::Union, "task"), None);
    let members: Vec<_> = btf.members(None, task).unwrap().collect();
    assert_eq!(
        members,
        [
            MemberInfo {
                name: Some("pid"),
                type_id: INT,
                bit_offset: 0,
                bitfield_size: 0
            },
            MemberInfo {
                name: Some("next"),
                type_id: PTR_INT,
                bit_offset: 64,
                bitfield_size: 0
            },
        ]
    );
    assert!(btf.members(None, int).is_none());

    let proto = btf.type_by_id(PROTO).unwrap();
    assert_eq!(proto.params().len(), 2);
    let func = btf.find_by_name(None, Kind::Func, "printk").unwrap();
    assert_eq!((func.id, func.size_or_type, func.vlen), (FUNC, PROTO, 1));
}

#[test]
fn every_kind_decodes() {
    let mut b = Builder::new();
    let int = b.int("long", 8, INT_SIGNED, 64);
    let ptr = b.ptr(0);
    let arr = b.array(int, int, 3);
    let s = b.struct_("s", 8, &[("a", int, 0)]);
    let u = b.union_("u", 8, &[("", s, 0)]);
    let e = b.enum_("e", 4, &[("A", -1), ("B", 2)]);
    let fwd = b.fwd("f", true);
    let td = b.typedef("t", 0);
    let vol = b.volatile(int);
    let cst = b.const_(vol);
    let rst = b.restrict(ptr);
    // FUNC (12) comes before FUNC_PROTO (13) so that kinds appear in order.
    let func = b.func("fn", b.next_id() + 1, 0);
    b.func_proto(0, &[("x", int)]);
    let var = b.var("v", int, 1);
    let sec = b.datasec(".data", 8, &[(var, 0, 8)]);
    let flt = b.float("double", 8);
    let tag = b.decl_tag("tag", func, -1);
    let ttag = b.type_tag("user", int);
    let e64 = b.enum64("big", 8, &[("X", 1 << 40)]);
    let btf = Btf::parse(&b.build()).unwrap();
    let kinds: Vec<Kind> = btf.types().iter().map(|t| t.kind).collect();
    assert_eq!(kinds.len(), 19);
    for (raw, kind) in (1u8..).zip(&kinds) {
        assert_eq!(kind.raw(), raw);
        assert_eq!(Kind::from_raw(raw), Some(*kind));
    }
    let data = |id: u32| btf.type_by_id(id).unwrap().data.clone();
    assert_eq!(
        data(arr),
        TypeData::Array(Array {
            type_id: int,
            index_type: int,
            nelems: 3
        })
    );
    assert_eq!(btf.type_by_id(u).unwrap().members()[0].type_id, s);
    let TypeData::Enum(values) = data(e) else {
        panic!("enum data")
    };
    assert_eq!(values[0].val, -1);
    assert_eq!(btf.name_of(None, values[1].name_off), Some("B"));
    assert!(btf.type_by_id(fwd).unwrap().kind_flag);
    assert_eq!(btf.type_by_id(td).unwrap().size_or_type, 0);
    assert_eq!(btf.type_by_id(cst).unwrap().size_or_type, vol);
    assert_eq!(btf.type_by_id(rst).unwrap().size_or_type, ptr);
    assert_eq!(data(var), TypeData::Var { linkage: 1 });
    assert_eq!(
        data(sec),
        TypeData::Datasec(vec![VarSecinfo {
            type_id: var,
            offset: 0,
            size: 8
        }])
    );
    assert_eq!(data(flt), TypeData::None);
    assert_eq!(data(tag), TypeData::DeclTag { component_idx: -1 });
    assert_eq!(
        btf.name_of(None, btf.type_by_id(ttag).unwrap().name_off),
        Some("user")
    );
    let TypeData::Enum64(values) = data(e64) else {
        panic!("enum64 data")
    };
    assert_eq!(values[0].value(), 1 << 40);
}

#[test]
fn bitfield_members() {
    let mut b = Builder::new();
    let int = b.int("int", 4, INT_SIGNED, 32);
    let name = b.add_str("flags");
    let bits = b.add_str("bits");
    b.raw(
        bits,
        Kind::Struct.raw(),
        1,
        true,
        4,
        &[name, int, (3 << 24) | 5],
    );
    let btf = Btf::parse(&b.build()).unwrap();
    let t = btf.find_by_name(None, Kind::Struct, "bits").unwrap();
    let m = btf.members(None, t).unwrap().next().unwrap();
    assert_eq!(
        (m.name, m.bit_offset, m.bitfield_size),
        (Some("flags"), 5, 3)
    );
}

#[test]
fn unknown_kind() {
    for raw in [0u8, 20, 31] {
        let mut b = base_builder();
        b.raw(0, raw, 0, false, 0, &[]);
        let offset = 24 + b.type_bytes().len() - 12;
        let err = Btf::parse(&b.build()).unwrap_err();
        assert_eq!(
            err,
            BtfError::UnknownKind {
                id: BASE_LAST + 1,
                offset,
                kind: raw
            }
        );
        assert!(err
            .to_string()
            .starts_with(&format!("type 6 at offset {offset}: unknown kind {raw}")));
    }
}

#[test]
fn reserved_info_bits() {
    let mut b = base_builder();
    // Bit 16 is between vlen and kind.
    b.raw(0, 0, 0, false, 0, &[]);
    let mut blob = b.build();
    let info_at = 24 + b.type_bytes().len() - 8;
    let info = (u32::from(Kind::Ptr.raw()) << 24) | (1 << 16);
    blob[info_at..info_at + 4].copy_from_slice(&info.to_le_bytes());
    assert_eq!(
        Btf::parse(&blob),
        Err(BtfError::ReservedInfoBits {
            id: 6,
            offset: info_at - 4,
            info
        })
    );
}

#[test]
fn truncated_type_header() {
    let mut b = base_builder();
    b.raw_bytes(&[0; 8]);
    let offset = 24 + b.type_bytes().len() - 8;
    assert_eq!(
        Btf::parse(&b.build()),
        Err(BtfError::TruncatedType {
            id: 6,
            kind: None,
            offset,
            needed: 12,
            available: 8
        })
    );
}

#[test]
fn truncated_vlen_data() {
    let mut b = base_builder();
    // Claims three members but carries two.
    b.raw(0, Kind::Struct.raw(), 3, false, 8, &[0, INT, 0, 0, INT, 32]);
    let offset = 24 + b.type_bytes().len() - 36;
    let err = Btf::parse(&b.build()).unwrap_err();
    assert_eq!(
        err,
        BtfError::TruncatedType {
            id: 6,
            kind: Some(Kind::Struct),
            offset,
            needed: 48,
            available: 36
        }
    );
    assert!(err.to_string().contains("(STRUCT)"), "{err}");
}

#[test]
fn huge_vlen_is_rejected_without_allocating() {
    let mut b = Builder::new();
    b.raw(0, Kind::Enum64.raw(), u16::MAX, false, 8, &[]);
    assert!(matches!(
        Btf::parse(&b.build()),
        Err(BtfError::TruncatedType {
            needed: 786_432,
            available: 12,
            ..
        })
    ));
}

#[test]
fn minimal_blob_is_valid() {
    let btf = Btf::parse(&minimal_blob()).unwrap();
    assert_eq!(btf.types().len(), 2);
    let int = btf.find_by_name(None, Kind::Int, "int").unwrap();
    assert_eq!(
        int.data,
        TypeData::Int {
            encoding: int_encoding(INT_SIGNED, 0, 32)
        }
    );
    assert_eq!(btf.type_by_id(2).unwrap().kind, Kind::Ptr);
    assert_eq!(btf.type_by_id(2).unwrap().size_or_type, int.id);
}

/// Every truncation and every single-byte corruption of a valid blob must
/// give an answer, never a panic.
#[test]
fn no_panic_on_corruption() {
    let mut b = base_builder();
    b.enum64("big", 8, &[("X", 1)]);
    b.datasec(".bss", 4, &[(INT, 0, 4)]);
    let blob = b.build();
    for len in 0..blob.len() {
        let _ = Btf::parse(&blob[..len]);
    }
    let base = base();
    for i in 0..blob.len() {
        for x in [0x01, 0x80, 0xff] {
            let mut bad = blob.clone();
            bad[i] ^= x;
            let _ = Btf::parse(&bad);
            let _ = Btf::parse_split(&bad, &base);
        }
    }
}

/// The running kernel's BTF, when there is one: run with `--ignored`.
#[test]
#[ignore = "depends on the host kernel"]
fn host_vmlinux() {
    let Ok(data) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        return;
    };
    let btf = Btf::parse(&data).unwrap();
    assert!(btf.types().len() > 1000);
    let task = btf.find_by_name(None, Kind::Struct, "task_struct").unwrap();
    assert!(btf
        .members(None, task)
        .unwrap()
        .any(|m| m.name == Some("pid")));
}

/// Real split BTF, when given: `BTFVM_TEST_BASE_BTF=<vmlinux .BTF>` and
/// `BTFVM_TEST_SPLIT_BTF=<module .BTF>[:<module .BTF>...]`, e.g. from
/// `objcopy --dump-section .BTF=out.btf <file> /dev/null`. Every module must
/// pass `check_split` over the base. Run with `--ignored`.
#[test]
#[ignore = "needs BTFVM_TEST_BASE_BTF and BTFVM_TEST_SPLIT_BTF"]
fn env_split() {
    let (Some(base), Some(modules)) = (
        std::env::var_os("BTFVM_TEST_BASE_BTF"),
        std::env::var_os("BTFVM_TEST_SPLIT_BTF"),
    ) else {
        return;
    };
    let base = Btf::parse(&std::fs::read(base).unwrap()).unwrap();
    for path in std::env::split_paths(&modules) {
        let data = std::fs::read(&path).unwrap();
        let report =
            crate::check_split(&data, &base).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(report.refs_into_base > 0, "{}", path.display());
    }
}

/// Random type sections behind a valid header and string section.
#[test]
fn no_panic_on_random_types() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let base = base();
    for _ in 0..2000 {
        let mut b = Builder::new();
        let words = (next() % 24) as usize;
        for _ in 0..words {
            let r = next();
            // Mostly small values so that kinds, vlens and IDs are plausible.
            let w = match r % 4 {
                0 => (r >> 8) as u32,
                1 => ((r >> 8) % 20) as u32,
                2 => (((r >> 8) % 20) << 24) as u32 | ((r >> 40) % 3) as u32,
                _ => ((r >> 8) % 8) as u32,
            };
            b.raw_bytes(&w.to_le_bytes());
        }
        b.add_str("name");
        let blob = b.build();
        let _ = Btf::parse(&blob);
        let _ = Btf::parse_split(&blob, &base);
    }
}
