//! Boots in parallel: the whole suite on four Debian kernels in one run,
//! with one boot at a time (-j 1) and with the default (one per core),
//! next to the sum of the four run alone; rounds interleaved, so machine
//! load hits all alike.
//!
//!   cargo bench --bench parallel                       # 3 rounds
//!   BTFVM_BENCH_ROUNDS=5 BTFVM_BENCH_KERNELS=bookworm,sid cargo bench --bench parallel

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::median;

fn run(root: &Path, kernels: &[&str], jobs: Option<usize>) -> Duration {
    let mut c = common::btfvm_run(root, &[]);
    for k in kernels {
        c.args(["--kernel", k]);
    }
    if let Some(j) = jobs {
        c.arg("-j").arg(j.to_string());
    }
    let t = Instant::now();
    let st = c.status().expect("btfvm run");
    let d = t.elapsed();
    assert!(
        st.success(),
        "btfvm run {kernels:?} -j {jobs:?} failed: {st}"
    );
    d
}

fn main() {
    let list = std::env::var("BTFVM_BENCH_KERNELS")
        .unwrap_or_else(|_| "bookworm,trixie,sid,bullseye".into());
    let kernels: Vec<&str> = list.split(',').filter(|k| !k.is_empty()).collect();
    let rounds: usize = std::env::var("BTFVM_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("kernels {kernels:?}, {rounds} rounds, {cores} cores");
    // Warm every cache (downloads, bpftool) before anything is timed.
    run(&root, &kernels, None);
    let (mut alone, mut serial, mut parallel) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let sum: Duration = kernels.iter().map(|k| run(&root, &[k], None)).sum();
        alone.push(sum);
        serial.push(run(&root, &kernels, Some(1)));
        parallel.push(run(&root, &kernels, None));
        println!(
            "round {round}: sum alone {:.2} s, -j 1 {:.2} s, default {:.2} s",
            sum.as_secs_f64(),
            serial[round - 1].as_secs_f64(),
            parallel[round - 1].as_secs_f64()
        );
    }
    let (a, s, p) = (
        median(&mut alone),
        median(&mut serial),
        median(&mut parallel),
    );
    println!();
    println!("| | median | vs the sum alone |");
    println!("|---|---|---|");
    println!(
        "| the {} run alone, summed | {:.2} s | 1.00x |",
        kernels.len(),
        a.as_secs_f64()
    );
    println!(
        "| one run, -j 1 | {:.2} s | {:.2}x |",
        s.as_secs_f64(),
        s.as_secs_f64() / a.as_secs_f64()
    );
    println!(
        "| one run, default -j ({cores} cores) | {:.2} s | {:.2}x |",
        p.as_secs_f64(),
        p.as_secs_f64() / a.as_secs_f64()
    );
}
