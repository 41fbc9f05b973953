use super::round::{self, ObjectRef};
use super::*;
use perf_operator_api::{RefusedObject, WindowLimit};
use serde_json::json;

fn profile(enforcement: Value, routes: Value) -> PerformanceProfile {
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "web.v2", "namespace": "shop", "uid": "u1"},
        "spec": {"targetRef": {"name": "web"}, "rateLimit": {"routes": routes, "enforcement": enforcement}}
    }))
    .expect("profile")
}

fn routes(list: &[(&str, u32)]) -> Value {
    Value::Array(list.iter().map(|(r, n)| json!({"route": r, "requestsPerSecond": n, "burst": n})).collect())
}

fn limits(p: &PerformanceProfile) -> Vec<Enforced> {
    enforced(p, &p.spec.rate_limit.as_ref().expect("section").routes)
}

fn render(p: &PerformanceProfile) -> Result<Rendered, NotExpressible> {
    backend(p, &AdminDefaults::default()).render(p, &limits(p))
}

fn policy_rules(r: &Rendered, scope: &str) -> Vec<Value> {
    let Rendered::Policy { object, .. } = r else { panic!("not a policy: {r:?}") };
    object["spec"]["rateLimit"][scope]["rules"].as_array().expect("rules").clone()
}

#[test]
fn envoy_gateway_gets_one_rule_per_route_that_leaves_nested_routes_out() {
    let eg = json!({"mode": "envoyGateway", "window": "Minute", "envoyGateway": {"httpRoute": "web"}});
    let p = profile(eg, routes(&[("/", 1), ("/api/", 2), ("/api/v1", 3), ("/apix", 4)]));
    let rendered = render(&p).expect("expressible");
    let Rendered::Policy { object, name, .. } = &rendered else { panic!() };
    assert_eq!(name, "web.v2-ratelimit");
    assert_eq!(
        object["spec"]["targetRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"}])
    );
    assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "u1");
    let rules = policy_rules(&rendered, "local");
    let selectors = |i: usize| rules[i]["clientSelectors"].clone();
    // "/" leaves out the routes right under it ("/api" takes "/api/v1" along); "/api" leaves out "/api/v1", not
    // "/apix".
    assert_eq!(
        selectors(0),
        json!([{"path": {"type": "PathPrefix", "value": "/"}}, {"path": {"type": "PathPrefix", "value": "/api", "invert": true}},
            {"path": {"type": "PathPrefix", "value": "/apix", "invert": true}}])
    );
    assert_eq!(
        selectors(1),
        json!([{"path": {"type": "PathPrefix", "value": "/api"}}, {"path": {"type": "PathPrefix", "value": "/api/v1", "invert": true}}])
    );
    assert_eq!(selectors(3), json!([{"path": {"type": "PathPrefix", "value": "/apix"}}]));
    assert_eq!(rules[2]["limit"], json!({"requests": 180, "unit": "Minute"}));
}

#[test]
fn envoy_gateway_refuses_what_it_cannot_express_naming_the_field() {
    let local = json!({"mode": "envoyGateway", "envoyGateway": {"httpRoute": "web"}});
    let many: Vec<(String, u32)> = (0..17).map(|i| (format!("/r{i}"), 1)).collect();
    let many: Vec<(&str, u32)> = many.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    let cases = [
        (
            profile(json!({"mode": "envoyGateway"}), routes(&[("/a", 1)])),
            "spec.rateLimit.enforcement.envoyGateway.httpRoute",
        ),
        (profile(local.clone(), routes(&many)), "spec.rateLimit.routes"),
        (
            profile(
                json!({"mode": "envoyGateway", "window": "Hour", "envoyGateway": {"httpRoute": "web"}}),
                routes(&[("/a", 2_000_000)]),
            ),
            "spec.rateLimit.routes[0]",
        ),
    ];
    for (p, field) in cases {
        let e = render(&p).expect_err("not expressible");
        assert_eq!(e.field, field, "{e}");
    }
    // Eight routes under "/": nine selectors, which Envoy Gateway's schema refuses (the API server reports it).
    let under_root: Vec<String> = std::iter::once("/".to_string()).chain((0..8).map(|i| format!("/n{i}"))).collect();
    let under_root: Vec<(&str, u32)> = under_root.iter().map(|r| (r.as_str(), 1)).collect();
    let crowded = profile(local.clone(), routes(&under_root));
    let rules = policy_rules(&render(&crowded).expect("rendered"), "local");
    assert_eq!(rules[0]["clientSelectors"].as_array().map(Vec::len), Some(9));
    // `validate` and `plan` say so before any API server does; seven under it are fine.
    let problems = offline_problems(&crowded);
    assert_eq!(
        problems.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["spec.rateLimit.routes[0]"],
        "{problems:?}"
    );
    assert!(offline_problems(&profile(local.clone(), routes(&under_root[..8]))).is_empty());
    // Global takes more than 16 routes.
    let global = json!({"mode": "envoyGateway", "envoyGateway": {"httpRoute": "web", "scope": "Global"}});
    assert_eq!(policy_rules(&render(&profile(global, routes(&many))).expect("global"), "global").len(), 17);
}

