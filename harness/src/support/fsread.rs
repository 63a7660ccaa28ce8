//! Reading a file that someone gave us, safely: it must be a regular file
//! (a FIFO would block forever, a device like /dev/zero never ends, a
//! directory says "Is a directory" far from the cause), and it is read up
//! to a cap that is named in the error. Opened with O_NONBLOCK so a FIFO is
//! seen for what it is instead of hanging the open.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a path is, in words, when it is not a regular file.
pub fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: is {kind}, not a regular file ({what} expected)", path.display())]
    NotAFile {
        path: PathBuf,
        kind: &'static str,
        what: &'static str,
    },
    #[error("{}: over {cap} bytes, the limit for {what}", path.display())]
    TooBig {
        path: PathBuf,
        cap: u64,
        what: &'static str,
    },
    #[error("{}: not UTF-8 text ({what} expected)", path.display())]
    NotText { path: PathBuf, what: &'static str },
}

impl ReadError {
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::NotAFile { path, .. }
            | ReadError::TooBig { path, .. }
            | ReadError::NotText { path, .. } => path,
        }
    }
}

/// Opens `path` for reading if it is a regular file (following links).
pub fn open_regular(path: &Path, what: &'static str) -> Result<File, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let ft = f.metadata().map_err(io)?.file_type();
    if !ft.is_file() {
        return Err(ReadError::NotAFile {
            path: path.to_path_buf(),
            kind: kind_of(&ft),
            what,
        });
    }
    Ok(f)
}

/// The whole file, if it is a regular file of at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let f = open_regular(path, what)?;
    let mut buf = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooBig {
            path: path.to_path_buf(),
            cap,
            what,
        });
    }
    Ok(buf)
}

/// Like `read_capped`, as text.
pub fn read_text(path: &Path, cap: u64, what: &'static str) -> Result<String, ReadError> {
    String::from_utf8(read_capped(path, cap, what)?).map_err(|_| ReadError::NotText {
        path: path.to_path_buf(),
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read_capped(&p, 5, "a test file").unwrap(), b"hello");
        let e = read_capped(&p, 4, "a test file").unwrap_err().to_string();
        assert!(e.contains("over 4 bytes, the limit for a test file"), "{e}");
        let e = read_capped(d.path(), 9, "a test file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = read_capped(Path::new("/dev/zero"), 9, "a test file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a character device"), "{e}");
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path we own, with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_capped(&fifo, 9, "a test file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        std::fs::write(&p, b"\xff\xfe").unwrap();
        assert!(matches!(
            read_text(&p, 9, "a test file"),
            Err(ReadError::NotText { .. })
        ));
        assert!(matches!(
            read_capped(&d.path().join("none"), 9, "x"),
            Err(ReadError::Io { .. })
        ));
    }
}
