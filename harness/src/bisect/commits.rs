//! Bisecting commits: both ends are tested first (good must pass, bad
//! must fail), then git bisect picks each step in btfvm's worktree and is
//! told its verdict. When to stop is read from refs/bisect/*, not from
//! git's messages: the candidates are the commits reachable from the bad
//! mark and from no good one; when only the bad one (and skipped ones)
//! are left, the answer is known.

use super::git::{BisectRefs, Git, GitError, Sha};
use super::journal::{Journal, JournalError, Step};
use super::{Role, Tested, Verdict};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: Sha,
    pub subject: String,
}

impl Commit {
    pub fn of(git: &Git, sha: Sha) -> Result<Commit, GitError> {
        let subject = git.subject(&sha)?;
        Ok(Commit { sha, subject })
    }
}

/// Progress, for the binary to show.
#[derive(Debug)]
pub enum Event<'a> {
    /// A commit is about to be built and tested; about `left` steps
    /// remain after it.
    Testing {
        commit: &'a Commit,
        role: Role,
        left: u32,
    },
    /// Its verdict came from an earlier, interrupted run.
    Reused { commit: &'a Commit, step: &'a Step },
    Tested {
        commit: &'a Commit,
        tested: &'a Tested,
    },
}

/// The answer.
#[derive(Debug)]
pub enum Found {
    /// The first bad commit, with its step.
    FirstBad { commit: Commit, step: Step },
    /// Skipped commits hide it: it is one of these (git's own answer).
    Among { commits: Vec<Commit> },
}

/// Why a bisection stopped without an answer.
#[derive(Debug, thiserror::Error)]
pub enum Stop<E> {
    /// Testing a step could not be done (the machine, the input, a
    /// signal): nothing was recorded for it.
    #[error(transparent)]
    Step(E),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Ends(String),
}

/// The pure part: from the marks and the candidates, done or not.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    FirstBad(Sha),
    /// Only skipped commits (and the bad one) are left.
    Among(Vec<Sha>),
    /// This many commits are still to be told apart.
    Untested(usize),
}

pub fn progress(refs: &BisectRefs, candidates: &[Sha]) -> Progress {
    let Some(bad) = &refs.bad else {
        return Progress::Untested(candidates.len());
    };
    let untested = candidates
        .iter()
        .filter(|c| *c != bad && !refs.skip.contains(c))
        .count();
    if untested > 0 {
        return Progress::Untested(untested);
    }
    if candidates.iter().all(|c| c == bad) {
        Progress::FirstBad(bad.clone())
    } else {
        // Oldest last in rev-list order; people read them oldest first.
        Progress::Among(candidates.iter().rev().cloned().collect())
    }
}

/// Tests needed to tell `n` untested commits apart (n + 1 possible
/// answers): one per halving, ceil(log2(n + 1)).
pub fn steps_left(n: usize) -> u32 {
    usize::BITS - n.leading_zeros()
}

/// Everything a bisection uses.
pub struct Bisection<'a, E> {
    pub git: &'a Git,
    pub journal: &'a mut Journal,
    /// Builds and tests the commit checked out in the worktree.
    pub test: &'a mut dyn FnMut(&Commit, Role) -> Result<Tested, E>,
    pub on: &'a mut dyn FnMut(Event<'_>),
}

