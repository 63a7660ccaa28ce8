//! The initramfs the harness writes for each boot: a newc cpio archive, made
//! in-process so no root, no `cpio` binary and no fakeroot are needed.
//! Uncompressed on purpose: under TCG the kernel's xz/gzip unpacker costs
//! more than copying a few MB.

use std::io::{self, Write};

/// One archive member.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir {
        path: String,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
}

impl Entry {
    pub fn dir(path: &str) -> Self {
        Entry::Dir { path: path.into() }
    }
    pub fn file(path: &str, mode: u32, data: Vec<u8>) -> Self {
        Entry::File {
            path: path.into(),
            mode,
            data,
        }
    }
}

/// Builds the archive in memory; `finish` appends the trailer.
#[derive(Default)]
pub struct Archive {
    entries: Vec<Entry>,
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry, and the parent directories it needs first (the kernel's
    /// unpacker does not create missing parents).
    pub fn add(&mut self, entry: Entry) {
        let path = match &entry {
            Entry::Dir { path } | Entry::File { path, .. } => path.clone(),
        };
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(p);
            if !self.has_dir(&parent) {
                self.entries.push(Entry::dir(&parent));
            }
        }
        if matches!(entry, Entry::Dir { .. }) && self.has_dir(path.trim_matches('/')) {
            return;
        }
        self.entries.push(entry);
    }

    /// The members, in the order they were added (parents first).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn has_dir(&self, p: &str) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Dir { path } if path.trim_matches('/') == p))
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<u64> {
        let mut written = 0u64;
        for (ino, e) in self.entries.iter().enumerate() {
            let (path, mode, data): (&str, u32, &[u8]) = match e {
                Entry::Dir { path } => (path, 0o040755, &[]),
                Entry::File { path, mode, data } => (path, 0o100000 | (mode & 0o7777), data),
            };
            written += write_member(w, ino as u32 + 1, path.trim_start_matches('/'), mode, data)?;
        }
        written += write_member(w, 0, "TRAILER!!!", 0, &[])?;
        Ok(written)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_to(&mut v);
        v
    }
}

/// The "newc" header: magic 070701 then 13 fields of 8 hex digits; name and
/// data each padded to 4 bytes (see the kernel's init/initramfs.c).
pub fn newc_header(ino: u32, mode: u32, filesize: u32, namesize: u32) -> String {
    let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
    format!(
        "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{filesize:08x}{maj:08x}{min:08x}{rmaj:08x}{rmin:08x}{namesize:08x}{check:08x}",
        uid = 0,
        gid = 0,
        mtime = 0,
        maj = 0,
        min = 0,
        rmaj = 0,
        rmin = 0,
        check = 0
    )
}

fn pad4(w: &mut impl Write, len: u64) -> io::Result<u64> {
    let pad = (4 - (len % 4)) % 4;
    w.write_all(&[0u8; 3][..pad as usize])?;
    Ok(pad)
}

fn write_member(
    w: &mut impl Write,
    ino: u32,
    name: &str,
    mode: u32,
    data: &[u8],
) -> io::Result<u64> {
    let size =
        u32::try_from(data.len()).map_err(|_| io::Error::other(format!("{name}: over 4 GiB")))?;
    let hdr = newc_header(ino, mode, size, name.len() as u32 + 1);
    w.write_all(hdr.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    let mut n = hdr.len() as u64 + name.len() as u64 + 1;
    n += pad4(w, n)?;
    w.write_all(data)?;
    n += data.len() as u64;
    n += pad4(w, data.len() as u64)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_110_bytes_of_hex() {
        let h = newc_header(1, 0o100755, 5, 5);
        assert_eq!(h.len(), 110);
        assert!(h.starts_with("070701"));
        assert_eq!(&h[14..22], "000081ed");
    }

    #[test]
    fn members_are_aligned_and_parents_added() {
        let mut a = Archive::new();
        a.add(Entry::file("modules/dummy.ko", 0o644, b"abc".to_vec()));
        a.add(Entry::dir("modules"));
        let bytes = a.to_bytes();
        assert_eq!(bytes.len() % 4, 0);
        let text = String::from_utf8_lossy(&bytes);
        // "modules" dir comes first, once, then the file, then the trailer.
        let dir = text.find("modules\0").unwrap();
        let file = text.find("modules/dummy.ko\0").unwrap();
        assert!(dir < file);
        assert_eq!(text.matches("modules\0").count(), 1);
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!\0"));
        // The file's data starts 4-byte aligned.
        let data_at = bytes.windows(3).position(|w| w == b"abc").unwrap();
        assert_eq!(data_at % 4, 0);
    }

    #[test]
    fn can_be_read_back_by_cpio() {
        // Cross-check against GNU cpio when it is installed.
        if std::process::Command::new("cpio")
            .arg("--version")
            .output()
            .is_err()
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut a = Archive::new();
        a.add(Entry::file("a/b/init", 0o755, b"#!/bin/sh\n".to_vec()));
        let path = dir.path().join("x.cpio");
        std::fs::write(&path, a.to_bytes()).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-t", "-F"])
            .arg(&path)
            .output()
            .unwrap();
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(list.contains("a/b/init"), "{list}");
    }
}
