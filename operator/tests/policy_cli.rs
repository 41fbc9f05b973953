//! `perf-operator policy ...` as CI runs it: the process's exit code and streams for each kind of failure.

use std::process::{Command, Output};

fn policy(args: &[&str]) -> Output {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    Command::new(env!("CARGO_BIN_EXE_perf-operator")).current_dir(root).arg("policy").args(args).output().unwrap()
}

fn eval(policy_file: &str, input: &str, extra: &[&str]) -> Output {
    let args = [&["eval", "--policy", policy_file, "--world", "cache", "--input", input][..], extra].concat();
    policy(&args)
}

const HOSTILE: &str = "policies/host/tests/fixtures/hostile.wasm";
const INPUT: &str = "policies/examples/cache-input.json";

#[test]
fn each_failure_has_its_exit_code_and_category() {
    let cases = [
        (HOSTILE, INPUT, r#"{"mode":"echo"}"#, 0, None),
        (HOSTILE, INPUT, r#"{"mode":"trap"}"#, 1, Some("trap")),
        (HOSTILE, "/dev/zero", "{}", 2, Some("input")),
        ("policies/host/tests/fixtures/version-0.1.0.wasm", INPUT, "{}", 3, Some("wrong_world")),
        ("policies/host/tests/fixtures/compile-bomb.wasm", INPUT, "{}", 3, Some("load")),
    ];
    for (file, input, settings, code, category) in cases {
        let out = eval(file, input, &["--settings", settings, "--output", "json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{file} {input} {settings}: {stdout}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(report["error"]["category"].as_str(), category, "{stdout}");
    }
}

#[test]
fn text_mode_puts_a_failure_on_stderr_in_one_line() {
    let out = eval("policies/host/tests/fixtures/multi-memory.wasm", INPUT, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error (load): ") && stderr.contains("2 linear memories"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn help_documents_the_exit_codes() {
    for command in ["eval", "validate", "bench", "push", "pull"] {
        let out = policy(&[command, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Exit codes: 0 success; 1 the policy ran and failed"), "{command}: {help}");
    }
    // A usage error is clap's exit code 2, like bad input.
    assert_eq!(policy(&["eval", "--world", "cache"]).status.code(), Some(2));
}

#[test]
fn registry_references_are_refused_before_any_traffic_when_malformed() {
    // Each: the reference, and a part of the message (exit 2, bad input; nothing is asked of any server).
    let cases = [
        ("https://r.example/p:v1", "registry://"),
        ("registry://registry/p:v1", "not read as a registry host"),
        ("registry://r.example/UPPER:v1", "registry reference"),
        ("registry://r.example/p@sha256:abc", "registry reference"),
    ];
    for (reference, says) in cases {
        let out = policy(&["pull", reference, "-o", "/dev/null"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{reference}: {stderr}");
        assert!(stderr.starts_with("error (input): ") && stderr.contains(says), "{reference}: {stderr}");
    }
    let out = policy(&[
        "push",
        "policies/builtin/adaptive-ttl.wasm",
        &format!("registry://r.example/p@sha256:{}", "a".repeat(64)),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("push to a tag"));
}

#[test]
fn a_host_that_cannot_map_an_instances_memory_is_not_the_components_fault() {
    // Under a 1 GiB address-space limit wasmtime cannot reserve a linear memory (4 GiB and its guard): the host's
    // failure, not the component's (exit 1, `internal`), so an operator would not remember it against the digest.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("prlimit")
        .current_dir(root)
        .arg(format!("--as={}", 1u64 << 30))
        .arg(env!("CARGO_BIN_EXE_perf-operator"))
        .args(["policy", "eval", "--policy", HOSTILE, "--world", "cache", "--input", INPUT, "--output", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["error"]["category"], "internal", "{stdout}");
    assert!(report["error"]["message"].as_str().unwrap_or_default().contains("failed on the host"), "{stdout}");
}

#[test]
fn the_compile_worker_refuses_what_is_not_a_component_and_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_perf-operator"))
        .args(["policy", "compile-worker", "--memory-bytes", "268435456", "--cpu-seconds", "10", "--max-input", "64"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("peak-rss-kib"), "{out:?}");
}
