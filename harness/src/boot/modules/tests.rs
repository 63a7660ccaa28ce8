use std::path::Path;

use object::elf as abi;
use object::read::{Object as _, ObjectSection as _, ObjectSymbol as _};
use object::write::{Object, Relocation, StandardSection, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope,
};

use super::*;

const BTF_BLOB: &[u8] = &[
    0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
];

/// A small module: code calling an external symbol, `.modinfo`, a
/// `this_module` with a relocation, and optionally a SHF_ALLOC `.BTF` with
/// a section symbol (which a rewrite must drop) placed before `.data`, so
/// deleting it renumbers later sections.
fn build_module(name: &str, deps: &[&str], btf: bool, reloc_into_btf: bool) -> Vec<u8> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = obj.section_id(StandardSection::Text);
    obj.append_section_data(text, &[0xe8, 0, 0, 0, 0, 0x31, 0xc0, 0xc3], 16);
    let info = obj.add_section(Vec::new(), b".modinfo".to_vec(), SectionKind::ReadOnlyData);
    let modinfo = format!("license=GPL\0depends={}\0name={name}\0\0", deps.join(","));
    obj.append_section_data(info, modinfo.as_bytes(), 1);
    let btf_section = btf.then(|| {
        let id = obj.add_section(Vec::new(), b".BTF".to_vec(), SectionKind::ReadOnlyData);
        obj.append_section_data(id, BTF_BLOB, 4);
        id
    });
    let data = obj.add_section(
        Vec::new(),
        b".gnu.linkonce.this_module".to_vec(),
        SectionKind::Data,
    );
    obj.append_section_data(data, &[0; 64], 64);
    let init = obj.add_symbol(Symbol {
        name: b"init_module".to_vec(),
        value: 0,
        size: 8,
        kind: SymbolKind::Text,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });
    let printk = obj.add_symbol(Symbol {
        name: b"_printk".to_vec(),
        value: 0,
        size: 0,
        kind: SymbolKind::Unknown,
        scope: SymbolScope::Unknown,
        weak: false,
        section: SymbolSection::Undefined,
        flags: SymbolFlags::None,
    });
    let reloc = |symbol, r_type, addend| Relocation {
        offset: 1,
        symbol,
        addend,
        flags: RelocationFlags::Elf { r_type },
    };
    obj.add_relocation(text, reloc(printk, abi::R_X86_64_PLT32, -4))
        .unwrap();
    let init_ref = Relocation {
        offset: 8,
        ..reloc(init, abi::R_X86_64_64, 0)
    };
    obj.add_relocation(data, init_ref).unwrap();
    if let Some(btf) = btf_section {
        let sym = obj.section_symbol(btf);
        if reloc_into_btf {
            let r = Relocation {
                offset: 16,
                ..reloc(sym, abi::R_X86_64_64, 0)
            };
            obj.add_relocation(data, r).unwrap();
        }
    }
    obj.write().unwrap()
}

fn module(name: &str, deps: &[&str]) -> Vec<u8> {
    build_module(name, deps, true, false)
}

const SIG_LEN: usize = 100;

fn sign(elf: &[u8]) -> Vec<u8> {
    let mut out = elf.to_vec();
    out.extend_from_slice(&[0xab; SIG_LEN]);
    out.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&(SIG_LEN as u32).to_be_bytes());
    out.extend_from_slice(b"~Module signature appended~\n");
    out
}

fn problem(err: ModuleError) -> (String, ElfProblem) {
    match err {
        ModuleError::Elf { module, problem } => (module, problem),
        other => panic!("expected an ELF error, got {other}"),
    }
}

fn section_names(elf: &[u8]) -> Vec<String> {
    let file = object::File::parse(elf).unwrap();
    file.sections()
        .map(|s| s.name().unwrap().to_owned())
        .collect()
}

