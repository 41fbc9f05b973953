//! A hostile server where a profile says Prometheus is (endless body, declared huge length, slow drip, redirect
//! chain, a body full of internal names): the shared client reads at most `MAX_ANSWER_BYTES` of one answer, never
//! follows a redirect, gives up at its deadline, and never echoes a body that is not the Prometheus API's. The same
//! through `perf-operator canary analyze`, whose peak memory stays under a bound while a server streams forever.
//! A canary query that could read another namespace is refused by `validate`, `canary analyze` and the reconcile
//! before any request leaves the operator.

mod fixtures;

use fixtures::{ProfileExt, World};

use perf_prometheus::{MAX_ANSWER_BYTES, MetricsSource, Prometheus, QueryError, Trouble};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the hostile server does after reading a request.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// 200, chunked, a JSON vector that never ends.
    Endless,
    /// 200 declaring a 10 GB body.
    DeclaredHuge,
    /// 200 with a valid answer sent one byte per 200 ms.
    Drip,
    /// 302 to `location`, every time.
    Redirect(u16),
    /// 500 whose body names internal hosts.
    Leaky,
}

/// A hostile server on 127.0.0.1; counts the bytes it managed to send and the requests it saw, and keeps their
/// heads.
struct Server {
    url: String,
    sent: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

fn serve(mode: Hostile) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (sent, requests) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s, r, h) = (sent.clone(), requests.clone(), heads.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (s, r, h) = (s.clone(), r.clone(), h.clone());
            std::thread::spawn(move || {
                let head = read_head(&stream);
                h.lock().unwrap().push(head);
                r.fetch_add(1, Ordering::SeqCst);
                answer(stream, mode, &s);
            });
        }
    });
    Server { url, sent, requests, heads }
}

/// The request's head (its body, none for a GET, is not read).
fn read_head(stream: &TcpStream) -> String {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (mut head, mut line) = (String::new(), String::new());
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        head.push_str(&line);
        line.clear();
    }
    head
}

fn answer(mut stream: TcpStream, mode: Hostile, sent: &AtomicU64) {
    // A bounded server: at most 64 MiB or 60 s per connection, whatever the client does.
    let started = Instant::now();
    let mut write = |bytes: &[u8]| {
        let ok = sent.load(Ordering::SeqCst) < 64 << 20 && started.elapsed() < Duration::from_secs(60);
        ok && stream.write_all(bytes).is_ok() && {
            sent.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            true
        }
    };
    match mode {
        Hostile::Endless => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            let start = r#"{"status":"success","data":{"resultType":"vector","result":["#;
            let series = r#"{"metric":{"pod":"another-tenant-db-0"},"value":[1,"1"]},"#.repeat(1000);
            let chunk = |text: &str| format!("{:x}\r\n{text}\r\n", text.len());
            if write(head.as_bytes()) && write(chunk(start).as_bytes()) {
                while write(chunk(&series).as_bytes()) {}
            }
        }
        Hostile::DeclaredHuge => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000000000\r\n\r\n";
            if write(head.as_bytes()) {
                while write(&[b' '; 65536]) {}
            }
        }
        Hostile::Drip => {
            let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#;
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
            if write(head.as_bytes()) {
                for byte in body.bytes() {
                    std::thread::sleep(Duration::from_millis(200));
                    if !write(&[byte]) {
                        break;
                    }
                }
            }
        }
        Hostile::Redirect(port) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/api/v1/query?query=up\r\ncontent-length: 0\r\n\r\n"
            );
            write(head.as_bytes());
        }
        Hostile::Leaky => {
            let body = "upstream db-internal.tenant-b.svc:5432 refused; token=s3cr3t";
            let head = format!("HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            write(head.as_bytes());
        }
    }
}

fn client(server: &Server, timeout: Duration) -> Prometheus {
    Prometheus::new(&server.url, timeout).unwrap()
}

#[tokio::test]
async fn an_endless_or_huge_answer_is_cut_at_the_cap_and_named() {
    for mode in [Hostile::Endless, Hostile::DeclaredHuge] {
        let server = serve(mode);
        let started = Instant::now();
        let answer = client(&server, Duration::from_secs(20)).query("up").await;
        let at = server.url.trim_start_matches("http://").to_string();
        assert_eq!(answer, Err(QueryError::TooLarge { at, limit: MAX_ANSWER_BYTES }), "{mode:?}");
        assert_eq!(answer.unwrap_err().trouble(), Trouble::Endpoint, "{mode:?}: not retried as an outage");
        assert!(started.elapsed() < Duration::from_secs(15), "{mode:?}: cut, not timed out");
        // What the server could push is the cap plus what the sockets buffer, never its 64 MiB.
        std::thread::sleep(Duration::from_millis(300));
        let sent = server.sent.load(Ordering::SeqCst);
        assert!(sent < (MAX_ANSWER_BYTES as u64) + (16 << 20), "{mode:?}: {sent} bytes were taken");
    }
}

