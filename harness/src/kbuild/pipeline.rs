//! The steps of one build, in a scratch O= folder, filling a cache entry:
//! configure and check, make, the test module, install.

use std::fs;
use std::path::Path;
use std::time::Instant;

use sha2::Digest as _;

use super::config::{self, PaholeSeen};
use super::inputs::Inputs;
use super::make::{BuildLog, Make, MakeError};
use super::meta::{self, BuildFailure, BuildMeta, FragmentMeta, PaholeMeta, Seconds, Stage};
use super::{findings, testmod, BuildError, BuildEvent, BuildOptions};
use crate::support::cache::{Cache, CacheError};
use crate::support::cleanup::{remove_within, STOP_CLEANUP};
use crate::support::hex;
use crate::support::manifest::Manifest;

/// Lines of make output quoted in a failure message.
const QUOTED_TAIL: usize = 25;

pub(super) fn failure(inputs: &Inputs, stage: Stage, message: String) -> BuildFailure {
    BuildFailure {
        schema: meta::SCHEMA,
        key: inputs.key.clone(),
        spec: inputs.spec.to_string(),
        stage,
        message,
        dropped: Vec::new(),
        finding: None,
        first_error: None,
        pahole: Some(inputs.pahole.description.clone()),
        log: None,
        failed_at_unix: meta::now_unix(),
        cached: false,
        transient: false,
    }
}

fn failed(f: BuildFailure) -> BuildError {
    BuildError::Failed(Box::new(f))
}

/// A make failure as a build failure, with the known cause if the log
/// shows one.
fn make_failure(inputs: &Inputs, stage: Stage, e: MakeError, log: &Path) -> BuildError {
    if let MakeError::Interrupted(i) = e {
        return i.into();
    }
    let mut f = failure(inputs, stage, e.to_string());
    match e {
        MakeError::Failed {
            tail, signalled, ..
        } => {
            let quoted = &tail[tail.len().saturating_sub(QUOTED_TAIL)..];
            f.message
                .push_str(&format!("; last lines:\n    {}", quoted.join("\n    ")));
            let text = fs::read_to_string(log).unwrap_or_default();
            f.finding = findings::diagnose(&text);
            f.first_error = findings::first_error(&text);
            f.transient = signalled || f.finding.as_ref().is_some_and(findings::is_transient);
        }
        // The machine, not the inputs: do not remember it.
        MakeError::Spawn { .. } | MakeError::Log { .. } | MakeError::Interrupted(_) => {
            f.transient = true
        }
    }
    failed(f)
}

