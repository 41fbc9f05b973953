use super::*;

fn profile(namespace: &str, spec: serde_json::Value) -> PerformanceProfile {
    let mut p: PerformanceProfile = serde_json::from_value(serde_json::json!({
        "apiVersion": "perf.operator.dev/v1alpha1",
        "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": namespace},
        "spec": spec,
    }))
    .expect("a profile");
    p.metadata.namespace = Some(namespace.into());
    p
}

fn every_endpoint(ch: &str, redis: &str, pg: &str, prom: &str, policy: &str) -> serde_json::Value {
    let pin = "0".repeat(64);
    serde_json::json!({
        "targetRef": {"name": "api"},
        "cache": {"redis": {"external": {"address": redis}},
                  "policy": {"url": {"url": policy, "sha256": pin}},
                  "candidate": {"url": {"url": policy, "sha256": pin}}},
        "clickhouse": {"endpoint": ch, "database": "team_a", "tables": []},
        "pools": {"postgres": {"min": 1, "max": 5,
                               "server": {"host": pg, "credentialsSecretRef": {"name": "db"}}}},
        "rateLimit": {"routes": [{"route": "/api", "requestsPerSecond": 100, "burst": 200}], "prometheus": prom,
                      "policy": {"registry": {"reference": policy.replacen("https://", "registry://", 1), "sha256": pin}}},
        "canary": {"analysis": {"prometheus": prom}},
    })
}

fn egress(allow: &[&str], reserved: &[&str]) -> Egress {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Egress::new(&s(allow), &s(reserved), vec![]).unwrap()
}

fn fields(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.field.as_str()).collect()
}

#[test]
fn every_field_that_names_a_server_is_found() {
    let p = profile(
        "team-a",
        every_endpoint("http://ch:8123", "redis://cache:6379", "db", "http://prom:9090", "https://pol.example/x.wasm"),
    );
    let found: Vec<(String, Kind, String)> = endpoints(&p);
    let want = [
        ("spec.cache.redis.external.address", Kind::Redis, "cache"),
        ("spec.clickhouse.endpoint", Kind::ClickHouse, "ch"),
        ("spec.canary.analysis.prometheus", Kind::Prometheus, "prom"),
        ("spec.rateLimit.prometheus", Kind::Prometheus, "prom"),
        ("spec.cache.policy.url.url", Kind::Policy, "pol.example"),
        ("spec.rateLimit.policy.registry.reference", Kind::Policy, "pol.example"),
        ("spec.cache.candidate.url.url", Kind::Policy, "pol.example"),
        ("spec.pools.postgres.server.host", Kind::Postgres, "db"),
    ];
    let want: Vec<(String, Kind, String)> = want.iter().map(|(f, k, h)| (f.to_string(), *k, h.to_string())).collect();
    assert_eq!(found, want);
}

#[test]
fn reserved_and_unlisted_servers_are_refused_with_their_field() {
    let p = profile(
        "team-a",
        every_endpoint(
            "http://127.0.0.1:8123",
            "redis://[::1]:6379",
            "169.254.169.254",
            "http://localhost:9090",
            "https://0.0.0.0/x.wasm",
        ),
    );
    let rules = Rules { egress: &egress(&[], &[]), databases: &[] };
    let found = check(&p, rules, "spec");
    assert_eq!(found.len(), 8, "{found:?}");
    assert!(found.iter().all(|f| f.message.contains("--egress-allow-reserved")), "{found:?}");
    // The administrator's reserved range opens them.
    let open = egress(&[], &["127.0.0.0/8", "::1/128", "169.254.0.0/16", "0.0.0.0/8"]);
    assert!(check(&p, Rules { egress: &open, databases: &[] }, "spec").is_empty());

    let listed = egress(&["clickhouse=*.{namespace}.svc", "prometheus=prometheus.monitoring.svc"], &[]);
    let p = profile(
        "team-a",
        every_endpoint(
            "http://ch.team-b.svc:8123",
            "redis://cache:6379",
            "db",
            "http://evil.example:9090",
            "https://pol.example/x.wasm",
        ),
    );
    let found = check(&p, Rules { egress: &listed, databases: &[] }, "spec");
    assert_eq!(
        fields(&found),
        ["spec.clickhouse.endpoint", "spec.canary.analysis.prometheus", "spec.rateLimit.prometheus"]
    );
    assert!(found[0].message.contains("ch.team-b.svc is not among the clickhouse endpoints"), "{}", found[0].message);
}

