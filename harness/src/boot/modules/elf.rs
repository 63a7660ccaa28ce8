//! ELF-level work on one module image: `.modinfo`, the signature trailer,
//! and the `.BTF` variants.

use std::ops::Range;

use object::build::elf::{Builder, SectionData, SectionId};
use object::elf::{self as abi, FileHeader64, Rela64};
use object::read::elf::{FileHeader, Rela as _, SectionHeader as _, SectionTable, Sym as _};
use object::LittleEndian as LE;

use super::{ElfProblem, ModuleError, Variant};

type Header = FileHeader64<LE>;
type SectionHeader = object::elf::SectionHeader64<LE>;

const SIGNATURE_MAGIC: &[u8] = b"~Module signature appended~\n";
/// `struct module_signature`: algo, hash, id_type, signer_len, key_id_len,
/// pad[3], __be32 sig_len.
const MODULE_SIGNATURE_LEN: usize = 12;
const PKEY_ID_PKCS7: u8 = 2;
const BTF_MAGIC: [u8; 2] = [0x9f, 0xeb];
/// `.BTF.base` (distilled base BTF, kernels >= 6.11) only means something
/// next to `.BTF`, so a module without BTF carries neither.
const BTF_SECTIONS: [&[u8]; 2] = [b".BTF", b".BTF.base"];

pub(crate) fn not_elf(data: &[u8]) -> ModuleError {
    ModuleError::elf(ElfProblem::NotElf {
        magic: data.iter().take(4).copied().collect(),
    })
}

fn malformed(e: impl std::fmt::Display) -> ModuleError {
    ModuleError::elf(ElfProblem::Malformed(e.to_string()))
}

fn rewrite_failed(e: impl std::fmt::Display) -> ModuleError {
    ModuleError::elf(ElfProblem::Rewrite(e.to_string()))
}

struct Elf<'a> {
    data: &'a [u8],
    header: &'a Header,
    sections: SectionTable<'a, Header>,
}

impl<'a> Elf<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, ModuleError> {
        if !data.starts_with(b"\x7fELF") {
            return Err(not_elf(data));
        }
        let (class, encoding) = (data.get(4).copied(), data.get(5).copied());
        if class != Some(abi::ELFCLASS64) || encoding != Some(abi::ELFDATA2LSB) {
            let found = format!("EI_CLASS {class:?}, EI_DATA {encoding:?}");
            return Err(ModuleError::elf(ElfProblem::Unsupported { found }));
        }
        let header = Header::parse(data).map_err(malformed)?;
        let (e_type, e_machine) = (header.e_type(LE), header.e_machine(LE));
        if e_type != abi::ET_REL || e_machine != abi::EM_X86_64 {
            let found = format!("e_type {e_type}, e_machine {e_machine}");
            return Err(ModuleError::elf(ElfProblem::Unsupported { found }));
        }
        let sections = header.sections(LE, data).map_err(malformed)?;
        Ok(Elf {
            data,
            header,
            sections,
        })
    }

    fn name(&self, section: &SectionHeader) -> Result<&'a [u8], ModuleError> {
        self.sections.section_name(LE, section).map_err(malformed)
    }

    fn section_name_at(&self, index: usize) -> Result<&'a [u8], ModuleError> {
        let section = self
            .sections
            .section(object::SectionIndex(index))
            .map_err(malformed)?;
        self.name(section)
    }

    fn link_name(&self, section: &SectionHeader) -> Result<&'a [u8], ModuleError> {
        match section.sh_link(LE) {
            0 => Ok(b""),
            i => self.section_name_at(i as usize),
        }
    }

    fn info_name(&self, section: &SectionHeader) -> Result<&'a [u8], ModuleError> {
        match section.sh_info(LE) {
            0 => Ok(b""),
            i => self.section_name_at(i as usize),
        }
    }

    fn data_of(&self, section: &SectionHeader) -> Result<&'a [u8], ModuleError> {
        section.data(LE, self.data).map_err(malformed)
    }

    fn file_range(&self, name: &[u8]) -> Result<Option<Range<usize>>, ModuleError> {
        let Some((_, section)) = self.sections.section_by_name(LE, name) else {
            return Ok(None);
        };
        let shown = String::from_utf8_lossy(name);
        let (offset, size) = section
            .file_range(LE)
            .ok_or_else(|| malformed(format!("{shown} has no file data")))?;
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| Some(o..o.checked_add(s)?))
            .filter(|r| r.end <= self.data.len())
            .ok_or_else(|| malformed(format!("{shown} lies outside the file")))?;
        Ok(Some(range))
    }

    /// Where the ELF's own data ends: anything after it is not part of the
    /// object (a signature, or garbage).
    fn extent(&self) -> u64 {
        let h = self.header;
        let table = |off: u64, num: u64, size: u64| {
            if off == 0 {
                0
            } else {
                off.saturating_add(num.saturating_mul(size))
            }
        };
        let mut end = table(
            h.e_shoff(LE),
            self.sections.len() as u64,
            u64::from(h.e_shentsize(LE)),
        )
        .max(table(
            h.e_phoff(LE),
            u64::from(h.e_phnum(LE)),
            u64::from(h.e_phentsize(LE)),
        ))
        .max(std::mem::size_of::<Header>() as u64);
        for section in self.sections.iter() {
            if let Some((offset, size)) = section.file_range(LE) {
                end = end.max(offset.saturating_add(size));
            }
        }
        end
    }
}