#[test]
fn the_rate_limit_service_gets_a_domain_per_profile_and_a_descriptor_per_route() {
    let p = profile(json!({"mode": "rateLimitService", "window": "Minute"}), routes(&[("/api/v1", 2), ("/x:y", 1)]));
    let Rendered::ConfigMap { name, key, config, object } = render(&p).expect("expressible") else { panic!() };
    assert_eq!((name.as_str(), key.as_str()), ("web.v2-ratelimit", "shop_web_v2.yaml"));
    assert_eq!(object["data"][&key], config);
    let parsed: Value = serde_saphyr::from_str(&config).expect("yaml");
    assert_eq!(
        parsed,
        json!({"domain": "shop_web_v2", "descriptors": [
            {"key": "route", "value": "/api/v1", "rate_limit": {"unit": "minute", "requests_per_unit": 120}},
            {"key": "route", "value": "/x:y", "rate_limit": {"unit": "minute", "requests_per_unit": 60}}]})
    );
    let q = backend(&p, &AdminDefaults::default()).rejections(&p, "/x:y").expect("query");
    assert!(q.contains(r#"domain="shop_web_v2", key1="route_/x_y""#), "{q}");
    let dotted = profile(json!({"mode": "rateLimitService"}), routes(&[("/a.json", 1)]));
    assert_eq!(render(&dotted).expect_err("dots").field, "spec.rateLimit.routes[0].route");
}

#[test]
fn rejections_come_from_the_profile_then_the_backend_then_nowhere() {
    let contract = profile(json!({"mode": "contract"}), routes(&[("/a\"b", 1)]));
    let b = backend(&contract, &AdminDefaults::default());
    let q = rejections_query(&contract, b.as_ref(), "/a\"b").expect("app 429s");
    assert!(q.contains(r#"namespace="shop", route="/a\"b", code="429""#), "{q}");
    let own = profile(
        json!({"mode": "envoyGateway", "envoyGateway": {"httpRoute": "web"}, "rejectionsQuery": "sum(x{namespace=\"{{namespace}}\", r=\"{{route}}\"})"}),
        routes(&[("/a", 1)]),
    );
    let b = backend(&own, &AdminDefaults::default());
    assert_eq!(rejections_query(&own, b.as_ref(), "/a").as_deref(), Some(r#"sum(x{namespace="shop", r="/a"})"#));
    let eg = profile(json!({"mode": "envoyGateway", "envoyGateway": {"httpRoute": "web"}}), routes(&[("/a", 1)]));
    assert_eq!(rejections_query(&eg, backend(&eg, &AdminDefaults::default()).as_ref(), "/a"), None);
    let admin =
        AdminDefaults { envoy_gateway_rejections: Some("sum(y{route=\"{{route}}\", p=\"{{profile}}\"})".into()) };
    assert_eq!(
        rejections_query(&eg, backend(&eg, &admin).as_ref(), "/a").as_deref(),
        Some(r#"sum(y{route="/a", p="web.v2"})"#)
    );
}

fn with_status(mut p: PerformanceProfile, object: Option<&str>, refused: Option<&str>) -> PerformanceProfile {
    let status = perf_operator_api::RateLimitStatus {
        mode: perf_operator_api::EnforcementMode::EnvoyGateway,
        object: object.map(String::from),
        enforced: [("/a".to_string(), WindowLimit { requests: 1, window: perf_operator_api::Window::Second })].into(),
        refused: refused.map(|sha256| RefusedObject { sha256: sha256.into(), message: "spec.x: Invalid".into() }),
        written_at: None,
    };
    p.status = Some(perf_operator_api::PerformanceProfileStatus { rate_limit: Some(status), ..Default::default() });
    p
}

#[test]
fn a_round_retires_what_the_profile_no_longer_wants_and_never_resends_a_refused_rendering() {
    let eg = json!({"mode": "envoyGateway", "envoyGateway": {"httpRoute": "web"}});
    let policy = "BackendTrafficPolicy/web.v2-ratelimit";
    // Same object as before: nothing retired.
    let same = round::decide(&with_status(profile(eg.clone(), routes(&[("/a", 1)])), Some(policy), None), None)
        .expect("round");
    assert_eq!((same.retire.clone(), same.refused.clone()), (None, None));
    let sha = same.apply.as_ref().map(|(_, sha)| sha.clone()).expect("applies");
    // The refused rendering is not sent again; a changed one is.
    let refused =
        round::decide(&with_status(profile(eg.clone(), routes(&[("/a", 1)])), Some(policy), Some(&sha)), None);
    assert!(refused.expect("round").refused.is_some());
    let changed = round::decide(&with_status(profile(eg, routes(&[("/a", 2)])), Some(policy), Some(&sha)), None);
    assert_eq!(changed.expect("round").refused, None);
    // Switched to the rate-limit service, to the contract, or the section gone: the policy is retired.
    let old = ObjectRef::parse(policy);
    for spec in [json!({"mode": "rateLimitService"}), json!({"mode": "contract"})] {
        let r =
            round::decide(&with_status(profile(spec, routes(&[("/a", 1)])), Some(policy), None), None).expect("round");
        assert_eq!(r.retire, old);
    }
    let mut gone = with_status(profile(json!({"mode": "contract"}), routes(&[("/a", 1)])), Some(policy), None);
    gone.spec.rate_limit = None;
    assert_eq!(round::decide(&gone, None).expect("retires").retire, old);
    gone.status = None;
    assert_eq!(round::decide(&gone, None), None);
    // Not expressible: the object applied before keeps enforcing the last limits it could.
    let many: Vec<(String, u32)> = (0..17).map(|i| (format!("/r{i}"), 1)).collect();
    let many: Vec<(&str, u32)> = many.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    let eg = json!({"mode": "envoyGateway", "envoyGateway": {"httpRoute": "web"}});
    let stuck = round::decide(&with_status(profile(eg, routes(&many)), Some(policy), None), None).expect("round");
    assert!(stuck.not_expressible.is_some() && stuck.retire.is_none() && stuck.apply.is_none());
}

#[test]
fn a_route_placeholder_outside_a_string_is_refused_as_it_would_carry_the_tenants_promql() {
    for (template, ok) in [
        (r#"sum(rate(x{namespace="{{namespace}}", route="{{route}}"}[1m]))"#, true),
        (r#"sum(x{namespace="{{namespace}}", route=~"{{route}}/.*"})"#, true),
        (r#"sum(x{namespace="{{namespace}}", a="q\"{{route}}"})"#, true),
        (r#"sum(x{namespace="{{namespace}}"}) {{route}} 2"#, false),
        (r#"sum(x{namespace="{{namespace}}", a="\""}) + {{route}}"#, false),
        ("{{route}}", false),
    ] {
        assert_eq!(route_only_in_strings(template), ok, "{template}");
    }
    // With "/" for the route, this one parses and is pinned; a route "+ up +" would have read every namespace.
    let p = profile(
        json!({"mode": "contract", "rejectionsQuery": "sum(x{namespace=\"{{namespace}}\"}) {{route}} 2"}),
        routes(&[("/a", 1)]),
    );
    let (field, message) = rejections_problem(&p).expect("refused");
    assert_eq!(field, "spec.rateLimit.enforcement.rejectionsQuery");
    assert!(message.contains("inside a double-quoted string"), "{message}");
}
