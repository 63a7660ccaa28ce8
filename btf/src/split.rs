//! Cross-checks of type references and name offsets, for base and split BTF
//! alike, and the split-BTF report built from them.

use crate::btf::Btf;
use crate::error::{BtfError, NameSite, RefSite};
use crate::strings::LookupError;
use crate::types::{Kind, Type, TypeData};

/// What [`check_split`] found in a valid module BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SplitReport {
    /// First type ID of the module: the base's last ID + 1.
    pub first_id: u32,
    /// Last type ID of the module (`first_id - 1` if it has no types).
    pub last_id: u32,
    /// Number of types in the module.
    pub types: u32,
    /// Type references checked, not counting void (ID 0).
    pub refs: u32,
    /// Of `refs`, those resolving to a base type.
    pub refs_into_base: u32,
    /// Name offsets checked, not counting offset 0 (anonymous).
    pub names: u32,
    /// Of `names`, those resolving into the base's string section.
    pub names_into_base: u32,
}

/// Parses `module` as split BTF over `base` and checks: valid header, first
/// type ID one past base's last, every type reference and name offset
/// resolves in the module or in the base, every reference points at a type
/// of a kind that may appear there ([`BtfError::IncompatibleRef`]), and every
/// name offset into the base's strings is at the start of a string
/// ([`BtfError::NameNotAtStringStart`]). The last two catch most modules
/// built against a different vmlinux, whose IDs and offsets still fit.
/// Returns counts so the caller can assert e.g. `refs_into_base >= 1`.
pub fn check_split(module: &[u8], base: &Btf) -> Result<SplitReport, BtfError> {
    let (btf, counts) = Btf::parse_counted(module, Some(base))?;
    Ok(SplitReport {
        first_id: btf.first_type_id(),
        last_id: btf.last_type_id(),
        types: u32::try_from(btf.types().len()).unwrap_or(u32::MAX),
        refs: counts.refs,
        refs_into_base: counts.refs_into_base,
        names: counts.names,
        names_into_base: counts.names_into_base,
    })
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    refs: u32,
    refs_into_base: u32,
    names: u32,
    names_into_base: u32,
}

/// Checks every reference of `btf`'s own types against the IDs of `base`
/// and `btf` (range, void, kind of the target), and every name offset
/// against their combined string space.
pub(crate) fn check_refs_and_names(btf: &Btf, base: Option<&Btf>) -> Result<Counts, BtfError> {
    let first_id = btf.first_type_id();
    let last_id = btf.last_type_id();
    let space = btf.str_space(base);
    let own_start = btf.start_str_off();
    let mut counts = Counts::default();
    for t in btf.types() {
        for_each_ref(t, |site, target, void_ok, want| {
            if target == 0 {
                if void_ok {
                    return Ok(());
                }
                return Err(BtfError::VoidRef {
                    id: t.id,
                    kind: t.kind,
                    site,
                });
            }
            if target > last_id {
                return Err(BtfError::DanglingRef {
                    id: t.id,
                    kind: t.kind,
                    site,
                    target,
                    last_id,
                });
            }
            counts.refs = counts.refs.saturating_add(1);
            if target < first_id {
                counts.refs_into_base = counts.refs_into_base.saturating_add(1);
            }
            check_kind(btf, base, t, site, target, want)
        })?;
        for_each_name(t, |site, name_off| {
            space.check(name_off).map_err(|e| match e {
                LookupError::OutOfRange { limit } => BtfError::NameOutOfRange {
                    id: t.id,
                    kind: t.kind,
                    site,
                    name_off,
                    limit,
                },
                LookupError::NotTerminated => BtfError::NameNotTerminated {
                    id: t.id,
                    kind: t.kind,
                    site,
                    name_off,
                },
            })?;
            if name_off != 0 {
                counts.names = counts.names.saturating_add(1);
                if name_off < own_start {
                    counts.names_into_base = counts.names_into_base.saturating_add(1);
                    check_string_start(space.base, t, site, name_off)?;
                }
            }
            Ok(())
        })?;
    }
    Ok(counts)
}

