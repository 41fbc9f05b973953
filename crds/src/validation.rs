//! The CRD's validation rules, in Rust, for `validate`, `plan` and the controller (which refuses to act on a spec
//! the API server would have refused, e.g. one stored before the CRD was upgraded). A test in this crate checks on a
//! table of bad inputs that these rules and the CRD schema (bounds + CEL) agree.

mod canary;
mod hooks;
mod rate_limit;

use crate::duration::parse_duration;
use crate::*;
use canary::check_canary;
pub use canary::{ARG_VALUE, validate_template};
pub use hooks::{timeout as hook_timeout, total_timeout as hook_total_timeout};
use rate_limit::check_rate_limit;
use std::collections::BTreeSet;
use std::fmt;

/// One problem, located by its JSON path, e.g. `spec.canary.stages`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects errors with the current path.
struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.into(), message: message.into() });
    }
    fn ensure(&mut self, ok: bool, field: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.fail(field, message());
        }
    }
    fn range<T: PartialOrd + fmt::Display + Copy>(&mut self, value: T, min: T, max: T, field: &str) {
        self.ensure(value >= min && value <= max, field, || format!("must be in [{min}, {max}], got {value}"));
    }
    fn len(&mut self, value: &str, min: usize, max: usize, field: &str) {
        let n = value.chars().count();
        self.ensure(n >= min && n <= max, field, || format!("length must be in [{min}, {max}], got {n}"));
    }
    /// The name of an object in the profile's namespace: a DNS subdomain (RFC 1123), as the API server names them.
    fn object_name(&mut self, value: &str, field: &str) {
        self.len(value, 1, 253, field);
        if !value.is_empty() && value.chars().count() <= 253 {
            self.pattern(
                is_dns_subdomain(value),
                value,
                field,
                "an object name (lowercase letters, digits, '-' and '.')",
            );
        }
    }
    fn pattern(&mut self, ok: bool, value: &str, field: &str, expected: &str) {
        self.ensure(ok, field, || format!("{value:?} is not {expected}"));
    }
    fn unique<'a>(&mut self, keys: impl Iterator<Item = &'a str>, field: &str, what: &str) {
        let mut seen = BTreeSet::new();
        for key in keys {
            if !seen.insert(key) {
                self.fail(field, format!("duplicate {what} {key:?}"));
            }
        }
    }
}

/// Validates a spec. Empty means valid.
pub fn validate_spec(spec: &PerformanceProfileSpec) -> Vec<FieldError> {
    let mut c = Check { errors: Vec::new() };
    c.object_name(&spec.target_ref.name, "spec.targetRef.name");
    if let Some(version) = &spec.target_ref.api_version {
        c.ensure(version == "apps/v1", "spec.targetRef.apiVersion", || {
            format!("targetRef.apiVersion must be apps/v1 (a Deployment), got {version:?}")
        });
    }
    c.range(spec.slo.p99_latency_ms, 1, 600_000, "spec.slo.p99LatencyMs");
    percent(&mut c, spec.slo.error_rate_percent, "spec.slo.errorRatePercent");
    if let Some(cache) = &spec.cache {
        check_cache(&mut c, cache);
    }
    if let Some(pools) = &spec.pools {
        check_pools(&mut c, pools);
    }
    if let Some(ch) = &spec.clickhouse {
        check_clickhouse(&mut c, ch);
    }
    if let Some(rl) = &spec.rate_limit {
        check_rate_limit(&mut c, rl, spec.canary.as_ref());
    }
    if let Some(canary) = &spec.canary {
        check_canary(&mut c, canary);
    }
    c.errors
}

fn percent(c: &mut Check, value: f64, field: &str) {
    c.ensure(value > 0.0 && value <= 100.0, field, || format!("must be in (0, 100], got {value}"));
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 128
}

