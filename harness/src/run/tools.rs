//! The programs a kernel's guest runs besides the agent: its Debian
//! suite's bpftool, fetched (once, into the cache) only when a selected
//! scenario runs it.

use crate::boot::tools::Bpftool;
use crate::debian::program::{self, Wanted};
use crate::debian::{DebianError, Suite};
use crate::inputs::scenario::Scenario;
use crate::inputs::source::KernelSource;
use crate::run::select::SelectedKernel;
use crate::support::cache::Cache;

pub fn bpftool(k: &SelectedKernel, scenarios: &[&Scenario], cache: &Cache, mirror: Option<&str>) -> Bpftool {
    if !scenarios.iter().any(|s| s.steps.iter().any(|st| st.uses_bpftool())) {
        return Bpftool::Absent("no scenario runs it".into());
    }
    let KernelSource::Debian(d) = &k.spec.source else {
        return Bpftool::Absent(
            "bpftool comes from the kernel's Debian suite, and this kernel is no Debian package"
                .into(),
        );
    };
    let suite = match Suite::open(cache, &d.suite, mirror) {
        Ok(s) => s,
        Err(e) => return Bpftool::Failed(e.to_string()),
    };
    let wanted = Wanted {
        packages: &["bpftool"],
        binary: "usr/sbin/bpftool",
        dir: "debian/programs/bpftool",
        memo: "bpftool",
    };
    match program::extract(&suite, cache, &wanted, &mut |_| {}) {
        Ok(p) => Bpftool::Available(p),
        Err(program::ProgramError::Debian(DebianError::NotFound { .. })) => {
            Bpftool::Absent(format!("Debian {} has no bpftool package", d.suite))
        }
        Err(e) => Bpftool::Failed(e.to_string()),
    }
}
