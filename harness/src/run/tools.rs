//! The programs a kernel's guest runs besides the agent: its Debian
//! suite's bpftool, fetched (once, into the cache) only when a selected
//! scenario runs it.

use btfvm_proto::Variant;

use crate::boot::tools::{Bpftool, Built, BuiltModules};
use crate::debian::program::{self, Wanted};
use crate::debian::{DebianError, Suite};
use crate::inputs::scenario::Scenario;
use crate::inputs::source::KernelSource;
use crate::kbuild::oot::{self, OotError};
use crate::kbuild::BuildEvent;
use crate::kernel::KernelImage;
use crate::run::select::SelectedKernel;
use crate::support::cache::Cache;

pub fn bpftool(
    k: &SelectedKernel,
    scenarios: &[&Scenario],
    cache: &Cache,
    mirror: Option<&str>,
) -> Bpftool {
    if !scenarios
        .iter()
        .any(|s| s.steps.iter().any(|st| st.uses_bpftool()))
    {
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
    // A backports suite's bpftool links against its base suite's libraries.
    let base = match d.suite.strip_suffix("-backports") {
        Some(b) => match Suite::open(cache, b, mirror) {
            Ok(s) => Some(s),
            Err(e) => return Bpftool::Failed(e.to_string()),
        },
        None => None,
    };
    let mut suites = vec![&suite];
    suites.extend(base.as_ref());
    match program::extract(&suites, cache, &wanted, &mut |_| {}) {
        Ok(p) => Bpftool::Available(p),
        Err(program::ProgramError::Debian(DebianError::NotFound { .. })) => {
            Bpftool::Absent(format!("Debian {} has no bpftool package", d.suite))
        }
        Err(e) => Bpftool::Failed(e.to_string()),
    }
}

/// The test module built out of tree for each built variant a scenario
/// loads, against the Debian kernel's own headers.
pub fn built_modules(
    k: &SelectedKernel,
    image: &KernelImage,
    scenarios: &[&Scenario],
    cache: &Cache,
    mirror: Option<&str>,
    events: &mut dyn FnMut(BuildEvent),
) -> BuiltModules {
    let mut wanted: Vec<Variant> = scenarios
        .iter()
        .flat_map(|s| s.modules())
        .map(|(_, v)| v)
        .filter(|v| v.is_built())
        .collect();
    wanted.sort();
    wanted.dedup();
    let mut out = BuiltModules::new();
    for v in wanted {
        let built = match &k.spec.source {
            KernelSource::Debian(d) => {
                let distilled = v == Variant::DistilledBase;
                match oot::build(&d.suite, &image.release, distilled, cache, mirror, events) {
                    Ok(m) => Built::Ready {
                        path: m.ko,
                        btf_bytes: m.btf_bytes,
                        btf_base_types: m.btf_base.map(|(_, n)| n),
                    },
                    Err(OotError::Absent(why)) => Built::Absent(why),
                    Err(e) => Built::Failed(e.to_string()),
                }
            }
            _ => Built::Absent(
                "the test module is built out of tree against a Debian kernel's headers package, and this kernel is no Debian package"
                    .into(),
            ),
        };
        out.insert(v, built);
    }
    out
}

/// What a kernel's boots carry besides its own files.
pub struct Extras {
    pub bpftool: Bpftool,
    pub built: BuiltModules,
    /// How root is had on the SSH target, when the suite runs on one.
    pub target_root: Option<crate::target::remote::Root>,
}

impl Extras {
    pub fn carried<'a>(
        &'a self,
        shares: &'a [crate::inputs::share::Share],
    ) -> crate::boot::plan::Carried<'a> {
        crate::boot::plan::Carried {
            bpftool: &self.bpftool,
            built: &self.built,
            shares,
        }
    }
}
