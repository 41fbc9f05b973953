use super::*;
use rstest::rstest;

/// Index types against the server's rules (26.9) and our bounds: `true` when accepted. The live test
/// (tests/live_params.rs) runs the same kind of table against the engine.
#[rstest]
#[case("minmax", true)]
#[case("minmax(1)", false)]
#[case("set(1)", true)]
#[case("set(100000)", true)]
#[case("set(0)", false)]
#[case("set(100001)", false)]
#[case("set(1.5)", false)]
#[case("set(-1)", false)]
#[case("set", false)]
#[case("set(1, 2)", false)]
#[case("bloom_filter", true)]
#[case("bloom_filter(0.01)", true)]
#[case("bloom_filter(0.0001)", true)]
#[case("bloom_filter(0.00001)", false)]
#[case("bloom_filter(0)", false)]
#[case("bloom_filter(1)", false)]
#[case("bloom_filter(1e-300)", false)]
#[case("bloom_filter(0.01, 2)", false)]
#[case("ngrambf_v1(3, 256, 2, 0)", true)]
#[case("ngrambf_v1(0, 256, 2, 0)", false)]
#[case("ngrambf_v1(9, 256, 2, 0)", false)]
#[case("ngrambf_v1(3, 0, 2, 0)", false)]
#[case("ngrambf_v1(3, 1048576, 16, 18446744073709551615)", true)]
#[case("ngrambf_v1(3, 1048577, 2, 0)", false)]
#[case("ngrambf_v1(3, 256, 0, 0)", false)]
#[case("ngrambf_v1(3, 256, 17, 0)", false)]
#[case("ngrambf_v1(3.5, 256, 2, 0)", false)]
#[case("ngrambf_v1(3, 256, 2)", false)]
#[case("tokenbf_v1(256, 2, 0)", true)]
#[case("tokenbf_v1(0, 2, 0)", false)]
#[case("tokenbf_v1(256.5, 2, 0)", false)]
#[case("tokenbf_v1(256, 2)", false)]
#[case("hypothesis", false)]
#[case("text(tokenizer = 'default')", false)]
fn index_types_and_their_parameters(#[case] text: &str, #[case] ok: bool) {
    assert_eq!(check(text).is_ok(), ok, "{text}: {:?}", check(text));
}

#[test]
fn granularity_is_bounded() {
    assert!(granularity(1).is_ok() && granularity(MAX_GRANULARITY).is_ok());
    assert!(granularity(0).is_err() && granularity(MAX_GRANULARITY + 1).is_err());
}
