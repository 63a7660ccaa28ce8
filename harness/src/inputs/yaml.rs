//! Reading the project's YAML files with errors that name the file, line
//! and column, and show the offending line; and the folders they live in,
//! where a file's name becomes a trial's name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::support::fsread::{self, ReadError};

/// No scenario or kernel spec comes near this; a bigger file is a mistake
/// (or /dev/zero behind a link), not an input.
pub const YAML_CAP: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The file could not be read: missing, a FIFO, a device, a directory,
    /// too big, not UTF-8.
    #[error(transparent)]
    File(#[from] ReadError),
    #[error("{}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: is {kind}, not a directory (a folder of .yaml files expected)", path.display())]
    NotADirectory { path: PathBuf, kind: &'static str },
    #[error("{}:{line}:{column}: {message}\n{snippet}", path.display())]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
        snippet: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// Two files that cannot both be: the same name, two defaults.
    #[error("{} and {}: {message}", first.display(), second.display())]
    Clash {
        first: PathBuf,
        second: PathBuf,
        message: String,
    },
}

/// The text of a YAML file, read only if it is a regular file within the
/// cap, so a FIFO where a scenario belongs is an error at once, not a hang.
pub fn text(path: &Path) -> Result<String, YamlError> {
    Ok(fsread::read_text(path, YAML_CAP, "a YAML file")?)
}

pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    parse(path, &text(path)?)
}

pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| {
        let Some(at) = e.location() else {
            // Only a check on the whole document has no place to point at.
            return YamlError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            };
        };
        let rendered = e.to_string();
        // serde-saphyr renders "error: line L column C: message" and then a
        // snippet that calls the file "<input>".
        let mut lines = rendered.lines();
        let head = lines.next().unwrap_or_default();
        let message = head
            .split_once(": ")
            .and_then(|(_, rest)| rest.split_once(": ").map(|(_, m)| m))
            .unwrap_or(head)
            .to_string();
        let snippet = lines
            .map(|l| l.replace("<input>", &path.display().to_string()))
            .collect::<Vec<_>>()
            .join("\n");
        YamlError::Syntax {
            path: path.to_path_buf(),
            line: at.line(),
            column: at.column(),
            message,
            snippet,
        }
    })
}

/// An error found after parsing (a check across fields), shown like the
/// parser's own: `file:line:column: message` and the line with a caret.
pub fn located(path: &Path, text: &str, at: serde_saphyr::Location, message: String) -> YamlError {
    located_at(path, text, (at.line(), at.column()), message)
}

fn located_at(path: &Path, text: &str, (line, column): (u64, u64), message: String) -> YamlError {
    let source = text
        .lines()
        .nth((line as usize).saturating_sub(1))
        .unwrap_or_default();
    let gutter = " ".repeat(line.to_string().len());
    let caret = " ".repeat((column as usize).saturating_sub(1));
    let snippet = format!(
        "{gutter}--> {}:{line}:{column}\n{gutter} |\n{line} | {source}\n{gutter} | {caret}^ {message}\n{gutter} |",
        path.display()
    );
    YamlError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message,
        snippet,
    }
}

/// The inputs in a folder, sorted for a stable trial order: files named
/// `<name>.yaml` or `<name>.yml`. Hidden files (`.x.yaml`, and editors'
/// lock files such as Emacs's `.#x.yaml`) are not inputs, nor is anything
/// else (`x.yaml~`, `x.yaml.swp`, `x.yaml.orig`, a README). A name that is
/// not UTF-8 is kept, and so is a directory or FIFO called `x.yaml`: loading
/// them then says what is wrong with them, where skipping them would hide
/// a scenario without a word.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, YamlError> {
    let io = |source| YamlError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(dir).map_err(io)?;
    if !meta.is_dir() {
        let ft = meta.file_type();
        return Err(YamlError::NotADirectory {
            path: dir.to_path_buf(),
            kind: if ft.is_file() {
                "a regular file"
            } else {
                fsread::kind_of(&ft)
            },
        });
    }
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if is_input_name(&entry.file_name()) {
            v.push(entry.path());
        }
    }
    v.sort();
    Ok(v)
}

fn is_input_name(name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let b = name.as_bytes();
    let stem = b.strip_suffix(b".yaml").or_else(|| b.strip_suffix(b".yml"));
    !b.starts_with(b".") && stem.is_some_and(|s| !s.is_empty())
}

/// What a file's name may be once it names a trial (`<kernel>::<scenario>`).
pub struct NameRule {
    /// Allowed besides ASCII letters and digits (which must come first, so
    /// a name never reads as an option or a path).
    pub punctuation: &'static str,
    /// What the name becomes, for the message.
    pub becomes: &'static str,
}

/// The name a file gives its scenario or kernel: its name without the
/// extension, which must be UTF-8 and keep to the rule.
pub fn name_of(path: &Path, rule: &NameRule) -> Result<String, YamlError> {
    let allowed: Vec<String> = rule.punctuation.chars().map(String::from).collect();
    let allowed = allowed.join(" ");
    let invalid = |message: String| YamlError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let stem = path.file_stem().unwrap_or_default();
    let Some(name) = stem.to_str() else {
        return Err(invalid(format!(
            "the file name is not UTF-8; it becomes {}, so use letters, digits and {allowed}",
            rule.becomes
        )));
    };
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || rule.punctuation.contains(c));
    if !(first_ok && rest_ok) {
        return Err(invalid(format!(
            "file name {name:?}: use letters, digits and {allowed}, starting with a letter or digit (it becomes {})",
            rule.becomes
        )));
    }
    Ok(name.to_string())
}

/// Names must be unique in a folder: two trials under one name would
/// share a result, and one's failure could hide behind the other's pass.
pub fn check_unique<'a>(
    named: impl IntoIterator<Item = (&'a str, &'a Path)>,
    what: &str,
) -> Result<(), YamlError> {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for (name, path) in named {
        if let Some(first) = seen.get(name) {
            return Err(YamlError::Clash {
                first: first.to_path_buf(),
                second: path.to_path_buf(),
                message: format!(
                    "both give the {what} name {name:?}, and one would hide the other's results; rename one"
                ),
            });
        }
        seen.insert(name, path);
    }
    Ok(())
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
pub(crate) mod tests;
