//! `btfvm`: boots kernels in QEMU and checks that modules get split BTF.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use btfvm::cli::{run_suite, usage_error, RunOptions};

#[derive(Parser)]
#[command(
    name = "btfvm",
    version,
    about = "Boots Linux kernels in QEMU and proves that kernel modules get split BTF"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scenarios on one or more kernels (libtest options apply:
    /// FILTER, --list, --exact, --ignored, --skip...).
    Run(Box<RunCommand>),
    /// Fetch a kernel into the cache and print where its files are.
    Fetch {
        /// debian:<suite>[:<package>]
        kernel: String,
        #[arg(long, env = "BTFVM_DEBIAN_MIRROR")]
        debian_mirror: Option<String>,
    },
    /// Kernels built from source.
    Kernel {
        #[command(subcommand)]
        command: KernelCommand,
    },
    /// Build the kernels with each pahole, run the suite on each build, and
    /// print and write the table pahole x kernel.
    Matrix(Box<btfvm::build::matrix::MatrixArgs>),
}

#[derive(Subcommand)]
enum KernelCommand {
    /// Build a kernel from source (Debian's linux-source or a tree on
    /// disk) with config fragments and a chosen pahole; cached by inputs.
    Build(Box<btfvm::build::cmd::BuildArgs>),
}

#[derive(clap::Args)]
struct RunCommand {
    #[command(flatten)]
    opts: RunOptions,
    #[command(flatten)]
    test: libtest_mimic::Arguments,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(run) => run_suite(run.opts, run.test).unwrap_or_else(|e| usage_error(&e)),
        Command::Fetch {
            kernel,
            debian_mirror,
        } => fetch(&kernel, debian_mirror).unwrap_or_else(|e| usage_error(&e)),
        Command::Kernel {
            command: KernelCommand::Build(args),
        } => btfvm::build::cmd::kernel_build(*args).unwrap_or_else(|e| usage_error(&e)),
        Command::Matrix(args) => {
            btfvm::build::matrix::matrix(*args).unwrap_or_else(|e| usage_error(&e))
        }
    }
}

fn fetch(word: &str, mirror: Option<String>) -> anyhow::Result<ExitCode> {
    let source = btfvm::kernelspec::KernelSource::parse(word).map_err(anyhow::Error::msg)?;
    let cache = btfvm::cache::Cache::from_env()?;
    let image = btfvm::kernel::resolve(&source, &cache, mirror.as_deref(), &mut |e| {
        btfvm::cli::print_event(&btfvm::kernelrun::RunEvent::Fetch {
            kernel: word.to_string(),
            event: e,
        })
    })?;
    println!("origin   {}", image.origin);
    println!("release  {}", image.release);
    println!("vmlinuz  {}", image.vmlinuz.display());
    println!("config   {}", image.config.display());
    println!("modules  {}", image.modules_dir.display());
    Ok(ExitCode::SUCCESS)
}
