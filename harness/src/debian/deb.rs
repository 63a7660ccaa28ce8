//! Unpacks the data part of a .deb in-process (ar + tar + xz/zstd/gzip),
//! so that fetching a kernel needs neither dpkg nor root. Only regular
//! files, directories and symlinks are created, and nothing lands outside
//! the destination: archives come from the network.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::support::interrupt;
use crate::support::stop::{Interrupted, StopCheck, StopReader};

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot read {}: {source}", deb.display())]
    Read {
        deb: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a .deb: not an ar archive ({detail})", deb.display())]
    NotAr { deb: PathBuf, detail: String },
    #[error("{} is not a Debian binary package: {detail}", deb.display())]
    NotBinaryPackage { deb: PathBuf, detail: String },
    #[error("{} has no data.tar.* member (members: {})", deb.display(), members.join(", "))]
    NoDataTar { deb: PathBuf, members: Vec<String> },
    #[error("{}: {member} uses an unsupported compression", deb.display())]
    UnknownCompression { deb: PathBuf, member: String },
    #[error("{}: {member} is corrupt: {source}", deb.display())]
    Corrupt {
        deb: PathBuf,
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("{}: refusing entry {entry:?} of {member}: {reason}", deb.display())]
    UnsafeEntry {
        deb: PathBuf,
        member: String,
        entry: String,
        reason: &'static str,
    },
    #[error("cannot write {} while unpacking {}: {source}", path.display(), deb.display())]
    Write {
        deb: PathBuf,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Unpacking stopped on a stop request (what was written goes with
    /// the caller's temporary entry).
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl DebError {
    /// A package that cannot be unpacked is the archive's problem; one
    /// that cannot be written is the disk's.
    pub fn class(&self) -> crate::support::ErrorClass {
        match self {
            DebError::Write { .. } => crate::support::ErrorClass::Environment,
            DebError::Interrupted(i) => i.class(),
            _ => crate::support::ErrorClass::Kernel,
        }
    }
}

/// Unpacks the data.tar.* of `deb` into `dest` (created if missing). Files
/// already in `dest` are replaced, so several packages can share one root.
pub fn extract(deb: &Path, dest: &Path) -> Result<(), DebError> {
    extract_until(deb, dest, &interrupt::requested)
}

/// `extract` asking the stop check before every read of the data (a
/// kernel's modules package is 60 MB of zstd or xz).
pub fn extract_until(deb: &Path, dest: &Path, stop: StopCheck<'_>) -> Result<(), DebError> {
    let read_err = |source| DebError::Read {
        deb: deb.to_path_buf(),
        source,
    };
    let mut file = File::open(deb).map_err(read_err)?;
    let mut magic = [0u8; 8];
    let got = read_up_to(&mut file, &mut magic).map_err(read_err)?;
    if &magic[..got] != AR_MAGIC {
        return Err(DebError::NotAr {
            deb: deb.to_path_buf(),
            detail: format!("starts with {:?}", String::from_utf8_lossy(&magic[..got])),
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;

    let corrupt = |member: &str, source| DebError::Corrupt {
        deb: deb.to_path_buf(),
        member: member.to_string(),
        source,
    };
    let mut archive = ar::Archive::new(file);
    let mut members = Vec::new();
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.map_err(|e| corrupt("ar archive", e))?;
        let name = String::from_utf8_lossy(entry.header().identifier())
            .trim_end_matches('/')
            .to_string();
        if members.is_empty() {
            check_debian_binary(deb, &name, &mut entry)?;
        } else if let Some(compression) = name.strip_prefix("data.tar") {
            let reader: Box<dyn Read + '_> = match compression {
                ".xz" => Box::new(liblzma::read::XzDecoder::new(entry)),
                ".zst" => Box::new(
                    zstd::stream::read::Decoder::new(entry).map_err(|e| corrupt(&name, e))?,
                ),
                ".gz" => Box::new(flate2::read::GzDecoder::new(entry)),
                "" => Box::new(entry),
                _ => {
                    return Err(DebError::UnknownCompression {
                        deb: deb.to_path_buf(),
                        member: name,
                    })
                }
            };
            let unpacked = Unpacker {
                deb,
                member: &name,
                dest,
            }
            .run(StopReader::new(reader, stop));
            return match (unpacked, stop()) {
                (Err(_), Some(signal)) => Err(Interrupted { signal }.into()),
                (r, _) => r,
            };
        }
        members.push(name);
    }
    if members.is_empty() {
        return Err(DebError::NotBinaryPackage {
            deb: deb.to_path_buf(),
            detail: "the ar archive is empty".into(),
        });
    }
    Err(DebError::NoDataTar {
        deb: deb.to_path_buf(),
        members,
    })
}

fn check_debian_binary(deb: &Path, name: &str, entry: &mut impl Read) -> Result<(), DebError> {
    let not_binary = |detail: String| DebError::NotBinaryPackage {
        deb: deb.to_path_buf(),
        detail,
    };
    if name != "debian-binary" {
        return Err(not_binary(format!(
            "first member is {name:?}, not debian-binary"
        )));
    }
    let mut version = [0u8; 16];
    let got = read_up_to(entry, &mut version).map_err(|e| DebError::Corrupt {
        deb: deb.to_path_buf(),
        member: name.to_string(),
        source: e,
    })?;
    // Format 2.x is the only one dpkg writes; minor versions must be accepted.
    if !version[..got].starts_with(b"2.") {
        return Err(not_binary(format!(
            "debian-binary says {:?}, expected 2.x",
            String::from_utf8_lossy(&version[..got]).trim()
        )));
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

struct Unpacker<'a> {
    deb: &'a Path,
    member: &'a str,
    dest: &'a Path,
}

/// The most one package may unpack to. The biggest btfvm fetches,
/// linux-source, is a 139 MB .deb holding a 1.5 GB tarball; a package that
/// unpacks to far more is a decompression bomb, not a kernel.
pub const MAX_UNPACKED: u64 = 8 << 30;

/// Fails a read once more than `left` bytes have come through.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other(format!(
                "unpacks to more than {MAX_UNPACKED} bytes, the limit for one package"
            ))
        })?;
        Ok(n)
    }
}

