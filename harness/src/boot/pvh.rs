//! The ELF vmlinux inside a bzImage, booted through QEMU's PVH entry
//! instead of the bzImage, where the kernel has one (`CONFIG_PVH`, as
//! every Debian kernel since bullseye).
//!
//! Why: under TCG the guest's own decompressor is slow. Bookworm's 6.1
//! (14 MB, LZ4) reached init in 1.64-1.69 s booted as its 53 MB ELF
//! against 2.16-2.26 s as its bzImage (qboot, 4 interleaved rounds,
//! 2026-12-07); the host unpacks it once, natively, into the cache. The
//! kernel that runs is the same: PVH only skips the decompressor stub
//! (and with it KASLR, which nothing here looks at).
//!
//! A bzImage this cannot unpack (bzip2, LZO, a corrupt payload, no PVH
//! note) boots as it is; the reason goes with it.

use std::io::Read;
use std::path::{Path, PathBuf};

use object::read::elf::{ElfFile64, ProgramHeader};
use object::Endianness;
use sha2::{Digest, Sha256};

use crate::support::cache::{write_atomic, CacheError};
use crate::support::hex;

/// Larger than any vmlinux (Debian's are 40-60 MB, with BTF): a payload
/// that unpacks past this is not a kernel, and memory is not spent on it.
const MAX_VMLINUX: u64 = 256 << 20;

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the note QEMU looks for to boot an ELF
/// kernel through PVH (`include/xen/interface/elfnote.h`).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// How a kernel is handed to QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootImage {
    /// The ELF vmlinux, unpacked into the cache.
    Pvh(PathBuf),
    /// The bzImage itself, and why not its ELF.
    BzImage { path: PathBuf, why: NotPvh },
}

impl BootImage {
    /// What `-kernel` gets.
    pub fn path(&self) -> &Path {
        match self {
            BootImage::Pvh(p) => p,
            BootImage::BzImage { path, .. } => path,
        }
    }
}

/// Why a bzImage boots as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotPvh {
    #[error("not a bzImage (no HdrS setup header)")]
    NotBzImage,
    #[error("boot protocol {0:#x} has no payload fields (2.08 or later has)")]
    OldProtocol(u16),
    #[error("its payload is outside the file")]
    PayloadOutside,
    #[error("its payload is {0}, which btfvm does not unpack")]
    Compression(String),
    #[error("its {format} payload does not unpack: {why}")]
    Corrupt { format: String, why: String },
    #[error("it, or its payload unpacked, is larger than {} MiB", MAX_VMLINUX >> 20)]
    TooBig,
    #[error("the unpacked payload is not a 64-bit ELF: {0}")]
    NotElf(String),
    #[error("no PVH entry in its vmlinux, CONFIG_PVH is off")]
    NoPvhNote,
}

#[derive(Debug, thiserror::Error)]
pub enum PvhError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// What became of one bzImage, kept as `<key>.json` next to its ELF: the
/// ELF's length (written after the ELF, so a record means a whole ELF,
/// and a truncated one is made again), or why it boots as it is.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Pvh { elf_bytes: u64 },
    BzImage(NotPvh),
}

/// The image to boot for `vmlinuz`: its ELF from `dir` (made there the
/// first time, named by the bzImage's SHA-256, so a rebuilt kernel can
/// never boot a stale ELF), or the bzImage with the reason, also kept
/// there: unpacking a kernel only to find it has no PVH entry took 185 ms
/// (tinyconfig 6.1, XZ), too much to pay at every boot. A hit costs about
/// 20 ms (reading and hashing a 14 MB bzImage).
pub fn boot_image(vmlinuz: &Path, dir: &Path) -> Result<BootImage, PvhError> {
    let read_err = |source| PvhError::Read {
        path: vmlinuz.to_path_buf(),
        source,
    };
    let bzimage = |why| BootImage::BzImage {
        path: vmlinuz.to_path_buf(),
        why,
    };
    if std::fs::metadata(vmlinuz).map_err(read_err)?.len() > MAX_VMLINUX {
        return Ok(bzimage(NotPvh::TooBig));
    }
    let bz = std::fs::read(vmlinuz).map_err(read_err)?;
    let key = hex(&Sha256::digest(&bz)[..16]);
    let elf_path = dir.join(format!("{key}.elf"));
    let record_path = dir.join(format!("{key}.json"));
    // A record that does not parse (an older btfvm's) is made again.
    match std::fs::read(&record_path).map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(Record::BzImage(why))) => return Ok(bzimage(why)),
        Ok(Ok(Record::Pvh { elf_bytes }))
            if std::fs::metadata(&elf_path).is_ok_and(|m| m.len() == elf_bytes) =>
        {
            // Used now: pruning keeps the most recently used.
            if let Ok(f) = std::fs::File::options().append(true).open(&elf_path) {
                let _ = f.set_modified(std::time::SystemTime::now());
            }
            return Ok(BootImage::Pvh(elf_path));
        }
        _ => {}
    }
    let (record, image) = match extract(&bz) {
        Ok(elf) => {
            write_atomic(&elf_path, &elf)?;
            prune(dir, KEEP_ELFS);
            let elf_bytes = elf.len() as u64;
            (Record::Pvh { elf_bytes }, BootImage::Pvh(elf_path))
        }
        Err(why) => (Record::BzImage(why.clone()), bzimage(why)),
    };
    let json = serde_json::to_vec(&record).map_err(|source| PvhError::Json {
        path: record_path.clone(),
        source,
    })?;
    write_atomic(&record_path, &json)?;
    Ok(image)
}

/// ELFs kept: each is 40-60 MB, and a bisect over a PVH kernel makes one
/// per step.
const KEEP_ELFS: usize = 12;

