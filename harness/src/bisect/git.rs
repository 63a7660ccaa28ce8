//! The git a commit bisect needs, in a worktree of btfvm's own: the
//! user's checkout, its index and any bisect of theirs stay as they are
//! (refs/bisect/* and BISECT_* are per worktree since git 2.7).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::child::{self, RunError};
use crate::support::stop::Interrupted;
use crate::support::{interrupt, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{}: not a git repository (btfvm bisect --tree takes a git checkout of a kernel tree)", path.display())]
    NotARepo { path: PathBuf },
    #[error("{}: no commit {rev:?} there ({message})", repo.display())]
    NoRev {
        repo: PathBuf,
        rev: String,
        message: String,
    },
    #[error("git {args} in {}: {message}", dir.display())]
    Failed {
        dir: PathBuf,
        args: String,
        message: String,
    },
    #[error("git cannot be run: {0} (apt-get install git)")]
    Missing(std::io::Error),
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

impl GitError {
    pub fn class(&self) -> ErrorClass {
        match self {
            GitError::NotARepo { .. } | GitError::NoRev { .. } => ErrorClass::Input,
            GitError::Failed { .. } | GitError::Missing(_) => ErrorClass::Environment,
            GitError::Interrupted(i) => i.class(),
        }
    }
}

/// A full commit hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha(pub String);

impl Sha {
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

impl std::fmt::Display for Sha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// git in one folder (a repository or a worktree).
#[derive(Debug, Clone)]
pub struct Git {
    pub dir: PathBuf,
}

/// What git answered: its status and output.
struct Answer {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Git {
    pub fn at(dir: &Path) -> Git {
        Git {
            dir: dir.to_path_buf(),
        }
    }

    fn run(&self, args: &[&str]) -> Result<Answer, GitError> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir);
        // Under `git bisect run` or a hook these point at another
        // repository; the folder alone must decide.
        for v in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX"] {
            cmd.env_remove(v);
        }
        cmd.args([
            "-c",
            "advice.detachedHead=false",
            "-c",
            "core.quotepath=off",
        ])
        .args(args);
        let out = child::output(&mut cmd, &interrupt::requested).map_err(|e| match e {
            RunError::Interrupted(i) => GitError::Interrupted(i),
            RunError::Io(e) => GitError::Missing(e),
        })?;
        Ok(Answer {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }

    /// Runs git and wants it to succeed; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String, GitError> {
        let a = self.run(args)?;
        if a.ok {
            Ok(a.stdout)
        } else {
            Err(GitError::Failed {
                dir: self.dir.clone(),
                args: args.join(" "),
                message: a.stderr,
            })
        }
    }

    /// The repository's top folder; an error naming `dir` if it is none.
    pub fn toplevel(dir: &Path) -> Result<PathBuf, GitError> {
        let a = Git::at(dir).run(&["rev-parse", "--show-toplevel"])?;
        if !a.ok {
            return Err(GitError::NotARepo {
                path: dir.to_path_buf(),
            });
        }
        Ok(PathBuf::from(a.stdout.trim()))
    }

    /// The commit `rev` names.
    pub fn commit(&self, rev: &str) -> Result<Sha, GitError> {
        let spec = format!("{rev}^{{commit}}");
        let a = self.run(&["rev-parse", "--verify", "--quiet", &spec])?;
        if !a.ok || a.stdout.trim().is_empty() {
            return Err(GitError::NoRev {
                repo: self.dir.clone(),
                rev: rev.to_string(),
                message: "git rev-parse --verify found nothing".into(),
            });
        }
        Ok(Sha(a.stdout.trim().to_string()))
    }

    pub fn subject(&self, c: &Sha) -> Result<String, GitError> {
        Ok(self
            .ok(&["log", "-1", "--format=%s", &c.0])?
            .trim()
            .to_string())
    }

    /// Whether `a` is an ancestor of `b`.
    pub fn is_ancestor(&self, a: &Sha, b: &Sha) -> Result<bool, GitError> {
        Ok(self.run(&["merge-base", "--is-ancestor", &a.0, &b.0])?.ok)
    }

    /// A file's text at a commit (`None` if the commit has no such file).
    pub fn show_file(&self, c: &Sha, path: &str) -> Result<Option<String>, GitError> {
        let a = self.run(&["show", &format!("{}:{path}", c.0)])?;
        Ok(a.ok.then_some(a.stdout))
    }

    /// The worktree at `path` on this repository, made (detached at
    /// `at`) if it is not there yet. A folder there that is no worktree of
    /// this repository is an error, never overwritten.
    pub fn worktree(&self, path: &Path, at: &Sha) -> Result<Git, GitError> {
        let wt = Git::at(path);
        if path.exists() {
            let same = wt.run(&["rev-parse", "--git-common-dir"])?;
            let ours = self.run(&["rev-parse", "--git-common-dir"])?;
            let canon = |g: &Git, s: &str| std::fs::canonicalize(g.dir.join(s.trim())).ok();
            if same.ok && canon(&wt, &same.stdout) == canon(self, &ours.stdout) {
                return Ok(wt);
            }
            return Err(GitError::Failed {
                dir: path.to_path_buf(),
                args: "worktree add".into(),
                message: "the folder exists and is no worktree of this repository; remove it"
                    .into(),
            });
        }
        // A worktree whose folder was deleted is still registered.
        let _ = self.run(&["worktree", "prune"]);
        let p = path.display().to_string();
        self.ok(&["worktree", "add", "--detach", &p, &at.0])?;
        Ok(wt)
    }

    pub fn head(&self) -> Result<Sha, GitError> {
        self.commit("HEAD")
    }

    /// Checks out `c`, throwing away any change to tracked files (the
    /// worktree is btfvm's, and builds are out of tree).
    pub fn checkout(&self, c: &Sha) -> Result<(), GitError> {
        self.ok(&["checkout", "--quiet", "--force", "--detach", &c.0])?;
        Ok(())
    }

    /// Whether a bisection is under way in this worktree.
    pub fn bisecting(&self) -> Result<bool, GitError> {
        let p = self.ok(&["rev-parse", "--git-path", "BISECT_START"])?;
        Ok(self.dir.join(p.trim()).exists())
    }

    pub fn bisect_reset(&self) -> Result<(), GitError> {
        if self.bisecting()? {
            self.ok(&["bisect", "reset"])?;
        }
        Ok(())
    }

    pub fn bisect_start(&self, bad: &Sha, good: &Sha) -> Result<(), GitError> {
        self.bisect_reset()?;
        self.ok(&["bisect", "start", &bad.0, &good.0])?;
        Ok(())
    }

    /// Marks a commit. git exits non-zero when only skipped commits are
    /// left; the state then says so, so that is no error here.
    pub fn bisect_mark(&self, term: &str, c: &Sha) -> Result<(), GitError> {
        let a = self.run(&["bisect", term, &c.0])?;
        if a.ok || a.stdout.contains("only 'skip'ped commits left") {
            return Ok(());
        }
        Err(GitError::Failed {
            dir: self.dir.clone(),
            args: format!("bisect {term} {}", c.0),
            message: a.stderr,
        })
    }

    pub fn bisect_log(&self) -> Result<String, GitError> {
        self.ok(&["bisect", "log"])
    }

    /// refs/bisect/* of this worktree: what git has been told so far.
    pub fn bisect_refs(&self) -> Result<BisectRefs, GitError> {
        let out = self.ok(&[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/bisect/",
        ])?;
        Ok(BisectRefs::parse(&out))
    }

    /// Commits reachable from `tip` and from none of `not`.
    pub fn rev_list(&self, tip: &Sha, not: &[Sha]) -> Result<Vec<Sha>, GitError> {
        let mut args = vec!["rev-list".to_string(), tip.0.clone()];
        args.extend(not.iter().map(|s| format!("^{}", s.0)));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(self
            .ok(&refs)?
            .lines()
            .map(|l| Sha(l.trim().to_string()))
            .collect())
    }
}

/// The marks of a bisection, read from its refs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BisectRefs {
    pub bad: Option<Sha>,
    pub good: Vec<Sha>,
    pub skip: Vec<Sha>,
}

impl BisectRefs {
    fn parse(text: &str) -> BisectRefs {
        let mut r = BisectRefs::default();
        for line in text.lines() {
            let Some((sha, name)) = line.split_once(' ') else {
                continue;
            };
            let sha = Sha(sha.to_string());
            match name.strip_prefix("refs/bisect/") {
                Some("bad") => r.bad = Some(sha),
                Some(n) if n.starts_with("good-") => r.good.push(sha),
                Some(n) if n.starts_with("skip-") => r.skip.push(sha),
                _ => {}
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_read_by_their_names() {
        let r = BisectRefs::parse(
            "aaa refs/bisect/bad\nbbb refs/bisect/good-bbb\nccc refs/bisect/skip-ccc\n\
             ddd refs/bisect/good-ddd\n",
        );
        assert_eq!(r.bad, Some(Sha("aaa".into())));
        assert_eq!(r.good, [Sha("bbb".into()), Sha("ddd".into())]);
        assert_eq!(r.skip, [Sha("ccc".into())]);
    }
}