pub(super) fn run(
    inputs: &Inputs,
    cache: &Cache,
    work_root: &Path,
    entry: &Path,
    opts: &BuildOptions,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<(), BuildError> {
    let out = work_root.join(&inputs.name);
    let testdir = work_root.join(format!("{}.testmod", inputs.name));
    let log_path = work_root.join(format!("{}.log", inputs.name));
    clear_work(work_root)?;
    fs::create_dir_all(&out).map_err(|e| CacheError::io("cannot create", &out, e))?;
    let mut log = BuildLog::create(&log_path).map_err(|e| {
        let mut f = failure(inputs, Stage::Config, e.to_string());
        f.transient = true;
        failed(f)
    })?;
    let make = make_for(inputs, cache, &out, opts);
    let result = cache.install_dir(entry, |tmp| {
        steps(inputs, &make, tmp, &testdir, &mut log, events)
    });
    // The O= folder is ~455 MB and ccache makes the next one cheap. After
    // a stop request it goes only as far as STOP_CLEANUP allows, and the
    // next build clears the rest.
    let stopped = matches!(result, Err(BuildError::Interrupted(_)));
    for d in [&out, &testdir] {
        if stopped {
            remove_within(d, STOP_CLEANUP, None);
        } else {
            let _ = fs::remove_dir_all(d);
        }
    }
    match result {
        Ok(_) => {
            let _ = fs::remove_file(&log_path);
            Ok(())
        }
        Err(BuildError::Failed(mut f)) => {
            f.log = Some(log_path);
            Err(BuildError::Failed(f))
        }
        // Nothing points at the log of a build that was stopped halfway.
        Err(e @ BuildError::Interrupted(_)) => {
            let _ = fs::remove_file(&log_path);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Folders in the work folder are O= and test-module folders of builds
/// that were killed or stopped: builds hold the build lock, so none of
/// them is running. Logs stay: a failure's message may point at one.
fn clear_work(work_root: &Path) -> Result<(), BuildError> {
    let entries =
        fs::read_dir(work_root).map_err(|e| CacheError::io("cannot list", work_root, e))?;
    for e in entries.flatten() {
        let d = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&d).map_err(|e| CacheError::io("cannot remove", &d, e))?;
        }
    }
    Ok(())
}

fn make_for(inputs: &Inputs, cache: &Cache, out: &Path, opts: &BuildOptions) -> Make {
    let jobs = opts.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let mut vars = vec![format!("PAHOLE={}", inputs.pahole.program.display())];
    vars.extend(
        inputs
            .fragments
            .iter()
            .flat_map(|f| f.make_vars.iter().cloned()),
    );
    let mut env = vec![
        // Fixed, so that init/version.o and ccache do not change per build.
        (
            "KBUILD_BUILD_TIMESTAMP".to_string(),
            "2000-01-01".to_string(),
        ),
        ("KBUILD_BUILD_USER".into(), "btfvm".into()),
        ("KBUILD_BUILD_HOST".into(), "btfvm".into()),
    ];
    if super::make::tool_version("ccache").is_some() {
        vars.push("CC=ccache gcc".into());
        vars.push("HOSTCC=ccache gcc".into());
        let root = cache.root();
        env.extend([
            (
                "CCACHE_DIR".into(),
                root.join("ccache").display().to_string(),
            ),
            // Debug info names the build folder; without these, every
            // fresh O= folder would miss the cache.
            ("CCACHE_NOHASHDIR".into(), "1".into()),
            (
                "CCACHE_BASEDIR".into(),
                root.join("build").display().to_string(),
            ),
        ]);
    }
    Make {
        tree: inputs.tree.dir.clone(),
        out: out.to_path_buf(),
        jobs,
        vars,
        env,
    }
}

fn read(path: &Path) -> Result<String, CacheError> {
    fs::read_to_string(path).map_err(|e| CacheError::io("cannot read", path, e))
}

fn copy(from: &Path, to: &Path) -> Result<(), CacheError> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| CacheError::io("cannot copy", from, e))
}

/// What one build's steps share: its inputs, make, the log and progress.
struct Ctx<'a, 'e> {
    inputs: &'a Inputs,
    make: &'a Make,
    log: &'a mut BuildLog,
    events: &'a mut (dyn FnMut(BuildEvent) + 'e),
}

impl Ctx<'_, '_> {
    fn make(&mut self, stage: Stage, args: &[String]) -> Result<(), BuildError> {
        let log_path = self.log.path.clone();
        self.make
            .run(args, self.log, self.events)
            .map(|_| ())
            .map_err(|e| make_failure(self.inputs, stage, e, &log_path))
    }

    fn step(&mut self, what: String) {
        (self.events)(BuildEvent::Step { what });
    }
}

/// The .config as configured and checked.
struct Configured {
    dot: std::path::PathBuf,
    text: String,
    values: std::collections::BTreeMap<String, String>,
    options_checked: usize,
}

