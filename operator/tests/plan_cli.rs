//! `perf-operator plan` as CI runs it: the exit codes, the ClickHouse section offline and against the real
//! engine (CLICKHOUSE_URL), and credentials that never reach the output.

use std::path::PathBuf;
use std::process::{Command, Output};

fn plan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_perf-operator")).arg("plan").args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A profile whose ClickHouse section declares `codec` on column `model` of table `events` in `database`.
fn profile(database: &str, codec: &str) -> PathBuf {
    let yaml = format!(
        "apiVersion: perf.operator.dev/v1alpha1\nkind: PerformanceProfile\nmetadata:\n  name: risk-api\n  namespace: risk\n\
         spec:\n  targetRef:\n    name: risk-api\n  clickhouse:\n    endpoint: http://clickhouse.analytics:8123\n    \
         database: {database}\n    tables:\n      - name: events\n        codecs:\n          - column: model\n            \
         codec: {codec}\n"
    );
    let path = std::env::temp_dir().join(format!("plan-cli-{}-{database}-{}.yaml", std::process::id(), codec.len()));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn offline_plan_prints_the_codec_ddl_and_says_what_it_could_not_check() {
    let path = profile("risk", "ZSTD(3)");
    let out = plan(&["-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MODIFY COLUMN `model` CODEC(ZSTD(3))"), "{stdout}");
    assert!(stdout.contains("column types"), "{stdout}");
}

#[test]
fn bad_input_exits_1_and_a_refused_chain_names_its_field() {
    let path = profile("risk", "ZSTD, Delta");
    let out = plan(&["-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("spec.clickhouse.tables[0].codecs[0].codec"), "{}", text(&out));
    let missing = plan(&["-f", "/nonexistent/profile.yaml"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn credentials_never_reach_the_output() {
    let path = profile("risk", "ZSTD(3)");
    let out = plan(&["-f", path.to_str().unwrap(), "--clickhouse", "http://ops:hunter2secret@127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(!all.contains("hunter2secret"), "{all}");
    assert!(all.contains("127.0.0.1:1"), "{all}");
    let bad_url = plan(&["-f", path.to_str().unwrap(), "--clickhouse", "not a url"]);
    assert!(text(&bad_url).contains("--clickhouse: not a URL"), "{}", text(&bad_url));
}

/// Against the real engine: a codec that cannot fit its column is refused before sending, and `plan` exits 3.
#[tokio::test]
async fn live_refusals_exit_3_and_are_listed() {
    let Ok(url) = std::env::var("CLICKHOUSE_URL") else {
        panic!("CLICKHOUSE_URL not set: run tests/run.sh, or eval \"$(tests/support/start-clickhouse.sh start)\"");
    };
    let db = format!("plan_cli_{}", std::process::id());
    let admin = clickhouse::Client::default().with_url(url.as_str());
    admin.query(&format!("DROP DATABASE IF EXISTS {db}")).execute().await.unwrap();
    admin.query(&format!("CREATE DATABASE {db}")).execute().await.unwrap();
    admin
        .query(&format!("CREATE TABLE {db}.events (ts DateTime, model String) ENGINE = MergeTree ORDER BY ts"))
        .execute()
        .await
        .unwrap();
    let password = std::env::temp_dir().join(format!("plan-cli-{}-password", std::process::id()));
    std::fs::write(&password, "\n").unwrap();

    let path = profile(&db, "Gorilla, ZSTD(1)");
    let args = ["-f", path.to_str().unwrap(), "--clickhouse", url.as_str(), "--clickhouse-user", "default"];
    let out = plan(&[&args[..], &["--clickhouse-password-file", password.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("codec Gorilla is for Float32 and Float64 columns; the column is String"), "{stdout}");
    assert!(!stdout.contains("MODIFY COLUMN"), "nothing would be sent: {stdout}");

    let fits = profile(&db, "ZSTD(3)");
    let out = plan(&["-f", fits.to_str().unwrap(), "--clickhouse", url.as_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CODEC(ZSTD(3))"));
}

/// `examples/pools-from-load.yaml` derives the seed's hand-picked pools (ClickHouse 10, PostgreSQL 5-20) from the
/// load it declares, on stock servers; with the live limits of a small PostgreSQL (an observations file) the
/// server's share binds and the shortfall is said with both numbers.
#[test]
fn the_pools_example_reproduces_the_seeds_numbers_and_shows_live_limits() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/pools-from-load.yaml");
    let out = plan(&["-f", example, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let planned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sizes = &planned["pools"]["sizes"];
    assert_eq!((&sizes["clickhouse"]["max"], &sizes["clickhouse"]["reason"]), (&10.into(), &"Load".into()), "{sizes}");
    assert_eq!((&sizes["postgres"]["min"], &sizes["postgres"]["max"]), (&5.into(), &20.into()), "{sizes}");
    assert_eq!(planned["appConfig"]["data"]["pools.postgres.max"], "20");
    // The stock servers plan assumes, said in the plan: PostgreSQL 100 less 3 reserved, ClickHouse 4096.
    let servers = &planned["pools"]["servers"];
    assert_eq!(
        (&servers["postgres"]["maxConnections"], &servers["clickhouse"]["maxConnections"]),
        (&100.into(), &4096.into())
    );

    let observations = std::env::temp_dir().join(format!("plan-cli-{}-pg37.yaml", std::process::id()));
    std::fs::write(&observations, "postgres:\n  maxConnections: 37\n  superuserReservedConnections: 3\n").unwrap();
    let out = plan(&["-f", example, "--output", "json", "--observations", observations.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let planned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 37 - 3 = 34, less 10 % = 30, over 4 pods = 7 per pod; the load needs 20.
    let postgres = &planned["pools"]["sizes"]["postgres"];
    assert_eq!((&postgres["max"], &postgres["reason"]), (&7.into(), &"ServerCap".into()), "{postgres}");
    let limit = postgres["limit"].as_str().unwrap_or_default();
    assert!(limit.starts_with("live PostgreSQL max_connections 37 minus 3 reserved: 34"), "{limit}");
    let undersized = planned["pools"]["undersized"].to_string();
    assert!(undersized.contains("needs 20") && undersized.contains("allows 7"), "{undersized}");

    // A declared limit above the live one: used, and said with both numbers.
    std::fs::write(&observations, "postgres:\n  maxConnections: 37\n").unwrap();
    let declared = std::env::temp_dir().join(format!("plan-cli-{}-declared.yaml", std::process::id()));
    let yaml = std::fs::read_to_string(example)
        .unwrap()
        .replace("      max: 40\n", "      max: 40\n      serverMaxConnections: 500\n");
    std::fs::write(&declared, yaml).unwrap();
    let out =
        plan(&["-f", declared.to_str().unwrap(), "--output", "json", "--observations", observations.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let planned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = planned["pools"]["warnings"].to_string();
    assert!(warnings.contains("declared serverMaxConnections 500") && warnings.contains("reserved: 34"), "{warnings}");
    assert_eq!(planned["pools"]["sizes"]["postgres"]["max"], 20, "the declared 500 leaves the load's 20");
}

/// Linked as `kubectl-perf` on PATH, the binary is a kubectl plugin: kubectl finds it, hands it the words after
/// `kubectl perf`, and its help and errors say `kubectl perf`.
#[test]
fn installed_as_kubectl_perf_it_is_a_kubectl_plugin() {
    let dir = std::env::temp_dir().join(format!("kubectl-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl-perf");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_perf-operator"), &link).unwrap();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let kubectl = |args: &[&str]| Command::new("kubectl").args(args).env("PATH", &path).output().expect("run kubectl");

    let list = kubectl(&["plugin", "list"]);
    assert!(text(&list).contains(&link.display().to_string()), "kubectl plugin list: {}", text(&list));
    let help = kubectl(&["perf", "--help"]);
    assert!(help.status.success(), "{}", text(&help));
    assert!(text(&help).contains("Usage: kubectl perf [OPTIONS] <COMMAND>"), "{}", text(&help));
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/minimal.yaml");
    let planned = kubectl(&["perf", "plan", "-f", examples.to_str().unwrap()]);
    assert!(planned.status.success(), "{}", text(&planned));
    assert!(text(&planned).contains("PrometheusRule"), "{}", text(&planned));
    let wrong = kubectl(&["perf", "canary", "statuss", "x"]);
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    assert!(text(&wrong).contains("kubectl perf canary"), "{}", text(&wrong));
    let _ = std::fs::remove_dir_all(&dir);
}
