use super::*;

fn egress(allow: &[&str], reserved: &[&str]) -> Egress {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Egress::new(&strings(allow), &strings(reserved), vec!["10.96.0.1".parse().unwrap()]).unwrap()
}

fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 9000)
}

#[test]
fn by_default_every_host_but_the_reserved_ranges() {
    let e = egress(&[], &[]);
    for host in ["prometheus.monitoring.svc", "ch.example.com", "10.1.2.3", "[2001:db8::1]", "Thanos.Example."] {
        assert_eq!(e.check(Kind::Prometheus, "team-a", host), Ok(()), "{host}");
    }
    for host in ["127.0.0.1", "localhost", "api.localhost", "[::1]", "169.254.169.254", "0.0.0.0", "10.96.0.1"] {
        let refused = e.check(Kind::ClickHouse, "team-a", host);
        assert!(matches!(refused, Err(Refusal::Reserved { .. })), "{host}: {refused:?}");
    }
    let text = e.check(Kind::Redis, "a", "169.254.169.254").unwrap_err().to_string();
    assert_eq!(
        text,
        "169.254.169.254 is a cloud metadata address (169.254.169.254); the operator reaches it only when its \
         administrator allows it (--egress-allow-reserved)"
    );
}

#[test]
fn reserved_ranges_open_only_where_the_administrator_lists_them() {
    let e = egress(&[], &["127.0.0.0/8"]);
    assert_eq!(e.check(Kind::Redis, "a", "127.0.0.1"), Ok(()));
    assert_eq!(e.check(Kind::Redis, "a", "localhost"), Ok(()));
    assert!(e.check(Kind::Redis, "a", "::1").is_err(), "only the IPv4 loopback was listed");
    assert!(e.check(Kind::Redis, "a", "169.254.169.254").is_err());
    assert!(e.check(Kind::Redis, "a", "10.96.0.1").is_err(), "the API server stays denied");
    assert_eq!(egress(&[], &["10.96.0.1"]).check(Kind::Redis, "a", "10.96.0.1"), Ok(()));
}

#[test]
fn entries_limit_their_kind_and_entries_without_a_kind_limit_all() {
    let e = egress(&["clickhouse=*.ch.svc.cluster.local", "prometheus=prometheus.monitoring.svc"], &[]);
    assert_eq!(e.check(Kind::ClickHouse, "a", "shard1.ch.svc.cluster.local"), Ok(()));
    assert_eq!(e.check(Kind::ClickHouse, "a", "a.b.ch.svc.cluster.local"), Ok(()));
    assert!(e.check(Kind::ClickHouse, "a", "ch.svc.cluster.local").is_err(), "*. needs a label before");
    assert!(e.check(Kind::ClickHouse, "a", "evil.example").is_err());
    assert!(e.check(Kind::ClickHouse, "a", "10.1.2.3").is_err(), "an address needs a listed network");
    assert_eq!(e.check(Kind::Prometheus, "a", "PROMETHEUS.monitoring.svc."), Ok(()));
    assert!(e.check(Kind::Prometheus, "a", "prometheus.monitoring.svc.evil.example").is_err());
    assert_eq!(e.check(Kind::Postgres, "a", "anything.example"), Ok(()), "no entry for postgres");

    let all = egress(&["*.internal", "postgres=10.0.0.0/8"], &[]);
    assert_eq!(all.check(Kind::Redis, "a", "redis.internal"), Ok(()));
    assert!(all.check(Kind::Redis, "a", "redis.example").is_err());
    assert_eq!(all.check(Kind::Postgres, "a", "10.2.3.4"), Ok(()));
    assert!(all.check(Kind::Redis, "a", "10.2.3.4").is_err(), "the network is for postgres only");
    assert_eq!(all.check(Kind::Postgres, "a", "::ffff:10.2.3.4"), Ok(()), "an IPv4 address written as IPv6");
    let loopback = egress(&["redis=127.0.0.0/8"], &["127.0.0.0/8"]);
    assert_eq!(loopback.check(Kind::Redis, "a", "localhost"), Ok(()), "localhost is judged as 127.0.0.1");
    let text = all.check(Kind::Redis, "a", "redis.example").unwrap_err().to_string();
    assert_eq!(
        text,
        "redis.example is not among the redis endpoints the operator's administrator allows (--egress-allow)"
    );
}