fn steps(
    inputs: &Inputs,
    make: &Make,
    tmp: &Path,
    testdir: &Path,
    log: &mut BuildLog,
    events: &mut dyn FnMut(BuildEvent),
) -> Result<(), BuildError> {
    let total = Instant::now();
    let log_path = log.path.clone();
    let mut cx = Ctx {
        inputs,
        make,
        log,
        events,
    };
    write_header(&mut cx)?;
    let t = Instant::now();
    let cfg = configure(&mut cx)?;
    let configure_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    cx.step(format!("make -j{} bzImage modules", make.jobs));
    cx.make(Stage::Make, &["bzImage".into(), "modules".into()])?;
    let make_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let tm = test_module(&mut cx, &cfg, testdir)?;
    let test_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let release = install(&mut cx, &cfg, &tm, tmp)?;
    let seconds = Seconds {
        configure: configure_secs,
        make: make_secs,
        test_module: test_secs,
        install: t.elapsed().as_secs_f64(),
        total: total.elapsed().as_secs_f64(),
    };
    let meta = build_meta(inputs, make, &cfg, &tm, release, seconds);
    let _ = cx
        .log
        .line(&format!("# btfvm: built in {:.1} s", meta.seconds.total));
    copy(&log_path, &tmp.join("build.log"))?;
    meta::write_json(&tmp.join("meta.json"), &meta)?;
    // Last: what the entry holds, so a later use can tell it is intact.
    Manifest::of(tmp)
        .map_err(|e| CacheError::io("cannot read", tmp, e))?
        .write(tmp)?;
    Ok(())
}

/// What was built with what, at the top of the log.
fn write_header(cx: &mut Ctx<'_, '_>) -> Result<(), BuildError> {
    let i = cx.inputs;
    let header = [
        format!("# btfvm kernel build {}", i.spec),
        format!("# tree: {} ({})", i.tree.identity, i.tree.dir.display()),
        format!("# {}", i.pahole.description),
        format!("# {} / {}", i.compiler, i.linker),
        format!("# key {}", i.key),
    ];
    let log_path = cx.log.path.clone();
    for h in &header {
        cx.log
            .line(h)
            .map_err(|e| make_failure(i, Stage::Config, e, &log_path))?;
    }
    Ok(())
}

/// tinyconfig, base and fragments, olddefconfig, and the check that every
/// option a fragment asked for survived.
fn configure(cx: &mut Ctx<'_, '_>) -> Result<Configured, BuildError> {
    let inputs = cx.inputs;
    cx.step(format!(
        "configuring: tinyconfig + base + {}, then olddefconfig",
        inputs.spec.fragments.join(" + ")
    ));
    cx.make(Stage::Config, &["tinyconfig".into()])?;
    let dot = cx.make.out.join(".config");
    let wanted = config::merge(&inputs.fragments);
    fs::write(&dot, config::apply(&read(&dot)?, &wanted))
        .map_err(|e| CacheError::io("cannot write", &dot, e))?;
    cx.make(Stage::Config, &["olddefconfig".into()])?;
    let text = read(&dot)?;
    let values = config::parse_dot_config(&text);
    let seen = PaholeSeen {
        description: inputs.pahole.description.clone(),
        present: inputs.pahole.present(),
    };
    let dropped = config::check(&inputs.tree.dir, &values, &wanted, &seen);
    if !dropped.is_empty() {
        for d in &dropped {
            let _ = cx.log.line(&format!("# btfvm: dropped: {d}"));
        }
        return Err(failed(dropped_failure(inputs, &dropped)));
    }
    Ok(Configured {
        dot,
        text,
        values,
        options_checked: wanted.len(),
    })
}

fn dropped_failure(inputs: &Inputs, dropped: &[config::Dropped]) -> BuildFailure {
    let mut f = failure(
        inputs,
        Stage::Config,
        format!(
            "{} option(s) that a fragment asked for did not survive `make olddefconfig`:\n  - {}",
            dropped.len(),
            dropped
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n  - ")
        ),
    );
    f.dropped = dropped
        .iter()
        .map(|d| meta::DroppedOption {
            option: d.option.clone(),
            wanted: d.wanted.clone(),
            got: d.got.clone(),
            short: d.short.clone(),
        })
        .collect();
    f
}

fn btf_modules(cfg: &Configured) -> String {
    cfg.values
        .get("CONFIG_DEBUG_INFO_BTF_MODULES")
        .cloned()
        .unwrap_or_else(|| "n".into())
}

