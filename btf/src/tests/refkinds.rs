//! Kinds a reference may point at, and split names that must start a base
//! string: what a module built against a different vmlinux violates.

use super::{base, base_builder, base_str, FUNC, INT, PROTO, PTR_INT, TASK};
use crate::builder::Builder;
use crate::{check_split, Btf, BtfError, Kind, NameSite, RefSite, INT_SIGNED};

const DATA: &str = "a type other than FUNC, FUNC_PROTO, DATASEC, VAR or DECL_TAG";
const DATA_OR_PROTO: &str = "a type other than FUNC, DATASEC, VAR or DECL_TAG";
const INDEX: &str =
    "INT, ENUM or ENUM64 (through at most 32 TYPEDEF, CONST, VOLATILE, RESTRICT or TYPE_TAG)";

/// IDs the base fixture plus [`extras`] adds.
const VAR: u32 = 6;
const SEC: u32 = 7;
const TAG: u32 = 8;
const FN_T: u32 = 9;
const EXTRA_LAST: u32 = 9;

/// One of each kind the fixture base lacks, as targets.
fn extras(b: &mut Builder) {
    assert_eq!(b.var("v", INT, 1), VAR);
    assert_eq!(b.datasec(".data", 4, &[(VAR, 0, 4)]), SEC);
    assert_eq!(b.decl_tag("tag", VAR, -1), TAG);
    // `typedef int fn_t(int *)`: a typedef of a function type is C.
    assert_eq!(b.typedef("fn_t", PROTO), FN_T);
}

/// Parses the base fixture plus [`extras`] plus what `add` adds.
fn parse_with(add: impl FnOnce(&mut Builder)) -> Result<Btf, BtfError> {
    let mut b = base_builder();
    extras(&mut b);
    add(&mut b);
    Btf::parse(&b.build())
}

fn incompatible(
    kind: Kind,
    site: RefSite,
    target: u32,
    target_kind: Kind,
    expected: &'static str,
) -> Result<Btf, BtfError> {
    Err(BtfError::IncompatibleRef {
        id: EXTRA_LAST + 1,
        kind,
        site,
        target,
        target_kind,
        expected,
    })
}

type AddType = fn(&mut Builder);
/// Adds a type that references the given ID.
type AddRef = fn(&mut Builder, u32);

#[test]
fn compatible_refs() {
    let ok: [AddType; 21] = [
        |b| {
            b.func("f", PROTO, 0);
        },
        |b| {
            b.array(PTR_INT, INT, 2);
        },
        |b| {
            b.array(TASK, INT, 2);
        },
        |b| {
            let e = b.enum_("e", 4, &[("A", 0)]);
            b.array(INT, e, 2);
        },
        |b| {
            let e = b.enum64("e", 8, &[("A", 0)]);
            b.array(INT, e, 2);
        },
        |b| {
            let t = b.typedef("u32", INT);
            let c = b.const_(t);
            let v = b.volatile(c);
            let r = b.restrict(v);
            let tt = b.type_tag("tag", r);
            b.array(INT, tt, 2);
        },
        // A function pointer, directly and through typedefs and modifiers.
        |b| {
            b.ptr(PROTO);
        },
        |b| {
            b.const_(PROTO);
        },
        |b| {
            b.type_tag("t", PROTO);
        },
        |b| {
            b.ptr(FN_T);
        },
        |b| {
            let p = b.ptr(PROTO);
            b.struct_("ops", 8, &[("cb", p, 0)]);
        },
        |b| {
            let fwd = b.fwd("later", false);
            let f = b.float("double", 8);
            b.union_("u", 8, &[("a", fwd, 0), ("b", f, 0), ("c", TASK, 0)]);
        },
        |b| {
            b.func_proto(TASK, &[("p", PTR_INT), ("t", TASK)]);
        },
        |b| {
            b.var("w", TASK, 0);
        },
        |b| {
            let f = b.func("g", PROTO, 1);
            b.datasec(".ksyms", 0, &[(f, 0, 0), (VAR, 0, 4)]);
        },
        |b| {
            b.decl_tag("t", TASK, 0);
        },
        |b| {
            let u = b.union_("u", 4, &[("a", INT, 0)]);
            b.decl_tag("t", u, -1);
        },
        |b| {
            b.decl_tag("t", FUNC, 0);
        },
        |b| {
            b.decl_tag("t", FN_T, -1);
        },
        |b| {
            b.decl_tag("t", VAR, -1);
        },
        // Kinds with no references are never targets of a check.
        |b| {
            b.fwd("f", true);
        },
    ];
    for (i, add) in ok.into_iter().enumerate() {
        if let Err(e) = parse_with(add) {
            panic!("case {i}: {e}");
        }
    }
}

