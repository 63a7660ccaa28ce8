//! `btfvm kernel build`: the command-line face of `kbuild::build`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use btfvm::inputs::input_dir;
use btfvm::inputs::kernelspec::{self, KernelSpec};
use btfvm::inputs::source::KernelSource;
use btfvm::kbuild::{self, BuildOptions, BuildSpec, Built, PaholeChoice};
use btfvm::support::cache::Cache;
use btfvm::support::interrupt;

use crate::exit::{self, Classified, CmdResult};
use crate::progress::Printer;

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
    kernels_dir: &Path,
    specs: &[KernelSpec],
) -> Result<(String, BuildSpec), Classified> {
    if let Some(s) = specs.iter().find(|s| s.name == word) {
        return match &s.source {
            KernelSource::Build(b) => Ok((s.name.clone(), b.clone())),
            other => Err(Classified::input(anyhow!(
                "kernel spec {word} is not built from source (its source is {other})"
            ))),
        };
    }
    let text = if word.starts_with("build:") {
        word.to_string()
    } else {
        format!("build:{word}")
    };
    let source = KernelSource::parse(&text, &kernels_dir.join("fragments"), Path::new(""))
        .map_err(|e| Classified::input(anyhow!(e)))?;
    match source {
        KernelSource::Build(b) => {
            let name = specs
                .iter()
                .find(|s| s.source == KernelSource::Build(b.clone()))
                .map(|s| s.name.clone())
                .unwrap_or_else(|| word.to_string());
            Ok((name, b))
        }
        _ => Err(Classified::input(anyhow!("{word}: not a build"))),
    }
}

pub fn kernel_build(args: BuildArgs) -> CmdResult {
    let dir = input_dir("kernels", args.kernels_dir.as_deref());
    crate::options::announce_dirs(&[("kernel specs", &dir)]);
    let kernels_dir = dir.path;
    let specs = kernelspec::load_dir(&kernels_dir).map_err(Classified::input)?;
    let (name, mut spec) = resolve_word(&args.kernel, &kernels_dir, &specs)?;
    if let Some(p) = &args.pahole {
        let p = PaholeChoice::parse(p).map_err(|e| Classified::input(anyhow!(e)))?;
        spec = spec.with_pahole(p);
    }
    if !args.fragments.is_empty() {
        let text = format!(
            "{},fragments={},pahole={}",
            spec.tree,
            args.fragments.join("+"),
            spec.pahole
        );
        spec = BuildSpec::parse(&text, &spec.fragments_dir)
            .map_err(|e| Classified::input(anyhow!(e)))?;
    }
    let cache = Cache::from_env().map_err(Classified::env)?;
    let opts = BuildOptions {
        mirror: args.debian_mirror.clone(),
        rebuild: args.rebuild,
        jobs: args.jobs,
    };
    crate::say!("btfvm: {name}: {spec}");
    let mut printer = Printer::new(&name);
    interrupt::install();
    let result = kbuild::build(&spec, &cache, &opts, &mut |e| printer.event(e));
    drop(printer);
    if let Some(sig) = interrupt::requested() {
        crate::say!(
            "btfvm: {name}: interrupted by {}",
            interrupt::signal_name(sig)
        );
        return Ok(ExitCode::from(exit::for_signal(sig)));
    }
    match result {
        Ok(b) => {
            show(&name, &b);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(Classified::new(e.class(), anyhow!("{name}: {e}"))),
    }
}

fn show(name: &str, b: &Built) {
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
    println!("config   {}", b.image.config.path.display());
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
}
