//! The per-object dependency rule, on actions (no server).

use super::*;
use crate::validate::{DesiredCodec, DesiredIndex};
use rstest::rstest;

fn add_index(name: &str) -> Action {
    Action::AddIndex(DesiredIndex {
        name: name.into(),
        expression: "latency_ms".into(),
        index_type: "minmax".into(),
        granularity: 1,
        columns: ["latency_ms".to_string()].into(),
    })
}

fn materialize_index(name: &str) -> Action {
    Action::MaterializeIndex { name: name.into() }
}

fn codec(column: &str) -> Action {
    let chain = crate::check::codec::parse("Gorilla").unwrap();
    Action::ModifyCodec(DesiredCodec { column: column.into(), codec: "Gorilla".into(), chain })
}

fn kill(kind: &'static str, name: &str) -> Action {
    Action::KillMutation { mutation_id: "mutation_3.txt".into(), object: ObjectKey { kind, name: name.into() } }
}

fn refused(statement: &str) -> Error {
    Error::Statement { statement: statement.into(), message: "Code: 36. DB::Exception: refused".into() }
}

fn unreachable() -> Error {
    Error::Unreachable { endpoint: "http://ch:8123".into(), message: "connection refused".into() }
}

/// Runs `actions` through the gate; the action at index `i` fails with `fail(i)`. One letter per action:
/// `s` sent, `F` failed, `-` skipped.
fn run(actions: &[Action], fail: impl Fn(usize) -> Option<Error>) -> String {
    let mut gate = Gate::default();
    let mut out = String::new();
    for (i, action) in actions.iter().enumerate() {
        if !gate.allows(action) {
            out.push('-');
            continue;
        }
        let error = fail(i);
        gate.record(action, error.as_ref());
        out.push(if error.is_some() { 'F' } else { 's' });
    }
    out
}

/// The seed's shape as the diff orders it: adds, codecs, then materialisations.
fn round() -> Vec<Action> {
    vec![
        add_index("i_a"),
        add_index("i_b"),
        codec("model"),
        codec("score"),
        materialize_index("i_a"),
        materialize_index("i_b"),
    ]
}

#[rstest]
#[case::nothing_fails(None, "ssssss")]
#[case::a_refused_codec_blocks_nothing_else(Some(2), "ssFsss")]
#[case::a_failed_add_skips_only_its_materialise(Some(0), "Fsss-s")]
#[case::a_failed_materialise_is_the_last_of_its_object(Some(5), "sssssF")]
fn each_object_stands_alone(#[case] failing: Option<usize>, #[case] expected: &str) {
    let fail = |i| (Some(i) == failing).then(|| refused("ALTER TABLE ..."));
    assert_eq!(run(&round(), fail), expected);
}

#[test]
fn a_replacement_is_one_chain_from_kill_to_materialise() {
    let actions = vec![
        kill(INDEX, "i_a"),
        Action::DropIndex { name: "i_a".into() },
        Action::DropIndex { name: "i_b".into() },
        add_index("i_a"),
        add_index("i_b"),
        materialize_index("i_a"),
        materialize_index("i_b"),
    ];
    let kill_refused = |i| (i == 0).then(|| refused("KILL MUTATION"));
    assert_eq!(run(&actions, kill_refused), "F-s-s-s");
    let drop_b_refused = |i| (i == 2).then(|| refused("DROP INDEX"));
    assert_eq!(run(&actions, drop_b_refused), "ssFs-s-");
}

#[test]
fn objects_of_different_kinds_with_one_name_are_independent() {
    let actions = vec![
        Action::DropProjection { name: "x".into() },
        Action::DropIndex { name: "x".into() },
        Action::MaterializeProjection { name: "x".into() },
    ];
    assert_eq!(run(&actions, |i| (i == 1).then(|| refused("DROP INDEX"))), "sFs");
}

#[test]
fn an_error_every_statement_would_share_stops_the_sending() {
    let mut gate = Gate::default();
    gate.record(&codec("model"), Some(&unreachable()));
    assert!(gate.stopped());
    assert!(!gate.allows(&add_index("i_a")));
    assert_eq!(run(&round(), |i| (i == 1).then(unreachable)), "sF----");
    let timeout = |i| (i == 1).then(|| Error::Timeout { statement: "ALTER".into(), seconds: 30 });
    assert_eq!(run(&round(), timeout), "sF----");
}

#[test]
fn failures_lists_only_failed_steps() {
    let steps = [Step::Sent, Step::Failed(refused("A")), Step::Skipped, Step::Failed(refused("B"))];
    let messages: Vec<String> = failures(&steps).map(|e| e.to_string()).collect();
    assert_eq!(
        messages,
        [
            "statement `A` failed: Code: 36. DB::Exception: refused",
            "statement `B` failed: Code: 36. DB::Exception: refused"
        ]
    );
}

#[tokio::test]
async fn after_the_rounds_deadline_no_statement_starts() {
    // Port 9 (discard) on loopback: a statement that started would fail as unreachable, not as the deadline.
    let client = clickhouse::Client::default().with_url("http://127.0.0.1:9");
    let deadline = tokio::time::Instant::now();
    let target = Target { client: &client, endpoint: "http://127.0.0.1:9", database: "db", table: "t", deadline };
    let mut managed = Vec::new();
    let steps = send(&target, &round(), &mut managed).await;
    assert!(matches!(&steps[0], Step::Failed(Error::RoundDeadline { seconds: 60 })), "{:?}", steps[0]);
    assert!(steps[1..].iter().all(|s| matches!(s, Step::Skipped)), "{steps:?}");
    assert!(managed.is_empty());
}
