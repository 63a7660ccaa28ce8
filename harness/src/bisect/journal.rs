//! A bisection's record on disk: the question it answers and every step
//! tested so far, rewritten whole after each step (so an interruption
//! loses at most the step under way), and its result at the end. The same
//! question asked again reuses the record: a resumed bisection tests
//! nothing twice.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Role, Tested};
use crate::support::cache::{write_atomic, CacheError};
use crate::support::hex;

/// Bump when the record's form changes.
pub const SCHEMA: u32 = 1;

/// The record of a few dozen steps is a few hundred KB.
const JOURNAL_CAP: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{}: not a btfvm bisect record ({message}); remove it or give another --out", path.display())]
    Damaged { path: PathBuf, message: String },
    #[error(
        "{} holds the record of another bisection:\n  it asked:  {theirs}\n  this asks: {ours}\n\
         give another --out, or remove the folder to start over",
        dir.display()
    )]
    Other {
        dir: PathBuf,
        theirs: String,
        ours: String,
    },
}

/// What a bisection asks, in words that change whenever its answer could:
/// the tree and both ends, the filter, the scenarios' content, fragments,
/// pahole, tries, what a boot failure counts as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// "commits", "kernels", "paholes" or "configs".
    pub kind: String,
    /// One line per part, `name: value`.
    pub parts: Vec<String>,
}

impl Question {
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.kind.as_bytes());
        for p in &self.parts {
            h.update([0]);
            h.update(p.as_bytes());
        }
        hex(&h.finalize()[..8])
    }

    pub fn summary(&self) -> String {
        format!("{} bisect; {}", self.kind, self.parts.join("; "))
    }
}

/// One tested step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// What was tested: a commit hash, a list item, a config's hash.
    pub item: String,
    /// For people: a commit's subject, a kernel word, the options changed.
    pub label: String,
    pub role: Role,
    #[serde(flatten)]
    pub tested: Tested,
    pub at_unix: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    schema: u32,
    question: Question,
    steps: Vec<Step>,
}

/// The folder of one bisection: journal.json (question and steps),
/// result.json at the end, and whatever the caller keeps there (git's
/// bisect log, the steps' reports).
#[derive(Debug)]
pub struct Journal {
    pub dir: PathBuf,
    record: Record,
    /// Steps that came from an earlier run of the same question.
    pub resumed: usize,
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Journal {
    /// The record in `dir` for `question`: the earlier one if it asked the
    /// same, a new one if the folder has none; another question's record
    /// is an error (it is never overwritten).
    pub fn open(dir: &Path, question: Question) -> Result<Journal, JournalError> {
        fs::create_dir_all(dir).map_err(|e| CacheError::io("cannot create", dir, e))?;
        let path = dir.join("journal.json");
        let record = match fs::metadata(&path) {
            Err(_) => Record {
                schema: SCHEMA,
                question,
                steps: Vec::new(),
            },
            Ok(_) => {
                let text = crate::support::fsread::read_text(&path, JOURNAL_CAP, "a bisect record")
                    .map_err(|e| JournalError::Damaged {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                let old: Record =
                    serde_json::from_str(&text).map_err(|e| JournalError::Damaged {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                if old.schema != SCHEMA || old.question != question {
                    return Err(JournalError::Other {
                        dir: dir.to_path_buf(),
                        theirs: old.question.summary(),
                        ours: question.summary(),
                    });
                }
                old
            }
        };
        let resumed = record.steps.len();
        let j = Journal {
            dir: dir.to_path_buf(),
            record,
            resumed,
        };
        j.save()?;
        Ok(j)
    }

    pub fn question(&self) -> &Question {
        &self.record.question
    }

    pub fn steps(&self) -> &[Step] {
        &self.record.steps
    }

    /// The verdict recorded for `item`, if it was tested.
    pub fn find(&self, item: &str) -> Option<&Step> {
        self.record.steps.iter().find(|s| s.item == item)
    }

    pub fn add(
        &mut self,
        item: &str,
        label: &str,
        role: Role,
        tested: Tested,
    ) -> Result<&Step, JournalError> {
        self.record.steps.push(Step {
            item: item.to_string(),
            label: label.to_string(),
            role,
            tested,
            at_unix: now_unix(),
        });
        self.save()?;
        Ok(self.record.steps.last().expect("just pushed"))
    }

    fn save(&self) -> Result<(), JournalError> {
        let json = serde_json::to_vec_pretty(&self.record).map_err(|e| JournalError::Damaged {
            path: self.dir.join("journal.json"),
            message: e.to_string(),
        })?;
        write_atomic(&self.dir.join("journal.json"), &json)?;
        Ok(())
    }

    /// Writes a file of the bisection's folder (atomically).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, JournalError> {
        let p = self.dir.join(name);
        write_atomic(&p, bytes)?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bisect::Verdict;

    fn q(parts: &[&str]) -> Question {
        Question {
            kind: "commits".into(),
            parts: parts.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn tested(v: Verdict) -> Tested {
        Tested {
            verdict: v,
            reason: "r".into(),
            trial: None,
            build_seconds: Some(1.0),
            build_cached: Some(false),
            pahole: None,
            tries: 1,
            seconds: 2.0,
        }
    }

    #[test]
    fn the_same_question_resumes_and_another_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut j = Journal::open(d.path(), q(&["tree: /t", "good: a"])).unwrap();
        assert_eq!(j.resumed, 0);
        j.add("abc", "subject", Role::Good, tested(Verdict::Good))
            .unwrap();
        drop(j);
        let j = Journal::open(d.path(), q(&["tree: /t", "good: a"])).unwrap();
        assert_eq!(j.resumed, 1);
        assert_eq!(j.find("abc").unwrap().tested.verdict, Verdict::Good);
        let e = Journal::open(d.path(), q(&["tree: /t", "good: b"])).unwrap_err();
        assert!(
            e.to_string()
                .contains("it asked:  commits bisect; tree: /t; good: a"),
            "{e}"
        );
        // Refused means untouched.
        assert!(fs::read_to_string(d.path().join("journal.json"))
            .unwrap()
            .contains("abc"));
        fs::write(d.path().join("journal.json"), "{").unwrap();
        let e = Journal::open(d.path(), q(&["tree: /t"])).unwrap_err();
        assert!(matches!(e, JournalError::Damaged { .. }), "{e}");
        assert_ne!(q(&["a"]).key(), q(&["b"]).key());
    }
}