/// The test module, with BTF exactly when the tree makes module BTF.
fn test_module(
    cx: &mut Ctx<'_, '_>,
    cfg: &Configured,
    testdir: &Path,
) -> Result<testmod::TestModule, BuildError> {
    cx.step(format!("building the test module {}", testmod::MODULE));
    let log_path = cx.log.path.clone();
    let inputs = cx.inputs;
    testmod::build(cx.make, testdir, btf_modules(cfg) == "y", cx.log, cx.events).map_err(
        |e| match e {
            testmod::TestModError::Make(m) => make_failure(inputs, Stage::TestModule, m, &log_path),
            other => failed(failure(inputs, Stage::TestModule, other.to_string())),
        },
    )
}

/// What booting needs, into the entry; returns the kernel release.
fn install(
    cx: &mut Ctx<'_, '_>,
    cfg: &Configured,
    tm: &testmod::TestModule,
    tmp: &Path,
) -> Result<String, BuildError> {
    cx.step("installing bzImage, config and modules".into());
    let out = cx.make.out.clone();
    let release = read(&out.join("include/config/kernel.release"))?
        .trim()
        .to_string();
    let modroot = tmp.join("modules");
    cx.make(
        Stage::Install,
        &[
            format!("INSTALL_MOD_PATH={}", modroot.display()),
            // The suite resolves dependencies from modinfo itself.
            "DEPMOD=true".into(),
            "modules_install".into(),
        ],
    )?;
    let moddir = modroot.join("lib/modules").join(&release);
    // They point into the O= folder, which is about to go.
    for l in ["build", "source"] {
        let _ = fs::remove_file(moddir.join(l));
    }
    let extra = moddir.join("extra");
    fs::create_dir_all(&extra).map_err(|e| CacheError::io("cannot create", &extra, e))?;
    copy(&tm.ko, &extra.join(format!("{}.ko", testmod::MODULE)))?;
    copy(&out.join("arch/x86/boot/bzImage"), &tmp.join("bzImage"))?;
    copy(&out.join("System.map"), &tmp.join("System.map"))?;
    copy(&cfg.dot, &tmp.join("dot-config"))?;
    let guest_config = format!("{}{}", cfg.text, testmod::config_marker());
    fs::write(tmp.join("config"), guest_config)
        .map_err(|e| CacheError::io("cannot write", &tmp.join("config"), e))?;
    Ok(release)
}

fn build_meta(
    inputs: &Inputs,
    make: &Make,
    cfg: &Configured,
    tm: &testmod::TestModule,
    release: String,
    seconds: Seconds,
) -> BuildMeta {
    BuildMeta {
        schema: meta::SCHEMA,
        key: inputs.key.clone(),
        spec: inputs.spec.to_string(),
        tree: inputs.tree.identity.clone(),
        tree_dir: inputs.tree.dir.clone(),
        fragments: inputs
            .fragments
            .iter()
            .map(|f| FragmentMeta {
                name: f.name.clone(),
                sha256: hex(&sha2::Sha256::digest(f.text.as_bytes())),
            })
            .collect(),
        pahole: PaholeMeta {
            choice: inputs.pahole.choice.to_string(),
            program: inputs.pahole.program.clone(),
            version: inputs.pahole.version.clone(),
            description: inputs.pahole.description.clone(),
            kconfig_version: cfg.values.get("CONFIG_PAHOLE_VERSION").cloned(),
        },
        compiler: inputs.compiler.clone(),
        linker: inputs.linker.clone(),
        ccache: make
            .vars
            .iter()
            .any(|v| v.starts_with("CC=ccache"))
            .then(|| super::make::tool_version("ccache").unwrap_or_default()),
        release,
        btf_modules: btf_modules(cfg),
        options_checked: cfg.options_checked,
        test_module_btf_bytes: tm.btf_bytes,
        built_at_unix: meta::now_unix(),
        seconds,
    }
}
