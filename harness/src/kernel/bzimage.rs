//! Reads the x86 boot protocol header of a bzImage, so that a file we are
//! about to hand to QEMU is known to be a kernel, and which one.
//! Layout: Documentation/arch/x86/boot.rst in the kernel tree.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

const BOOT_FLAG_OFFSET: usize = 0x1FE;
const HEADER_MAGIC_OFFSET: usize = 0x202;
const PROTOCOL_OFFSET: usize = 0x206;
const KERNEL_VERSION_OFFSET: usize = 0x20E;
const LOADFLAGS_OFFSET: usize = 0x211;
const LOADED_HIGH: u8 = 0x01;
/// The version pointer is a u16 relative to 0x200, so the string starts
/// before this; 256 bytes is more than any `uname -v` line.
const MAX_HEADER_BYTES: usize = 0x200 + 0xFFFF + 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BzImageInfo {
    /// Boot protocol version, e.g. 0x020f.
    pub protocol: u16,
    /// The whole version string, e.g.
    /// "6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP ...".
    pub version: String,
    /// Its first word: the kernel release (`uname -r`).
    pub release: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BzImageError {
    #[error("file too short for an x86 boot header ({len} bytes)")]
    TooShort { len: usize },
    #[error("no x86 boot sector signature 0xAA55 at 0x1FE")]
    NoBootFlag,
    #[error("no \"HdrS\" magic at 0x202: not an x86 bzImage")]
    NoHeaderMagic,
    #[error("boot protocol {protocol:#06x} is too old to carry a version string")]
    OldProtocol { protocol: u16 },
    #[error("not a bzImage (a zImage or other image: LOADED_HIGH is not set)")]
    NotBzImage,
    #[error("version string pointer {offset:#x} is outside the file or not NUL-terminated")]
    BadVersionPointer { offset: usize },
    #[error("version string is empty or not text")]
    BadVersionString,
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Parses a header from the start of an image (the first 64 KiB suffice).
pub fn parse(bytes: &[u8]) -> Result<BzImageInfo, BzImageError> {
    if bytes.len() < LOADFLAGS_OFFSET + 1 {
        return Err(BzImageError::TooShort { len: bytes.len() });
    }
    let u16_at = |off: usize| u16::from_le_bytes([bytes[off], bytes[off + 1]]);
    if u16_at(BOOT_FLAG_OFFSET) != 0xAA55 {
        return Err(BzImageError::NoBootFlag);
    }
    if &bytes[HEADER_MAGIC_OFFSET..HEADER_MAGIC_OFFSET + 4] != b"HdrS" {
        return Err(BzImageError::NoHeaderMagic);
    }
    let protocol = u16_at(PROTOCOL_OFFSET);
    if protocol < 0x0200 {
        return Err(BzImageError::OldProtocol { protocol });
    }
    if bytes[LOADFLAGS_OFFSET] & LOADED_HIGH == 0 {
        return Err(BzImageError::NotBzImage);
    }
    let offset = usize::from(u16_at(KERNEL_VERSION_OFFSET)) + 0x200;
    let tail = bytes
        .get(offset..)
        .ok_or(BzImageError::BadVersionPointer { offset })?;
    let end = tail
        .iter()
        .take(256)
        .position(|&b| b == 0)
        .ok_or(BzImageError::BadVersionPointer { offset })?;
    let version = std::str::from_utf8(&tail[..end])
        .map_err(|_| BzImageError::BadVersionString)?
        .trim()
        .to_string();
    let release = version
        .split_whitespace()
        .next()
        .ok_or(BzImageError::BadVersionString)?
        .to_string();
    Ok(BzImageInfo {
        protocol,
        version,
        release,
    })
}

/// Reads and parses the header of the image at `path`.
pub fn read_file(path: &Path) -> Result<BzImageInfo, BzImageError> {
    let io_err = |source| BzImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(MAX_HEADER_BYTES);
    File::open(path)
        .map_err(io_err)?
        .take(MAX_HEADER_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    parse(&head)
}

/// The kernel release (`uname -r`) of the bzImage at `path`.
pub fn release_of(path: &Path) -> Result<String, BzImageError> {
    read_file(path).map(|info| info.release)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal header as the kernel's build tools lay it out.
    pub(crate) fn synthetic(version: &str) -> Vec<u8> {
        let mut img = vec![0u8; 0x1000];
        img[0x1FE..0x200].copy_from_slice(&0xAA55u16.to_le_bytes());
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
        img[0x211] = LOADED_HIGH;
        let at = 0x400usize;
        img[0x20E..0x210].copy_from_slice(&((at - 0x200) as u16).to_le_bytes());
        img[at..at + version.len()].copy_from_slice(version.as_bytes());
        img
    }

    #[test]
    fn reads_release() {
        let v = "6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP Debian 6.1.119-1";
        let info = parse(&synthetic(v)).unwrap();
        assert_eq!(info.release, "6.1.0-28-cloud-amd64");
        assert_eq!(info.version, v);
        assert_eq!(info.protocol, 0x020F);
    }

    #[test]
    fn reads_release_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vmlinuz");
        std::fs::write(&p, synthetic("6.12.0-1-cloud-amd64 (x) #1")).unwrap();
        assert_eq!(release_of(&p).unwrap(), "6.12.0-1-cloud-amd64");
        assert!(matches!(
            release_of(&dir.path().join("nope")),
            Err(BzImageError::Io { .. })
        ));
    }

    #[test]
    fn rejects_non_images() {
        assert!(matches!(
            parse(b"\x7fELF"),
            Err(BzImageError::TooShort { .. })
        ));
        let mut img = synthetic("6.12.0");
        img[0x202] = b'X';
        assert!(matches!(parse(&img), Err(BzImageError::NoHeaderMagic)));
        let mut img = synthetic("6.12.0");
        img[0x1FE] = 0;
        assert!(matches!(parse(&img), Err(BzImageError::NoBootFlag)));
        let mut img = synthetic("6.12.0");
        img[0x211] = 0;
        assert!(matches!(parse(&img), Err(BzImageError::NotBzImage)));
    }

    #[test]
    fn rejects_bad_version_pointer() {
        let mut img = synthetic("6.12.0");
        img[0x20E..0x210].copy_from_slice(&0xF000u16.to_le_bytes());
        assert!(matches!(
            parse(&img),
            Err(BzImageError::BadVersionPointer { .. })
        ));
        // Present but never NUL-terminated within reach.
        let mut img = synthetic("6.12.0");
        for b in &mut img[0x400..] {
            *b = b'a';
        }
        assert!(matches!(
            parse(&img),
            Err(BzImageError::BadVersionPointer { .. })
        ));
        let img = synthetic("");
        assert!(matches!(parse(&img), Err(BzImageError::BadVersionString)));
    }
}
