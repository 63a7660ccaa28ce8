//! `btfvm bisect`: where the suite's verdict flips, between two commits
//! of a kernel tree, along a list of kernels or paholes, or between two
//! .configs. The search and its record are the library's (btfvm::bisect);
//! each step is `bisect_step::test_kernel`; this file reads the options,
//! prints, and writes the result.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use btfvm::bisect::commits::Stop;
use btfvm::bisect::journal::{Journal, Question};
use btfvm::bisect::{Role, Tested, Verdict};
use btfvm::inputs::build_spec::{BuildSpec, PaholeChoice, TreeSource, DEFAULT_FRAGMENT};
use btfvm::inputs::scenario::{self, Scenario};
use btfvm::kbuild::probe::{auto_pahole, tree_version};
use btfvm::support::cache::Cache;
use btfvm::support::hex;
use sha2::{Digest, Sha256};

use crate::bisect_step::StepCtx;
use crate::exit::{self, Classified, CmdResult};
use crate::options::{BootFailure, VmOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct BisectArgs {
    /// The kernel tree: a git checkout (with --good/--bad), or for
    /// --paholes and the config bisect also debian:<suite>.
    #[arg(long, value_name = "TREE")]
    pub tree: Option<String>,
    /// A commit whose kernel passes.
    #[arg(long, value_name = "REV", requires = "bad")]
    pub good: Option<String>,
    /// A later commit whose kernel fails.
    #[arg(long, value_name = "REV", requires = "good")]
    pub bad: Option<String>,
    /// Bisect an ordered list of kernels (spec names, debian:..., build:...,
    /// paths): the first whose verdict differs from the first's.
    #[arg(long, value_name = "K1,K2,...", value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Bisect an ordered list of paholes for --tree.
    #[arg(long, value_name = "P1,P2,...", value_delimiter = ',')]
    pub paholes: Vec<String>,
    /// A .config of --tree that passes (config bisect).
    #[arg(long, value_name = "FILE", requires = "bad_config")]
    pub good_config: Option<PathBuf>,
    /// A .config of --tree that fails.
    #[arg(long, value_name = "FILE", requires = "good_config")]
    pub bad_config: Option<PathBuf>,
    /// Config fragment over base.config (kernels/fragments/<name>.config or
    /// a path); repeatable. Default: btf-modules-on.
    #[arg(long = "fragment", value_name = "FRAGMENT")]
    pub fragments: Vec<String>,
    /// pahole for every build: host, none, debian:<suite>, a path, or auto
    /// (per commit, one that builds that kernel version).
    #[arg(long, value_name = "PAHOLE", default_value = "host")]
    pub pahole: String,
    /// Run the suite this many times on each step; any failure is bad.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = tries)]
    pub tries: u32,
    /// What a kernel that does not build or boot counts as.
    #[arg(long, value_name = "skip|bad", default_value = "skip", value_parser = crate::options::boot_failure)]
    pub boot_failure: BootFailure,
    /// Where the record goes (journal.json, bisect.log, result.json, the
    /// steps' reports). Default: <cache>/bisect/<kind>-<key>; the same
    /// question asked again resumes there.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Only scenarios whose name contains this (all of them if absent).
    pub filter: Option<String>,
    /// FILTER must be a scenario's whole name.
    #[arg(long)]
    pub exact: bool,
    #[command(flatten)]
    pub vm: VmOptions,
}

fn tries(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("0 tries would test nothing; give at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a whole number ({e})")),
    }
}

/// Which bisection the options ask for, resolved once.
enum Kind {
    Commits {
        tree: PathBuf,
        good: String,
        bad: String,
    },
    Kernels(Vec<String>),
    Paholes {
        tree: TreeSource,
        paholes: Vec<PaholeChoice>,
    },
    Configs {
        tree: TreeSource,
        good: PathBuf,
        bad: PathBuf,
    },
}

