//! Split BTF over a base, reference and name checks, check_split counts.

use super::{base, base_builder, base_str, BASE_LAST, INT, PTR_INT, TASK};
use crate::builder::Builder;
use crate::{check_split, Btf, BtfError, Kind, NameSite, RefSite, SplitReport, INT_SIGNED};

const MOD_PTR_TASK: u32 = 6;
const MOD_STATE: u32 = 7;
const MOD_PTR_STATE: u32 = 8;
const MOD_PROTO: u32 = 9;
const MOD_FUNC: u32 = 10;
const MOD_TYPEDEF: u32 = 11;

/// A module whose types point into the base and reuse base names.
fn module_builder(base: &Btf) -> Builder {
    let mut m = Builder::split(base);
    let pid = base_str(base, "pid");
    let owner = m.add_str("owner");
    assert_eq!(m.ptr(TASK), MOD_PTR_TASK);
    let members = [(pid, INT, 0), (owner, MOD_PTR_TASK, 64)];
    assert_eq!(m.struct_("mod_state", 16, &members), MOD_STATE);
    assert_eq!(m.ptr(MOD_STATE), MOD_PTR_STATE);
    assert_eq!(m.func_proto(0, &[("st", MOD_PTR_STATE)]), MOD_PROTO);
    assert_eq!(m.func("mod_init", MOD_PROTO, 1), MOD_FUNC);
    assert_eq!(m.typedef(base_str(base, "task"), TASK), MOD_TYPEDEF);
    m
}

#[test]
fn valid_split() {
    let base = base();
    let module = module_builder(&base);
    let btf = Btf::parse_split(&module.build(), &base).unwrap();
    assert!(btf.is_split());
    assert_eq!(btf.first_type_id(), BASE_LAST + 1);
    assert_eq!(btf.last_type_id(), MOD_TYPEDEF);
    assert_eq!(btf.start_str_off(), base.str_len());
    assert_eq!(btf.type_by_id(TASK), None);
    assert_eq!(
        btf.resolve_type(Some(&base), TASK).unwrap().kind,
        Kind::Struct
    );
    assert_eq!(btf.resolve_type(None, TASK), None);
    assert_eq!(
        btf.resolve_type(Some(&base), MOD_STATE).unwrap().id,
        MOD_STATE
    );

    let state = btf
        .find_by_name(Some(&base), Kind::Struct, "mod_state")
        .unwrap();
    assert_eq!(state.id, MOD_STATE);
    let names: Vec<_> = btf
        .members(Some(&base), state)
        .unwrap()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, [Some("pid"), Some("owner")]);
    // Base names need the base; own names do not.
    let pid_off = state.members()[0].name_off;
    assert!(pid_off < base.str_len());
    assert_eq!(btf.name_of(None, pid_off), None);
    assert_eq!(btf.name_of(None, state.name_off), Some("mod_state"));
    // A different base (here: the module itself) is not used for base names.
    assert_eq!(btf.name_of(Some(&btf), pid_off), None);

    let td = btf
        .find_by_name(Some(&base), Kind::Typedef, "task")
        .unwrap();
    assert_eq!(td.id, MOD_TYPEDEF);
    assert_eq!(btf.find_by_name(None, Kind::Typedef, "task"), None);
    assert_eq!(btf.find_by_name(Some(&base), Kind::Struct, "task"), None);
}

#[test]
fn check_split_counts() {
    let base = base();
    let report = check_split(&module_builder(&base).build(), &base).unwrap();
    assert_eq!(
        report,
        SplitReport {
            first_id: 6,
            last_id: 11,
            types: 6,
            refs: 7,
            refs_into_base: 3,
            names: 6,
            names_into_base: 2,
        }
    );
}

#[test]
fn first_id_follows_the_base() {
    let mut bigger = base_builder();
    bigger.int("long", 8, INT_SIGNED, 64);
    let bigger = Btf::parse(&bigger.build()).unwrap();
    let mut m = Builder::split(&bigger);
    m.ptr(6);
    let report = check_split(&m.build(), &bigger).unwrap();
    assert_eq!((report.first_id, report.last_id, report.types), (7, 7, 1));
    assert_eq!(report.refs_into_base, 1);
}