fn check_cache(c: &mut Check, cache: &CacheSpec) {
    let redis = &cache.redis;
    c.ensure(redis.provision.is_some() != redis.external.is_some(), "spec.cache.redis", || {
        "exactly one of provision or external must be set".into()
    });
    if let Some(p) = &redis.provision {
        c.len(&p.image, 1, 512, "spec.cache.redis.provision.image");
        if let Err(e) = crate::quantity::parse_bytes(&p.max_memory) {
            c.fail("spec.cache.redis.provision.maxMemory", e);
        }
        c.range(p.max_clients, 1, 100_000, "spec.cache.redis.provision.maxClients");
        if let Some(x) = &p.exporter {
            c.len(&x.image, 1, 512, "spec.cache.redis.provision.exporter.image");
            c.range(x.port, 1024, 65535, "spec.cache.redis.provision.exporter.port");
            c.ensure(x.port != 6379, "spec.cache.redis.provision.exporter.port", || {
                "must differ from Redis's 6379".into()
            });
        }
        if let Err(e) = parse_duration(&p.rotation_grace) {
            c.fail("spec.cache.redis.provision.rotationGrace", e);
        }
        if let Some(d) = &p.persistence {
            match crate::quantity::parse_bytes(&d.size) {
                Err(e) => c.fail("spec.cache.redis.provision.persistence.size", e),
                Ok(bytes) if bytes < 1 << 20 => c.fail(
                    "spec.cache.redis.provision.persistence.size",
                    format!("{:?} is below the smallest claim, 1Mi", d.size),
                ),
                Ok(_) => {}
            }
            if let Some(class) = &d.storage_class_name {
                c.len(class, 1, 253, "spec.cache.redis.provision.persistence.storageClassName");
            }
        }
    }
    if let Some(e) = &redis.external {
        let ok = is_url(&e.address, &["redis://", "rediss://"]) && !e.address.contains('@') && e.address.len() <= 2048;
        c.pattern(
            ok,
            &e.address,
            "spec.cache.redis.external.address",
            "a redis:// or rediss:// URL without credentials",
        );
        if let Some(m) = e.max_clients {
            c.range(m, 1, 100_000, "spec.cache.redis.external.maxClients");
        }
        if let Some(s) = &e.password_secret_ref {
            secret_ref(c, s, "spec.cache.redis.external.passwordSecretRef");
        }
    }
    c.ensure(cache.ttl_classes.len() <= 64, "spec.cache.ttlClasses", || "at most 64 classes".into());
    c.unique(cache.ttl_classes.iter().map(|t| t.name.as_str()), "spec.cache.ttlClasses", "name");
    for (i, class) in cache.ttl_classes.iter().enumerate() {
        let field = format!("spec.cache.ttlClasses[{i}]");
        let mut chars = class.name.chars();
        let name_ok = matches!(chars.next(), Some(ch) if ch.is_ascii_alphabetic())
            && chars.all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
            && class.name.len() <= 63;
        c.pattern(name_ok, &class.name, &format!("{field}.name"), "a class name (letter, then letters, digits, _ . -)");
        c.range(class.ttl_seconds, 1, 31_536_000, &format!("{field}.ttlSeconds"));
    }
    if let Some(p) = &cache.policy {
        check_policy(c, p, "spec.cache.policy");
    }
    if let Some(candidate) = &cache.candidate {
        check_candidate(c, candidate, cache.policy.is_some(), "spec.cache");
    }
}

/// Bytes of a size written as a Kubernetes quantity (`256Mi`, `1.5Gi`, `512M`), if well formed.
pub fn parse_memory(text: &str) -> Option<u64> {
    crate::quantity::parse_bytes(text).ok()
}

fn secret_ref(c: &mut Check, s: &SecretKeyRef, field: &str) {
    c.object_name(&s.name, &format!("{field}.name"));
    c.len(&s.key, 1, 253, &format!("{field}.key"));
}

