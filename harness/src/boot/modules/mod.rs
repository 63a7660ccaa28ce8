//! Host-side handling of kernel module files: finding them in a
//! `lib/modules/<kver>` tree, decompressing, resolving load order from
//! `.modinfo`, and producing the BTF test variants (as shipped, BTF removed,
//! BTF corrupted).
//!
//! Everything here works on untrusted file contents: malformed input is an
//! error that names the module, never a panic.

mod elf;
mod index;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use elf::{btf_section, depends, make_variant, modinfo, strip_signature};
pub use index::{normalize_name, ModuleFile, ModuleIndex};

/// Errors from module handling. Each names the file or module concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {format} decompression failed: {source}")]
    Decompress {
        path: PathBuf,
        format: Compression,
        #[source]
        source: io::Error,
    },
    #[error("{format} compression failed: {source}")]
    Compress {
        format: Compression,
        #[source]
        source: io::Error,
    },
    /// Something is wrong with the module's ELF image; `module` is a path or
    /// module name (see [`ModuleError::named`]).
    #[error("{module}: {problem}")]
    Elf { module: String, problem: ElfProblem },
    #[error("module `{name}` not found in {modules_dir}")]
    NotFound { name: String, modules_dir: PathBuf },
    #[error("module `{dependency}` needed by `{needed_by}` not found in {modules_dir}")]
    MissingDependency {
        dependency: String,
        needed_by: String,
        modules_dir: PathBuf,
    },
    #[error("module dependency cycle: {}", .cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error(transparent)]
    Read(#[from] crate::support::fsread::ReadError),
    #[error("{path}: decompresses to over {cap} bytes, the limit for a kernel module")]
    TooBig { path: PathBuf, cap: u64 },
}

/// What is wrong with an ELF image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElfProblem {
    #[error("not an ELF file (starts with {magic:02x?})")]
    NotElf { magic: Vec<u8> },
    #[error(
        "unsupported ELF ({found}); expected an ELF64 little-endian x86-64 relocatable module"
    )]
    Unsupported { found: String },
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("no .modinfo section")]
    NoModinfo,
    #[error("malformed module signature trailer: {0}")]
    SignatureTrailer(String),
    /// No guess at the cause here: the planner knows the kernel's config
    /// and says what it supports.
    #[error("no .BTF section, which variant `{variant}` needs")]
    NoBtf { variant: Variant },
    #[error(".BTF section does not start with the BTF magic 0xeb9f")]
    BadBtfMagic,
    #[error("cannot rewrite ELF without .BTF: {0}")]
    Rewrite(String),
}

/// Byte-level functions don't know which module they look at and report
/// this placeholder; callers that do know use [`ModuleError::named`].
pub(crate) const UNNAMED: &str = "<ELF image>";

impl ModuleError {
    pub(crate) fn elf(problem: ElfProblem) -> Self {
        ModuleError::Elf {
            module: UNNAMED.to_owned(),
            problem,
        }
    }

    /// Puts a module name or path on an ELF error; other errors already
    /// carry their own and are returned unchanged.
    pub fn named(self, module: impl fmt::Display) -> Self {
        match self {
            ModuleError::Elf { problem, .. } => ModuleError::Elf {
                module: module.to_string(),
                problem,
            },
            other => other,
        }
    }
}

/// The three module images the harness loads, shared with the scenario
/// vocabulary so a YAML `variant:` is the same value here.
pub use btfvm_proto::Variant;

/// How a module file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    /// Module file suffixes, longest first so `.ko` doesn't shadow the others.
    pub(crate) const SUFFIXES: [(&'static str, Compression); 4] = [
        (".ko.xz", Compression::Xz),
        (".ko.zst", Compression::Zstd),
        (".ko.gz", Compression::Gzip),
        (".ko", Compression::None),
    ];

    /// The file suffix a module in this format carries.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => ".ko",
            Compression::Xz => ".ko.xz",
            Compression::Zstd => ".ko.zst",
            Compression::Gzip => ".ko.gz",
        }
    }

    /// Detects the format from the content rather than the name, so a
    /// mislabelled file still decompresses (or fails with a clear error).
    pub fn detect(data: &[u8]) -> Option<Compression> {
        if data.starts_with(b"\x7fELF") {
            Some(Compression::None)
        } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Compression::Xz)
        } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if data.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else {
            None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        })
    }
}

/// A module file as shipped: the largest real ones are a few MB (xz) and
/// tens of MB uncompressed; far above that is not a module.
pub const MAX_MODULE_FILE: u64 = 64 << 20;
pub const MAX_MODULE_ELF: u64 = 512 << 20;

