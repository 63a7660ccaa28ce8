//! `btfvm`: boots kernels in QEMU and checks that modules get split BTF.
//! The commands and everything printed live here; the library never
//! prints. `exit` is the one place that decides the exit status.

use std::path::PathBuf;
use std::process::ExitCode;

use btfvm::support::ErrorClass;
use clap::{Parser, Subcommand};

/// Progress on stderr that never panics: `eprintln!` would abort the run
/// when whoever reads stderr has gone away (EPIPE), killing QEMU mid-check.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

mod bisect_cmd;
mod bisect_commits;
mod bisect_config;
mod bisect_list;
mod bisect_step;
mod build_cmd;
mod exit;
mod fetch_cmd;
mod matrix_cmd;
mod options;
mod progress;
mod render;
mod replay_cmd;
mod report_cmd;
mod run_cmd;
mod serve_cmd;

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
        /// debian:<suite>[:<package>] (or build:..., or a path)
        kernel: String,
        #[arg(long, env = "BTFVM_DEBIAN_MIRROR")]
        debian_mirror: Option<String>,
        /// Directory of kernel specs (for build: fragments).
        #[arg(long, value_name = "DIR")]
        kernels_dir: Option<PathBuf>,
        /// Hash every file of the cached kernel against what was installed;
        /// a damaged entry is fetched (or built) again.
        #[arg(long)]
        verify: bool,
    },
    /// Kernels built from source.
    Kernel {
        #[command(subcommand)]
        command: KernelCommand,
    },
    /// Build the kernels with each pahole, run the suite on each build, and
    /// print and write the table pahole x kernel.
    Matrix(Box<matrix_cmd::MatrixArgs>),
    /// Find where the verdict flips: the first bad commit of a kernel tree
    /// (git bisect in a worktree of btfvm's own), the first flip along a
    /// list of kernels or paholes, or the smallest set of options between
    /// two .configs. Exit 0 with an answer, 1 without one.
    Bisect(Box<bisect_cmd::BisectArgs>),
    /// Boot a kernel as an SSH target (dropbear on QEMU's user-mode
    /// network) and print its URL, for trying `btfvm run --target`.
    ServeSsh(Box<serve_cmd::ServeArgs>),
    /// Judge a kept boot again without QEMU (a folder under <cache>/logs,
    /// named in the report as `kept`).
    Replay { dir: PathBuf },
    /// Reports of runs.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Join the reports (.json) or JUnit files (.xml) of shards into one;
    /// a trial or kernel in two of them is an error.
    Merge {
        /// The merged file (.json or .xml, like the inputs).
        #[arg(long, short)]
        out: PathBuf,
        /// The shards' files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Join the output folders of `btfvm matrix --partition` shards into
    /// one folder with the whole table (matrix.md, matrix.json, report.json).
    MergeMatrix {
        /// The folder to write.
        #[arg(long, short)]
        out: PathBuf,
        /// The shards' --out folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KernelCommand {
    /// Build a kernel from source (Debian's linux-source or a tree on
    /// disk) with config fragments and a chosen pahole; cached by inputs.
    Build(Box<build_cmd::BuildArgs>),
}

#[derive(clap::Args)]
struct RunCommand {
    #[command(flatten)]
    opts: options::RunOptions,
    #[command(flatten)]
    test: libtest_mimic::Arguments,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Decided before anything runs: a usage error of `run --bisect` must
    // abort a `git bisect run`, not count as a bad commit.
    let mode = match &cli.command {
        Command::Run(run) => run.opts.mode(),
        _ => exit::Mode::Normal,
    };
    let result = match cli.command {
        Command::Run(run) => run_cmd::run(run.opts, run.test),
        Command::Fetch {
            kernel,
            debian_mirror,
            kernels_dir,
            verify,
        } => {
            let dir = btfvm::inputs::input_dir("kernels", kernels_dir.as_deref());
            options::announce_dirs(&[("kernel specs", &dir)]);
            fetch_cmd::fetch(&kernel, debian_mirror.as_deref(), &dir.path, verify)
        }
        Command::Kernel {
            command: KernelCommand::Build(args),
        } => build_cmd::kernel_build(*args),
        Command::Matrix(args) => matrix_cmd::matrix(*args),
        Command::Bisect(args) => bisect_cmd::bisect(*args),
        Command::ServeSsh(args) => serve_cmd::serve_ssh(*args),
        Command::Replay { dir } => replay_cmd::replay_cmd(&dir),
        Command::Report {
            command: ReportCommand::Merge { out, inputs },
        } => report_cmd::merge(&out, &inputs),
        Command::Report {
            command: ReportCommand::MergeMatrix { out, shards },
        } => report_cmd::merge_matrix(&out, &shards),
    };
    result.unwrap_or_else(|e| failed(mode, e))
}

/// Prints an error and gives its status; a stop request outranks any
/// error (the highest row of the table wins).
fn failed(mode: exit::Mode, e: exit::Classified) -> ExitCode {
    use btfvm::support::interrupt;
    let sig = exit::interrupting(e.class, interrupt::requested());
    // Library errors carry their causes in their own message; `{:#}`
    // would print each cause a second time.
    match sig {
        Some(s) if e.class == ErrorClass::Interrupted(s) => say!("btfvm: {}", e.error),
        Some(s) => say!(
            "btfvm: interrupted by {} (and: {})",
            interrupt::signal_name(s),
            e.error
        ),
        None => say!("btfvm: error: {}", e.error),
    }
    ExitCode::from(sig.map_or_else(|| exit::for_class(mode, e.class), exit::for_signal))
}
