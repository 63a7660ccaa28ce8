//! Finds the Debian mirror to fetch kernels from: the one given by the user
//! (--debian-mirror / BTFVM_DEBIAN_MIRROR), else the main-archive entry of
//! the host's own apt sources, so that whatever mirror (or proxy) the host
//! is set up with is used for the other suites too.

use std::fs;
use std::path::{Path, PathBuf};

use super::deb822::parse_paragraphs;

/// Holds the keys of every Debian release since bullseye; preferred over a
/// source's own Signed-By because we fetch suites other than the host's.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

const ETC_APT: &str = "/etc/apt";

/// Suite names (before any `-updates`-like suffix) of the Debian archive.
const DEBIAN_SUITES: &[&str] = &[
    "buzz",
    "rex",
    "bo",
    "hamm",
    "slink",
    "potato",
    "woody",
    "sarge",
    "etch",
    "lenny",
    "squeeze",
    "wheezy",
    "jessie",
    "stretch",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "stable",
    "oldstable",
    "oldoldstable",
    "testing",
    "unstable",
    "experimental",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Base URI of the archive, without a trailing slash.
    pub uri: String,
    /// Keyring to verify the suite's Release file with; None leaves it to
    /// apt's trusted.gpg.d.
    pub signed_by: Option<PathBuf>,
}

/// One URI of one sources entry, whichever of the two formats it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(
        "no Debian mirror found in the host's apt sources (read: {}); \
         pass --debian-mirror URI or set BTFVM_DEBIAN_MIRROR",
        if files.is_empty() { "no sources files found".to_string() }
        else { files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ") }
    )]
    NotFound { files: Vec<PathBuf> },
    #[error(
        "Debian mirror {uri:?} (from --debian-mirror or BTFVM_DEBIAN_MIRROR) is not a URI \
         like SCHEME://HOST/debian"
    )]
    Invalid { uri: String },
}

/// The mirror to use: `explicit` if given, else one from the host's sources.
pub fn find(explicit: Option<&str>) -> Result<Mirror, MirrorError> {
    find_in(explicit, Path::new(ETC_APT))
}

/// Like `find`, reading sources from `etc_apt` instead of /etc/apt.
pub fn find_in(explicit: Option<&str>, etc_apt: &Path) -> Result<Mirror, MirrorError> {
    let default_keyring = Path::new(DEFAULT_KEYRING);
    let keyring_for = |own: Option<&str>| {
        if default_keyring.is_file() {
            return Some(default_keyring.to_path_buf());
        }
        own.map(PathBuf::from).filter(|p| p.is_file())
    };
    if let Some(uri) = explicit.map(str::trim).filter(|u| !u.is_empty()) {
        let valid = uri.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+')
                && !rest.is_empty()
                && !rest.chars().any(char::is_whitespace)
        });
        if !valid {
            return Err(MirrorError::Invalid {
                uri: uri.to_string(),
            });
        }
        return Ok(Mirror {
            uri: uri.trim_end_matches('/').to_string(),
            signed_by: keyring_for(None),
        });
    }
    let (entries, files) = read_sources(etc_apt);
    let (uri, signed_by) = pick_main_archive(&entries).ok_or(MirrorError::NotFound { files })?;
    Ok(Mirror {
        uri: uri.trim_end_matches('/').to_string(),
        signed_by: keyring_for(signed_by),
    })
}

/// Reads sources.list and sources.list.d/*.{list,sources}; unreadable files
/// are skipped (they are listed in errors only if read).
pub fn read_sources(etc_apt: &Path) -> (Vec<SourceEntry>, Vec<PathBuf>) {
    let mut paths = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("list" | "sources")
                )
            })
            .collect();
        more.sort();
        paths.extend(more);
    }
    let mut entries = Vec::new();
    let mut read = Vec::new();
    for path in paths {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "sources") {
            entries.extend(parse_deb822(&text));
        } else {
            entries.extend(parse_one_line(&text));
        }
        read.push(path);
    }
    (entries, read)
}

/// Parses deb822 `.sources` stanzas; disabled stanzas are dropped.
pub fn parse_deb822(text: &str) -> Vec<SourceEntry> {
    let words = |v: Option<&str>| -> Vec<String> {
        v.unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    parse_paragraphs(text)
        .into_iter()
        .filter(|p| {
            !p.get("Enabled")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
        })
        .map(|p| SourceEntry {
            types: words(p.get("Types")),
            uris: words(p.get("URIs")),
            suites: words(p.get("Suites")),
            components: words(p.get("Components")),
            signed_by: p.get("Signed-By").map(|s| s.trim().to_string()),
        })
        .filter(|e| !e.uris.is_empty() && !e.suites.is_empty())
        .collect()
}

/// Parses one-line `deb [opt=val ...] URI SUITE COMPONENT...` entries.
pub fn parse_one_line(text: &str) -> Vec<SourceEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((kind, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if kind != "deb" && kind != "deb-src" {
            continue;
        }
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            for opt in opts.split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after;
        }
        let mut fields = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (fields.next(), fields.next()) else {
            continue;
        };
        out.push(SourceEntry {
            types: vec![kind.to_string()],
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: fields.map(str::to_string).collect(),
            signed_by,
        });
    }
    out
}

