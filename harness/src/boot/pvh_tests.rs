//! Tests of pvh.rs: each format, the reasons, hostile payloads, the
//! cache's records and pruning.

use super::*;

/// A bzImage around `payload`: setup header, one setup sector.
fn bzimage(payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 2 * 512];
    b[0x1f1] = 1;
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
    b[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
    b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(&[0u8; 16]);
    b.extend_from_slice(payload);
    b.extend_from_slice(&[0xaa; 8]);
    b
}

/// A 64-bit ELF with one PT_NOTE segment holding a Xen note of `ty`.
fn elf(ty: u32) -> Vec<u8> {
    use object::write::elf::{FileHeader, ProgramHeader, Writer};
    let mut out = Vec::new();
    let mut w = Writer::new(Endianness::Little, true, &mut out);
    w.reserve_file_header();
    w.reserve_program_headers(1);
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&8u32.to_le_bytes());
    note.extend_from_slice(&ty.to_le_bytes());
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&0x100_0000u64.to_le_bytes());
    let off = w.reserve(note.len(), 4);
    w.write_file_header(&FileHeader {
        os_abi: 0,
        abi_version: 0,
        e_type: object::elf::ET_EXEC,
        e_machine: object::elf::EM_X86_64,
        e_entry: 0x100_0000,
        e_flags: 0,
    })
    .unwrap();
    w.write_align_program_headers();
    w.write_program_header(&ProgramHeader {
        p_type: object::elf::PT_NOTE,
        p_flags: 0,
        p_offset: off as u64,
        p_vaddr: 0,
        p_paddr: 0,
        p_filesz: note.len() as u64,
        p_memsz: note.len() as u64,
        p_align: 4,
    });
    w.pad_until(off);
    w.write(&note);
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn lz4_legacy_of(b: &[u8], block: usize) -> Vec<u8> {
    let mut out = LZ4_LEGACY_MAGIC.to_vec();
    for chunk in b.chunks(block) {
        let c = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(&c);
    }
    // The kernel's size_append.
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out
}

#[test]
fn each_format_unpacks_to_the_elf() {
    let want = elf(XEN_ELFNOTE_PHYS32_ENTRY);
    let xz = {
        let mut o = Vec::new();
        liblzma::read::XzEncoder::new(&want[..], 1)
            .read_to_end(&mut o)
            .unwrap();
        o
    };
    let zst = zstd::encode_all(&want[..], 1).unwrap();
    for (name, payload) in [
        ("gzip", gzip(&want)),
        ("xz", xz),
        ("zstd", zst),
        ("lz4", lz4_legacy_of(&want, 64)),
    ] {
        assert_eq!(extract(&bzimage(&payload)).as_ref(), Ok(&want), "{name}");
    }
}

#[test]
fn a_kernel_without_pvh_or_of_another_format_says_why() {
    let no_note = gzip(&elf(XEN_ELFNOTE_PHYS32_ENTRY + 1));
    assert_eq!(extract(&bzimage(&no_note)), Err(NotPvh::NoPvhNote));
    assert_eq!(
        extract(&bzimage(b"BZh91AY&SY")),
        Err(NotPvh::Compression("bzip2".into()))
    );
    assert_eq!(
        extract(&bzimage(&gzip(b"not an elf"))).map_err(|e| matches!(e, NotPvh::NotElf(_))),
        Err(true)
    );
    assert_eq!(extract(b"MZ not a kernel"), Err(NotPvh::NotBzImage));
    let mut old = bzimage(b"x");
    old[0x206..0x208].copy_from_slice(&0x207u16.to_le_bytes());
    assert_eq!(extract(&old), Err(NotPvh::OldProtocol(0x207)));
}