fn kind(a: &BisectArgs) -> Result<Kind, Classified> {
    let usage = |m: &str| Err(Classified::input(anyhow!("btfvm bisect: {m}")));
    let tree = a.tree.as_deref();
    let asked = [
        a.good.is_some(),
        !a.kernels.is_empty(),
        !a.paholes.is_empty(),
        a.good_config.is_some(),
    ];
    match asked.iter().filter(|x| **x).count() {
        0 => {
            return usage(
                "say what to bisect: --tree T --good R --bad R (commits), --kernels K1,K2,..., \
             --tree T --paholes P1,P2,..., or --tree T --good-config F --bad-config F",
            )
        }
        1 => {}
        _ => {
            return usage(
                "--good/--bad, --kernels, --paholes and --good-config/--bad-config are four \
             different bisections: give one",
            )
        }
    }
    let tree_source = |t: Option<&str>| -> Result<TreeSource, Classified> {
        let t = t.ok_or_else(|| {
            Classified::input(anyhow!("btfvm bisect: this bisection needs --tree"))
        })?;
        TreeSource::parse(t).map_err(|e| Classified::input(anyhow!("--tree: {e}")))
    };
    if let (Some(good), Some(bad)) = (&a.good, &a.bad) {
        return match tree_source(tree)? {
            TreeSource::Path(p) => Ok(Kind::Commits {
                tree: p,
                good: good.clone(),
                bad: bad.clone(),
            }),
            TreeSource::Debian { .. } => usage("a commit bisect needs --tree to be a git checkout"),
        };
    }
    if !a.kernels.is_empty() {
        if tree.is_some() || !a.fragments.is_empty() || a.pahole != "host" {
            return usage(
                "--kernels takes whole kernels: --tree, --fragment and --pahole do not apply",
            );
        }
        if a.kernels.len() < 2 {
            return usage("--kernels needs at least two kernels, in order");
        }
        return Ok(Kind::Kernels(a.kernels.clone()));
    }
    if !a.paholes.is_empty() {
        if a.paholes.len() < 2 {
            return usage("--paholes needs at least two paholes, in order");
        }
        let paholes = a
            .paholes
            .iter()
            .map(|p| {
                PaholeChoice::parse(p).map_err(|e| Classified::input(anyhow!("--paholes: {e}")))
            })
            .collect::<Result<_, _>>()?;
        return Ok(Kind::Paholes {
            tree: tree_source(tree)?,
            paholes,
        });
    }
    if !a.fragments.is_empty() {
        return usage("a config bisect starts from whole .configs: --fragment does not apply");
    }
    Ok(Kind::Configs {
        tree: tree_source(tree)?,
        good: a.good_config.clone().unwrap_or_default(),
        bad: a.bad_config.clone().unwrap_or_default(),
    })
}

/// The pahole option: a choice, or auto (per kernel version).
#[derive(Debug, Clone)]
pub enum PaholeWord {
    Auto,
    Choice(PaholeChoice),
}

impl PaholeWord {
    /// The choice for a tree at `dir`, and a note saying why for auto.
    pub fn for_tree(&self, dir: &Path) -> Result<(PaholeChoice, Option<String>), Classified> {
        match self {
            PaholeWord::Choice(c) => Ok((c.clone(), None)),
            PaholeWord::Auto => {
                let v = tree_version(dir).ok_or_else(|| {
                    Classified::new(
                        btfvm::support::ErrorClass::Kernel,
                        anyhow!(
                            "--pahole auto: no VERSION/PATCHLEVEL in {}",
                            dir.join("Makefile").display()
                        ),
                    )
                })?;
                let (c, why) = auto_pahole(v);
                Ok((c, Some(why)))
            }
        }
    }
}

/// What all kinds share: the scenarios, the steps' context, the record.
pub struct Common {
    pub scenarios: Vec<Scenario>,
    pub cache: Cache,
    pub fragments: Vec<String>,
    pub fragments_dir: PathBuf,
    pub pahole: PaholeWord,
    /// Question parts every kind has.
    pub parts: Vec<String>,
}