impl<E> Bisection<'_, E> {
    /// The verdict on `c`: the journal's, or tested now and recorded.
    fn verdict(&mut self, c: &Commit, role: Role, left: u32) -> Result<Tested, Stop<E>> {
        if let Some(step) = self.journal.find(&c.sha.0) {
            (self.on)(Event::Reused { commit: c, step });
            return Ok(step.tested.clone());
        }
        (self.on)(Event::Testing {
            commit: c,
            role,
            left,
        });
        if self.git.head()? != c.sha {
            self.git.checkout(&c.sha)?;
        }
        let tested = (self.test)(c, role).map_err(Stop::Step)?;
        (self.on)(Event::Tested {
            commit: c,
            tested: &tested,
        });
        self.journal
            .add(&c.sha.0, &c.subject, role, tested.clone())?;
        Ok(tested)
    }

    fn check_end(&mut self, c: &Commit, role: Role) -> Result<(), Stop<E>> {
        let t = self.verdict(c, role, 0)?;
        let (want, name) = match role {
            Role::Good => (Verdict::Good, "good"),
            _ => (Verdict::Bad, "bad"),
        };
        if t.verdict == want {
            return Ok(());
        }
        let what = match t.verdict {
            Verdict::Good => "passes",
            Verdict::Bad => "fails",
            Verdict::Skip => "cannot be tested",
        };
        Err(Stop::Ends(format!(
            "the {name} end {} ({}) {what}, so there is nothing to bisect:\n  {}",
            c.sha.short(),
            c.subject,
            t.reason.replace('\n', "\n  ")
        )))
    }

    fn save_log(&mut self) -> Result<(), Stop<E>> {
        let log = self.git.bisect_log()?;
        self.journal.write("bisect.log", log.as_bytes())?;
        Ok(())
    }

    /// Runs the bisection between `good` and `bad` to its answer.
    pub fn run(&mut self, good: &Commit, bad: &Commit) -> Result<Found, Stop<E>> {
        if !self.git.is_ancestor(&good.sha, &bad.sha)? {
            return Err(Stop::Ends(format!(
                "the good commit {} is no ancestor of the bad commit {}: give a good commit \
                 from the bad one's history",
                good.sha.short(),
                bad.sha.short()
            )));
        }
        self.check_end(good, Role::Good)?;
        self.check_end(bad, Role::Bad)?;
        self.git.bisect_start(&bad.sha, &good.sha)?;
        // Marks recorded by an interrupted run, re-told (git started over).
        loop {
            let refs = self.git.bisect_refs()?;
            let bad_ref = refs.bad.clone().unwrap_or_else(|| bad.sha.clone());
            let candidates = self.git.rev_list(&bad_ref, &refs.good)?;
            match progress(&refs, &candidates) {
                Progress::FirstBad(sha) => {
                    self.save_log()?;
                    self.git.bisect_reset()?;
                    let commit = Commit::of(self.git, sha)?;
                    let step =
                        self.journal.find(&commit.sha.0).cloned().ok_or_else(|| {
                            Stop::Ends("the first bad commit has no record".into())
                        })?;
                    return Ok(Found::FirstBad { commit, step });
                }
                Progress::Among(shas) => {
                    self.save_log()?;
                    self.git.bisect_reset()?;
                    let commits = shas
                        .into_iter()
                        .map(|s| Commit::of(self.git, s))
                        .collect::<Result<_, _>>()?;
                    return Ok(Found::Among { commits });
                }
                Progress::Untested(n) => {
                    let head = Commit::of(self.git, self.git.head()?)?;
                    let t = self.verdict(&head, Role::Step, steps_left(n).saturating_sub(1))?;
                    self.git.bisect_mark(t.verdict.term(), &head.sha)?;
                    self.save_log()?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Sha {
        Sha(x.into())
    }

    #[test]
    fn done_is_read_from_the_marks() {
        let mut refs = BisectRefs {
            bad: Some(s("c")),
            good: vec![s("a")],
            skip: vec![],
        };
        assert_eq!(progress(&refs, &[s("c"), s("b")]), Progress::Untested(1));
        assert_eq!(progress(&refs, &[s("c")]), Progress::FirstBad(s("c")));
        refs.skip.push(s("b"));
        assert_eq!(
            progress(&refs, &[s("c"), s("b")]),
            Progress::Among(vec![s("b"), s("c")])
        );
        let none = BisectRefs::default();
        assert_eq!(progress(&none, &[s("a")]), Progress::Untested(1));
    }

    #[test]
    fn about_one_step_per_halving() {
        assert_eq!(steps_left(0), 0);
        assert_eq!(steps_left(1), 1);
        assert_eq!(steps_left(2), 2);
        assert_eq!(steps_left(3), 2);
        assert_eq!(steps_left(4), 3);
        assert_eq!(steps_left(1000), 10);
    }
}