#[test]
fn clickhouse_databases_follow_the_administrators_patterns() {
    let patterns = ["{namespace}".to_string(), "{namespace}_*".to_string(), "shared_reports".to_string()];
    let table = [
        // A database is an identifier: the namespace's `-` is written `_`.
        ("team-a", "team_a", None),
        ("team-a", "team_a_events", None),
        ("team-a", "shared_reports", None),
        ("plain", "plain", None),
        ("team-a", "team_b", Some("not among the databases")),
        ("team-a", "team_b_events", Some("not among the databases")),
        ("team-a", "team_ax", Some("not among the databases")),
        ("team-a-b", "team_a", Some("not among the databases")),
        ("team-a-b", "team_a_b", None),
        // The server's own databases are the spec check's to refuse (for every profile, validate too).
        ("team-a", "system", None),
        ("team-a", "INFORMATION_SCHEMA", None),
    ];
    for (namespace, database, want) in table {
        let problem = database_problem(&patterns, namespace, database);
        match want {
            None => assert_eq!(problem, None, "{database}"),
            Some(text) => assert!(problem.as_deref().is_some_and(|p| p.contains(text)), "{database}: {problem:?}"),
        }
    }
    assert_eq!(database_problem(&[], "a", "anything"), None, "no patterns: any but the server's own");
    let p = profile("team-a", every_endpoint("http://ch:8123", "redis://c:6379", "db", "http://p:9090", "https://x/y"));
    let mut p = p;
    p.spec.clickhouse.as_mut().unwrap().database = "System".into();
    let spec_findings = crate::validate::check_spec(&p, "spec");
    assert!(
        spec_findings.iter().any(|f| f.field == "spec.clickhouse.database" && f.message.contains("server's own")),
        "{spec_findings:?}"
    );

    let mut p =
        profile("team-a", every_endpoint("http://ch:8123", "redis://c:6379", "db", "http://p:9090", "https://x/y"));
    p.spec.clickhouse.as_mut().unwrap().database = "team-b".into();
    let found = check(&p, Rules { egress: &Egress::open(), databases: &patterns }, "f.yaml");
    assert_eq!(fields(&found), ["spec.clickhouse.database"]);
    assert_eq!(found[0].location, "f.yaml");
}

#[test]
fn globs_match_whole_names() {
    let table = [
        ("a*", "abc", true),
        ("a*", "a", true),
        ("*c", "abc", true),
        ("a*c", "ac", true),
        ("a*b*c", "axbyc", true),
        ("a*b*c", "acb", false),
        ("abc", "abcd", false),
        ("*", "", true),
        ("a*a", "a", false),
    ];
    for (pattern, text, want) in table {
        assert_eq!(glob(pattern, text), want, "{pattern} {text}");
    }
}

#[test]
fn database_patterns_are_checked() {
    for good in ["team", "{namespace}", "{namespace}_*", "*"] {
        assert_eq!(database_pattern(good).as_deref(), Ok(good));
    }
    for bad in ["", "a b", "a.b", "`x`", "{ns}"] {
        assert!(database_pattern(bad).is_err(), "{bad}");
    }
}

#[test]
fn alert_and_rule_labels_outside_the_administrators_lists_are_named() {
    let alerts = perf_operator_api::SloAlerts {
        alert_labels: [("team".to_string(), "payments".to_string()), ("tier".to_string(), "1".to_string())].into(),
        rule_labels: [("release".to_string(), "prometheus-global".to_string())].into(),
        ..Default::default()
    };
    assert!(label_problems(&alerts, &[], &[]).is_empty(), "no lists: any label");
    let problems = label_problems(&alerts, &["tier".to_string()], &["release".to_string()]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("spec.slo.alerts.alertLabels.team: not among") && problems[0].contains("tier"));
    let problems = label_problems(&alerts, &["team".to_string(), "tier".to_string()], &["prometheus".to_string()]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("spec.slo.alerts.ruleLabels.release:"), "{problems:?}");
}