/// The `.modinfo` strings as `key=value` pairs, in file order.
pub fn modinfo(elf: &[u8]) -> Result<Vec<(String, String)>, ModuleError> {
    let parsed = Elf::parse(elf)?;
    let range = parsed
        .file_range(b".modinfo")?
        .ok_or_else(|| ModuleError::elf(ElfProblem::NoModinfo))?;
    Ok(elf[range]
        .split(|&b| b == 0)
        .filter_map(|entry| {
            // Entries are NUL-separated and padded with extra NULs; the
            // kernel likewise ignores anything that is not `tag=value`.
            let text = String::from_utf8_lossy(entry);
            let (key, value) = text.split_once('=')?;
            Some((key.to_owned(), value.to_owned()))
        })
        .collect())
}

/// The module names in `depends=` (comma-separated, possibly empty),
/// normalised to '_' spelling.
pub fn depends(modinfo: &[(String, String)]) -> Vec<String> {
    modinfo
        .iter()
        .filter(|(key, _)| key == "depends")
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|dep| !dep.is_empty())
        .map(|dep| dep.replace('-', "_"))
        .collect()
}

/// Cuts an appended module signature. Returns the bare ELF and whether a
/// signature was there; checks that the ELF ends exactly where the
/// signature starts, so a misparsed trailer can't silently truncate it.
pub fn strip_signature(elf: &[u8]) -> Result<(&[u8], bool), ModuleError> {
    let Some(rest) = elf.strip_suffix(SIGNATURE_MAGIC) else {
        Elf::parse(elf)?;
        return Ok((elf, false));
    };
    let bad = |why: String| ModuleError::elf(ElfProblem::SignatureTrailer(why));
    let info_start = rest
        .len()
        .checked_sub(MODULE_SIGNATURE_LEN)
        .ok_or_else(|| bad("file too short for struct module_signature".into()))?;
    let info = &rest[info_start..];
    let (id_type, signer_len, key_id_len) = (info[2], info[3], info[4]);
    // The kernel rejects anything but a bare PKCS#7 blob; other layouts put
    // more than sig_len bytes before the trailer, so our cut would be wrong.
    if id_type != PKEY_ID_PKCS7 || signer_len != 0 || key_id_len != 0 {
        return Err(bad(format!(
            "id_type {id_type}, signer_len {signer_len}, key_id_len {key_id_len} \
             (expected PKCS#7: 2, 0, 0)"
        )));
    }
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]) as usize;
    let elf_end = info_start
        .checked_sub(sig_len)
        .filter(|_| sig_len > 0)
        .ok_or_else(|| bad(format!("signature length {sig_len} does not fit the file")))?;
    let bare = &elf[..elf_end];
    let parsed = Elf::parse(bare).map_err(|e| match e {
        ModuleError::Elf { problem, .. } => bad(format!(
            "ELF is unreadable once the {sig_len}-byte signature is cut: {problem}"
        )),
        other => other,
    })?;
    let extent = parsed.extent();
    if extent != elf_end as u64 {
        return Err(bad(format!(
            "ELF data ends at byte {extent} but the {sig_len}-byte signature starts at {elf_end}"
        )));
    }
    Ok((bare, true))
}

/// The file range of the `.BTF` section, if there is one. SHF_ALLOC is not
/// required: Debian's 6.1 and 6.12 modules carry it as plain PROGBITS, and
/// the loader finds it with find_any_sec, which ignores the flag.
pub fn btf_section(elf: &[u8]) -> Result<Option<Range<usize>>, ModuleError> {
    Elf::parse(elf)?.file_range(b".BTF")
}

/// Produces the image to load for `variant`; see [`Variant`].
pub fn make_variant(
    elf: &[u8],
    variant: Variant,
    name_for_errors: &str,
) -> Result<Vec<u8>, ModuleError> {
    make_variant_unnamed(elf, variant).map_err(|e| e.named(name_for_errors))
}