#[test]
fn empty_split_is_valid() {
    let base = base();
    let report = check_split(&Builder::split(&base).build(), &base).unwrap();
    assert_eq!(
        report,
        SplitReport {
            first_id: 6,
            last_id: 5,
            ..SplitReport::default()
        }
    );
}

#[test]
fn split_blob_is_not_a_base() {
    let base = base();
    let blob = module_builder(&base).build();
    assert!(matches!(
        Btf::parse(&blob),
        Err(BtfError::StringsNoLeadingNul { .. })
    ));
}

#[test]
fn split_over_split_is_refused() {
    let base = base();
    let module = Btf::parse_split(&module_builder(&base).build(), &base).unwrap();
    let blob = Builder::split(&module).build();
    assert_eq!(Btf::parse_split(&blob, &module), Err(BtfError::BaseIsSplit));
}

#[test]
fn split_strings_must_end_with_nul() {
    let base = base();
    let mut m = module_builder(&base);
    m.raw_strings(b"x");
    assert!(matches!(
        Btf::parse_split(&m.build(), &base),
        Err(BtfError::StringsNotNulTerminated { last: b'x', .. })
    ));
}

#[test]
fn dangling_ref_in_split() {
    let base = base();
    let mut m = module_builder(&base);
    let owner = m.add_str("owner");
    m.struct_("bad", 8, &[(owner, INT, 0), (owner, 99, 32)]);
    let err = Btf::parse_split(&m.build(), &base).unwrap_err();
    assert_eq!(
        err,
        BtfError::DanglingRef {
            id: 12,
            kind: Kind::Struct,
            site: RefSite::Member(1),
            target: 99,
            last_id: 12,
        }
    );
    assert_eq!(
        err.to_string(),
        "type 12 (STRUCT) member 1: type id 99 is past the last type id 12"
    );
}

#[test]
fn dangling_ref_in_base() {
    let mut b = base_builder();
    b.ptr(7);
    assert_eq!(
        Btf::parse(&b.build()),
        Err(BtfError::DanglingRef {
            id: 6,
            kind: Kind::Ptr,
            site: RefSite::Target,
            target: 7,
            last_id: 6,
        })
    );
}

type AddType = fn(&mut Builder);

/// Parses the fixture base plus one type added by `add`.
fn base_plus(add: impl FnOnce(&mut Builder)) -> Result<Btf, BtfError> {
    let mut b = base_builder();
    add(&mut b);
    Btf::parse(&b.build())
}

fn void_ref(kind: Kind, site: RefSite) -> Result<Btf, BtfError> {
    Err(BtfError::VoidRef { id: 6, kind, site })
}

#[test]
fn void_where_c_allows_it() {
    let ok: [AddType; 8] = [
        |b| {
            b.ptr(0);
        },
        |b| {
            b.typedef("v", 0);
        },
        |b| {
            b.const_(0);
        },
        |b| {
            b.volatile(0);
        },
        |b| {
            b.restrict(0);
        },
        |b| {
            b.type_tag("tag", 0);
        },
        |b| {
            b.func_proto(0, &[("a", INT)]);
        },
        |b| {
            b.func_proto(INT, &[("a", INT), ("", 0)]);
        },
    ];
    for add in ok {
        base_plus(add).unwrap();
    }
}

