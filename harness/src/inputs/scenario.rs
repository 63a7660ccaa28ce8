//! Scenarios: YAML files in `scenarios/`, one libtest trial per kernel and
//! scenario. The file name (without .yaml) is the scenario's name.

use std::path::{Path, PathBuf};

use btfvm_proto::{Condition, Step, Variant};
use serde::{de, Deserialize, Deserializer};

use super::yaml::{self, NameRule, YamlError};

/// Every check of a scenario is made while its YAML is read (here and in
/// the step types of `btfvm_proto`), so each mistake has its line and
/// column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// One line: what the scenario proves.
    pub about: String,
    /// When the kernel lacks these, the scenario is reported as ignored with
    /// the unmet parts as the reason: the feature is absent, not broken.
    #[serde(default)]
    pub requires: Condition,
    #[serde(deserialize_with = "some_steps")]
    pub steps: Vec<Step>,
}

fn some_steps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Step>, D::Error> {
    let steps = Vec::<Step>::deserialize(d)?;
    if steps.is_empty() {
        return Err(de::Error::custom(
            "steps: empty; a scenario that does nothing cannot fail",
        ));
    }
    btfvm_proto::tracing::check_attach_names(&steps)
        .map_err(|e| de::Error::custom(format!("steps: {e}")))?;
    Ok(steps)
}

/// A scenario's name is the second half of its trials' names.
pub const NAME_RULE: NameRule = NameRule {
    punctuation: "-_",
    becomes: "the scenario's name, the second half of its trials' names",
};

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub file: PathBuf,
    pub about: String,
    pub requires: Condition,
    pub steps: Vec<Step>,
}

impl Scenario {
    /// Modules and variants any branch may load.
    pub fn modules(&self) -> Vec<(String, Variant)> {
        let mut v = Vec::new();
        for s in &self.steps {
            s.modules(&mut v);
        }
        v.sort();
        v.dedup();
        v
    }
}

pub fn load(path: &Path) -> Result<Scenario, YamlError> {
    let name = yaml::name_of(path, &NAME_RULE)?;
    let f: ScenarioFile = yaml::read(path)?;
    Ok(Scenario {
        name,
        file: path.to_path_buf(),
        about: f.about,
        requires: f.requires,
        steps: f.steps,
    })
}

/// The folder's scenarios; their names are checked for clashes before any
/// file is read.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, YamlError> {
    let files = yaml::files_in(dir)?;
    let names = files
        .iter()
        .map(|p| yaml::name_of(p, &NAME_RULE))
        .collect::<Result<Vec<_>, _>>()?;
    yaml::check_unique(
        names
            .iter()
            .map(String::as_str)
            .zip(files.iter().map(PathBuf::as_path)),
        "scenario",
    )?;
    files.iter().map(|p| load(p)).collect()
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