#[test]
fn modinfo_pairs_and_depends() {
    let info = modinfo(&module("vxlan", &["udp_tunnel", "ip6-udp-tunnel"])).unwrap();
    assert_eq!(info[0], ("license".into(), "GPL".into()));
    assert_eq!(info[2], ("name".into(), "vxlan".into()));
    assert_eq!(info.len(), 3);
    assert_eq!(depends(&info), ["udp_tunnel", "ip6_udp_tunnel"]);
    assert!(depends(&modinfo(&module("dummy", &[])).unwrap()).is_empty());
}

#[test]
fn wrong_inputs_are_named_errors() {
    let (_, p) = problem(modinfo(b"MZ not elf").unwrap_err());
    assert!(matches!(p, ElfProblem::NotElf { .. }));
    let mut elf32 = module("a", &[]);
    elf32[4] = abi::ELFCLASS32;
    let (_, p) = problem(btf_section(&elf32).unwrap_err());
    assert!(matches!(p, ElfProblem::Unsupported { .. }));
    let mut renamed = module("a", &[]);
    let at = renamed.windows(9).position(|w| w == b".modinfo\0").unwrap();
    renamed[at + 7] = b'X';
    let err = modinfo(&renamed).unwrap_err().named("a.ko");
    assert_eq!(err.to_string(), "a.ko: no .modinfo section");
    let truncated = &module("a", &[])[..100];
    let err = make_variant(truncated, Variant::Plain, "trunc").unwrap_err();
    assert!(err.to_string().starts_with("trunc: malformed ELF"), "{err}");
}