#[test]
fn void_where_c_does_not() {
    use RefSite::*;
    let cases: [(AddType, Kind, RefSite); 9] = [
        (
            |b| {
                b.struct_("s", 4, &[("m", 0, 0)]);
            },
            Kind::Struct,
            Member(0),
        ),
        (
            |b| {
                b.union_("u", 4, &[("m", INT, 0), ("n", 0, 0)]);
            },
            Kind::Union,
            Member(1),
        ),
        (
            |b| {
                b.func("f", 0, 0);
            },
            Kind::Func,
            Target,
        ),
        (
            |b| {
                b.var("v", 0, 0);
            },
            Kind::Var,
            Target,
        ),
        (
            |b| {
                b.decl_tag("t", 0, -1);
            },
            Kind::DeclTag,
            Target,
        ),
        (
            |b| {
                b.array(0, INT, 1);
            },
            Kind::Array,
            ArrayElem,
        ),
        (
            |b| {
                b.array(INT, 0, 1);
            },
            Kind::Array,
            ArrayIndex,
        ),
        (
            |b| {
                b.datasec(".data", 4, &[(0, 0, 4)]);
            },
            Kind::Datasec,
            Secinfo(0),
        ),
        // Void is only varargs as the last parameter and unnamed.
        (
            |b| {
                b.func_proto(INT, &[("", 0), ("a", INT)]);
            },
            Kind::FuncProto,
            Param(0),
        ),
    ];
    for (add, kind, site) in cases {
        assert_eq!(base_plus(add), void_ref(kind, site));
    }
    assert_eq!(
        base_plus(|b| {
            b.func_proto(INT, &[("a", INT), ("named", 0)]);
        }),
        void_ref(Kind::FuncProto, Param(1))
    );
    let err = base_plus(|b| {
        b.struct_("s", 4, &[("m", 0, 0)]);
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "type 6 (STRUCT) member 0: type id 0 (void) is not allowed here"
    );
}

#[test]
fn name_out_of_range_in_base() {
    // Added types are anonymous so the string section keeps its length.
    let base = base();
    let limit = u64::from(base.str_len());
    let past = base.str_len();
    let name_err = |kind, site| {
        Err(BtfError::NameOutOfRange {
            id: 6,
            kind,
            site,
            name_off: past,
            limit,
        })
    };
    assert_eq!(
        base_plus(|b| {
            b.int(past, 4, 0, 32);
        }),
        name_err(Kind::Int, NameSite::Type)
    );
    assert_eq!(
        base_plus(|b| {
            b.struct_("", 8, &[(0, INT, 0), (past, INT, 32)]);
        }),
        name_err(Kind::Struct, NameSite::Member(1))
    );
    assert_eq!(
        base_plus(|b| {
            b.enum_("", 4, &[(past, 1)]);
        }),
        name_err(Kind::Enum, NameSite::EnumValue(0))
    );
    assert_eq!(
        base_plus(|b| {
            b.enum64("", 8, &[(past, 1)]);
        }),
        name_err(Kind::Enum64, NameSite::EnumValue(0))
    );
    assert_eq!(
        base_plus(|b| {
            b.func_proto(INT, &[(past, INT)]);
        }),
        name_err(Kind::FuncProto, NameSite::Param(0))
    );
    assert_eq!(
        base_plus(|b| {
            b.int(u32::MAX, 4, 0, 32);
        }),
        Err(BtfError::NameOutOfRange {
            id: 6,
            kind: Kind::Int,
            site: NameSite::Type,
            name_off: u32::MAX,
            limit,
        })
    );
}

#[test]
fn name_out_of_range_in_split() {
    let base = base();
    let m = module_builder(&base);
    let limit = base.str_len() + m.header().str_len;
    // The base's last string is the highest name in the base. (Its final
    // NUL, one byte further, is not at a string start: see
    // tests::refkinds::split_names_must_start_base_strings.)
    let last = base_str(&base, "printk");
    assert_eq!(last + 7, base.str_len());
    let mut ok = m.clone();
    ok.ptr(PTR_INT);
    ok.typedef(last, INT);
    Btf::parse_split(&ok.build(), &base).unwrap();

    let mut bad = m.clone();
    bad.typedef(limit, INT);
    let err = Btf::parse_split(&bad.build(), &base).unwrap_err();
    assert_eq!(
        err,
        BtfError::NameOutOfRange {
            id: 12,
            kind: Kind::Typedef,
            site: NameSite::Type,
            name_off: limit,
            limit: u64::from(limit),
        }
    );
    assert_eq!(
        err.to_string(),
        format!("type 12 (TYPEDEF) name: name offset {limit} is past the end of the string space ({limit} bytes)")
    );
}
