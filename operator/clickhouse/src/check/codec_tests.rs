use super::*;
use rstest::rstest;

fn verdict(chain: &str, data_type: &str) -> Result<(), String> {
    let chain = parse(chain)?;
    fits(&chain, data_type)?;
    chain_rules(&chain)
}

// Verdicts of ClickHouse 26.9 (allow_suspicious_codecs off); the live test compares them with the server itself.
#[rstest]
#[case("Delta, ZSTD(1)", "UInt64", true)]
#[case("Delta", "UInt64", false)]
#[case("ZSTD(1), Delta", "UInt64", false)]
#[case("LZ4, ZSTD", "UInt64", false)]
#[case("NONE, ZSTD", "UInt64", false)]
#[case("Delta, Delta", "Int32", false)]
#[case("Gorilla", "UInt64", false)]
#[case("Gorilla, ZSTD", "Float64", true)]
#[case("Gorilla", "Nullable(Float64)", true)]
#[case("FPC", "Float32", true)]
#[case("FPC", "UInt8", false)]
#[case("T64", "Float64", false)]
#[case("T64, LZ4", "Decimal(18, 4)", true)]
#[case("T64", "Enum8('a' = 1)", true)]
#[case("GCD, LZ4", "Date", true)]
#[case("GCD, LZ4", "Bool", true)]
#[case("GCD, LZ4", "Enum8('a' = 1)", false)]
#[case("GCD, LZ4", "Float32", false)]
#[case("DoubleDelta", "String", false)]
#[case("DoubleDelta, LZ4HC(9)", "DateTime64(3)", true)]
#[case("Delta, ZSTD", "LowCardinality(String)", false)]
#[case("Delta, ZSTD", "FixedString(16)", false)]
#[case("ZSTD(3)", "String", true)]
#[case("ZSTD(23)", "String", false)]
#[case("DoubleDelta", "Array(UInt32)", true)]
// Parameters, as the server takes them (tests/live_params.rs runs a larger table against the engine).
#[case("ZSTD(0)", "String", true)]
#[case("ZSTD(-1)", "String", true)]
#[case("ZSTD(22)", "String", true)]
#[case("ZSTD(1, 20)", "String", false)]
#[case("LZ4HC(12)", "String", true)]
#[case("LZ4HC(13)", "String", false)]
#[case("LZ4(1)", "String", false)]
#[case("NONE(1)", "String", false)]
#[case("Delta(3), LZ4", "UInt64", false)]
#[case("Delta(1), LZ4", "UInt64", true)]
#[case("Gorilla(16)", "Float64", false)]
#[case("FPC(0)", "Float64", false)]
#[case("FPC(28, 4)", "Float64", true)]
#[case("FPC(12, 2)", "Float64", false)]
#[case("T64(1)", "UInt64", false)]
#[case("GCD(1), LZ4", "UInt64", false)]
#[case("DoubleDelta(3)", "UInt64", false)]
#[case("Delta, Gorilla, LZ4", "Float64", false)]
#[case("Gorilla, Delta, LZ4", "Float64", true)]
fn chains_are_judged_as_the_server_does(#[case] chain: &str, #[case] data_type: &str, #[case] ok: bool) {
    assert_eq!(verdict(chain, data_type).is_ok(), ok, "{chain} on {data_type}: {:?}", verdict(chain, data_type));
}

#[rstest]
#[case("ZSTD", Some("String"), "ZSTD(1)")]
#[case("zstd(9)", None, "ZSTD(9)")]
#[case("LZ4HC", None, "LZ4HC(0)")]
#[case("Delta, ZSTD", Some("UInt64"), "Delta(8), ZSTD(1)")]
#[case("Delta, ZSTD", Some("Date"), "Delta(2), ZSTD(1)")]
#[case("Delta, ZSTD", None, "Delta, ZSTD(1)")]
#[case("Delta(4), LZ4", Some("UInt64"), "Delta(4), LZ4")]
#[case("Gorilla", Some("Float32"), "Gorilla(4)")]
#[case("FPC(12, 4)", Some("Float32"), "FPC(12)")]
#[case("DoubleDelta(8)", Some("DateTime"), "DoubleDelta")]
fn canonical_forms_spell_out_the_server_defaults(
    #[case] chain: &str,
    #[case] data_type: Option<&str>,
    #[case] expected: &str,
) {
    assert_eq!(canonical(&parse(chain).unwrap(), data_type), expected);
}

#[rstest]
#[case("AES_128_GCM_SIV")]
#[case("ZSTD(1)) , DROP COLUMN x")]
#[case("ZSTD(1.5)")]
#[case("")]
#[case("Delta; DROP TABLE x")]
fn bad_codecs_are_refused(#[case] text: &str) {
    assert!(parse(text).is_err(), "{text}");
}

#[test]
fn wrappers_are_unwrapped_in_whatever_order_they_nest() {
    let all = ["Nullable(", "LowCardinality(", "Array("];
    assert_eq!(unwrap_type("LowCardinality(Nullable(String))", &all), "String");
    assert_eq!(unwrap_type(" Array(Nullable(UInt8)) ", &all), "UInt8");
    assert_eq!(unwrap_type("Array(Nullable(UInt8))", &all[..2]), "Array(Nullable(UInt8))");
    assert_eq!(unwrap_type("DateTime64(3, 'UTC')", &all), "DateTime64(3, 'UTC')");
}