fn check_pools(c: &mut Check, pools: &PoolsSpec) {
    if let Some(r) = pools.app_replicas {
        c.range(r, 1, 10_000, "spec.pools.appReplicas");
    }
    let postgres = pools.postgres.as_ref().map(|p| &p.pool);
    for (name, pool) in
        [("clickhouse", pools.clickhouse.as_ref()), ("postgres", postgres), ("redis", pools.redis.as_ref())]
    {
        let Some(pool) = pool else { continue };
        let field = format!("spec.pools.{name}");
        c.range(pool.min, 0, 10_000, &format!("{field}.min"));
        c.range(pool.max, 1, 10_000, &format!("{field}.max"));
        c.ensure(pool.min <= pool.max, &field, || {
            format!("pool min must be <= max, got min {} > max {}", pool.min, pool.max)
        });
        c.range(pool.reserved_percent, 0, 90, &format!("{field}.reservedPercent"));
        if let Some(s) = pool.server_max_connections {
            c.range(s, 1, 1_000_000, &format!("{field}.serverMaxConnections"));
        }
        if let Some(load) = &pool.load {
            let qps_ok = load.queries_per_second > 0.0;
            c.ensure(qps_ok, &format!("{field}.load.queriesPerSecond"), || {
                format!("load.queriesPerSecond must be > 0, got {}", load.queries_per_second)
            });
            let lat_ok = load.query_latency_ms > 0.0;
            c.ensure(lat_ok, &format!("{field}.load.queryLatencyMs"), || {
                format!("load.queryLatencyMs must be > 0, got {}", load.query_latency_ms)
            });
            c.range(load.headroom_percent, 0, 1000, &format!("{field}.load.headroomPercent"));
        }
    }
    if let Some(server) = pools.postgres.as_ref().and_then(|p| p.server.as_ref()) {
        check_postgres_server(c, server);
    }
}

fn check_postgres_server(c: &mut Check, s: &PostgresServer) {
    let f = "spec.pools.postgres.server";
    c.pattern(
        is_host(&s.host),
        &s.host,
        &format!("{f}.host"),
        "a host name or IP address (no scheme, port or credentials)",
    );
    c.range(s.port, 1, 65_535, &format!("{f}.port"));
    c.len(&s.database, 1, 63, &format!("{f}.database"));
    c.object_name(&s.credentials_secret_ref.name, &format!("{f}.credentialsSecretRef.name"));
    if let Some(ca) = &s.ca_secret_ref {
        secret_ref(c, ca, &format!("{f}.caSecretRef"));
        c.ensure(s.ssl_mode == SslMode::VerifyFull, f, || {
            format!("pools.postgres.server.caSecretRef needs sslMode verify-full, got {}", s.ssl_mode.as_str())
        });
    }
}

/// [`HOST_PATTERN`]: a DNS name or IPv4 address (letters, digits, `.` and `-`, not starting or ending with `.` or
/// `-`), or an IPv6 address (hex digits, `.` and at least two `:`).
fn is_host(s: &str) -> bool {
    let name = !s.is_empty()
        && s.len() <= 253
        && s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
        && s.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && s.ends_with(|ch: char| ch.is_ascii_alphanumeric());
    let ipv6 = s.len() <= 253
        && s.chars().all(|ch| ch.is_ascii_hexdigit() || ch == '.' || ch == ':')
        && s.matches(':').count() >= 2;
    name || ipv6
}

const HTTP: &[&str] = &["http://", "https://"];
/// Shortest canary step and quick-check interval: each is a batch of queries on a Prometheus many tenants share.
const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// A DNS subdomain (RFC 1123): dot-separated labels of lowercase letters, digits and inner hyphens, as the schema's
/// pattern for object names says (the length is checked apart).
pub fn is_dns_subdomain(value: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    value.split('.').all(label)
}

/// Starts with one of `schemes` and holds no whitespace: the part every URL field's pattern shares (each adds its own
/// length and credential rules).
fn is_url(value: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|scheme| value.starts_with(scheme)) && !value.chars().any(char::is_whitespace)
}

