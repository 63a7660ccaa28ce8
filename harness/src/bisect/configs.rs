//! Bisecting two .configs of one tree: the smallest set of options whose
//! change from the good config to the bad one breaks the scenarios, after
//! ktest.pl's config_bisect. Every candidate is the good config with some
//! options set to their bad values, then `make olddefconfig`, so Kconfig
//! dependencies decide what a change really changes: the *effective*
//! change (what differs from the good config afterwards) is what was
//! tested, and two candidates with the same final config are one test.
//!
//! The search halves while one half alone breaks it, then drops options
//! one at a time while the rest still breaks it: the result is
//! 1-minimal (without any one of its options, the config passes or
//! cannot be built).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::Verdict;

/// One option's values in the two configs; None: absent from it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Change {
    pub option: String,
    pub good: Option<String>,
    pub bad: Option<String>,
}

fn shown(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(absent)")
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} -> {}",
            self.option,
            shown(&self.good),
            shown(&self.bad)
        )
    }
}

/// The options whose values differ, by name.
pub fn diff(good: &BTreeMap<String, String>, bad: &BTreeMap<String, String>) -> Vec<Change> {
    let mut names: Vec<&String> = good.keys().chain(bad.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| good.get(*n) != bad.get(*n))
        .map(|n| Change {
            option: n.clone(),
            good: good.get(n).cloned(),
            bad: bad.get(n).cloned(),
        })
        .collect()
}

fn option_of(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("# ") {
        return rest.strip_suffix(" is not set");
    }
    line.split_once('=')
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CONFIG_"))
}

/// The good config's text with `changes` set to their bad values (an
/// option absent from the bad config is left out).
pub fn candidate(good_text: &str, changes: &[Change]) -> String {
    let by_name: BTreeMap<&str, &Change> = changes.iter().map(|c| (c.option.as_str(), c)).collect();
    let mut out = String::new();
    for line in good_text.lines() {
        if option_of(line).is_some_and(|o| by_name.contains_key(o)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for c in changes {
        match c.bad.as_deref() {
            None => {}
            Some("n") => out.push_str(&format!("# {} is not set\n", c.option)),
            Some(v) => out.push_str(&format!("{}={v}\n", c.option)),
        }
    }
    out
}

/// What one candidate did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub verdict: Verdict,
    /// How its final config differs from the good end's.
    pub effective: Vec<Change>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minimal {
    /// The options to change.
    pub options: Vec<Change>,
    /// What changing them changes, Kconfig's dependencies included.
    pub effective: Vec<Change>,
    /// Candidates that could not be built or booted (counted as not bad).
    pub untestable: usize,
}

/// Finds a 1-minimal subset of `all` that still tests bad; `all` itself
/// must test bad (the bad end). `test` is called once per distinct
/// request; the caller folds requests with the same final config.
pub fn minimize<E>(
    all: &[Change],
    test: &mut dyn FnMut(&[Change]) -> Result<Probe, E>,
) -> Result<Minimal, E> {
    let mut untestable = 0;
    let mut probe = |set: &[Change], untestable: &mut usize| -> Result<bool, E> {
        let p = test(set)?;
        if p.verdict == Verdict::Skip {
            *untestable += 1;
        }
        Ok(p.verdict == Verdict::Bad)
    };
    let mut cur = all.to_vec();
    while cur.len() > 1 {
        let (a, b) = cur.split_at(cur.len() / 2);
        if probe(a, &mut untestable)? {
            cur = a.to_vec();
        } else if probe(b, &mut untestable)? {
            cur = b.to_vec();
        } else {
            break;
        }
    }
    let mut i = 0;
    while cur.len() > 1 && i < cur.len() {
        let mut without = cur.clone();
        without.remove(i);
        if probe(&without, &mut untestable)? {
            cur = without;
        } else {
            i += 1;
        }
    }
    let effective = test(&cur)?.effective;
    Ok(Minimal {
        options: cur,
        effective,
        untestable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ch(o: &str) -> Change {
        Change {
            option: o.into(),
            good: Some("y".into()),
            bad: Some("n".into()),
        }
    }

    #[test]
    fn the_difference_and_a_candidate() {
        let good = m(&[("CONFIG_A", "y"), ("CONFIG_B", "y"), ("CONFIG_C", "m")]);
        let bad = m(&[("CONFIG_A", "y"), ("CONFIG_B", "n"), ("CONFIG_D", "1")]);
        let d = diff(&good, &bad);
        let names: Vec<String> = d.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            names,
            [
                "CONFIG_B: y -> n",
                "CONFIG_C: m -> (absent)",
                "CONFIG_D: (absent) -> 1"
            ]
        );
        let text = "# comment\nCONFIG_A=y\nCONFIG_B=y\nCONFIG_C=m\n";
        assert_eq!(
            candidate(text, &d),
            "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_D=1\n"
        );
    }

    /// A fake kernel: bad when every option of `culprits` is changed; a
    /// change of "DEP" drags "CHILD" with it (Kconfig).
    fn fake(culprits: &'static [&'static str]) -> impl FnMut(&[Change]) -> Result<Probe, ()> {
        move |set: &[Change]| {
            let mut eff = set.to_vec();
            if set.iter().any(|c| c.option == "DEP") && !set.iter().any(|c| c.option == "CHILD") {
                eff.push(ch("CHILD"));
            }
            let bad = culprits.iter().all(|c| eff.iter().any(|e| e.option == *c));
            Ok(Probe {
                verdict: if bad { Verdict::Bad } else { Verdict::Good },
                effective: eff,
            })
        }
    }

    fn names(v: &[Change]) -> Vec<&str> {
        v.iter().map(|c| c.option.as_str()).collect()
    }

    #[test]
    fn one_culprit_among_many_by_halving() {
        let all: Vec<Change> = (0..16).map(|i| ch(&format!("O{i:02}"))).collect();
        let mut calls = 0;
        let mut f = fake(&["O11"]);
        let r = minimize(&all, &mut |s| {
            calls += 1;
            f(s)
        })
        .unwrap();
        assert_eq!(names(&r.options), ["O11"]);
        assert!(calls <= 10, "{calls} tests for 16 options");
    }

    #[test]
    fn two_that_only_break_together_and_dependencies_followed() {
        let all: Vec<Change> = ["A", "B", "C", "D", "E", "F"]
            .iter()
            .map(|o| ch(o))
            .collect();
        let r = minimize(&all, &mut fake(&["B", "E"])).unwrap();
        assert_eq!(names(&r.options), ["B", "E"]);
        // Asking for DEP alone also changes CHILD: the effective change
        // says so, and CHILD need not be asked for.
        let all = vec![ch("CHILD"), ch("DEP"), ch("X")];
        let r = minimize(&all, &mut fake(&["CHILD"])).unwrap();
        assert_eq!(names(&r.options), ["CHILD"]);
        let all = vec![ch("DEP"), ch("X")];
        let r = minimize(&all, &mut fake(&["CHILD"])).unwrap();
        assert_eq!(names(&r.options), ["DEP"]);
        assert_eq!(names(&r.effective), ["DEP", "CHILD"]);
    }
}