/// Removes all but the `keep` most recently used ELFs of `dir`.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut elfs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "elf"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    elfs.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, old) in elfs.into_iter().skip(keep) {
        let _ = std::fs::remove_file(old);
    }
}

/// The ELF vmlinux inside a bzImage, if it has a PVH entry.
pub fn extract(bz: &[u8]) -> Result<Vec<u8>, NotPvh> {
    let payload = payload(bz)?;
    let elf = unpack(payload)?;
    if !has_pvh_entry(&elf)? {
        return Err(NotPvh::NoPvhNote);
    }
    Ok(elf)
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// The compressed vmlinux: the setup header's `payload_offset` and
/// `payload_length`, counted from the protected-mode code after the
/// `setup_sects` real-mode sectors (Documentation/arch/x86/boot.rst).
fn payload(bz: &[u8]) -> Result<&[u8], NotPvh> {
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        return Err(NotPvh::NotBzImage);
    }
    let version = u16_at(bz, 0x206).ok_or(NotPvh::NotBzImage)?;
    if version < 0x208 {
        return Err(NotPvh::OldProtocol(version));
    }
    let setup_sects = match bz.get(0x1f1).copied().ok_or(NotPvh::NotBzImage)? {
        0 => 4,
        n => usize::from(n),
    };
    let offset = u32_at(bz, 0x248).ok_or(NotPvh::NotBzImage)? as usize;
    let length = u32_at(bz, 0x24c).ok_or(NotPvh::NotBzImage)? as usize;
    let start = (setup_sects + 1)
        .checked_mul(512)
        .and_then(|s| s.checked_add(offset))
        .ok_or(NotPvh::PayloadOutside)?;
    let end = start.checked_add(length).ok_or(NotPvh::PayloadOutside)?;
    bz.get(start..end).ok_or(NotPvh::PayloadOutside)
}

/// Unpacks by the payload's magic, the formats of Debian's and
/// tinyconfig's kernels: gzip, xz, zstd and the LZ4 legacy format.
fn unpack(p: &[u8]) -> Result<Vec<u8>, NotPvh> {
    let corrupt = |format: &'static str| {
        move |e: std::io::Error| NotPvh::Corrupt {
            format: format.into(),
            why: e.to_string(),
        }
    };
    if p.starts_with(&[0x1f, 0x8b]) {
        read_capped(flate2::read::GzDecoder::new(p)).map_err(corrupt("gzip"))?
    } else if p.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        // The kernel appends the unpacked size after the stream.
        read_capped(liblzma::read::XzDecoder::new(p)).map_err(corrupt("xz"))?
    } else if p.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::new(p).map_err(corrupt("zstd"))?;
        read_capped(d.single_frame()).map_err(corrupt("zstd"))?
    } else if p.starts_with(&LZ4_LEGACY_MAGIC) {
        lz4_legacy(p)
    } else if p.starts_with(b"BZh") {
        Err(NotPvh::Compression("bzip2".into()))
    } else if p.starts_with(&[0x89, b'L', b'Z', b'O']) {
        Err(NotPvh::Compression("LZO".into()))
    } else if p.starts_with(&[0x5d, 0, 0]) {
        Err(NotPvh::Compression("LZMA".into()))
    } else {
        Err(NotPvh::Compression("of an unknown format".into()))
    }
}

/// Reads to the end, refusing past [`MAX_VMLINUX`].
fn read_capped(r: impl Read) -> std::io::Result<Result<Vec<u8>, NotPvh>> {
    let mut out = Vec::new();
    r.take(MAX_VMLINUX + 1).read_to_end(&mut out)?;
    Ok(match out.len() as u64 > MAX_VMLINUX {
        true => Err(NotPvh::TooBig),
        false => Ok(out),
    })
}

const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
/// Each block of the legacy format unpacks to at most 8 MiB.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// `lz4 -l`: the magic, then blocks, each a little-endian length and an
/// LZ4 block. The kernel's payload ends with the unpacked size, 4 bytes
/// that read as a length past the end, which is where it stops.
fn lz4_legacy(p: &[u8]) -> Result<Vec<u8>, NotPvh> {
    let corrupt = |why: String| NotPvh::Corrupt {
        format: "LZ4".into(),
        why,
    };
    let mut out = Vec::new();
    let mut block = vec![0u8; LZ4_LEGACY_BLOCK];
    let mut at = LZ4_LEGACY_MAGIC.len();
    while let Some(len) = u32_at(p, at) {
        if len.to_le_bytes() == LZ4_LEGACY_MAGIC {
            at += 4;
            continue;
        }
        let Some(data) = p.get(at + 4..at + 4 + len as usize) else {
            break;
        };
        let n = lz4_flex::block::decompress_into(data, &mut block)
            .map_err(|e| corrupt(format!("block at byte {at}: {e}")))?;
        out.extend_from_slice(&block[..n]);
        if out.len() as u64 > MAX_VMLINUX {
            return Err(NotPvh::TooBig);
        }
        at += 4 + len as usize;
    }
    if out.is_empty() {
        return Err(corrupt("no block".into()));
    }
    Ok(out)
}

/// Whether the ELF carries Xen's PHYS32_ENTRY note, which QEMU needs to
/// boot it (without it QEMU refuses a 64-bit ELF).
fn has_pvh_entry(elf: &[u8]) -> Result<bool, NotPvh> {
    let file = ElfFile64::<Endianness>::parse(elf).map_err(|e| NotPvh::NotElf(e.to_string()))?;
    let endian = file.endian();
    for ph in file.elf_program_headers() {
        let Ok(Some(mut notes)) = ph.notes(endian, elf) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"Xen" && note.n_type(endian) == XEN_ELFNOTE_PHYS32_ENTRY {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
#[path = "pvh_tests.rs"]
mod tests;