#[test]
fn hostile_payloads_are_refused_not_followed() {
    // Length past the file's end.
    let mut b = bzimage(&gzip(b"x"));
    b[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(extract(&b), Err(NotPvh::PayloadOutside));
    // A truncated gzip stream.
    let g = gzip(&elf(XEN_ELFNOTE_PHYS32_ENTRY));
    assert!(matches!(
        extract(&bzimage(&g[..g.len() / 2])),
        Err(NotPvh::Corrupt { format, .. }) if format == "gzip"
    ));
    // An LZ4 block that is garbage.
    let mut l = LZ4_LEGACY_MAGIC.to_vec();
    l.extend_from_slice(&8u32.to_le_bytes());
    l.extend_from_slice(&[0xff; 8]);
    assert!(matches!(
        extract(&bzimage(&l)),
        Err(NotPvh::Corrupt { format, .. }) if format == "LZ4"
    ));
    // A bomb: more zeros than any vmlinux.
    let bomb = zstd::encode_all(std::io::repeat(0).take(MAX_VMLINUX + 1), 3).unwrap();
    assert_eq!(extract(&bzimage(&bomb)), Err(NotPvh::TooBig));
}

#[test]
fn the_elf_is_made_once_and_named_by_the_bzimage() {
    let d = tempfile::tempdir().unwrap();
    let bz = d.path().join("vmlinuz");
    std::fs::write(&bz, bzimage(&gzip(&elf(XEN_ELFNOTE_PHYS32_ENTRY)))).unwrap();
    let cache = d.path().join("pvh");
    std::fs::create_dir(&cache).unwrap();
    let first = boot_image(&bz, &cache).unwrap();
    let BootImage::Pvh(elf_path) = &first else {
        panic!("{first:?}")
    };
    assert_eq!(
        std::fs::read(elf_path).unwrap(),
        elf(XEN_ELFNOTE_PHYS32_ENTRY)
    );
    assert_eq!(boot_image(&bz, &cache).unwrap(), first);
    // A truncated ELF is made again.
    let whole = std::fs::read(elf_path).unwrap();
    std::fs::write(elf_path, &whole[..whole.len() / 2]).unwrap();
    assert_eq!(boot_image(&bz, &cache).unwrap(), first);
    assert_eq!(std::fs::read(elf_path).unwrap(), whole);
    // Another kernel in the same place is looked at afresh, and why it
    // boots as a bzImage is kept.
    std::fs::write(&bz, bzimage(&gzip(&elf(XEN_ELFNOTE_PHYS32_ENTRY + 1)))).unwrap();
    let want = BootImage::BzImage {
        path: bz.clone(),
        why: NotPvh::NoPvhNote,
    };
    assert_eq!(boot_image(&bz, &cache).unwrap(), want);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 3);
    assert_eq!(boot_image(&bz, &cache).unwrap(), want);
}

#[test]
fn only_the_most_recently_used_elfs_are_kept() {
    let d = tempfile::tempdir().unwrap();
    let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(100);
    for i in 0..5u64 {
        let p = d.path().join(format!("{i}.elf"));
        std::fs::write(&p, b"x").unwrap();
        let f = std::fs::File::options().append(true).open(&p).unwrap();
        f.set_modified(t0 + std::time::Duration::from_secs(i))
            .unwrap();
    }
    std::fs::write(d.path().join("a.bzimage.json"), b"{}").unwrap();
    prune(d.path(), 2);
    let mut left: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["3.elf", "4.elf", "a.bzimage.json"]);
}

#[test]
fn every_reason_is_kept_as_it_was() {
    for why in [
        NotPvh::NotBzImage,
        NotPvh::OldProtocol(0x207),
        NotPvh::PayloadOutside,
        NotPvh::Compression("bzip2".into()),
        NotPvh::Corrupt {
            format: "xz".into(),
            why: "x".into(),
        },
        NotPvh::TooBig,
        NotPvh::NotElf("x".into()),
        NotPvh::NoPvhNote,
    ] {
        let json = serde_json::to_vec(&why).unwrap();
        assert_eq!(serde_json::from_slice::<NotPvh>(&json).unwrap(), why);
    }
}