fn check_clickhouse(c: &mut Check, ch: &ClickHouseSpec) {
    let ok = is_url(&ch.endpoint, HTTP) && !ch.endpoint.contains('@');
    c.pattern(ok, &ch.endpoint, "spec.clickhouse.endpoint", "an http:// or https:// URL without credentials");
    c.pattern(is_identifier(&ch.database), &ch.database, "spec.clickhouse.database", "an identifier");
    if let Some(cred) = &ch.credentials_secret_ref {
        c.object_name(&cred.name, "spec.clickhouse.credentialsSecretRef.name");
    }
    c.unique(ch.tables.iter().map(|t| t.name.as_str()), "spec.clickhouse.tables", "table");
    for (i, t) in ch.tables.iter().enumerate() {
        let f = format!("spec.clickhouse.tables[{i}]");
        c.pattern(is_identifier(&t.name), &t.name, &format!("{f}.name"), "an identifier");
        c.unique(t.projections.iter().map(|p| p.name.as_str()), &format!("{f}.projections"), "projection");
        c.unique(t.indexes.iter().map(|x| x.name.as_str()), &format!("{f}.indexes"), "index");
        c.unique(t.codecs.iter().map(|x| x.column.as_str()), &format!("{f}.codecs"), "column");
        c.unique(t.queries.iter().map(|x| x.name.as_str()), &format!("{f}.queries"), "query");
        for (j, q) in t.queries.iter().enumerate() {
            c.pattern(is_identifier(&q.name), &q.name, &format!("{f}.queries[{j}].name"), "an identifier");
            c.len(&q.query, 1, 8192, &format!("{f}.queries[{j}].query"));
            if let Some(p) = &q.expect_projection {
                c.pattern(is_identifier(p), p, &format!("{f}.queries[{j}].expectProjection"), "an identifier");
            }
        }
        for (j, p) in t.projections.iter().enumerate() {
            c.pattern(is_identifier(&p.name), &p.name, &format!("{f}.projections[{j}].name"), "an identifier");
            c.len(&p.query, 1, 8192, &format!("{f}.projections[{j}].query"));
        }
        for (j, x) in t.indexes.iter().enumerate() {
            c.pattern(is_identifier(&x.name), &x.name, &format!("{f}.indexes[{j}].name"), "an identifier");
            c.len(&x.expression, 1, 4096, &format!("{f}.indexes[{j}].expression"));
            c.pattern(
                is_index_type(&x.index_type),
                &x.index_type,
                &format!("{f}.indexes[{j}].type"),
                "an index type like minmax or bloom_filter(0.01)",
            );
            c.range(x.granularity, 1, 1000, &format!("{f}.indexes[{j}].granularity"));
        }
        for (j, x) in t.codecs.iter().enumerate() {
            c.pattern(is_identifier(&x.column), &x.column, &format!("{f}.codecs[{j}].column"), "an identifier");
            c.pattern(
                is_codec_chain(&x.codec),
                &x.codec,
                &format!("{f}.codecs[{j}].codec"),
                "a codec chain like DoubleDelta, ZSTD(1)",
            );
        }
    }
}

