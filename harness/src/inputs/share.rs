//! `--share HOST_DIR[:TAG]`: a host folder the guest mounts over virtiofs
//! at /share/TAG, checked once when the command line is read.

use std::path::PathBuf;

use btfvm_proto::share::SHARE_ROOT;

/// virtiofs carries the tag in a 36-byte field (virtio_fs_config.tag).
const TAG_MAX: usize = 36;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The folder, absolute and resolved.
    pub host_dir: PathBuf,
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("--share {given}: {why} (the form is HOST_DIR[:TAG], e.g. --share ~/src/mymod:mymod, mounted in the guest at /share/mymod)")]
    Form { given: String, why: String },
    #[error(
        "--share: the tag {tag} is given twice ({first} and {second}); give each share its own tag"
    )]
    TagTwice {
        tag: String,
        first: PathBuf,
        second: PathBuf,
    },
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= TAG_MAX
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Share {
    pub fn parse(given: &str) -> Result<Share, ShareError> {
        let err = |why: String| ShareError::Form {
            given: given.to_string(),
            why,
        };
        let (dir, tag) = match given.rsplit_once(':') {
            Some((d, t)) if !d.is_empty() => (d, Some(t)),
            _ => (given, None),
        };
        let host_dir = std::fs::canonicalize(dir).map_err(|e| err(format!("{dir}: {e}")))?;
        if !host_dir.is_dir() {
            return Err(err(format!("{} is not a folder", host_dir.display())));
        }
        let tag = match tag {
            Some(t) => t.to_string(),
            None => host_dir
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
                })
                .unwrap_or_else(|| "root".into()),
        };
        if !valid_tag(&tag) {
            return Err(err(format!(
                "the tag {tag:?} must be 1 to {TAG_MAX} letters, digits, - or _"
            )));
        }
        Ok(Share { host_dir, tag })
    }

    /// Where the guest mounts it.
    pub fn guest_dir(&self) -> String {
        format!("{SHARE_ROOT}/{}", self.tag)
    }

    /// The host file behind a guest path on this share.
    pub fn host_path(&self, guest: &str) -> Option<PathBuf> {
        let rest = guest.strip_prefix(&self.guest_dir())?.strip_prefix('/')?;
        Some(self.host_dir.join(rest))
    }
}

/// Tags name the mount points: two shares may not share one.
pub fn check_tags(shares: &[Share]) -> Result<(), ShareError> {
    for (i, s) in shares.iter().enumerate() {
        if let Some(first) = shares[..i].iter().find(|o| o.tag == s.tag) {
            return Err(ShareError::TagTwice {
                tag: s.tag.clone(),
                first: first.host_dir.clone(),
                second: s.host_dir.clone(),
            });
        }
    }
    Ok(())
}

/// The share a guest path is on, and the host file.
pub fn resolve<'a>(shares: &'a [Share], guest: &str) -> Option<(&'a Share, PathBuf)> {
    shares
        .iter()
        .find_map(|s| s.host_path(guest).map(|p| (s, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_and_tag() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("my mod");
        std::fs::create_dir(&sub).unwrap();
        let s = Share::parse(&format!("{}:oot", sub.display())).unwrap();
        assert_eq!(s.tag, "oot");
        assert_eq!(s.guest_dir(), "/share/oot");
        assert_eq!(
            s.host_path("/share/oot/a/b.ko"),
            Some(s.host_dir.join("a/b.ko"))
        );
        assert_eq!(s.host_path("/share/other/b.ko"), None);
        assert_eq!(s.host_path("/share/ootx/b.ko"), None);
        // No tag: the folder's name, made a valid tag.
        let s = Share::parse(&sub.display().to_string()).unwrap();
        assert_eq!(s.tag, "my_mod");
    }

    #[test]
    fn what_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        for (given, why) in [
            (format!("{}/missing:t", d.path().display()), "No such file"),
            (format!("{}:t", f.display()), "not a folder"),
            (format!("{}:bad tag", d.path().display()), "must be 1 to 36"),
            (
                format!("{}:{}", d.path().display(), "x".repeat(37)),
                "must be 1 to 36",
            ),
        ] {
            let e = Share::parse(&given).unwrap_err().to_string();
            assert!(e.contains(why), "{given}: {e}");
            assert!(e.contains("HOST_DIR[:TAG]"), "{e}");
        }
        let a = Share::parse(&format!("{}:t", d.path().display())).unwrap();
        let e = check_tags(&[a.clone(), a]).unwrap_err().to_string();
        assert!(e.contains("the tag t is given twice"), "{e}");
    }
}
