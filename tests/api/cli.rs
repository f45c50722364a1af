//! The `allmende` command itself: migrate, demo, verify, configuration errors, shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::helpers::fresh_database;

fn allmende() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_allmende"));
    command.env("ALLMENDE_LOG", "warn");
    // The test process's own settings must not leak into the command under test.
    for (key, _) in std::env::vars() {
        if key.starts_with("ALLMENDE_") && key != "ALLMENDE_LOG" {
            command.env_remove(key);
        }
    }
    command
}

#[tokio::test]
async fn demo_then_verify_reports_every_check_and_a_tampered_balance_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = fresh_database(dir.path()).await;
    let drop_pg = DropDatabase(_pg);

    let demo = allmende()
        .args(["--database", &url, "demo"])
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(String::from_utf8_lossy(&demo.stdout).contains("demo loaded"));

    let verify = allmende()
        .args(["--database", &url, "verify"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{out}");
    assert!(
        out.contains("ok    every transaction sums to zero"),
        "{out}"
    );
    assert!(out.contains("ok    every account balance equals the sum of its postings"));
    assert!(out.contains("ok    each proposal's escrow equals its pledges' open amounts"));
    assert!(out.contains("checks passed"));

    let db = allmende::db::Db::connect(&url).await.unwrap();
    sqlx::query("UPDATE accounts SET balance = balance - 1 WHERE id = 'coop:pool'")
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;

    let verify = allmende()
        .args(["--database", &url, "verify"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(!verify.status.success(), "verify must fail: {out}");
    assert!(
        out.contains("FAIL  every account balance equals the sum of its postings"),
        "{out}"
    );
    assert!(out.contains("coop:pool: -1"), "{out}");
    drop(drop_pg);
}

#[test]
fn a_wrong_setting_stops_start_up_and_is_named() {
    let output = allmende()
        .env("ALLMENDE_FEE_BASIS_POINTS", "fünf")
        .args(["migrate"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("fee_basis_points"), "{err}");
    assert!(err.contains("ALLMENDE_FEE_BASIS_POINTS"), "{err}");
}

#[test]
fn every_command_has_help() {
    for command in ["serve", "migrate", "verify", "demo"] {
        let output = allmende().args([command, "--help"]).output().unwrap();
        assert!(output.status.success(), "{command}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage: allmende"), "{command}: {text}");
    }
}

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = fresh_database(dir.path()).await;
    let _drop_pg = DropDatabase(pg);
    let mut child = allmende()
        .args([
            "--database",
            &url,
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--demo",
        ])
        .env("ALLMENDE_DATA_DIR", dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let address = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_owned();

    let home = reqwest::get(format!("{address}/")).await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(
        home.text().await.unwrap().contains("Wartungsvertrag 2027"),
        "--demo loaded the demo before serving"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "serve exited with {status}");
}

/// Drops a PostgreSQL test database when the test ends.
struct DropDatabase(Option<(String, String)>);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.0.take() {
            crate::helpers::drop_database(admin, name);
        }
    }
}

#[tokio::test]
async fn admin_create_makes_the_first_admin_with_a_link_to_set_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = fresh_database(dir.path()).await;
    let _drop_pg = DropDatabase(pg);
    for _ in 0..2 {
        let output = allmende()
            .args([
                "--database",
                &url,
                "admin",
                "create",
                "--email",
                "Root@Coop.example",
                "--name",
                "Ada Root",
            ])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            out.contains("Ada Root <root@coop.example> is a platform admin."),
            "{out}"
        );
        assert!(out.contains("/password-reset/"), "{out}");
    }
    let db = allmende::db::Db::connect(&url).await.unwrap();
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT r.role FROM platform_roles r JOIN people p ON p.id = r.person_id WHERE p.email = 'root@coop.example'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(
        roles,
        vec!["admin".to_owned()],
        "running it twice changes nothing"
    );
    db.close().await;

    let refused = allmende()
        .args([
            "--database",
            &url,
            "admin",
            "create",
            "--email",
            "not-an-address",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn tally_prints_the_winners_of_a_pabulib_file_without_a_database() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pabulib/Switzerland_Zurich_SN.pb"
    );
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pabulib/reference/Switzerland_Zurich_SN.json"
        ))
        .expect("the Pabulib reference results (tests/fixtures/pabulib)"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (rule, key) in [
        ("greedy", "greedy_cost_sat"),
        ("equal-shares", "mes_util_sat_add1e_then_greedy_cost"),
    ] {
        // No --database: the current directory has none, and none is created.
        let out = allmende()
            .current_dir(dir.path())
            .args(["tally", file, "--rule", rule])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        printed.sort();
        let mut expected: Vec<String> = reference["results"][key]["selected_in_order"]
            .as_array()
            .unwrap_or_else(|| panic!("reference has {key}: {reference}"))
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        expected.sort();
        assert_eq!(printed, expected, "{rule}");
        let summary = String::from_utf8_lossy(&out.stderr);
        assert!(summary.contains("of budget 60000"), "{summary}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());

    let bad = dir.path().join("bad.pb");
    std::fs::write(&bad, "META\nkey;value\nbudget;x\n").unwrap();
    let out = allmende()
        .args(["tally", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.pb:3:"));
}
