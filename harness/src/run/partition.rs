//! Shards of a run (`--partition hash:M/N` or `count:M/N`). A kernel's
//! boot is the unit: two shards never boot the same kernel, and every
//! kernel is in exactly one shard. `hash` puts a kernel in the shard its
//! name hashes to, so adding a kernel never moves another; `count` deals
//! the kernels out in order, so shards are even but move as kernels come.

use std::fmt;

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Hash,
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub scheme: Scheme,
    /// 1-based shard number.
    pub shard: u64,
    pub of: u64,
}

impl std::str::FromStr for Partition {
    type Err = String;
    fn from_str(s: &str) -> Result<Partition, String> {
        let bad =
            || format!("{s:?}: expected hash:M/N or count:M/N with 1 <= M <= N, e.g. hash:1/3");
        let (scheme, rest) = s.split_once(':').ok_or_else(bad)?;
        let scheme = match scheme {
            "hash" => Scheme::Hash,
            "count" => Scheme::Count,
            _ => return Err(bad()),
        };
        let (m, n) = rest.split_once('/').ok_or_else(bad)?;
        let (shard, of): (u64, u64) = (
            m.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if of == 0 || shard == 0 || shard > of {
            return Err(bad());
        }
        Ok(Partition { scheme, shard, of })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Hash => "hash",
            Scheme::Count => "count",
        };
        write!(f, "{scheme}:{}/{}", self.shard, self.of)
    }
}

fn bucket(name: &str, of: u64) -> u64 {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b) % of
}

impl Partition {
    /// Whether the kernel at `index` (in selection order) named `name` is
    /// this shard's.
    pub fn takes(&self, index: usize, name: &str) -> bool {
        let slot = match self.scheme {
            Scheme::Hash => bucket(name, self.of),
            Scheme::Count => index as u64 % self.of,
        };
        slot + 1 == self.shard
    }

    /// This shard's part of `items`, named by `name`.
    pub fn select<T>(&self, items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(i, t)| self.takes(*i, name(t)))
            .map(|(_, t)| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("kernel-{i}")).collect()
    }

    #[test]
    fn every_kernel_lands_in_exactly_one_shard() {
        for scheme in ["hash", "count"] {
            let all = kernels(23);
            let mut seen: Vec<String> = Vec::new();
            for m in 1..=4 {
                let p: Partition = format!("{scheme}:{m}/4").parse().unwrap();
                seen.extend(p.select(all.clone(), |k| k.as_str()));
            }
            seen.sort();
            let mut want = all.clone();
            want.sort();
            assert_eq!(seen, want, "{scheme}");
        }
    }

    #[test]
    fn hash_shards_stay_put_as_kernels_are_added() {
        let p: Partition = "hash:2/3".parse().unwrap();
        let before = p.select(kernels(10), |k| k.as_str());
        let after = p.select(kernels(20), |k| k.as_str());
        assert!(
            before.iter().all(|k| after.contains(k)),
            "{before:?} {after:?}"
        );
        let c: Partition = "count:1/2".parse().unwrap();
        assert_eq!(
            c.select(kernels(5), |k| k.as_str()),
            ["kernel-0", "kernel-2", "kernel-4"]
        );
    }

    #[test]
    fn bad_partitions_are_refused() {
        for bad in [
            "hash:0/2", "hash:3/2", "hash:1/0", "even:1/2", "hash:1", "hash:a/b", "1/2",
        ] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
        assert_eq!(
            "count:2/5".parse::<Partition>().unwrap().to_string(),
            "count:2/5"
        );
    }
}
