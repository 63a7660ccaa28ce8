//! Scenarios: YAML files in `scenarios/`, one libtest trial per kernel and
//! scenario. The file name (without .yaml) is the scenario's name.

use std::path::{Path, PathBuf};

use btfvm_proto::step::valid_module_name;
use btfvm_proto::{Condition, Step, Variant};
use serde::Deserialize;

use super::yaml::{self, YamlError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// One line: what the scenario proves.
    pub about: String,
    /// When the kernel lacks these, the scenario is reported as ignored with
    /// the unmet parts as the reason: the feature is absent, not broken.
    #[serde(default)]
    pub requires: Condition,
    pub steps: Vec<Step>,
}

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
    let f: ScenarioFile = yaml::read(path)?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let invalid = |message: String| YamlError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(format!(
            "file name {name:?}: use letters, digits, - and _ (it becomes the trial name)"
        )));
    }
    f.requires
        .validate()
        .map_err(|e| invalid(format!("requires: {e}")))?;
    if f.steps.is_empty() {
        return Err(invalid(
            "steps: empty; a scenario that does nothing cannot fail".into(),
        ));
    }
    validate_steps(&f.steps, "steps").map_err(invalid)?;
    Ok(Scenario {
        name,
        file: path.to_path_buf(),
        about: f.about,
        requires: f.requires,
        steps: f.steps,
    })
}

fn validate_steps(steps: &[Step], at: &str) -> Result<(), String> {
    for (i, s) in steps.iter().enumerate() {
        let here = format!("{at}[{}]", i + 1);
        if let Some(m) = s.module_name() {
            if !valid_module_name(m) {
                let hint = if m.contains('-') {
                    format!(" (the kernel spells it {})", m.replace('-', "_"))
                } else {
                    String::new()
                };
                return Err(format!(
                    "{here}: {m:?} is not a module name: letters, digits and _, at most 56{hint}"
                ));
            }
        }
        if let Step::When(w) = s {
            w.condition()
                .validate()
                .map_err(|e| format!("{here}.when: {e}"))?;
            validate_steps(&w.then, &format!("{here}.when.then"))?;
            validate_steps(&w.otherwise, &format!("{here}.when.else"))?;
        }
    }
    Ok(())
}

pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, YamlError> {
    yaml::files_in(dir)?.iter().map(|p| load(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_the_repo_scenarios() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let all = load_dir(&dir).unwrap();
        assert!(all.len() >= 9, "{}", all.len());
        assert!(all
            .iter()
            .any(|s| s.modules().contains(&("dummy".into(), Variant::CorruptBtf))));
    }

    #[test]
    fn bad_module_names_and_empty_steps_are_rejected() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "x.yaml",
            "about: x\nsteps:\n  - load: ../../etc/passwd\n",
        );
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("is not a module name"), "{e}");
        let p = write(d.path(), "y.yaml", "about: x\nsteps: []\n");
        assert!(load(&p).unwrap_err().to_string().contains("cannot fail"));
    }

    #[test]
    fn unknown_step_names_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "z.yaml",
            "about: x\nsteps:\n  - load: dummy\n  - expect_modul_btf: dummy\n",
        );
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("z.yaml:4:5: unknown variant `expect_modul_btf`"),
            "{e}"
        );
    }

    #[test]
    fn load_takes_a_map_with_variant_and_errno() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "w.yaml",
            "about: x\nsteps:\n  - load: {module: dummy, variant: corrupt-btf, expect: EINVAL}\n  - load: {module: dummy, expect: EWHAT}\n",
        );
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("w.yaml:4:"), "{e}");
        assert!(e.contains("EWHAT"), "{e}");
    }
}
