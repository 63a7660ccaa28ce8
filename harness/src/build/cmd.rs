//! `btfvm kernel build`: the command-line face of `build::build`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::{BuildError, BuildOptions, BuildSpec, PaholeChoice};
use crate::cache::Cache;
use crate::cli::{repo_dir, EXIT_FAILED};
use crate::kernelspec::{self, KernelSource, KernelSpec};

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// What to build: a spec in kernels/ with a `build:` section, a
    /// `build:<tree>[,fragments=a+b][,pahole=P]` string, or just a tree
    /// (debian:<suite>[:<package>] or a path to a kernel source tree).
    pub kernel: String,
    /// pahole to use: host, none, debian:<suite> (bullseye 1.20, bookworm
    /// 1.24, trixie 1.30, sid 1.32) or a path. Overrides the spec's.
    #[arg(long, value_name = "PAHOLE")]
    pub pahole: Option<String>,
    /// Config fragment (kernels/fragments/<name>.config or a path), applied
    /// over base in order; repeatable. Replaces the spec's fragments.
    #[arg(long = "fragment", value_name = "NAME")]
    pub fragments: Vec<String>,
    /// Build even when the cache has a result or a failure for these inputs.
    #[arg(long)]
    pub rebuild: bool,
    /// make -j (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Debian mirror URI (default: read from the host's apt sources).
    #[arg(long, env = "BTFVM_DEBIAN_MIRROR", value_name = "URI")]
    pub debian_mirror: Option<String>,
    /// Directory of kernel specs (and fragments/).
    #[arg(long, value_name = "DIR")]
    pub kernels_dir: Option<PathBuf>,
}

/// A spec name, a `build:` string or a bare tree, to a name and a build.
pub fn resolve_word(
    word: &str,
    kernels_dir: &std::path::Path,
    specs: &[KernelSpec],
) -> Result<(String, BuildSpec)> {
    if let Some(s) = specs.iter().find(|s| s.name == word) {
        return match &s.source {
            KernelSource::Build(b) => Ok((s.name.clone(), b.clone())),
            other => bail!("kernel spec {word} is not built from source (its source is {other})"),
        };
    }
    let text = if word.starts_with("build:") {
        word.to_string()
    } else {
        format!("build:{word}")
    };
    match KernelSource::parse_in(&text, kernels_dir).map_err(anyhow::Error::msg)? {
        KernelSource::Build(b) => {
            let name = specs
                .iter()
                .find(|s| s.source == KernelSource::Build(b.clone()))
                .map(|s| s.name.clone())
                .unwrap_or_else(|| word.to_string());
            Ok((name, b))
        }
        _ => bail!("{word}: not a build"),
    }
}

pub fn kernel_build(args: BuildArgs) -> Result<ExitCode> {
    let kernels_dir = args
        .kernels_dir
        .clone()
        .unwrap_or_else(|| repo_dir("kernels"));
    let specs = kernelspec::load_dir(&kernels_dir)?;
    let (name, mut spec) = resolve_word(&args.kernel, &kernels_dir, &specs)?;
    if let Some(p) = &args.pahole {
        spec = spec.with_pahole(PaholeChoice::parse(p).map_err(anyhow::Error::msg)?);
    }
    if !args.fragments.is_empty() {
        let text = format!(
            "{},fragments={},pahole={}",
            spec.tree,
            args.fragments.join("+"),
            spec.pahole
        );
        spec = BuildSpec::parse(&text, &spec.fragments_dir).map_err(anyhow::Error::msg)?;
    }
    let cache = Cache::from_env()?;
    let opts = BuildOptions {
        mirror: args.debian_mirror.clone(),
        rebuild: args.rebuild,
        jobs: args.jobs,
    };
    eprintln!("btfvm: {name}: {spec}");
    let mut printer = super::progress::Printer::new(&name);
    crate::interrupt::install();
    match super::build(&spec, &cache, &opts, &mut |e| printer.event(e)) {
        Ok(b) => {
            let m = &b.meta;
            println!("kernel   {name}");
            println!("spec     {}", m.spec);
            println!("tree     {}", m.tree);
            println!(
                "pahole   {} (Kconfig: PAHOLE_VERSION={})",
                m.pahole.description,
                m.pahole.kconfig_version.as_deref().unwrap_or("none")
            );
            println!("compiler {}", m.compiler);
            println!("release  {}", m.release);
            println!("BTF_MODULES {}", m.btf_modules);
            println!(
                "test module .BTF {}",
                m.test_module_btf_bytes
                    .map(|n| format!("{n} bytes"))
                    .unwrap_or_else(|| "none".into())
            );
            println!("vmlinuz  {}", b.image.vmlinuz.display());
            println!("config   {}", b.image.config.display());
            println!("modules  {}", b.image.modules_dir.display());
            println!("log      {}", b.entry.join("build.log").display());
            let times = format!(
                "configure {:.0} s, make {:.0} s, test module {:.0} s, install {:.0} s, total {:.0} s",
                m.seconds.configure,
                m.seconds.make,
                m.seconds.test_module,
                m.seconds.install,
                m.seconds.total,
            );
            if b.cached {
                println!("times    cached, nothing built now (the build took: {times})");
            } else {
                println!("times    {times}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ BuildError::Failed(_)) => {
            eprintln!("btfvm: {name}: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
        Err(e) => {
            eprintln!("btfvm: {name}: error: {e}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}
