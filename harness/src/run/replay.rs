//! Judging a kept boot again, without QEMU: its transcript through a fresh
//! watcher, then the same verdict as a live boot. `btfvm replay DIR` uses
//! it, and so do the unit tests that replay the recorded faults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::kept::{self, BootMeta, CONSOLE_FILE, TRANSCRIPT_FILE};
use super::outcome::ScenarioResult;
use super::verdict::{apply_allowlist, map_results};
use crate::vm::transcript::{self, TranscriptError, MAX_TRANSCRIPT_BYTES};
use crate::vm::{BootOutcome, VmEvent};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: not a kept boot: {source}", dir.display())]
    Meta {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Read(#[from] crate::support::fsread::ReadError),
    #[error("{}: {source}", path.display())]
    Transcript {
        path: PathBuf,
        #[source]
        source: TranscriptError,
    },
}

pub struct Replayed {
    pub meta: BootMeta,
    pub outcome: BootOutcome,
    pub results: BTreeMap<String, ScenarioResult>,
}

/// A kept boot's metadata and transcript bytes, read with their limits.
pub fn load(dir: &Path) -> Result<(BootMeta, Vec<u8>), ReplayError> {
    let meta = kept::read_meta(dir).map_err(|source| ReplayError::Meta {
        dir: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(TRANSCRIPT_FILE);
    let bytes =
        crate::support::fsread::read_capped(&path, MAX_TRANSCRIPT_BYTES, "a boot transcript")?;
    Ok((meta, bytes))
}

/// The verdict of a recorded boot, as the live run gave it.
pub fn judge(
    meta: BootMeta,
    transcript: &[u8],
    dir: &Path,
    on_event: &mut dyn FnMut(&VmEvent),
) -> Result<Replayed, ReplayError> {
    let watched = transcript::replay(transcript, meta.timeouts, on_event).map_err(|source| {
        ReplayError::Transcript {
            path: dir.join(TRANSCRIPT_FILE),
            source,
        }
    })?;
    let mut outcome =
        BootOutcome::from_watched(watched, dir.join(CONSOLE_FILE), meta.qemu_stderr.clone());
    outcome.way = meta.way;
    apply_allowlist(&mut outcome.splats, &meta.allow_splats);
    let results = map_results(&meta.planned, &outcome);
    Ok(Replayed {
        meta,
        outcome,
        results,
    })
}

pub fn replay(dir: &Path, on_event: &mut dyn FnMut(&VmEvent)) -> Result<Replayed, ReplayError> {
    let (meta, bytes) = load(dir)?;
    judge(meta, &bytes, dir, on_event)
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
