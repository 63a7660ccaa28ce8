//! The string section, and the combined string space of split BTF.

use crate::error::BtfError;

/// `BTF_MAX_NAME_OFFSET`: the kernel rejects string sections longer than
/// this plus one.
pub const MAX_NAME_OFFSET: u32 = 0x00ff_ffff;

/// Checks a string section the way the kernel's `btf_parse_str_sec` does.
pub(crate) fn check_section(s: &[u8], split: bool) -> Result<(), BtfError> {
    // A module that adds no names of its own may have no string section: the
    // kernel accepts an empty one for split BTF only.
    if split && s.is_empty() {
        return Ok(());
    }
    let str_len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    let (Some(&first), Some(&last)) = (s.first(), s.last()) else {
        return Err(BtfError::StringsEmpty);
    };
    if str_len - 1 > MAX_NAME_OFFSET {
        return Err(BtfError::StringsTooLong {
            str_len,
            max: MAX_NAME_OFFSET + 1,
        });
    }
    // The terminating NUL is what makes every in-range offset a C string.
    if last != 0 {
        return Err(BtfError::StringsNotNulTerminated { str_len, last });
    }
    // Offset 0 is the empty name of anonymous types; in split BTF offset 0
    // falls in the base, so only a base needs the leading NUL.
    if !split && first != 0 {
        return Err(BtfError::StringsNoLeadingNul { found: first });
    }
    Ok(())
}

/// Why a name offset does not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupError {
    OutOfRange { limit: u64 },
    NotTerminated,
}

/// The string space a name offset indexes: offsets below `base.len()` are
/// the base's strings, the rest are `own` shifted by `base.len()` (libbpf
/// `btf__str_by_offset`, kernel `btf_str_by_offset`). `base` is empty for a
/// base BTF.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StrSpace<'a> {
    pub base: &'a [u8],
    pub own: &'a [u8],
}

impl<'a> StrSpace<'a> {
    pub fn len(&self) -> u64 {
        self.base.len() as u64 + self.own.len() as u64
    }

    /// The bytes of the string at `off`, without its NUL.
    pub fn lookup(&self, off: u32) -> Result<&'a [u8], LookupError> {
        let (_, tail) = self.tail(off)?;
        let nul = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or(LookupError::NotTerminated)?;
        Ok(&tail[..nul])
    }

    /// As [`StrSpace::lookup`] succeeds, without finding the string's end
    /// when its section ends in NUL (then every offset in it starts a
    /// terminated string). Why: vmlinux has about 600,000 names; scanning
    /// each to its NUL was half of parsing it, and under TCG parsing is
    /// most of the first check that needs vmlinux's BTF (145 ms).
    pub fn check(&self, off: u32) -> Result<(), LookupError> {
        let (section, tail) = self.tail(off)?;
        if section.last() == Some(&0) || tail.contains(&0) {
            Ok(())
        } else {
            Err(LookupError::NotTerminated)
        }
    }

    /// The section `off` falls in, and its bytes from `off` on (not empty).
    fn tail(&self, off: u32) -> Result<(&'a [u8], &'a [u8]), LookupError> {
        let off = usize::try_from(off).unwrap_or(usize::MAX);
        let (section, tail) = if off < self.base.len() {
            (self.base, self.base.get(off..))
        } else {
            (self.own, self.own.get(off - self.base.len()..))
        };
        match tail {
            Some(t) if !t.is_empty() => Ok((section, t)),
            _ => Err(LookupError::OutOfRange { limit: self.len() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check` answers as `lookup` does, in a section ending in NUL (where
    /// it skips the scan) and in one that does not.
    #[test]
    fn check_agrees_with_lookup() {
        for (base, own) in [
            (&b"\0ab\0cd\0"[..], &b"ef\0"[..]),
            (&b"\0ab\0cd\0"[..], &b"ef\0gh"[..]),
            (&b"\0ab"[..], &b""[..]),
        ] {
            let sp = StrSpace { base, own };
            for off in 0..12 {
                assert_eq!(
                    sp.check(off),
                    sp.lookup(off).map(|_| ()),
                    "{base:?} {own:?} at {off}"
                );
            }
        }
    }
}
