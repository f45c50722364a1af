//! Benchmark of the voting rules on the largest shipped Pabulib elections, timed with std only.
//!
//! `cargo bench --bench voting [NAME]` runs equal shares and greedy on Łódź 2024, Amsterdam 252
//! and Toulouse 2022 (or only the files whose name contains NAME). With
//! `ALLMENDE_PABUTOOLS_PYTHON` set to a Python with pabutools 1.2.3 it also runs
//! `scripts/pabutools_outcome.py` on each and says whether the winners agree (pabutools needs
//! minutes here).

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use allmende::voting::pabulib;
use allmende::voting::{Profile, Rule, tally};

const FILES: [&str; 3] = [
    "Poland_Lodz_2024",
    "Netherlands_Amsterdam_252",
    "France_Toulouse_2022",
];

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/fixtures/pabulib");
    if !dir.is_dir() {
        eprintln!("the Pabulib data is missing: expected {}", dir.display());
        return ExitCode::FAILURE;
    }
    // `cargo bench` adds flags such as `--bench`; anything else filters the files.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let python = std::env::var_os("ALLMENDE_PABUTOOLS_PYTHON");
    let script = root.join("scripts/pabutools_outcome.py");
    let mut disagreements = 0;
    for name in FILES {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let path = dir.join(format!("{name}.pb"));
        let start = Instant::now();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let election = match pabulib::parse(&text) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let parsed = start.elapsed();
        let distinct = Profile::try_from(&election)
            .map(|p| p.distinct_ballots())
            .unwrap_or(0);
        println!(
            "{name}: {} projects, {} voters, {distinct} distinct ballots (parsed in {:.3} s)",
            election.projects.len(),
            election.votes.len(),
            parsed.as_secs_f64()
        );
        for rule in Rule::ALL {
            let report = match tally(&election, rule) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{name} {rule}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!(
                "  {:<13} {:>8.3} s  {} projects, cost {}",
                rule.name(),
                report.elapsed.as_secs_f64(),
                report.selected.len(),
                report.total_cost
            );
            let Some(python) = &python else { continue };
            let start = Instant::now();
            let output = Command::new(python)
                .arg(&script)
                .arg(&path)
                .arg("--rule")
                .arg(rule.name())
                .output();
            let seconds = start.elapsed().as_secs_f64();
            match output {
                Ok(out) if out.status.success() => {
                    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(str::to_string)
                        .collect();
                    let agree = theirs == report.selected;
                    if !agree {
                        disagreements += 1;
                    }
                    println!(
                        "  {:<13} {:>8.3} s  pabutools (incl. start-up), winners {}",
                        "",
                        seconds,
                        if agree { "agree" } else { "DIFFER" }
                    );
                }
                Ok(out) => {
                    eprintln!("pabutools failed: {}", String::from_utf8_lossy(&out.stderr));
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("cannot run {}: {e}", Path::new(python).display());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if python.is_none() {
        println!("(set ALLMENDE_PABUTOOLS_PYTHON to compare with pabutools)");
    }
    if disagreements > 0 {
        eprintln!("{disagreements} outcomes differ from pabutools");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