#[tokio::test]
async fn a_slow_drip_ends_at_the_deadline() {
    let server = serve(Hostile::Drip);
    let after = Duration::from_secs(2);
    let started = Instant::now();
    let answer = client(&server, after).query("up").await;
    let at = server.url.trim_start_matches("http://").to_string();
    assert_eq!(answer, Err(QueryError::Timeout { at, after }));
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_where_it_points_sees_nothing() {
    let recorder = serve(Hostile::Leaky);
    let port: u16 = recorder.url.rsplit(':').next().unwrap().parse().unwrap();
    let server = serve(Hostile::Redirect(port));
    let answer = client(&server, Duration::from_secs(5)).query("up").await;
    let at = server.url.trim_start_matches("http://").to_string();
    assert_eq!(answer, Err(QueryError::Redirected { at, status: 302 }));
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "asked once");
    assert_eq!(recorder.requests.load(Ordering::SeqCst), 0, "the redirect's target was never asked");
}

#[tokio::test]
async fn a_body_that_is_not_the_prometheus_api_is_never_echoed() {
    let server = serve(Hostile::Leaky);
    let answer = client(&server, Duration::from_secs(5)).query("up").await.unwrap_err();
    assert!(answer.is_outage(), "{answer:?}");
    let text = answer.to_string();
    assert!(!text.contains("tenant-b") && !text.contains("s3cr3t"), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
}

/// Peak resident memory of a running process, in KiB (Linux `VmHWM`).
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn canary_analyze_against_an_endless_server_stays_small_and_says_which_cap() {
    let server = serve(Hostile::Endless);
    let yaml = "apiVersion: perf.operator.dev/v1alpha1\nkind: PerformanceProfile\nmetadata:\n  name: web\n  \
                namespace: shop\nspec:\n  targetRef:\n    name: web\n  canary:\n    stepInterval: 1m\n    \
                analysis:\n      prometheus: http://prometheus.invalid:9090\n";
    let path = std::env::temp_dir().join(format!("hostile-prometheus-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_perf-operator"))
        .args(["canary", "analyze", "-f", path.to_str().unwrap(), "--prometheus", &server.url, "--timeout", "20s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        peak = peak_kib(child.id()).unwrap_or(0).max(peak);
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let _ = std::fs::remove_file(&path);
    // 4 queries at once, each cut at 4 MiB: the process stays far under the chart's 512 MiB limit.
    eprintln!("canary analyze against an endless answer: peak RSS {peak} KiB");
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB");
    assert_eq!(status.code(), Some(perf_canary::analyze::EXIT_ENDPOINT), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.contains("answered more than 4194304 bytes"), "{out}");
}

/// A profile whose canary is judged at `prometheus` with one custom metric `query`, as YAML.
fn canary_yaml(prometheus: &str, query: &str) -> String {
    format!(
        "apiVersion: perf.operator.dev/v1alpha1\nkind: PerformanceProfile\nmetadata:\n  name: web\n  namespace: shop\n\
         spec:\n  targetRef:\n    name: web\n  canary:\n    stepInterval: 1m\n    analysis:\n      prometheus: \
         {prometheus}\n      metrics:\n        - name: peek\n          max: 1\n          query: '{query}'\n"
    )
}

/// Queries that could read outside namespace `shop`, and one that cannot.
const PEEKS: [&str; 3] = [
    r#"sum(kube_secret_info{namespace="tenant-b"})"#,
    r#"count(up{namespace=~"shop|tenant-b"})"#,
    r#"sum(rate(http_requests_total{namespace="{{namespace}}"}[1m])) * on() group_left count(up)"#,
];

#[test]
fn validate_and_analyze_refuse_a_query_that_leaves_the_namespace_before_asking() {
    let recorder = serve(Hostile::Leaky);
    let bin = env!("CARGO_BIN_EXE_perf-operator");
    for (i, query) in PEEKS.iter().enumerate() {
        let path = std::env::temp_dir().join(format!("hostile-scope-{}-{i}.yaml", std::process::id()));
        std::fs::write(&path, canary_yaml(&recorder.url, query)).unwrap();
        let file = path.to_str().unwrap();
        let validate = std::process::Command::new(bin).args(["validate", "-f", file]).output().unwrap();
        let said = String::from_utf8_lossy(&validate.stdout).to_string() + &String::from_utf8_lossy(&validate.stderr);
        assert!(!validate.status.success(), "{query}: {said}");
        assert!(said.contains("spec.canary.analysis.metrics[0].query") && said.contains("namespace"), "{said}");
        let analyze = std::process::Command::new(bin).args(["canary", "analyze", "-f", file]).output().unwrap();
        let out = String::from_utf8_lossy(&analyze.stdout);
        assert_eq!(analyze.status.code(), Some(perf_canary::analyze::EXIT_INPUT), "{query}: {out}");
        assert!(out.contains("spec.canary.analysis.metrics[0].query"), "{out}");
        let _ = std::fs::remove_file(&path);
    }
    assert_eq!(recorder.requests.load(Ordering::SeqCst), 0, "nothing was asked");
    // Pinned to its own namespace: accepted and asked.
    let path = std::env::temp_dir().join(format!("hostile-scope-{}-ok.yaml", std::process::id()));
    let own = r#"sum(rate(http_requests_total{namespace="{{namespace}}"}[1m]))"#;
    std::fs::write(&path, canary_yaml(&recorder.url, own)).unwrap();
    let validate = std::process::Command::new(bin).args(["validate", "-f", path.to_str().unwrap()]).output().unwrap();
    assert!(validate.status.success(), "{}", String::from_utf8_lossy(&validate.stdout));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn the_reconcile_refuses_it_names_the_field_and_asks_nothing() {
    let recorder = serve(Hostile::Leaky);
    for query in PEEKS {
        let mut profile = fixtures::Profile::test().with_canary_stages(vec![10, 50, 100]);
        let mut canary = profile.spec.canary.take().unwrap();
        canary.analysis.prometheus = Some(recorder.url.clone());
        canary.analysis.metrics = vec![perf_operator_api::MetricCheck {
            name: "peek".into(),
            query: query.into(),
            max: Some(1.0),
            ..Default::default()
        }];
        profile.spec.canary = Some(canary);
        let world = World::with(profile, Some(fixtures::target_deployment(2))).await;
        world.reconcile_settled().await.unwrap();
        let (status, reason, message) = World::condition(&world.profile().await, "Degraded");
        assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"), "{query}");
        assert!(message.contains("spec.canary.analysis.metrics[0].query"), "{message}");
    }
    assert_eq!(recorder.requests.load(Ordering::SeqCst), 0, "nothing was asked");
}

/// A profile whose rate-limit policy reads its traffic from `prometheus` (asked at every evaluation).
fn rate_limited(prometheus: &str, headers: serde_json::Value) -> perf_operator_api::PerformanceProfile {
    let mut profile = fixtures::Profile::test();
    profile.spec.rate_limit = Some(
        serde_json::from_value(serde_json::json!({
            "routes": [{"route": "/api", "requestsPerSecond": 100, "burst": 200}],
            "prometheus": prometheus, "prometheusAccess": {"headers": headers},
            "policy": {"builtin": "adaptive-rate-limit"}
        }))
        .unwrap(),
    );
    profile
}

#[tokio::test]
async fn the_tenant_header_is_the_profiles_namespace_and_no_profile_chooses_it() {
    // The administrator's header: every query made for the profile carries its namespace.
    let recorder = serve(Hostile::Leaky);
    let profile = rate_limited(&recorder.url, serde_json::json!({"X-Api-Key": "reader"}));
    let mut world = World::with(profile, Some(fixtures::target_deployment(2))).await;
    let ctx = std::sync::Arc::get_mut(&mut world.ctx).expect("not shared yet");
    ctx.scope.prometheus_tenant_header = Some("X-Scope-OrgID".into());
    world.reconcile_settled().await.unwrap();
    let heads = recorder.heads.lock().unwrap().clone();
    assert!(!heads.is_empty(), "the traffic was asked");
    let tenant = format!("x-scope-orgid: {}\r\n", fixtures::NS);
    assert!(heads.iter().all(|h| h.to_ascii_lowercase().contains(&tenant)), "{heads:?}");

    // A profile naming a tenant header: refused before any request, with the field.
    for name in ["X-Scope-OrgID", "thanos-tenant"] {
        let recorder = serve(Hostile::Leaky);
        let world = World::with(rate_limited(&recorder.url, serde_json::json!({name: "tenant-b"})), None).await;
        world.reconcile_settled().await.unwrap();
        let (status, reason, message) = World::condition(&world.profile().await, "Degraded");
        assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"), "{name}");
        assert!(message.contains("spec.rateLimit.prometheusAccess.headers"), "{message}");
        assert_eq!(recorder.requests.load(Ordering::SeqCst), 0, "{name}: nothing asked");
    }

    // The administrator's own header name, set by a profile: never sent.
    let recorder = serve(Hostile::Leaky);
    let profile = rate_limited(&recorder.url, serde_json::json!({"X-Team": "tenant-b"}));
    let mut world = World::with(profile, Some(fixtures::target_deployment(2))).await;
    std::sync::Arc::get_mut(&mut world.ctx).expect("not shared yet").scope.prometheus_tenant_header =
        Some("X-Team".into());
    world.reconcile_settled().await.unwrap();
    assert_eq!(recorder.requests.load(Ordering::SeqCst), 0, "a profile's X-Team is never sent");
}