impl Unpacker<'_> {
    fn run(&self, reader: impl Read) -> Result<(), DebError> {
        self.create_dir(self.dest)?;
        let mut tar = tar::Archive::new(Capped {
            inner: reader,
            left: MAX_UNPACKED,
        });
        for entry in tar.entries().map_err(|e| self.corrupt(e))? {
            let mut entry = entry.map_err(|e| self.corrupt(e))?;
            let raw = entry.path_bytes().into_owned();
            let Some(rel) = self.relative_path(&raw)? else {
                continue;
            };
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
                // Hard links, devices and fifos have no use in a kernel tree
                // and would each need their own escape checks.
                continue;
            }
            let target = self.dest.join(&rel);
            self.check_parents(&raw, &rel)?;
            if kind.is_dir() {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(self.unsafe_entry(&raw, "a directory replaces a file")),
                    Err(_) => self.create_dir(&target)?,
                }
                continue;
            }
            self.make_room(&raw, &target)?;
            if kind.is_symlink() {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&raw, "symlink without a target"))?
                    .into_owned();
                let link = Path::new(std::ffi::OsStr::from_bytes(&link));
                // A link pointing out of the tree (e.g. to /usr/src) would
                // lead later readers of the tree to host files: leave it out.
                if !stays_inside(&rel, link) {
                    continue;
                }
                std::os::unix::fs::symlink(link, &target)
                    .map_err(|e| self.write_err(&target, e))?;
            } else {
                let mode = entry.header().mode().map_err(|e| self.corrupt(e))?;
                self.write_file(&mut entry, &target, mode)?;
            }
        }
        Ok(())
    }

    /// Normalises an archive path to a relative one, or None for the root.
    fn relative_path(&self, raw: &[u8]) -> Result<Option<PathBuf>, DebError> {
        let path = Path::new(std::ffi::OsStr::from_bytes(raw));
        let mut rel = PathBuf::new();
        for comp in path.components() {
            match comp {
                Component::Normal(c) => rel.push(c),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(self.unsafe_entry(raw, "absolute path"))
                }
                Component::ParentDir => return Err(self.unsafe_entry(raw, "path contains ..")),
            }
        }
        Ok(if rel.as_os_str().is_empty() {
            None
        } else {
            Some(rel)
        })
    }

    /// Refuses to write through a symlink an earlier entry planted, and
    /// creates missing parent directories.
    fn check_parents(&self, raw: &[u8], rel: &Path) -> Result<(), DebError> {
        let mut dir = self.dest.to_path_buf();
        let parents: Vec<_> = rel.components().collect();
        for comp in &parents[..parents.len().saturating_sub(1)] {
            dir.push(comp);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsafe_entry(raw, "path goes through a symlink"))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(self.unsafe_entry(raw, "a parent of the path is a file")),
                Err(_) => self.create_dir(&dir)?,
            }
        }
        Ok(())
    }

    /// Removes a file or symlink in the way, since creating over a symlink
    /// would follow it.
    fn make_room(&self, raw: &[u8], target: &Path) -> Result<(), DebError> {
        match fs::symlink_metadata(target) {
            Ok(m) if m.is_dir() => Err(self.unsafe_entry(raw, "a file replaces a directory")),
            Ok(_) => fs::remove_file(target).map_err(|e| self.write_err(target, e)),
            Err(_) => Ok(()),
        }
    }

    fn write_file(&self, entry: &mut impl Read, target: &Path, mode: u32) -> Result<(), DebError> {
        let mut out = File::create(target).map_err(|e| self.write_err(target, e))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.corrupt(e)),
            };
            out.write_all(&buf[..n])
                .map_err(|e| self.write_err(target, e))?;
        }
        // Setuid bits and odd modes are of no use here; only keep whether
        // it is executable, and keep everything owner-writable so the cache
        // can be cleaned up.
        let perm = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        out.set_permissions(fs::Permissions::from_mode(perm))
            .map_err(|e| self.write_err(target, e))
    }

    fn create_dir(&self, dir: &Path) -> Result<(), DebError> {
        fs::create_dir_all(dir).map_err(|e| self.write_err(dir, e))
    }

    fn corrupt(&self, source: io::Error) -> DebError {
        DebError::Corrupt {
            deb: self.deb.to_path_buf(),
            member: self.member.to_string(),
            source,
        }
    }

    fn unsafe_entry(&self, raw: &[u8], reason: &'static str) -> DebError {
        DebError::UnsafeEntry {
            deb: self.deb.to_path_buf(),
            member: self.member.to_string(),
            entry: String::from_utf8_lossy(raw).into_owned(),
            reason,
        }
    }

    fn write_err(&self, path: &Path, source: io::Error) -> DebError {
        DebError::Write {
            deb: self.deb.to_path_buf(),
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Whether symlink `rel` (relative to the root) pointing at `link` resolves
/// inside the root, judged lexically.
fn stays_inside(rel: &Path, link: &Path) -> bool {
    if link.is_absolute() {
        return false;
    }
    let mut depth = rel.components().count() as i64 - 1;
    for comp in link.components() {
        match comp {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
#[path = "deb_tests.rs"]
mod tests;
