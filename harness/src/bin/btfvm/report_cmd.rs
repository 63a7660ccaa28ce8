//! `btfvm report merge`: the reports or JUnit files of shards, as one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use btfvm::report::merge::{merge as merge_reports, merge_junit};
use btfvm::report::{write_report, Report};
use btfvm::support::fsread;

use crate::exit::{Classified, CmdResult};

/// Reports of a few hundred trials are a few MB; far more is not one.
const MAX_INPUT: u64 = 256 << 20;

fn is_xml(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "xml")
}

pub fn merge(out: &Path, inputs: &[PathBuf]) -> CmdResult {
    let xml = is_xml(out);
    if let Some(other) = inputs.iter().find(|p| is_xml(p) != xml) {
        return Err(Classified::input(anyhow!(
            "{}: merge .json reports into a .json file and JUnit .xml files into a .xml file",
            other.display()
        )));
    }
    btfvm::report::check_target(out).map_err(Classified::input)?;
    let texts = inputs
        .iter()
        .map(|p| fsread::read_text(p, MAX_INPUT, "a btfvm report").map_err(Classified::input))
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = if xml {
        let reports = texts
            .iter()
            .zip(inputs)
            .map(|(t, p)| {
                quick_junit::Report::deserialize_from_str(t)
                    .map_err(|e| Classified::input(anyhow!("{}: {e}", p.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let merged = merge_junit(reports).map_err(Classified::input)?;
        btfvm::report::junit::xml_of(merged)
            .map_err(|e| Classified::env(anyhow!("{e}")))?
            .into_bytes()
    } else {
        let reports = texts
            .iter()
            .zip(inputs)
            .map(|(t, p)| {
                serde_json::from_str::<Report>(t).map_err(|e| {
                    Classified::input(anyhow!("{}: not a btfvm report: {e}", p.display()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        merge_reports(reports).map_err(Classified::input)?.to_json()
    };
    write_report(out, &bytes).map_err(Classified::env)?;
    println!("merged {} file(s) into {}", inputs.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

/// `btfvm report merge-matrix`: the folders of `btfvm matrix --partition`
/// shards (matrix.json, and report.json where the suite ran) into one
/// folder with the whole table. Exits like `btfvm matrix`.
pub fn merge_matrix(out: &Path, shards: &[PathBuf]) -> CmdResult {
    use btfvm::report::matrix::{render, Cell};
    let mut tables = Vec::new();
    let mut reports = Vec::new();
    for dir in shards {
        let path = dir.join("matrix.json");
        let text = fsread::read_text(&path, MAX_INPUT, "a btfvm matrix table")
            .map_err(Classified::input)?;
        let cells: Vec<Cell> = serde_json::from_str(&text).map_err(|e| {
            Classified::input(anyhow!("{}: not a btfvm matrix table: {e}", path.display()))
        })?;
        tables.push(cells);
        let rpath = dir.join("report.json");
        if rpath.exists() {
            let t = fsread::read_text(&rpath, MAX_INPUT, "a btfvm report")
                .map_err(Classified::input)?;
            let r: Report = serde_json::from_str(&t).map_err(|e| {
                Classified::input(anyhow!("{}: not a btfvm report: {e}", rpath.display()))
            })?;
            reports.push(r);
        }
    }
    let cells = btfvm::report::merge::merge_cells(tables).map_err(Classified::input)?;
    std::fs::create_dir_all(out).map_err(Classified::env)?;
    let ran = !reports.is_empty();
    let table = render(&cells, ran);
    println!("{table}");
    let write = |name: &str, bytes: &[u8]| {
        btfvm::support::cache::write_atomic(&out.join(name), bytes).map_err(Classified::env)
    };
    write("matrix.md", table.as_bytes())?;
    write(
        "matrix.json",
        &serde_json::to_vec_pretty(&cells).map_err(Classified::env)?,
    )?;
    if ran {
        let r = merge_reports(reports).map_err(Classified::input)?;
        write("report.json", &r.to_json())?;
    }
    println!(
        "merged {} shard(s), {} row(s), into {}",
        shards.len(),
        cells.len(),
        out.display()
    );
    Ok(if cells.iter().all(|c| c.as_expected) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::FAILED)
    })
}
