//! Modules loaded from a folder the host shares with the guest
//! (`--share DIR:TAG`, mounted at /share/TAG): where such a file may be,
//! and the key the plan files it under.

use serde::Deserialize;

use crate::step::{LoadArgs, Step};

/// Where shares are mounted in the guest.
pub const SHARE_ROOT: &str = "/share";

pub(crate) fn shared_path<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    let p = String::deserialize(d)?;
    let rest = p
        .strip_prefix(SHARE_ROOT)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| r.contains('/'));
    match rest {
        Some(r) if !r.split('/').any(|c| c.is_empty() || c == "." || c == "..") => Ok(Some(p)),
        _ => Err(serde::de::Error::custom(format!(
            "path {p:?}: a module file on a share, /share/<tag>/<file> (the host shares it with --share DIR:<tag>), without . or .. parts"
        ))),
    }
}

impl LoadArgs {
    /// The plan's key for what this load loads: a file of the kernel's
    /// tree by name and variant, or a file on a share by its path.
    pub fn key(&self) -> String {
        match &self.path {
            Some(p) => format!("{}@{p}", self.module),
            None => crate::Plan::module_key(&self.module, self.variant),
        }
    }
}

impl Step {
    /// Modules any branch of this step loads from a share: (name, path).
    pub fn shared_modules(&self, out: &mut Vec<(String, String)>) {
        match self {
            Step::Load(LoadArgs {
                module,
                path: Some(p),
                ..
            }) => out.push((module.clone(), p.clone())),
            Step::When(w) => {
                for s in w.then.iter().chain(&w.otherwise) {
                    s.shared_modules(out);
                }
            }
            _ => {}
        }
    }
}