fn scenarios(a: &BisectArgs) -> Result<(Vec<Scenario>, String), Classified> {
    let dir = a.vm.scenarios_dir();
    let all = scenario::load_dir(&dir.path).map_err(Classified::input)?;
    let count = all.len();
    let chosen: Vec<Scenario> = match &a.filter {
        None => all,
        Some(f) if a.exact => all.into_iter().filter(|s| s.name == *f).collect(),
        Some(f) => all
            .into_iter()
            .filter(|s| s.name.contains(f.as_str()))
            .collect(),
    };
    if chosen.is_empty() {
        return Err(Classified::input(anyhow!(
            "no scenario of the {count} in {} matches {:?}: a bisect must test something",
            dir.path.display(),
            a.filter.as_deref().unwrap_or("")
        )));
    }
    // Their content is part of the question: edit one and the record of
    // the old one is no answer.
    let mut h = Sha256::new();
    for s in &chosen {
        h.update(s.name.as_bytes());
        h.update(std::fs::read(&s.file).unwrap_or_default());
    }
    let digest = hex(&h.finalize()[..8]);
    Ok((chosen, digest))
}

fn common(a: &BisectArgs) -> Result<Common, Classified> {
    crate::options::announce_dirs(&[
        ("scenarios", &a.vm.scenarios_dir()),
        ("kernel specs", &a.vm.kernels_dir()),
    ]);
    let (scenarios, digest) = scenarios(a)?;
    let pahole = match a.pahole.as_str() {
        "auto" => PaholeWord::Auto,
        p => PaholeWord::Choice(
            PaholeChoice::parse(p).map_err(|e| Classified::input(anyhow!("--pahole: {e}")))?,
        ),
    };
    let fragments = if a.fragments.is_empty() {
        vec![DEFAULT_FRAGMENT.to_string()]
    } else {
        a.fragments.clone()
    };
    let fragments_dir = a.vm.kernels_dir().path.join("fragments");
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    let parts = vec![
        format!("scenarios: {} ({digest})", names.join(", ")),
        format!("tries: {}", a.tries),
        format!("boot failure: {:?}", a.boot_failure),
    ];
    Ok(Common {
        scenarios,
        cache: Cache::from_env().map_err(Classified::env)?,
        fragments,
        fragments_dir,
        pahole,
        parts,
    })
}

/// The fragments as they are now: a fragment edited since is another
/// question.
pub fn fragment_parts(c: &Common, tree: TreeSource) -> Result<Vec<String>, Classified> {
    let spec = BuildSpec {
        tree,
        fragments: c.fragments.clone(),
        pahole: PaholeChoice::Host,
        fragments_dir: c.fragments_dir.clone(),
    };
    let loaded = btfvm::kbuild::config::load_fragments(&spec).map_err(Classified::input)?;
    Ok(loaded
        .iter()
        .map(|f| {
            format!(
                "fragment {}: {}",
                f.name,
                hex(&Sha256::digest(f.text.as_bytes())[..8])
            )
        })
        .collect())
}

/// The record's folder for `q`.
pub fn journal(a: &BisectArgs, c: &Common, q: Question) -> Result<Journal, Classified> {
    let dir = match &a.out {
        Some(d) => d.clone(),
        None => c
            .cache
            .subdir("bisect")
            .map_err(Classified::env)?
            .join(format!("{}-{}", q.kind, q.key())),
    };
    let j = Journal::open(&dir, q).map_err(|e| match e {
        btfvm::bisect::journal::JournalError::Cache(e) => Classified::env(e),
        e => Classified::input(e),
    })?;
    crate::say!("btfvm: bisect: record in {}", j.dir.display());
    if j.resumed > 0 {
        crate::say!(
            "btfvm: bisect: resuming: {} step(s) were tested by an earlier run",
            j.resumed
        );
    }
    Ok(j)
}

