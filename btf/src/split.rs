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
/// resolves in the module or in the base. Returns counts so the caller can
/// assert e.g. `refs_into_base >= 1`.
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
/// and `btf`, and every name offset against their combined string space.
pub(crate) fn check_refs_and_names(btf: &Btf, base: Option<&Btf>) -> Result<Counts, BtfError> {
    let first_id = btf.first_type_id();
    let last_id = btf.last_type_id();
    let space = btf.str_space(base);
    let own_start = btf.start_str_off();
    let mut counts = Counts::default();
    for t in btf.types() {
        for_each_ref(t, |site, target, void_ok| {
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
            Ok(())
        })?;
        for_each_name(t, |site, name_off| {
            space.lookup(name_off).map_err(|e| match e {
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
                }
            }
            Ok(())
        })?;
    }
    Ok(counts)
}

/// Calls `f(site, target, void_allowed)` for every type reference in `t`.
fn for_each_ref(
    t: &Type,
    mut f: impl FnMut(RefSite, u32, bool) -> Result<(), BtfError>,
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
        ) => f(RefSite::Target, t.size_or_type, true),
        (Kind::Func | Kind::Var | Kind::DeclTag, _) => f(RefSite::Target, t.size_or_type, false),
        (_, TypeData::Array(a)) => {
            f(RefSite::ArrayElem, a.type_id, false)?;
            f(RefSite::ArrayIndex, a.index_type, false)
        }
        (_, TypeData::Members(members)) => (0u32..)
            .zip(members)
            .try_for_each(|(i, m)| f(RefSite::Member(i), m.type_id, false)),
        (_, TypeData::Params(params)) => {
            // A void return is `void f(...)`.
            f(RefSite::Return, t.size_or_type, true)?;
            (0u32..)
                .zip(params)
                .enumerate()
                .try_for_each(|(idx, (i, p))| {
                    // Varargs: the kernel accepts void only as the last, unnamed
                    // parameter.
                    let varargs = idx + 1 == params.len() && p.name_off == 0;
                    f(RefSite::Param(i), p.type_id, varargs)
                })
        }
        (_, TypeData::Datasec(secinfos)) => (0u32..)
            .zip(secinfos)
            .try_for_each(|(i, s)| f(RefSite::Secinfo(i), s.type_id, false)),
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