#[test]
fn func_must_be_a_func_proto() {
    use RefSite::Target;
    for (target, target_kind) in [
        (TASK, Kind::Struct),
        (FUNC, Kind::Func),
        (PTR_INT, Kind::Ptr),
        // The kernel wants the FUNC_PROTO itself, not a typedef of it.
        (FN_T, Kind::Typedef),
    ] {
        assert_eq!(
            parse_with(|b| {
                b.func("f", target, 0);
            }),
            incompatible(Kind::Func, Target, target, target_kind, "FUNC_PROTO")
        );
    }
    let err = parse_with(|b| {
        b.func("f", TASK, 0);
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "type 10 (FUNC) target: type 3 is a STRUCT, expected FUNC_PROTO"
    );
}

#[test]
fn data_sites_refuse_non_data_kinds() {
    use RefSite::*;
    let targets = [
        (FUNC, Kind::Func),
        (PROTO, Kind::FuncProto),
        (SEC, Kind::Datasec),
        (VAR, Kind::Var),
        (TAG, Kind::DeclTag),
    ];
    for (target, target_kind) in targets {
        let cases: [(AddRef, Kind, RefSite); 7] = [
            (
                |b, target| {
                    b.struct_("s", 4, &[("a", INT, 0), ("b", target, 0)]);
                },
                Kind::Struct,
                Member(1),
            ),
            (
                |b, target| {
                    b.union_("u", 4, &[("a", target, 0)]);
                },
                Kind::Union,
                Member(0),
            ),
            (
                |b, target| {
                    b.func_proto(target, &[("a", INT)]);
                },
                Kind::FuncProto,
                Return,
            ),
            (
                |b, target| {
                    b.func_proto(INT, &[("a", INT), ("b", target)]);
                },
                Kind::FuncProto,
                Param(1),
            ),
            (
                |b, target| {
                    b.var("w", target, 0);
                },
                Kind::Var,
                Target,
            ),
            (
                |b, target| {
                    b.array(target, INT, 1);
                },
                Kind::Array,
                ArrayElem,
            ),
            // Varargs position, but not void.
            (
                |b, target| {
                    b.func_proto(INT, &[("a", INT), ("", target)]);
                },
                Kind::FuncProto,
                Param(1),
            ),
        ];
        for (add, kind, site) in cases {
            assert_eq!(
                parse_with(|b| add(b, target)),
                incompatible(kind, site, target, target_kind, DATA),
                "{kind} {site} -> {target_kind}"
            );
        }
    }
}

#[test]
fn pointer_and_modifier_targets() {
    let targets = [
        (FUNC, Kind::Func),
        (SEC, Kind::Datasec),
        (VAR, Kind::Var),
        (TAG, Kind::DeclTag),
    ];
    for (target, target_kind) in targets {
        let cases: [(AddRef, Kind); 6] = [
            (
                |b, target| {
                    b.ptr(target);
                },
                Kind::Ptr,
            ),
            (
                |b, target| {
                    b.typedef("t", target);
                },
                Kind::Typedef,
            ),
            (
                |b, target| {
                    b.const_(target);
                },
                Kind::Const,
            ),
            (
                |b, target| {
                    b.volatile(target);
                },
                Kind::Volatile,
            ),
            (
                |b, target| {
                    b.restrict(target);
                },
                Kind::Restrict,
            ),
            (
                |b, target| {
                    b.type_tag("t", target);
                },
                Kind::TypeTag,
            ),
        ];
        for (add, kind) in cases {
            assert_eq!(
                parse_with(|b| add(b, target)),
                incompatible(kind, RefSite::Target, target, target_kind, DATA_OR_PROTO),
                "{kind} -> {target_kind}"
            );
        }
    }
}

#[test]
fn datasec_entries_are_vars_or_funcs() {
    assert_eq!(
        parse_with(|b| {
            b.datasec(".bss", 8, &[(VAR, 0, 4), (INT, 4, 4)]);
        }),
        incompatible(
            Kind::Datasec,
            RefSite::Secinfo(1),
            INT,
            Kind::Int,
            "VAR or FUNC"
        )
    );
    let err = parse_with(|b| {
        b.datasec(".bss", 4, &[(INT, 0, 4)]);
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "type 10 (DATASEC) var_secinfo 0: type 1 is an INT, expected VAR or FUNC"
    );
    assert_eq!(
        parse_with(|b| {
            b.datasec(".bss", 4, &[(SEC, 0, 4)]);
        }),
        incompatible(
            Kind::Datasec,
            RefSite::Secinfo(0),
            SEC,
            Kind::Datasec,
            "VAR or FUNC"
        )
    );
}

#[test]
fn decl_tag_targets() {
    const WANT: &str = "STRUCT, UNION, VAR, FUNC or TYPEDEF";
    for (target, target_kind) in [
        (INT, Kind::Int),
        (PTR_INT, Kind::Ptr),
        (PROTO, Kind::FuncProto),
        (SEC, Kind::Datasec),
        (TAG, Kind::DeclTag),
    ] {
        assert_eq!(
            parse_with(|b| {
                b.decl_tag("t", target, -1);
            }),
            incompatible(Kind::DeclTag, RefSite::Target, target, target_kind, WANT)
        );
    }
}

#[test]
fn array_index_must_be_an_integer() {
    use RefSite::ArrayIndex;
    for (target, target_kind) in [
        (TASK, Kind::Struct),
        (PTR_INT, Kind::Ptr),
        (VAR, Kind::Var),
        (PROTO, Kind::FuncProto),
    ] {
        assert_eq!(
            parse_with(|b| {
                b.array(INT, target, 1);
            }),
            incompatible(Kind::Array, ArrayIndex, target, target_kind, INDEX)
        );
    }
    let f = parse_with(|b| {
        b.float("double", 8);
        b.array(INT, 10, 1);
    });
    assert!(matches!(
        f,
        Err(BtfError::IncompatibleRef {
            target: 10,
            target_kind: Kind::Float,
            ..
        })
    ));
    // Through a chain, the end of the chain is reported.
    let err = parse_with(|b| {
        let t = b.typedef("t", TASK);
        let c = b.const_(t);
        b.array(INT, c, 1);
    })
    .unwrap_err();
    assert_eq!(
        err,
        BtfError::IncompatibleRef {
            id: 12,
            kind: Kind::Array,
            site: ArrayIndex,
            target: TASK,
            target_kind: Kind::Struct,
            expected: INDEX,
        }
    );
    assert_eq!(
        err.to_string(),
        format!("type 12 (ARRAY) index type: type 3 is a STRUCT, expected {INDEX}")
    );
    // A chain ending in void: the modifier that points at void.
    assert_eq!(
        parse_with(|b| {
            let v = b.typedef("v", 0);
            let c = b.volatile(v);
            b.array(INT, c, 1);
        }),
        Err(BtfError::IncompatibleRef {
            id: 12,
            kind: Kind::Array,
            site: ArrayIndex,
            target: 10,
            target_kind: Kind::Typedef,
            expected: INDEX,
        })
    );
}

#[test]
fn array_index_chain_is_bounded() {
    // 32 links to INT are fine, 33 are not.
    for (links, ok) in [(32u32, true), (33, false)] {
        let r = parse_with(|b| {
            let mut cur = INT;
            for _ in 0..links {
                cur = b.const_(cur);
            }
            b.array(INT, cur, 1);
        });
        assert_eq!(r.is_ok(), ok, "{links} links: {r:?}");
        if !ok {
            // The walk stops on the modifier at the bound: the first one
            // added, which points at INT.
            assert!(matches!(
                r,
                Err(BtfError::IncompatibleRef {
                    target: 10,
                    target_kind: Kind::Const,
                    ..
                })
            ));
        }
    }
    // A typedef cycle terminates.
    let r = parse_with(|b| {
        b.typedef("a", 11);
        b.typedef("b", 10);
        b.array(INT, 10, 1);
    });
    assert_eq!(
        r,
        Err(BtfError::IncompatibleRef {
            id: 12,
            kind: Kind::Array,
            site: RefSite::ArrayIndex,
            target: 10,
            target_kind: Kind::Typedef,
            expected: INDEX,
        })
    );
}

#[test]
fn dangling_link_in_index_chain_is_a_dangling_ref() {
    let mut b = base_builder();
    b.array(INT, 7, 1);
    b.typedef("t", 99);
    assert_eq!(
        Btf::parse(&b.build()),
        Err(BtfError::DanglingRef {
            id: 7,
            kind: Kind::Typedef,
            site: RefSite::Target,
            target: 99,
            last_id: 7,
        })
    );
}

/// A module of one type added by `add` over the fixture base.
fn split_with(add: impl FnOnce(&mut Builder)) -> Result<(), BtfError> {
    let base = base();
    let mut m = Builder::split(&base);
    add(&mut m);
    check_split(&m.build(), &base).map(drop)
}

#[test]
fn split_refs_into_base_are_kind_checked() {
    // What a module built against another vmlinux looks like: its base IDs
    // now name types of other kinds.
    assert_eq!(
        split_with(|m| {
            m.func("mod_init", FUNC, 1);
        }),
        Err(BtfError::IncompatibleRef {
            id: 6,
            kind: Kind::Func,
            site: RefSite::Target,
            target: FUNC,
            target_kind: Kind::Func,
            expected: "FUNC_PROTO",
        })
    );
    assert_eq!(
        split_with(|m| {
            m.struct_("s", 8, &[("a", INT, 0), ("b", PROTO, 32)]);
        }),
        Err(BtfError::IncompatibleRef {
            id: 6,
            kind: Kind::Struct,
            site: RefSite::Member(1),
            target: PROTO,
            target_kind: Kind::FuncProto,
            expected: DATA,
        })
    );
    // Own types are checked too, and base and own types mix in a chain.
    assert_eq!(
        split_with(|m| {
            let t = m.typedef("idx", TASK);
            m.array(INT, t, 4);
        }),
        Err(BtfError::IncompatibleRef {
            id: 7,
            kind: Kind::Array,
            site: RefSite::ArrayIndex,
            target: TASK,
            target_kind: Kind::Struct,
            expected: INDEX,
        })
    );
    split_with(|m| {
        let t = m.typedef("idx", INT);
        let p = m.func_proto(TASK, &[("a", t)]);
        m.func("f", p, 0);
        m.ptr(PROTO);
    })
    .unwrap();
}

#[test]
fn split_names_must_start_base_strings() {
    let base = base();
    let printk = base_str(&base, "printk");
    let mid = printk + 2;
    let last_nul = base.str_len() - 1;
    // Start of a base string, and offset 0: fine.
    split_with(|m| {
        let t = m.typedef(printk, INT);
        m.struct_(0, 4, &[(0, t, 0)]);
    })
    .unwrap();
    let not_at_start = |kind, site, name_off| {
        Err(BtfError::NameNotAtStringStart {
            id: 6,
            kind,
            site,
            name_off,
        })
    };
    assert_eq!(
        split_with(|m| {
            m.typedef(mid, INT);
        }),
        not_at_start(Kind::Typedef, NameSite::Type, mid)
    );
    // The base's final NUL is an empty string, but not one pahole emits.
    assert_eq!(
        split_with(|m| {
            m.int(last_nul, 4, INT_SIGNED, 32);
        }),
        not_at_start(Kind::Int, NameSite::Type, last_nul)
    );
    assert_eq!(
        split_with(|m| {
            m.struct_("s", 8, &[(printk, INT, 0), (mid, INT, 32)]);
        }),
        not_at_start(Kind::Struct, NameSite::Member(1), mid)
    );
    assert_eq!(
        split_with(|m| {
            m.enum_("e", 4, &[(mid, 1)]);
        }),
        not_at_start(Kind::Enum, NameSite::EnumValue(0), mid)
    );
    assert_eq!(
        split_with(|m| {
            m.enum64("e", 8, &[(printk, 1), (mid, 2)]);
        }),
        not_at_start(Kind::Enum64, NameSite::EnumValue(1), mid)
    );
    assert_eq!(
        split_with(|m| {
            m.func_proto(INT, &[(mid, INT)]);
        }),
        not_at_start(Kind::FuncProto, NameSite::Param(0), mid)
    );
    let err = split_with(|m| {
        m.typedef(2, INT); // "nt" of "int"
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "type 6 (TYPEDEF) name: name offset 2 is inside a base string, not at its start \
         (module built against a different vmlinux?)"
    );
    assert_eq!(
        err,
        BtfError::NameNotAtStringStart {
            id: 6,
            kind: Kind::Typedef,
            site: NameSite::Type,
            name_off: 2,
        }
    );
}

#[test]
fn own_strings_may_be_named_mid_string() {
    // Not required by the kernel, and only base offsets identify the base:
    // own strings and base BTF names are not checked for string starts.
    split_with(|m| {
        let owner = m.add_str("owner");
        m.typedef(owner + 1, INT);
    })
    .unwrap();
    let mut b = base_builder();
    b.typedef(2, INT); // "t" of "int"
    Btf::parse(&b.build()).unwrap();
}