pub fn step_ctx<'a>(a: &BisectArgs, c: &'a Common, j: &Journal) -> Result<StepCtx<'a>, Classified> {
    let reports = j.dir.join("reports");
    std::fs::create_dir_all(&reports).map_err(Classified::env)?;
    Ok(StepCtx {
        scenarios: &c.scenarios,
        cfg: a.vm.run_config(0),
        tries: a.tries,
        boot_failure_bad: a.boot_failure == BootFailure::Bad,
        cache: &c.cache,
        reports,
    })
}

pub fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

pub fn role_word(r: Role) -> &'static str {
    match r {
        Role::Good => "the good end",
        Role::Bad => "the bad end",
        Role::First => "the first item",
        Role::Last => "the last item",
        Role::Step => "a step",
    }
}

pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Good => "GOOD",
        Verdict::Bad => "BAD",
        Verdict::Skip => "SKIP",
    }
}

pub fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

pub fn say_tested(what: &str, t: &Tested) {
    let build = match (t.build_seconds, t.build_cached) {
        (Some(s), Some(true)) => format!(", build cached (took {})", duration(s)),
        (Some(s), _) => format!(", build {}", duration(s)),
        _ => String::new(),
    };
    crate::say!(
        "btfvm: bisect: {what}: {} after {}{build}: {}",
        verdict_word(t.verdict),
        duration(t.seconds),
        first_line(&t.reason)
    );
}

/// The last lines: what was tested and where the record is.
pub fn totals(j: &Journal) -> String {
    let steps = j.steps();
    let skipped = steps
        .iter()
        .filter(|s| s.tested.verdict == Verdict::Skip)
        .count();
    let built = steps
        .iter()
        .filter(|s| s.tested.build_cached == Some(false))
        .count();
    let secs: f64 = steps.iter().map(|s| s.tested.seconds).sum();
    format!(
        "{} step(s) tested ({} by an earlier run), {skipped} could not be tested; {built} kernel build(s); {} in steps\nrecord: {}",
        steps.len(),
        j.resumed,
        duration(secs),
        j.dir.display()
    )
}

pub fn bisect(a: BisectArgs) -> CmdResult {
    let k = kind(&a)?;
    let c = common(&a)?;
    btfvm::support::interrupt::install();
    match k {
        Kind::Commits { tree, good, bad } => {
            crate::bisect_commits::commits(&a, &c, &tree, &good, &bad)
        }
        Kind::Kernels(words) => crate::bisect_list::kernels(&a, &c, &words),
        Kind::Paholes { tree, paholes } => crate::bisect_list::paholes(&a, &c, tree, &paholes),
        Kind::Configs { tree, good, bad } => {
            crate::bisect_config::configs(&a, &c, tree, &good, &bad)
        }
    }
}

pub fn git_err(e: btfvm::bisect::git::GitError) -> Classified {
    Classified::new(e.class(), e)
}

/// A stop of the search as the command's error or status.
pub fn stopped<E: Into<Classified>>(s: Stop<E>) -> CmdResult {
    match s {
        Stop::Step(e) => {
            let e: Classified = e.into();
            if matches!(e.class, btfvm::support::ErrorClass::Interrupted(_)) {
                crate::say!("btfvm: bisect: stopped; the same command resumes where it stopped");
            }
            Err(e)
        }
        Stop::Git(e) => Err(git_err(e)),
        Stop::Journal(e) => Err(Classified::env(e)),
        Stop::Ends(m) => {
            crate::say!("btfvm: bisect: {m}");
            Ok(ExitCode::from(exit::FAILED))
        }
    }
}

/// Prints the answer and writes result.json.
pub fn finish(j: &Journal, text: &str, result: serde_json::Value) -> Result<(), Classified> {
    println!("{text}");
    println!("{}", totals(j));
    let mut r = result;
    r["question"] = serde_json::to_value(j.question()).unwrap_or_default();
    r["steps"] = serde_json::json!(j.steps().len());
    let bytes = serde_json::to_vec_pretty(&r).map_err(Classified::env)?;
    j.write("result.json", &bytes).map_err(Classified::env)?;
    Ok(())
}