fn make_variant_unnamed(elf: &[u8], variant: Variant) -> Result<Vec<u8>, ModuleError> {
    match variant {
        // A built module is loaded as built.
        Variant::Plain | Variant::OutOfTree | Variant::DistilledBase => {
            Elf::parse(elf)?;
            Ok(elf.to_vec())
        }
        Variant::NoBtf => remove_btf(unsigned_with_btf(elf, variant)?.0),
        Variant::CorruptBtf => {
            let (bare, btf) = unsigned_with_btf(elf, variant)?;
            if !bare[btf.clone()].starts_with(&BTF_MAGIC) {
                return Err(ModuleError::elf(ElfProblem::BadBtfMagic));
            }
            // A wrong magic is the first thing btf_parse_hdr rejects, and
            // keeping the size leaves the rest of the ELF byte-identical.
            let mut out = bare.to_vec();
            out[btf.start] ^= 0xff;
            out[btf.start + 1] ^= 0xff;
            Ok(out)
        }
    }
}

/// A signed module that we edit fails with EKEYREJECTED, while an unsigned
/// one loads (tainting the kernel) unless enforcement is on: so cut first.
fn unsigned_with_btf(elf: &[u8], variant: Variant) -> Result<(&[u8], Range<usize>), ModuleError> {
    let (bare, _) = strip_signature(elf)?;
    let btf = btf_section(bare)?.ok_or(ModuleError::elf(ElfProblem::NoBtf { variant }))?;
    Ok((bare, btf))
}

fn remove_btf(bare: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let mut builder = Builder::read(bare).map_err(rewrite_failed)?;
    let ids: Vec<SectionId> = builder.sections.iter().map(|s| s.id()).collect();
    for section in builder.sections.iter_mut() {
        let is_reloc = matches!(section.sh_type, abi::SHT_REL | abi::SHT_RELA);
        // Without SHF_INFO_LINK the builder keeps sh_info as a raw index,
        // which deleting a section would leave pointing at the wrong one.
        if is_reloc && section.sh_info_section.is_none() && section.sh_info != 0 {
            section.sh_info_section = ids.get(section.sh_info as usize - 1).copied();
        }
    }
    let doomed: Vec<SectionId> = builder
        .sections
        .iter()
        .filter(|s| BTF_SECTIONS.contains(&s.name.as_slice()))
        .map(|s| s.id())
        .collect();
    for section in builder.sections.iter_mut() {
        let targets_doomed = matches!(section.data, SectionData::Relocation(_))
            && section.sh_info_section.is_some_and(|t| doomed.contains(&t));
        if doomed.contains(&section.id()) || targets_doomed {
            section.delete = true;
        }
    }
    // The builder drops relocations against symbols in deleted sections
    // without a word; a module whose code pointed into .BTF would then load
    // with a dangling reference, so refuse instead.
    for section in builder.sections.iter() {
        let SectionData::Relocation(relocs) = &section.data else {
            continue;
        };
        for reloc in relocs {
            let in_doomed = reloc
                .symbol
                .and_then(|sym| builder.symbols.get(sym).section)
                .is_some_and(|s| doomed.contains(&s));
            if in_doomed {
                return Err(rewrite_failed(format!(
                    "{} relocates against a symbol in a BTF section",
                    String::from_utf8_lossy(&section.name)
                )));
            }
        }
    }
    let mut out = Vec::with_capacity(bare.len());
    builder.write(&mut out).map_err(rewrite_failed)?;
    verify_rewrite(bare, &out)?;
    Ok(out)
}

/// Symbol identity independent of its index, which the rewrite renumbers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SymbolKey<'a> {
    name: &'a [u8],
    section: Result<&'a [u8], u16>,
    info: u8,
    other: u8,
    value: u64,
    size: u64,
}

fn symbol_keys<'a>(elf: &Elf<'a>) -> Result<Vec<SymbolKey<'a>>, ModuleError> {
    let symtab = elf
        .sections
        .symbols(LE, elf.data, abi::SHT_SYMTAB)
        .map_err(malformed)?;
    let mut keys = Vec::with_capacity(symtab.len());
    for (index, sym) in symtab.enumerate() {
        let section = match symtab.symbol_section(LE, sym, index).map_err(malformed)? {
            Some(s) => Ok(elf.section_name_at(s.0)?),
            None => Err(sym.st_shndx(LE)),
        };
        keys.push(SymbolKey {
            name: symtab.symbol_name(LE, sym).map_err(malformed)?,
            section,
            info: sym.st_info(),
            other: sym.st_other(),
            value: sym.st_value(LE),
            size: sym.st_size(LE),
        });
    }
    Ok(keys)
}

type RelocKey<'a> = (u64, u32, i64, Option<SymbolKey<'a>>);