/// Reads a module file and returns its ELF bytes, decompressed, with any
/// signature still attached.
pub fn read_module(path: &Path) -> Result<Vec<u8>, ModuleError> {
    decode_module(path, &read_module_file(path)?)
}

/// A module file's bytes as they are on disk (a regular file, capped).
pub fn read_module_file(path: &Path) -> Result<Vec<u8>, ModuleError> {
    Ok(crate::support::fsread::read_capped(
        path,
        MAX_MODULE_FILE,
        "a kernel module",
    )?)
}

/// The ELF inside a module file's bytes, decompressed up to `MAX_MODULE_ELF`.
pub fn decode_module(path: &Path, data: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let Some(format) = Compression::detect(data) else {
        return Err(elf::not_elf(data).named(path.display()));
    };
    let elf = decompress(format, data).map_err(|source| ModuleError::Decompress {
        path: path.to_owned(),
        format,
        source,
    })?;
    if elf.len() as u64 > MAX_MODULE_ELF {
        return Err(ModuleError::TooBig {
            path: path.to_owned(),
            cap: MAX_MODULE_ELF,
        });
    }
    if !elf.starts_with(b"\x7fELF") {
        return Err(elf::not_elf(&elf).named(format!("{} (after {format})", path.display())));
    }
    Ok(elf)
}

/// Decompresses at most one byte past the cap: a bomb stops there.
fn decompress(format: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    let cap = MAX_MODULE_ELF + 1;
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(cap as usize));
    match format {
        Compression::None => out.extend_from_slice(data),
        // Multi-stream readers: concatenated streams are valid files and the
        // tools accept them, so we do too.
        Compression::Xz => {
            liblzma::read::XzDecoder::new_multi_decoder(data)
                .take(cap)
                .read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(data)?
                .take(cap)
                .read_to_end(&mut out)?;
        }
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(data)
                .take(cap)
                .read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// Compresses a module image the way Kbuild does (default levels), so a rewritten variant can
/// be shipped in its original format and exercise in-kernel decompression.
pub fn compress(format: Compression, elf: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let wrap = |source: io::Error| ModuleError::Compress { format, source };
    match format {
        Compression::None => Ok(elf.to_vec()),
        Compression::Xz => {
            // The kernel's xz decoder supports only CRC32 checks (Kbuild uses
            // `xz --check=crc32 --lzma2=dict=1MiB`).
            let mut opts = liblzma::stream::LzmaOptions::new_preset(6)
                .map_err(|e| wrap(io::Error::other(e)))?;
            opts.dict_size(1 << 20);
            let mut filters = liblzma::stream::Filters::new();
            filters.lzma2(&opts);
            let stream = liblzma::stream::Stream::new_stream_encoder(
                &filters,
                liblzma::stream::Check::Crc32,
            )
            .map_err(|e| wrap(io::Error::other(e)))?;
            let mut out = Vec::new();
            liblzma::read::XzEncoder::new_stream(elf, stream)
                .read_to_end(&mut out)
                .map_err(wrap)?;
            Ok(out)
        }
        Compression::Zstd => zstd::stream::encode_all(elf, 3).map_err(wrap),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzEncoder::new(elf, flate2::Compression::default())
                .read_to_end(&mut out)
                .map_err(wrap)?;
            Ok(out)
        }
    }
}

/// The files of the modules among `wanted` (config option, module name)
/// that this kernel builds as modules (`=m`), each after its
/// dependencies, each once: what the guest loads before it can use a
/// device (virtio-net, virtiofs) that a Debian 6.1 kernel has only as
/// modules. Built-in (`=y`) ones need nothing.
pub fn needed_for(
    image: &crate::kernel::KernelImage,
    wanted: &[(&str, &str)],
) -> Result<Vec<PathBuf>, ModuleError> {
    let as_modules: Vec<&str> = wanted
        .iter()
        .filter(|(opt, _)| image.config.parsed.get(opt) == "m")
        .map(|(_, m)| *m)
        .collect();
    if as_modules.is_empty() {
        return Ok(Vec::new());
    }
    let index = ModuleIndex::scan(&image.modules_dir)?;
    let mut out: Vec<PathBuf> = Vec::new();
    for m in as_modules {
        for f in index.with_dependencies(m)? {
            if !out.contains(&f.path) {
                out.push(f.path);
            }
        }
    }
    Ok(out)
}