/// The URI (and Signed-By) of the entry most likely to be Debian's main
/// archive: binary, with `main`, not the security or debug archives, and a
/// Debian suite name or a `/debian` path. Ties go to the first listed.
pub fn pick_main_archive(entries: &[SourceEntry]) -> Option<(&str, Option<&str>)> {
    let mut best: Option<(u32, &str, Option<&str>)> = None;
    for e in entries {
        if !e.types.iter().any(|t| t == "deb") || !e.components.iter().any(|c| c == "main") {
            continue;
        }
        for uri in &e.uris {
            for suite in &e.suites {
                let Some(score) = score(uri, suite, e.signed_by.as_deref()) else {
                    continue;
                };
                if best.is_none_or(|(s, _, _)| score > s) {
                    best = Some((score, uri.as_str(), e.signed_by.as_deref()));
                }
            }
        }
    }
    best.map(|(_, uri, signed_by)| (uri, signed_by))
}

fn score(uri: &str, suite: &str, signed_by: Option<&str>) -> Option<u32> {
    let lower_uri = uri.to_ascii_lowercase();
    if lower_uri.contains("security") || lower_uri.contains("debian-debug") {
        return None;
    }
    // Old security suites were "buster/updates"; debug suites end in -debug.
    if suite.contains("security") || suite.contains('/') || suite.ends_with("-debug") {
        return None;
    }
    let base = suite.split('-').next().unwrap_or(suite);
    let known_suite = DEBIAN_SUITES.contains(&base);
    let path_is_debian = lower_uri.trim_end_matches('/').rsplit('/').next() == Some("debian");
    if !known_suite && !path_is_debian {
        return None;
    }
    let debian_key = signed_by.is_none_or(|k| k.contains("debian-archive"));
    Some(4 * u32::from(known_suite) + 2 * u32::from(path_is_debian) + u32::from(debian_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
# Main archive
Types: deb deb-src
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
";

    #[test]
    fn parses_deb822_stanzas_with_comments() {
        let e = parse_deb822(DEB822);
        assert_eq!(e.len(), 2, "disabled stanza dropped: {e:?}");
        assert_eq!(e[0].types, ["deb", "deb-src"]);
        assert_eq!(e[0].uris, ["http://mirror.example/debian"]);
        assert_eq!(e[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(e[0].components, ["main", "contrib"]);
        assert_eq!(
            e[0].signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        assert_eq!(e[1].suites, ["bookworm-security"]);
    }

    #[test]
    fn parses_one_line_with_options() {
        let text = "\
# comment line
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm main non-free-firmware
deb-src http://mirror.example/debian bookworm main
deb http://mirror.example/debian-security/ bookworm-security main # trailing comment
deb [ trusted=yes ] http://other.example/debian trixie main
garbage line
deb [unterminated http://x.example/debian sid main
";
        let e = parse_one_line(text);
        assert_eq!(e.len(), 4, "{e:?}");
        assert_eq!(e[0].uris, ["http://mirror.example/debian"]);
        assert_eq!(e[0].suites, ["bookworm"]);
        assert_eq!(e[0].components, ["main", "non-free-firmware"]);
        assert_eq!(
            e[0].signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        assert_eq!(e[1].types, ["deb-src"]);
        assert_eq!(e[2].components, ["main"]);
        assert_eq!(e[3].uris, ["http://other.example/debian"]);
        assert_eq!(e[3].signed_by, None);
    }

    #[test]
    fn picks_main_archive_over_security() {
        let mut e = parse_deb822(DEB822);
        e.reverse();
        assert_eq!(
            pick_main_archive(&e).map(|p| p.0),
            Some("http://mirror.example/debian")
        );
        let old_style = parse_one_line(
            "deb http://security.example/ buster/updates main\n\
             deb http://mirror.example/debian buster main\n",
        );
        assert_eq!(
            pick_main_archive(&old_style).map(|p| p.0),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn ignores_third_party_and_source_only_entries() {
        let e = parse_one_line(
            "deb-src http://mirror.example/debian bookworm main\n\
             deb [signed-by=/etc/apt/keyrings/docker.gpg] https://docker.example/linux/debian bookworm stable\n\
             deb http://archive.example/ubuntu jammy main\n",
        );
        assert_eq!(pick_main_archive(&e), None);
        let with_vendor = parse_one_line(
            "deb [signed-by=/usr/share/keyrings/vendor.gpg] https://vendor.example/debian/12/prod bookworm main\n\
             deb http://mirror.example/debian bookworm main\n",
        );
        assert_eq!(
            pick_main_archive(&with_vendor).map(|p| p.0),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn find_reports_files_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        fs::write(
            dir.path().join("sources.list.d/x.list"),
            "deb http://archive.example/ubuntu jammy main\n",
        )
        .unwrap();
        let err = find_in(None, dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("x.list") && msg.contains("BTFVM_DEBIAN_MIRROR"),
            "{msg}"
        );
        assert!(msg.contains("--debian-mirror"), "{msg}");

        fs::write(dir.path().join("sources.list.d/debian.sources"), DEB822).unwrap();
        let m = find_in(None, dir.path()).unwrap();
        assert_eq!(m.uri, "http://mirror.example/debian");
    }

    #[test]
    fn explicit_mirror_wins_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let m = find_in(Some("http://mirror.example/debian/"), dir.path()).unwrap();
        assert_eq!(m.uri, "http://mirror.example/debian");
        assert!(matches!(
            find_in(Some("mirror.example/debian"), dir.path()),
            Err(MirrorError::Invalid { .. })
        ));
        // Empty means unset, as an empty environment variable would be.
        assert!(matches!(
            find_in(Some(""), dir.path()),
            Err(MirrorError::NotFound { .. })
        ));
    }
}