fn reloc_keys<'a>(
    elf: &Elf<'a>,
    section: &SectionHeader,
    symbols: &[SymbolKey<'a>],
) -> Result<Vec<RelocKey<'a>>, ModuleError> {
    let relas: Vec<Rela64<LE>> = match section.rela(LE, elf.data).map_err(malformed)? {
        Some((relas, _)) => relas.to_vec(),
        None => match section.rel(LE, elf.data).map_err(malformed)? {
            Some((rels, _)) => rels.iter().map(|r| (*r).into()).collect(),
            None => Vec::new(),
        },
    };
    relas
        .iter()
        .map(|r| {
            let sym = match r.r_sym(LE, false) as usize {
                0 => None,
                i => Some(symbols.get(i).cloned().ok_or_else(|| {
                    malformed(format!("relocation refers to symbol {i} past the table"))
                })?),
            };
            Ok((r.r_offset(LE), r.r_type(LE, false), r.r_addend(LE), sym))
        })
        .collect()
}

/// Checks that the rewritten ELF is the original minus the BTF sections:
/// same sections in the same order with the same contents and links, same
/// symbols (less any in removed sections), same relocations by symbol
/// identity. This is what keeps the result loadable.
pub(super) fn verify_rewrite(before: &[u8], after: &[u8]) -> Result<(), ModuleError> {
    let (old, new) = (Elf::parse(before)?, Elf::parse(after)?);
    let removed = |elf: &Elf, s: &SectionHeader| -> Result<bool, ModuleError> {
        let own = elf.name(s)?;
        let reloc = matches!(s.sh_type(LE), abi::SHT_REL | abi::SHT_RELA);
        let target = if reloc { elf.info_name(s)? } else { b"" };
        Ok(BTF_SECTIONS.contains(&own) || BTF_SECTIONS.contains(&target))
    };
    let mut kept = Vec::new();
    for s in old.sections.iter().skip(1) {
        if !removed(&old, s)? {
            kept.push(s);
        }
    }
    let rewritten: Vec<&SectionHeader> = new.sections.iter().skip(1).collect();
    if kept.len() != rewritten.len() {
        return Err(rewrite_failed(format!(
            "expected {} sections after removing BTF, got {}",
            kept.len(),
            rewritten.len()
        )));
    }
    let (old_syms, new_syms) = (symbol_keys(&old)?, symbol_keys(&new)?);
    for (a, b) in kept.iter().zip(&rewritten) {
        same_section(&old, a, &old_syms, &new, b, &new_syms)?;
    }
    let mut expected: Vec<SymbolKey> = old_syms
        .into_iter()
        .filter(|k| !matches!(k.section, Ok(s) if BTF_SECTIONS.contains(&s)))
        .collect();
    let mut actual = new_syms;
    expected.sort();
    actual.sort();
    if expected != actual {
        return Err(rewrite_failed(format!(
            "symbol table changed ({} symbols expected, {} written)",
            expected.len(),
            actual.len()
        )));
    }
    Ok(())
}

/// One kept section against its rewritten self: name, header, link, and
/// contents (relocations by symbol identity).
fn same_section(
    old: &Elf,
    a: &SectionHeader,
    old_syms: &[SymbolKey],
    new: &Elf,
    b: &SectionHeader,
    new_syms: &[SymbolKey],
) -> Result<(), ModuleError> {
    let name = old.name(a)?;
    let shown = String::from_utf8_lossy(name);
    let differs = |what: &str| rewrite_failed(format!("section {shown}: {what} changed"));
    if new.name(b)? != name {
        return Err(differs("name (section order)"));
    }
    let header = |s: &SectionHeader| {
        (
            s.sh_type(LE),
            s.sh_flags(LE),
            s.sh_addralign(LE),
            s.sh_entsize(LE),
        )
    };
    if header(a) != header(b) {
        return Err(differs("type, flags, alignment or entry size"));
    }
    if old.link_name(a)? != new.link_name(b)? {
        return Err(differs("sh_link"));
    }
    match a.sh_type(LE) {
        // Rebuilt from the symbol list, compared by the caller.
        abi::SHT_SYMTAB | abi::SHT_STRTAB => {}
        abi::SHT_REL | abi::SHT_RELA => {
            if old.info_name(a)? != new.info_name(b)? {
                return Err(differs("relocation target"));
            }
            if reloc_keys(old, a, old_syms)? != reloc_keys(new, b, new_syms)? {
                return Err(differs("relocations"));
            }
        }
        abi::SHT_NOBITS => {
            if a.sh_size(LE) != b.sh_size(LE) {
                return Err(differs("size"));
            }
        }
        _ => {
            if old.data_of(a)? != new.data_of(b)? {
                return Err(differs("contents"));
            }
        }
    }
    Ok(())
}
