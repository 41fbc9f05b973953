use crate::check::{expression, projection, query};
use rstest::rstest;

/// Index expressions that would throw on some row, or take without bound: refused, naming why.
#[rstest]
#[case::throw_if("throwIf(x > 1)", "function `throwIf`")]
#[case::int_div_column("intDiv(a, b)", "divisor is 0")]
#[case::int_div_minus_one("intDiv(a, -1)", "divisor is 0")]
#[case::modulo_column("a % b", "divisor is 0")]
#[case::modulo_zero("modulo(a, 0)", "divisor is 0")]
#[case::divide_column("a / b", "divisor is 0")]
#[case::divide_zero("a / (0)", "divisor is 0")]
#[case::parse_to_int("toUInt8(concat(s, '1'))", "throws on a value it cannot convert")]
#[case::parse_date("toDate(lower(s))", "accurateCastOrNull")]
#[case::column_to_decimal("toDecimal64(a, 2)", "throws on a value it cannot convert")]
#[case::cast_fn("accurateCast(s, 'UInt8')", "throws")]
#[case::gcd("gcd(a, b)", "throws")]
#[case::pattern_from_data("match(s, p)", "the pattern must be a '...' constant")]
#[case::pad_column("leftPad(s, n)", "the length must be a constant")]
#[case::pad_huge("rightPad(s, 100000000)", "from 0 to 1024")]
#[case::fixed_string_huge("toFixedString(s, 16777215)", "throws")]
#[case::ngrams_huge("ngrams(s, 1000)", "from 1 to 16")]
#[case::replace_amplifies("replaceAll(s, 'a', 'aaaaaaaaaaaaaaaaaaaa')", "at most 8 bytes")]
#[case::replace_from_data("replaceRegexpAll(s, '', t)", "at most 8 bytes")]
#[case::separator_amplifies("arrayStringConcat(splitByChar(',', s), 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')", "at most 16")]
#[case::repeat("repeat(s, 1000000000)", "function `repeat`")]
#[case::array_with_constant("arrayWithConstant(1000000000, 1)", "function `arrayWithConstant`")]
#[case::range("range(1000000000)", "function `range`")]
#[case::is_true("a IS TRUE", "IS TRUE")]
#[case::case_operand("CASE a WHEN 1 THEN 2 END", "CASE x WHEN")]
#[case::interval_unitless("t > INTERVAL '1 day'", "INTERVAL")]
fn costly_index_expressions_are_refused(#[case] text: &str, #[case] expected: &str) {
    let err = expression("e", text).unwrap_err().to_string();
    assert!(err.contains(expected), "{text}: {err} should contain {expected:?}");
}

#[rstest]
#[case("intDivOrZero(a, b)")]
#[case("moduloOrZero(a, b) + moduloOrNull(a, b) + intDivOrNull(a, b)")]
#[case("divideOrNull(a, b)")]
#[case("a / 2 + a % 16 + intDiv(a, 3) + a / 0.5")]
#[case("toUInt8OrNull(s)")]
#[case::column_judged_live("toDate(ts)")]
#[case::column_with_scale("toDateTime64(ts, 3)")]
#[case::column_with_zone("toDateTime(ts, 'UTC')")]
#[case("accurateCastOrNull(v, 'UInt8')")]
#[case("leftPad(s, 16, '0')")]
#[case("ngrams(s, 3)")]
#[case("replaceAll(s, 'abc', 'x')")]
#[case("match(s, '^a')")]
#[case("t > INTERVAL 1 DAY")]
#[case("CASE WHEN a = 1 THEN 2 END")]
fn bounded_index_expressions_are_accepted(#[case] text: &str) {
    assert!(expression("e", text).is_ok(), "{text}: {:?}", expression("e", text));
}

/// In a projection the same bounds, and aggregate states that grow with the data.
#[rstest]
#[case::uniq_exact("SELECT k, uniqExact(u) GROUP BY k", "use uniq")]
#[case::quantile_exact("SELECT k, quantileExactIf(0.5)(v, v > 0) GROUP BY k", "keeps every value")]
#[case::distinct("SELECT k, sumDistinct(v) GROUP BY k", "-Distinct")]
#[case::group_array("SELECT k, groupArray(v) GROUP BY k", "a size parameter")]
#[case::group_array_huge("SELECT k, groupArray(1000000)(v) GROUP BY k", "from 1 to 10000")]
#[case::top_k_huge("SELECT k, topK(100000000)(v) GROUP BY k", "from 1 to 1000")]
#[case::divide("SELECT k, sum(a) / count() GROUP BY k", "divideOrNull")]
#[case::conversion("SELECT toDate(trim(s)) AS d, count() GROUP BY d", "throws")]
fn costly_projections_are_refused(#[case] text: &str, #[case] expected: &str) {
    let err = projection("p", text).unwrap_err().to_string();
    assert!(err.contains(expected), "{text}: {err} should contain {expected:?}");
}

#[test]
fn representative_queries_are_only_explained_so_only_sizes_are_bounded() {
    let ok = "SELECT uniqExact(u), sum(a) / count(), toDate(s) FROM t WHERE intDiv(a, b) = 1 GROUP BY s";
    assert!(query("q", ok, "db", "t").is_ok(), "{:?}", query("q", ok, "db", "t"));
    let folded = "SELECT count() FROM t WHERE s = leftPad('', 1000000000)";
    assert!(query("q", folded, "db", "t").unwrap_err().to_string().contains("from 0 to 1024"));
    assert!(projection("p", "SELECT k, groupArray(100)(v), topK(10)(v), uniq(v) GROUP BY k").is_ok());
}
