//! Reading the project's YAML files with errors that name the file, line
//! and column, and show the offending line.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
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
}

pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
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
            line,
            column,
            message,
            snippet,
        }
    })
}

/// The `*.yaml` files of a directory, sorted, for a stable trial order.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, YamlError> {
    let rd = std::fs::read_dir(dir).map_err(|source| YamlError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
    }

    #[test]
    fn errors_carry_file_line_column() {
        let e = parse::<T>(Path::new("scenarios/x.yaml"), "name: a\nnmae: b\n").unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("scenarios/x.yaml:2:1: unknown field `nmae`"),
            "{s}"
        );
        assert!(s.contains("--> scenarios/x.yaml:2:1"), "{s}");
        match e {
            YamlError::Syntax { line, column, .. } => assert_eq!((line, column), (2, 1)),
            _ => panic!(),
        }
    }

    #[test]
    fn syntax_errors_too() {
        let e = parse::<T>(Path::new("k.yaml"), "name: [a\n").unwrap_err();
        assert!(matches!(e, YamlError::Syntax { line: 1.., .. }), "{e}");
    }
}
