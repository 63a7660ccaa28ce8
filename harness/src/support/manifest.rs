//! What a cache entry held when it was installed: every file's size and
//! SHA-256, every link's target. An entry is checked cheaply on every use
//! (every file there with its size, a few named files hashed), the files a
//! boot reads are checked as they are read, and the whole entry is hashed
//! after a failed boot or on request. A truncated vmlinuz or a flipped bit
//! in a module then reads as a damaged cache, not as a kernel bug.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hex;

/// In the entry's folder; not part of what it lists.
pub const FILE: &str = ".btfvm-manifest.json";
const SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    File { size: u64, sha256: String },
    Link { target: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    schema: u32,
    /// Paths relative to the entry's folder, '/'-separated.
    items: BTreeMap<String, Item>,
}

/// Where an entry differs from its manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {what}", path.display())]
pub struct Damage {
    pub path: PathBuf,
    pub what: String,
}

pub fn sha256_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, Item>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let rel = p
            .strip_prefix(base)
            .map_err(io::Error::other)?
            .to_string_lossy()
            .into_owned();
        // The manifest itself, and the owner file `Cache::install_dir`
        // keeps in a folder while it is being filled.
        if base == dir && rel.starts_with(".btfvm-") {
            continue;
        }
        let ft = e.file_type()?;
        if ft.is_symlink() {
            out.insert(
                rel,
                Item::Link {
                    target: fs::read_link(&p)?,
                },
            );
        } else if ft.is_dir() {
            walk(&p, base, out)?;
        } else if ft.is_file() {
            out.insert(
                rel,
                Item::File {
                    size: e.metadata()?.len(),
                    sha256: sha256_file(&p)?,
                },
            );
        }
    }
    Ok(())
}

impl Manifest {
    /// Everything under `dir` as it is now.
    pub fn of(dir: &Path) -> io::Result<Manifest> {
        let mut items = BTreeMap::new();
        walk(dir, dir, &mut items)?;
        Ok(Manifest {
            schema: SCHEMA,
            items,
        })
    }

    pub fn write(&self, dir: &Path) -> Result<(), super::cache::CacheError> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        super::cache::write_atomic(&dir.join(FILE), &json)
    }

    /// None when missing or unreadable: such an entry cannot be trusted.
    pub fn read(dir: &Path) -> Option<Manifest> {
        let bytes = fs::read(dir.join(FILE)).ok()?;
        let m: Manifest = serde_json::from_slice(&bytes).ok()?;
        (m.schema == SCHEMA).then_some(m)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn damage(dir: &Path, rel: &str, what: impl Into<String>) -> Damage {
        Damage {
            path: dir.join(rel),
            what: what.into(),
        }
    }

    /// Every item present, files with their sizes, links with their
    /// targets; the files named in `hash` hashed too. Milliseconds for a
    /// kernel's few thousand files.
    pub fn check_quick(&self, dir: &Path, hash: &[&str]) -> Result<(), Damage> {
        for (rel, item) in &self.items {
            let p = dir.join(rel);
            match item {
                Item::File { size, sha256 } => {
                    let meta = fs::symlink_metadata(&p)
                        .map_err(|e| Self::damage(dir, rel, format!("cannot be read: {e}")))?;
                    if !meta.is_file() {
                        return Err(Self::damage(dir, rel, "is no longer a regular file"));
                    }
                    if meta.len() != *size {
                        return Err(Self::damage(
                            dir,
                            rel,
                            format!("{} bytes, {size} when it was installed", meta.len()),
                        ));
                    }
                    if hash.contains(&rel.as_str()) {
                        self.check_hash(dir, rel, sha256)?;
                    }
                }
                Item::Link { target } => {
                    if fs::read_link(&p).ok().as_ref() != Some(target) {
                        return Err(Self::damage(dir, rel, "link changed or missing"));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_hash(&self, dir: &Path, rel: &str, want: &str) -> Result<(), Damage> {
        let got = sha256_file(&dir.join(rel))
            .map_err(|e| Self::damage(dir, rel, format!("cannot be read: {e}")))?;
        if got != want {
            return Err(Self::damage(
                dir,
                rel,
                "content changed since it was installed (SHA-256 differs)",
            ));
        }
        Ok(())
    }

    /// Every file hashed: after a failed boot, or on request.
    pub fn check_full(&self, dir: &Path) -> Result<(), Damage> {
        self.check_quick(dir, &[])?;
        for (rel, item) in &self.items {
            if let Item::File { sha256, .. } = item {
                self.check_hash(dir, rel, sha256)?;
            }
        }
        Ok(())
    }

    /// `bytes`, just read from `path` inside `dir`, are what was installed.
    /// Files the manifest does not list pass (they are not the entry's).
    pub fn check_bytes(&self, dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Damage> {
        let Ok(rel) = path.strip_prefix(dir) else {
            return Ok(());
        };
        let rel = rel.to_string_lossy();
        match self.items.get(rel.as_ref()) {
            Some(Item::File { sha256, .. }) if *sha256 != sha256_of(bytes) => Err(Self::damage(
                dir,
                &rel,
                "content changed since it was installed (SHA-256 differs)",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_of_every_kind_is_found_and_named() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("lib/modules/k")).unwrap();
        fs::write(root.join("vmlinuz"), b"kernel image").unwrap();
        fs::write(root.join("lib/modules/k/dummy.ko"), b"module bytes").unwrap();
        std::os::unix::fs::symlink("vmlinuz", root.join("link")).unwrap();
        let m = Manifest::of(root).unwrap();
        m.write(root).unwrap();
        let m = Manifest::read(root).unwrap();
        assert_eq!(m.len(), 3, "the manifest does not list itself");
        m.check_quick(root, &["vmlinuz"]).unwrap();
        m.check_full(root).unwrap();

        // Same size, flipped byte: only a hash sees it.
        fs::write(root.join("lib/modules/k/dummy.ko"), b"module bytez").unwrap();
        m.check_quick(root, &["vmlinuz"]).unwrap();
        let e = m.check_full(root).unwrap_err();
        assert!(e.to_string().contains("dummy.ko: content changed"), "{e}");
        let read = fs::read(root.join("lib/modules/k/dummy.ko")).unwrap();
        assert!(m
            .check_bytes(root, &root.join("lib/modules/k/dummy.ko"), &read)
            .is_err());
        assert!(m
            .check_bytes(root, &root.join("not/listed"), b"anything")
            .is_ok());

        fs::write(root.join("vmlinuz"), b"kernel").unwrap();
        let e = m.check_quick(root, &[]).unwrap_err().to_string();
        assert!(
            e.contains("vmlinuz: 6 bytes, 12 when it was installed"),
            "{e}"
        );
        fs::remove_file(root.join("vmlinuz")).unwrap();
        let e = m.check_quick(root, &[]).unwrap_err().to_string();
        assert!(e.contains("vmlinuz: cannot be read"), "{e}");
        fs::write(root.join(FILE), b"{").unwrap();
        assert!(Manifest::read(root).is_none());
    }
}
