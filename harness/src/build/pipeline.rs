//! The steps of one build, in a scratch O= folder, filling a cache entry:
//! configure and check, make, the test module, install.

use std::fs;
use std::path::Path;
use std::time::Instant;

use super::config::{self, PaholeSeen};
use super::make::{BuildLog, Make, MakeError};
use super::meta::{self, BuildFailure, BuildMeta, FragmentMeta, PaholeMeta, Seconds, Stage};
use super::{findings, testmod, BuildError, BuildEvent, BuildOptions, Inputs};
use crate::cache::{Cache, CacheError};

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
    let mut f = failure(inputs, stage, e.to_string());
    match e {
        MakeError::Failed {
            tail, signalled, ..
        } => {
            let quoted = &tail[tail.len().saturating_sub(QUOTED_TAIL)..];
            f.message
                .push_str(&format!("; last lines:\n    {}", quoted.join("\n    ")));
            f.finding = fs::read_to_string(log)
                .ok()
                .and_then(|t| findings::diagnose(&t));
            f.transient = signalled || f.finding.as_ref().is_some_and(findings::is_transient);
        }
        // The machine, not the inputs: do not remember it.
        MakeError::Spawn { .. } | MakeError::Log { .. } => f.transient = true,
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
    for d in [&out, &testdir] {
        if d.exists() {
            fs::remove_dir_all(d).map_err(|e| CacheError::io("cannot remove", d, e))?;
        }
    }
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
    // The O= folder is ~455 MB and ccache makes the next one cheap.
    let _ = fs::remove_dir_all(&out);
    let _ = fs::remove_dir_all(&testdir);
    match result {
        Ok(_) => {
            let _ = fs::remove_file(&log_path);
            Ok(())
        }
        Err(BuildError::Failed(mut f)) => {
            f.log = Some(log_path);
            Err(BuildError::Failed(f))
        }
        Err(e) => Err(e),
    }
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
    let header = [
        format!("# btfvm kernel build {}", inputs.spec),
        format!(
            "# tree: {} ({})",
            inputs.tree.identity,
            inputs.tree.dir.display()
        ),
        format!("# {}", inputs.pahole.description),
        format!("# {} / {}", inputs.compiler, inputs.linker),
        format!("# key {}", inputs.key),
    ];
    for h in &header {
        log.line(h)
            .map_err(|e| make_failure(inputs, Stage::Config, e, &log_path))?;
    }

    // 1. Configure: tinyconfig, base and fragments, olddefconfig, check.
    let t = Instant::now();
    events(BuildEvent::Step {
        what: format!(
            "configuring: tinyconfig + base + {}, then olddefconfig",
            inputs.spec.fragments.join(" + ")
        ),
    });
    let cfg_fail = |e| make_failure(inputs, Stage::Config, e, &log_path);
    make.run(&["tinyconfig".into()], log, events)
        .map_err(cfg_fail)?;
    let dot = make.out.join(".config");
    let wanted = config::merge(&inputs.fragments);
    fs::write(&dot, config::apply(&read(&dot)?, &wanted))
        .map_err(|e| CacheError::io("cannot write", &dot, e))?;
    make.run(&["olddefconfig".into()], log, events)
        .map_err(cfg_fail)?;
    let final_text = read(&dot)?;
    let final_cfg = config::parse_dot_config(&final_text);
    let seen = PaholeSeen {
        description: inputs.pahole.description.clone(),
        present: inputs.pahole.present(),
    };
    let dropped = config::check(&inputs.tree.dir, &final_cfg, &wanted, &seen);
    if !dropped.is_empty() {
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
        for d in &dropped {
            let _ = log.line(&format!("# btfvm: dropped: {d}"));
        }
        return Err(failed(f));
    }
    let configure = t.elapsed().as_secs_f64();

    // 2. The kernel and its modules.
    let t = Instant::now();
    events(BuildEvent::Step {
        what: format!("make -j{} bzImage modules", make.jobs),
    });
    make.run(&["bzImage".into(), "modules".into()], log, events)
        .map_err(|e| make_failure(inputs, Stage::Make, e, &log_path))?;
    let make_secs = t.elapsed().as_secs_f64();

    // 3. The test module, with BTF exactly when the tree makes module BTF.
    let t = Instant::now();
    let btf_modules = final_cfg
        .get("CONFIG_DEBUG_INFO_BTF_MODULES")
        .cloned()
        .unwrap_or_else(|| "n".into());
    events(BuildEvent::Step {
        what: format!("building the test module {}", testmod::MODULE),
    });
    let tm =
        testmod::build(make, testdir, btf_modules == "y", log, events).map_err(|e| match e {
            testmod::TestModError::Make(m) => make_failure(inputs, Stage::TestModule, m, &log_path),
            other => failed(failure(inputs, Stage::TestModule, other.to_string())),
        })?;
    let test_secs = t.elapsed().as_secs_f64();

    // 4. Install what booting needs into the entry.
    let t = Instant::now();
    events(BuildEvent::Step {
        what: "installing bzImage, config and modules".into(),
    });
    let release = read(&make.out.join("include/config/kernel.release"))?
        .trim()
        .to_string();
    let modroot = tmp.join("modules");
    make.run(
        &[
            format!("INSTALL_MOD_PATH={}", modroot.display()),
            // The suite resolves dependencies from modinfo itself.
            "DEPMOD=true".into(),
            "modules_install".into(),
        ],
        log,
        events,
    )
    .map_err(|e| make_failure(inputs, Stage::Install, e, &log_path))?;
    let moddir = modroot.join("lib/modules").join(&release);
    // They point into the O= folder, which is about to go.
    for l in ["build", "source"] {
        let _ = fs::remove_file(moddir.join(l));
    }
    let extra = moddir.join("extra");
    fs::create_dir_all(&extra).map_err(|e| CacheError::io("cannot create", &extra, e))?;
    copy(&tm.ko, &extra.join(format!("{}.ko", testmod::MODULE)))?;
    copy(
        &make.out.join("arch/x86/boot/bzImage"),
        &tmp.join("bzImage"),
    )?;
    copy(&make.out.join("System.map"), &tmp.join("System.map"))?;
    copy(&dot, &tmp.join("dot-config"))?;
    let guest_config = format!("{final_text}{}", testmod::config_marker());
    fs::write(tmp.join("config"), guest_config)
        .map_err(|e| CacheError::io("cannot write", &tmp.join("config"), e))?;
    let install = t.elapsed().as_secs_f64();

    let meta = BuildMeta {
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
                sha256: super::hex(&sha2::Digest::finalize(
                    <sha2::Sha256 as sha2::Digest>::new_with_prefix(f.text.as_bytes()),
                )),
            })
            .collect(),
        pahole: PaholeMeta {
            choice: inputs.pahole.choice.to_string(),
            program: inputs.pahole.program.clone(),
            version: inputs.pahole.version.clone(),
            description: inputs.pahole.description.clone(),
            kconfig_version: final_cfg.get("CONFIG_PAHOLE_VERSION").cloned(),
        },
        compiler: inputs.compiler.clone(),
        linker: inputs.linker.clone(),
        ccache: make
            .vars
            .iter()
            .any(|v| v.starts_with("CC=ccache"))
            .then(|| super::make::tool_version("ccache").unwrap_or_default()),
        release,
        btf_modules,
        options_checked: wanted.len(),
        test_module_btf_bytes: tm.btf_bytes,
        built_at_unix: meta::now_unix(),
        seconds: Seconds {
            configure,
            make: make_secs,
            test_module: test_secs,
            install,
            total: total.elapsed().as_secs_f64(),
        },
    };
    let _ = log.line(&format!("# btfvm: built in {:.1} s", meta.seconds.total));
    copy(&log_path, &tmp.join("build.log"))?;
    meta::write_json(&tmp.join("meta.json"), &meta)?;
    Ok(())
}