#[test]
fn signature_cut_and_checked() {
    let elf = module("dummy", &[]);
    let signed = sign(&elf);
    assert_eq!(strip_signature(&signed).unwrap(), (&elf[..], true));
    assert_eq!(strip_signature(&elf).unwrap(), (&elf[..], false));

    // A length off by one would cut into, or leave junk after, the ELF.
    for delta in [-1i64, 1] {
        let mut bad = signed.clone();
        let at = bad.len() - 28 - 4;
        let len = (SIG_LEN as i64 + delta) as u32;
        bad[at..at + 4].copy_from_slice(&len.to_be_bytes());
        let (_, p) = problem(strip_signature(&bad).unwrap_err());
        assert!(matches!(p, ElfProblem::SignatureTrailer(_)), "{p}");
    }
    let mut huge = signed.clone();
    let at = huge.len() - 28 - 4;
    huge[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(strip_signature(&huge).is_err());
    assert!(strip_signature(b"~Module signature appended~\n").is_err());
}

#[test]
fn plain_keeps_everything() {
    let signed = sign(&module("dummy", &[]));
    assert_eq!(
        make_variant(&signed, Variant::Plain, "dummy").unwrap(),
        signed
    );
}

#[test]
fn no_btf_removes_the_section_and_keeps_the_rest() {
    let elf = module("dummy", &[]);
    let out = make_variant(&sign(&elf), Variant::NoBtf, "dummy").unwrap();
    assert!(btf_section(&out).unwrap().is_none());
    let mut expected = section_names(&elf);
    expected.retain(|n| n != ".BTF");
    assert_eq!(section_names(&out), expected);

    let (old, new) = (
        object::File::parse(&*elf).unwrap(),
        object::File::parse(&*out).unwrap(),
    );
    let old_btf = old.section_by_name(".BTF").unwrap();
    let flags = old_btf.flags();
    assert!(
        matches!(flags, object::SectionFlags::Elf { sh_flags } if sh_flags & u64::from(abi::SHF_ALLOC) != 0)
    );
    let this_module = |f: &object::File| {
        f.section_by_name(".gnu.linkonce.this_module")
            .unwrap()
            .index()
            .0
    };
    assert!(
        old_btf.index().0 < this_module(&old),
        "deletion must renumber a later section"
    );
    assert_eq!(this_module(&new), this_module(&old) - 1);
    for name in [".text", ".modinfo", ".gnu.linkonce.this_module"] {
        let data = |f: &object::File| f.section_by_name(name).unwrap().data().unwrap().to_vec();
        assert_eq!(data(&old), data(&new), "{name}");
    }
    let names = |f: &object::File| {
        f.symbols()
            .map(|s| s.name().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&new).len() + 1,
        names(&old).len(),
        "only the .BTF section symbol goes"
    );
    let relocs = |f: &object::File| {
        let data = f.section_by_name(".gnu.linkonce.this_module").unwrap();
        data.relocations()
            .map(|(off, r)| match r.target() {
                object::RelocationTarget::Symbol(i) => (
                    off,
                    f.symbol_by_index(i).unwrap().name().unwrap().to_owned(),
                ),
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(relocs(&new), [(8, "init_module".to_owned())]);
    assert_eq!(relocs(&old), relocs(&new));
    assert_eq!(modinfo(&out).unwrap(), modinfo(&elf).unwrap());
}

#[test]
fn no_btf_refuses_to_drop_relocations() {
    let elf = build_module("odd", &[], true, true);
    let (module, p) = problem(make_variant(&elf, Variant::NoBtf, "odd").unwrap_err());
    assert_eq!(module, "odd");
    assert!(matches!(p, ElfProblem::Rewrite(_)), "{p}");
}

#[test]
fn corrupt_btf_changes_only_the_magic() {
    let elf = module("dummy", &[]);
    let out = make_variant(&sign(&elf), Variant::CorruptBtf, "dummy").unwrap();
    assert_eq!(out.len(), elf.len());
    let btf = btf_section(&elf).unwrap().unwrap();
    assert_eq!(btf_section(&out).unwrap(), Some(btf.clone()));
    let changed: Vec<usize> = (0..elf.len()).filter(|&i| elf[i] != out[i]).collect();
    assert_eq!(changed, [btf.start, btf.start + 1]);
    assert_ne!(&out[btf.start..btf.start + 2], &[0x9f, 0xeb]);
}

#[test]
fn variants_need_btf() {
    let elf = build_module("old", &[], false, false);
    assert!(make_variant(&elf, Variant::Plain, "old").is_ok());
    for variant in [Variant::NoBtf, Variant::CorruptBtf] {
        let err = make_variant(&elf, variant, "old").unwrap_err();
        assert!(err.to_string().starts_with("old: no .BTF section"), "{err}");
    }
}

#[test]
fn variant_names_round_trip() {
    for v in Variant::ALL {
        assert_eq!(v.to_string().parse::<Variant>().unwrap(), v);
    }
    assert_eq!("no-btf".parse::<Variant>().unwrap(), Variant::NoBtf);
    assert!("nobtf".parse::<Variant>().is_err());
}

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn order(index: &ModuleIndex, name: &str) -> Vec<String> {
    index
        .with_dependencies(name)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect()
}

#[test]
fn index_names_formats_and_updates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let elf = sign(&module("x", &[]));
    write(d, "kernel/net/foo-bar.ko", &elf);
    write(
        d,
        "kernel/a/xzmod.ko.xz",
        &compress(Compression::Xz, &elf).unwrap(),
    );
    write(
        d,
        "kernel/a/zmod.ko.zst",
        &compress(Compression::Zstd, &elf).unwrap(),
    );
    write(
        d,
        "kernel/a/gzmod.ko.gz",
        &compress(Compression::Gzip, &elf).unwrap(),
    );
    write(d, "kernel/a/over.ko", &elf);
    write(d, "updates/over.ko", &elf);
    write(d, "kernel/a/notes.txt", b"");
    write(d, "modules.order", b"");
    #[cfg(unix)]
    std::os::unix::fs::symlink(d.join("kernel"), d.join("build")).unwrap();

    let index = ModuleIndex::scan(d).unwrap();
    assert_eq!(index.len(), 5);
    assert_eq!(index.names(), ["foo_bar", "gzmod", "over", "xzmod", "zmod"]);
    assert_eq!(index.path("foo-bar"), index.path("foo_bar"));
    assert!(index.path("foo_bar").unwrap().ends_with("foo-bar.ko"));
    assert!(index.path("over").unwrap().starts_with(d.join("updates")));
    for name in ["xzmod", "zmod", "gzmod"] {
        assert_eq!(
            read_module(index.path(name).unwrap()).unwrap(),
            elf,
            "{name}"
        );
    }
    assert!(matches!(
        ModuleIndex::scan(&d.join("missing")),
        Err(ModuleError::Io { .. })
    ));
}

#[test]
fn xz_uses_crc32_check() {
    let xz = compress(Compression::Xz, b"\x7fELF").unwrap();
    // Stream flags byte 7: check type 1 is CRC32, the only one the kernel's
    // xz decoder is built for.
    assert_eq!(xz[7], 0x01);
}

#[test]
fn bad_compressed_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.ko.xz");
    let mut xz = compress(Compression::Xz, &module("b", &[])).unwrap();
    xz.truncate(xz.len() / 2);
    std::fs::write(&path, xz).unwrap();
    let err = read_module(&path).unwrap_err();
    assert!(
        matches!(
            err,
            ModuleError::Decompress {
                format: Compression::Xz,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("broken.ko.xz"));
}

#[test]
fn dependency_order_diamond_cycle_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // top -> left, right; left -> base; right -> base (-> spelled base-mod).
    write(
        d,
        "kernel/top.ko",
        &sign(&module("top", &["left", "right"])),
    );
    write(d, "kernel/left.ko", &module("left", &["base_mod"]));
    write(
        d,
        "kernel/right.ko.zst",
        &compress(Compression::Zstd, &module("right", &["base-mod"])).unwrap(),
    );
    write(d, "kernel/base-mod.ko", &module("base_mod", &[]));
    write(d, "kernel/cyc1.ko", &module("cyc1", &["cyc2"]));
    write(d, "kernel/cyc2.ko", &module("cyc2", &["cyc3"]));
    write(d, "kernel/cyc3.ko", &module("cyc3", &["cyc1"]));
    write(d, "kernel/lonely.ko", &module("lonely", &["ghost"]));
    write(d, "kernel/junk.ko", b"not an elf");
    write(d, "kernel/usesjunk.ko", &module("usesjunk", &["junk"]));
    let index = ModuleIndex::scan(d).unwrap();

    assert_eq!(order(&index, "top"), ["base_mod", "left", "right", "top"]);
    assert_eq!(order(&index, "base-mod"), ["base_mod"]);
    let top = index.with_dependencies("top").unwrap();
    assert_eq!(top[3].depends, ["left", "right"]);
    assert!(top[2].path.ends_with("right.ko.zst"));

    match index.with_dependencies("cyc2").unwrap_err() {
        ModuleError::Cycle { cycle } => assert_eq!(cycle, ["cyc2", "cyc3", "cyc1", "cyc2"]),
        other => panic!("{other}"),
    }
    match index.with_dependencies("lonely").unwrap_err() {
        ModuleError::MissingDependency {
            dependency,
            needed_by,
            modules_dir,
        } => {
            assert_eq!(
                (dependency.as_str(), needed_by.as_str()),
                ("ghost", "lonely")
            );
            assert_eq!(modules_dir, d);
        }
        other => panic!("{other}"),
    }
    assert!(matches!(
        index.with_dependencies("nope"),
        Err(ModuleError::NotFound { .. })
    ));
    let err = index.with_dependencies("usesjunk").unwrap_err().to_string();
    assert!(
        err.contains("junk.ko") && err.contains("not an ELF"),
        "{err}"
    );
}

#[test]
fn rewrite_check_catches_damage() {
    let elf = module("dummy", &[]);
    let out = make_variant(&elf, Variant::NoBtf, "dummy").unwrap();
    assert!(elf::verify_rewrite(&elf, &out).is_ok());
    assert!(elf::verify_rewrite(&elf, &elf).is_err(), ".BTF still there");
    let text = object::File::parse(&*out)
        .unwrap()
        .section_by_name(".text")
        .unwrap()
        .file_range()
        .unwrap();
    let mut damaged = out.clone();
    damaged[text.0 as usize] ^= 1;
    let err = elf::verify_rewrite(&elf, &damaged).unwrap_err().to_string();
    assert!(err.contains(".text: contents changed"), "{err}");
}