/// `name` or `name(args)` with numeric args, as the schema pattern says.
fn is_call(s: &str, name_ok: impl Fn(char) -> bool) -> bool {
    let (name, args) = match s.find('(') {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let name_valid = !name.is_empty() && name.chars().all(name_ok);
    let args_valid = args.is_none_or(|a| {
        a.len() >= 2
            && a.ends_with(')')
            && a[1..a.len() - 1].chars().all(|ch| ch.is_ascii_digit() || ", .".contains(ch))
    });
    name_valid && args_valid
}

/// `^[1-9][0-9]{0,5}(Mi|Gi|Ti)$`, the schema's pattern for a claim size.
fn is_index_type(s: &str) -> bool {
    is_call(s, |ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        && s.find('(').is_none_or(|i| !s[i + 1..].contains('(') && !s[..i].is_empty())
}

fn is_codec_chain(s: &str) -> bool {
    // Split on commas outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    s.len() <= 256
        && parts.iter().enumerate().all(|(i, p)| {
            let p = if i == 0 { *p } else { p.strip_prefix(' ').unwrap_or(p) };
            is_call(p, |ch| ch.is_ascii_alphanumeric())
                && !p.contains('.')
                && p.find('(').is_none_or(|k| !p[k + 1..].contains('('))
        })
}

/// The schema's bounds of `prometheusAccess`. Header names and values are checked when the client is built (an
/// HTTP-token rule over map keys would cost the API server's CEL budget), and reported in the canary's status.
fn check_prometheus_access(c: &mut Check, access: &PrometheusAccess, field: &str) {
    if let Some(r) = &access.secret_ref {
        c.object_name(&r.name, &format!("{field}.secretRef.name"));
    }
    if let Some(ca) = &access.ca {
        c.object_name(&ca.name, &format!("{field}.ca.name"));
        c.len(&ca.key, 1, 253, &format!("{field}.ca.key"));
    }
    c.ensure(access.headers.len() <= 16, &format!("{field}.headers"), || {
        format!("at most 16 headers, got {}", access.headers.len())
    });
}

fn check_policy(c: &mut Check, p: &PolicyRef, field: &str) {
    let sources = [p.builtin.is_some(), p.config_map.is_some(), p.url.is_some(), p.registry.is_some()];
    c.ensure(sources.iter().filter(|s| **s).count() == 1, field, || {
        "policy: exactly one of builtin, configMap, url or registry must be set".into()
    });
    if let Some(b) = &p.builtin {
        c.len(b, 1, 63, &format!("{field}.builtin"));
    }
    if let Some(cm) = &p.config_map {
        c.object_name(&cm.name, &format!("{field}.configMap.name"));
        c.len(&cm.key, 1, 253, &format!("{field}.configMap.key"));
        sha256(c, &cm.sha256, &format!("{field}.configMap.sha256"));
    }
    if let Some(u) = &p.url {
        let ok = is_url(&u.url, &["https://"]) && u.url.len() > 8 && u.url.len() <= 2048;
        c.pattern(ok, &u.url, &format!("{field}.url.url"), "an https:// URL");
        sha256(c, &u.sha256, &format!("{field}.url.sha256"));
    }
    if let Some(r) = &p.registry {
        let ok = r.reference.strip_prefix("registry://").and_then(|rest| rest.split_once('/')).is_some_and(
            |(host, path)| !host.is_empty() && !path.is_empty() && !r.reference.contains(char::is_whitespace),
        ) && r.reference.len() <= 2048;
        c.pattern(
            ok,
            &r.reference,
            &format!("{field}.registry.reference"),
            "registry://host/repository[:tag|@sha256:digest]",
        );
        sha256(c, &r.sha256, &format!("{field}.registry.sha256"));
        if let Some(secret) = &r.pull_secret {
            c.object_name(secret, &format!("{field}.registry.pullSecret"));
        }
        if let Some(key) = &r.cosign_public_key {
            c.len(key, 1, 4096, &format!("{field}.registry.cosignPublicKey"));
        }
    }
    if let Some(s) = &p.settings {
        c.ensure(s.is_object(), &format!("{field}.settings"), || "must be an object".into());
    }
}

/// A candidate beside the active policy of `section`: its source and settings as a policy's, its bound, and no
/// `onFailure` of its own (the CEL rules on the section and the candidate).
fn check_candidate(c: &mut Check, candidate: &PolicyCandidate, has_policy: bool, section: &str) {
    let field = format!("{section}.candidate");
    c.ensure(has_policy, &field, || {
        format!("a candidate is compared with the active policy: set {section}.policy beside it")
    });
    check_policy(c, &candidate.policy, &field);
    c.ensure(candidate.policy.on_failure == PolicyFailureMode::KeepLastGood, &field, || {
        crate::policy_candidate::CANDIDATE_ON_FAILURE_MESSAGE.into()
    });
    c.range(candidate.max_difference_percent, 0, 1000, &format!("{field}.maxDifferencePercent"));
}

fn sha256(c: &mut Check, value: &str, field: &str) {
    let ok = value.len() == 64 && value.chars().all(|ch| ch.is_ascii_digit() || ('a'..='f').contains(&ch));
    c.pattern(ok, value, field, "a sha256: 64 lower-case hex characters");
}

/// The CRD's CEL rules evaluated client-side, as the API server would. The schema's rules are compiled once per
/// process (compiling them is most of the cost of a check).
pub fn validate_cel(profile: &PerformanceProfile) -> Result<(), kube::core::cel::ValidationErrors> {
    use kube::core::cel::{CompiledSchema, Validator, compile_schema};
    static COMPILED: std::sync::OnceLock<CompiledSchema> = std::sync::OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        let crd = serde_json::to_value(crate::crd()).unwrap_or_default();
        compile_schema(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    });
    let object = serde_json::to_value(profile).unwrap_or_default();
    Validator::new().validate_compiled(compiled, &object, None)
}