#[test]
fn a_namespace_in_an_entry_maps_each_tenant_to_its_own_servers() {
    let e = egress(&["clickhouse={namespace}-ch.db.svc", "prometheus=*.{namespace}.svc.cluster.local"], &[]);
    assert_eq!(e.check(Kind::ClickHouse, "team-a", "team-a-ch.db.svc"), Ok(()));
    assert!(e.check(Kind::ClickHouse, "team-a", "team-b-ch.db.svc").is_err());
    assert_eq!(e.check(Kind::Prometheus, "team-a", "prom.team-a.svc.cluster.local"), Ok(()));
    assert!(e.check(Kind::Prometheus, "team-a", "prom.team-b.svc.cluster.local").is_err());
    // At connect the namespace is not known: any one label stands in (the name was checked with it before).
    assert_eq!(e.screen(Kind::ClickHouse, "team-b-ch.db.svc", &[addr("10.4.0.1")]).unwrap().len(), 1);
    assert!(e.screen(Kind::ClickHouse, "-ch.db.svc", &[addr("10.4.0.1")]).is_err());
}

#[test]
fn at_connect_reserved_answers_are_dropped_and_unlisted_names_keep_only_listed_networks() {
    let e = egress(&["clickhouse=10.0.0.0/8"], &[]);
    // A name no host entry matches passes the name check when a network is listed, and is judged on its addresses.
    assert_eq!(e.check(Kind::ClickHouse, "a", "ch.example"), Ok(()));
    let kept = e.screen(Kind::ClickHouse, "ch.example", &[addr("127.0.0.1"), addr("10.1.1.1"), addr("192.0.2.1")]);
    assert_eq!(kept, Ok(vec![addr("10.1.1.1")]));
    let outside = e.screen(Kind::ClickHouse, "ch.example", &[addr("192.0.2.1")]);
    assert_eq!(outside, Err(Refusal::OutsideNets { kind: Kind::ClickHouse, host: "ch.example".into() }));
    let rebound = egress(&[], &[]).screen(Kind::Redis, "redis.example", &[addr("127.0.0.1"), addr("::1")]);
    assert!(matches!(rebound, Err(Refusal::Reserved { .. })), "{rebound:?}");
    let mapped = egress(&[], &[]).screen(Kind::Redis, "x.example", &[addr("::ffff:169.254.169.254")]);
    assert!(matches!(mapped, Err(Refusal::Reserved { why: Reserved::Metadata, .. })), "{mapped:?}");
}

#[test]
fn the_open_egress_of_the_cli_checks_nothing() {
    let open = Egress::open();
    assert_eq!(open.check(Kind::Redis, "a", "127.0.0.1"), Ok(()));
    assert_eq!(open.screen(Kind::Redis, "localhost", &[addr("127.0.0.1")]), Ok(vec![addr("127.0.0.1")]));
}

#[test]
fn bad_entries_name_the_flag_and_what_was_expected() {
    let bad = |allow: &[&str], reserved: &[&str]| {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Egress::new(&strings(allow), &strings(reserved), vec![]).unwrap_err()
    };
    for entry in ["mysql=db.example", "ch_1.example", "*.", "a..b", "-x.example", "http://x.example", "x.example:80"] {
        let e = bad(&[entry], &[]);
        assert_eq!((e.flag, e.value.as_str()), ("--egress-allow", entry), "{e}");
    }
    assert!(bad(&["mysql=x"], &[]).to_string().contains("one of prometheus, clickhouse"));
    let e = bad(&[], &["loopback"]);
    assert_eq!(e.to_string(), "--egress-allow-reserved \"loopback\": expected an address or a CIDR, e.g. 127.0.0.0/8");
    // Blank entries (an empty chart list rendered as "") are no entries.
    assert_eq!(Egress::new(&["".into()], &[" ".into()], vec![]).unwrap().check(Kind::Redis, "a", "x.example"), Ok(()));
}