/// Kinds a reference may point at, by where it is (kernel `btf.c`:
/// `btf_func_check`, `btf_array_resolve`, `btf_struct_resolve`,
/// `btf_func_proto_check`, `btf_var_resolve`, `btf_modifier_resolve`,
/// `btf_ptr_resolve`, `btf_datasec_resolve`, `btf_decl_tag_resolve`).
/// Void is decided separately, before the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Something a value can have as its type: STRUCT/UNION member, ARRAY
    /// element, FUNC_PROTO return and parameter, VAR. Not FUNC, FUNC_PROTO
    /// (no size), DATASEC, VAR or DECL_TAG.
    Data,
    /// PTR, TYPEDEF, CONST, VOLATILE, RESTRICT and TYPE_TAG target: as
    /// [`Want::Data`], plus FUNC_PROTO (`void (*)(int)`, `typedef void
    /// fn_t(int)`).
    DataOrProto,
    /// FUNC type.
    FuncProto,
    /// ARRAY index type: INT, ENUM or ENUM64 once TYPEDEF and modifiers are
    /// resolved. (The kernel wants an INT; enums are allowed for leniency.)
    Index,
    /// DATASEC entry: VAR, or FUNC for libbpf's `.ksyms` externs.
    VarOrFunc,
    /// DECL_TAG target (kernel `btf_type_is_decl_tag_target`).
    DeclTagTarget,
}

impl Want {
    /// The `expected` text of [`BtfError::IncompatibleRef`].
    fn expected(self) -> &'static str {
        match self {
            Want::Data => "a type other than FUNC, FUNC_PROTO, DATASEC, VAR or DECL_TAG",
            Want::DataOrProto => "a type other than FUNC, DATASEC, VAR or DECL_TAG",
            Want::FuncProto => "FUNC_PROTO",
            // The 32 is MAX_INDEX_CHAIN.
            Want::Index => {
                "INT, ENUM or ENUM64 (through at most 32 TYPEDEF, CONST, VOLATILE, RESTRICT or TYPE_TAG)"
            }
            Want::VarOrFunc => "VAR or FUNC",
            Want::DeclTagTarget => "STRUCT, UNION, VAR, FUNC or TYPEDEF",
        }
    }

    fn accepts(self, kind: Kind) -> bool {
        let not_data = matches!(kind, Kind::Func | Kind::Datasec | Kind::Var | Kind::DeclTag);
        match self {
            Want::Data => !not_data && kind != Kind::FuncProto,
            Want::DataOrProto => !not_data,
            Want::FuncProto => kind == Kind::FuncProto,
            Want::Index => matches!(kind, Kind::Int | Kind::Enum | Kind::Enum64),
            Want::VarOrFunc => matches!(kind, Kind::Var | Kind::Func),
            Want::DeclTagTarget => matches!(
                kind,
                Kind::Struct | Kind::Union | Kind::Var | Kind::Func | Kind::Typedef
            ),
        }
    }
}

/// How many TYPEDEF/modifier links an ARRAY index type may go through;
/// real chains are one or two long, this only bounds cycles.
const MAX_INDEX_CHAIN: usize = 32;

/// Checks the kind of `target`, referenced from `site` of `t`; `target` is
/// known to be in range and not void.
fn check_kind(
    btf: &Btf,
    base: Option<&Btf>,
    t: &Type,
    site: RefSite,
    target: u32,
    want: Want,
) -> Result<(), BtfError> {
    // In range, so it resolves; if it did not, DanglingRef would have said so.
    let Some(mut cur) = btf.resolve_type(base, target) else {
        return Ok(());
    };
    if want == Want::Index {
        // Follow TYPEDEF/modifiers to the end of the chain. A link to void or
        // past the chain bound (a cycle) leaves `cur` on that modifier, which
        // is then reported. A link past the last ID belongs to a type whose
        // own check reports it as DanglingRef, so it is let through here.
        for _ in 0..MAX_INDEX_CHAIN {
            if !matches!(
                cur.kind,
                Kind::Typedef | Kind::Const | Kind::Volatile | Kind::Restrict | Kind::TypeTag
            ) || cur.size_or_type == 0
            {
                break;
            }
            match btf.resolve_type(base, cur.size_or_type) {
                Some(next) => cur = next,
                None => return Ok(()),
            }
        }
    }
    if want.accepts(cur.kind) {
        return Ok(());
    }
    Err(BtfError::IncompatibleRef {
        id: t.id,
        kind: t.kind,
        site,
        target: cur.id,
        target_kind: cur.kind,
        expected: want.expected(),
    })
}

