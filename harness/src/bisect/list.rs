//! Bisecting an ordered list (kernels, paholes): the first item whose
//! verdict differs from the first item's. Both ends are tested first;
//! then the middle of the stretch between the last item known to agree
//! with the first and the first known to differ. An item that cannot be
//! tested is stepped around; if only such items are left in the stretch,
//! the answer is the stretch.

use super::Verdict;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Test this item.
    Test(usize),
    /// Item `at` is the first to differ; `before` agrees with the first.
    Flip { before: usize, at: usize },
    /// The flip is after `before` and at or before `at`, hidden by items
    /// that could not be tested.
    Among { before: usize, at: usize },
    /// The last item agrees with the first: nothing flips.
    NoFlip,
    /// An end cannot be tested (its index).
    EndUntestable(usize),
}

#[derive(Debug, Clone)]
pub struct ListSearch {
    verdicts: Vec<Option<Verdict>>,
}

impl ListSearch {
    /// `n` must be at least 2 (the caller says so to the user).
    pub fn new(n: usize) -> ListSearch {
        ListSearch {
            verdicts: vec![None; n],
        }
    }

    pub fn set(&mut self, i: usize, v: Verdict) {
        if let Some(slot) = self.verdicts.get_mut(i) {
            *slot = Some(v);
        }
    }

    pub fn next(&self) -> Next {
        let v = &self.verdicts;
        let last = v.len().saturating_sub(1);
        let base = match v.first().copied().flatten() {
            None => return Next::Test(0),
            Some(Verdict::Skip) => return Next::EndUntestable(0),
            Some(b) => b,
        };
        match v[last] {
            None => return Next::Test(last),
            Some(Verdict::Skip) => return Next::EndUntestable(last),
            Some(l) if l == base => return Next::NoFlip,
            Some(_) => {}
        }
        let differs =
            |x: &Option<Verdict>| matches!(x, Some(y) if *y != base && *y != Verdict::Skip);
        let hi = v.iter().position(differs).unwrap_or(last);
        let lo = (0..hi).rev().find(|&i| v[i] == Some(base)).unwrap_or(0);
        let untested: Vec<usize> = (lo + 1..hi).filter(|&i| v[i].is_none()).collect();
        if untested.is_empty() {
            return if (lo + 1..hi).any(|i| v[i] == Some(Verdict::Skip)) {
                Next::Among { before: lo, at: hi }
            } else {
                Next::Flip { before: lo, at: hi }
            };
        }
        let mid = (lo + hi) / 2;
        let pick = untested
            .iter()
            .copied()
            .min_by_key(|&i| i.abs_diff(mid))
            .unwrap_or(untested[0]);
        Next::Test(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    /// Runs the search against a list of true verdicts; the order tested.
    fn drive(truth: &[Verdict]) -> (Next, Vec<usize>) {
        let mut s = ListSearch::new(truth.len());
        let mut order = Vec::new();
        loop {
            match s.next() {
                Next::Test(i) => {
                    assert!(!order.contains(&i), "tested {i} twice");
                    order.push(i);
                    s.set(i, truth[i]);
                }
                other => return (other, order),
            }
        }
    }

    #[test]
    fn ends_first_then_halves() {
        let (n, order) = drive(&[Good, Good, Good, Good, Good, Bad, Bad, Bad]);
        assert_eq!(n, Next::Flip { before: 4, at: 5 });
        assert_eq!(&order[..2], &[0, 7]);
        assert!(order.len() <= 5, "{order:?}");
        // Either direction flips.
        let (n, _) = drive(&[Bad, Good, Good]);
        assert_eq!(n, Next::Flip { before: 0, at: 1 });
        let (n, order) = drive(&[Good, Bad]);
        assert_eq!((n, order), (Next::Flip { before: 0, at: 1 }, vec![0, 1]));
    }

    #[test]
    fn untestable_items_are_stepped_around_or_named() {
        let (n, _) = drive(&[Good, Skip, Good, Bad, Bad]);
        assert_eq!(n, Next::Flip { before: 2, at: 3 });
        let (n, _) = drive(&[Good, Good, Skip, Bad]);
        assert_eq!(n, Next::Among { before: 1, at: 3 });
        assert_eq!(drive(&[Skip, Bad]).0, Next::EndUntestable(0));
        assert_eq!(drive(&[Good, Skip]).0, Next::EndUntestable(1));
        assert_eq!(drive(&[Good, Bad, Good]).0, Next::NoFlip);
    }
}