/// A name offset into the base's strings must be where a string starts:
/// the byte before it is NUL (offset 0 is not passed here). The kernel does
/// not require this, but pahole/libbpf only ever emit offsets of whole
/// strings, and a module built against a different vmlinux has base offsets
/// that mostly land inside strings. Offsets into the object's own strings
/// are deliberately not checked: nothing is gained there, and the kernel
/// accepts them.
fn check_string_start(
    base_strings: &[u8],
    t: &Type,
    site: NameSite,
    name_off: u32,
) -> Result<(), BtfError> {
    let before = name_off
        .checked_sub(1)
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| base_strings.get(i));
    if before == Some(&0) {
        return Ok(());
    }
    Err(BtfError::NameNotAtStringStart {
        id: t.id,
        kind: t.kind,
        site,
        name_off,
    })
}

/// Calls `f(site, target, void_allowed, want)` for every type reference in
/// `t`.
fn for_each_ref(
    t: &Type,
    mut f: impl FnMut(RefSite, u32, bool, Want) -> Result<(), BtfError>,
) -> Result<(), BtfError> {
    match (&t.kind, &t.data) {
        // Where C allows void: `void *`, `const void`, `typedef void t`.
        (
            Kind::Ptr
            | Kind::Typedef
            | Kind::Volatile
            | Kind::Const
            | Kind::Restrict
            | Kind::TypeTag,
            _,
        ) => f(RefSite::Target, t.size_or_type, true, Want::DataOrProto),
        (Kind::Func, _) => f(RefSite::Target, t.size_or_type, false, Want::FuncProto),
        (Kind::Var, _) => f(RefSite::Target, t.size_or_type, false, Want::Data),
        (Kind::DeclTag, _) => f(RefSite::Target, t.size_or_type, false, Want::DeclTagTarget),
        (_, TypeData::Array(a)) => {
            f(RefSite::ArrayElem, a.type_id, false, Want::Data)?;
            f(RefSite::ArrayIndex, a.index_type, false, Want::Index)
        }
        (_, TypeData::Members(members)) => (0u32..)
            .zip(members)
            .try_for_each(|(i, m)| f(RefSite::Member(i), m.type_id, false, Want::Data)),
        (_, TypeData::Params(params)) => {
            // A void return is `void f(...)`.
            f(RefSite::Return, t.size_or_type, true, Want::Data)?;
            (0u32..)
                .zip(params)
                .enumerate()
                .try_for_each(|(idx, (i, p))| {
                    // Varargs: the kernel accepts void only as the last, unnamed
                    // parameter.
                    let varargs = idx + 1 == params.len() && p.name_off == 0;
                    f(RefSite::Param(i), p.type_id, varargs, Want::Data)
                })
        }
        (_, TypeData::Datasec(secinfos)) => (0u32..)
            .zip(secinfos)
            .try_for_each(|(i, s)| f(RefSite::Secinfo(i), s.type_id, false, Want::VarOrFunc)),
        _ => Ok(()),
    }
}

/// Calls `f(site, name_off)` for every name offset in `t`.
fn for_each_name(
    t: &Type,
    mut f: impl FnMut(NameSite, u32) -> Result<(), BtfError>,
) -> Result<(), BtfError> {
    f(NameSite::Type, t.name_off)?;
    match &t.data {
        TypeData::Members(members) => (0u32..)
            .zip(members)
            .try_for_each(|(i, m)| f(NameSite::Member(i), m.name_off)),
        TypeData::Enum(values) => (0u32..)
            .zip(values)
            .try_for_each(|(i, v)| f(NameSite::EnumValue(i), v.name_off)),
        TypeData::Enum64(values) => (0u32..)
            .zip(values)
            .try_for_each(|(i, v)| f(NameSite::EnumValue(i), v.name_off)),
        TypeData::Params(params) => (0u32..)
            .zip(params)
            .try_for_each(|(i, p)| f(NameSite::Param(i), p.name_off)),
        _ => Ok(()),
    }
}
