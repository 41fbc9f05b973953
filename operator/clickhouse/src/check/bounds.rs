//! What one row may cost the table an expression is materialised in, on top of the allow-list.
//!
//! An index expression and a projection are computed on every insert and merge. A function that throws on some
//! value makes every insert carrying that value fail, and leaves the MATERIALIZE that backfills the object stuck;
//! a size argument that is not a small constant lets one row take gigabytes. So: functions that throw on data are
//! refused where they are materialised (their OrNull/OrZero variants are listed instead), divisors there are
//! non-zero constants, aggregate states that grow with the data are refused in projections, and size arguments are
//! constants within a bound everywhere (a representative query is only EXPLAINed, but EXPLAIN folds constants).

use super::expr::Place;
use super::functions::aggregate_parts;
use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator, Value,
};

/// Longest leftPad/rightPad result and FixedString width.
pub const MAX_PAD: i128 = 1024;
/// Longest n-gram of `ngrams` (each row yields about `length * n` bytes).
pub const MAX_NGRAM: i128 = 16;
/// Longest replacement of replaceAll/replaceRegexpAll: a row grows at most `MAX_REPLACEMENT + 1` times.
pub const MAX_REPLACEMENT: usize = 8;
/// Longest separator of arrayStringConcat (an array of many empty strings would multiply it).
pub const MAX_SEPARATOR: usize = 16;
/// Largest `N` of topK(N), topKWeighted(N) and histogram(N).
pub const MAX_TOP: i128 = 1000;
/// Largest size of groupArray(N), groupUniqArray(N) and groupArraySample(N) in a projection.
pub const MAX_SAMPLE: i128 = 10_000;

/// Conversions that throw on a value they cannot parse or fit (text that is no number or date, an overflow), besides
/// those of [`super::conversions`] (to integers, floats and dates), which throw too unless the column's type says not.
const THROWING_CONVERSIONS: &[&str] = &[
    "toDecimal32",
    "toDecimal64",
    "toDecimal128",
    "toUUID",
    "toBool",
    "toFixedString",
    "cast",
    "accurateCast",
    "parseDateTimeBestEffort",
];

/// Aggregates whose state keeps every (distinct) value: one projection row could hold the whole table.
const GROWING_STATES: &[(&str, &str)] = &[
    ("uniqExact", "uniq or uniqCombined"),
    ("quantileExact", "quantile or quantileTDigest"),
    ("quantilesExact", "quantiles or quantilesTDigest"),
    ("medianExact", "median"),
    ("entropy", "uniq"),
    ("groupBitmap", "uniqCombined"),
    ("sumMap", "sum over a fixed set of keys"),
    ("minMap", "min over a fixed set of keys"),
    ("maxMap", "max over a fixed set of keys"),
];

fn materialised(place: Place) -> bool {
    matches!(place, Place::Index | Place::Projection)
}

/// The bounds on a call of allow-listed function `name`.
pub fn call(name: &str, f: &Function, place: Place) -> Result<(), String> {
    if let Some((base, combinators)) = aggregate_parts(name) {
        return aggregate(name, base, &combinators, f, place);
    }
    let args = list(&f.args);
    let lower = name.to_ascii_lowercase();
    if materialised(place) {
        // A bare column is converted where its type says it cannot fail: judged on the live table (`conversions`).
        let of_column = matches!(args.first().map(|a| unparen(a)), Some(Expr::Identifier(_)))
            && args.iter().skip(1).all(|a| matches!(unparen(a), Expr::Value(_)));
        if super::conversions::judged_live(name) && of_column {
            return Ok(());
        }
        let throwing = THROWING_CONVERSIONS.iter().any(|c| c.eq_ignore_ascii_case(name));
        if throwing || super::conversions::judged_live(name) {
            return Err(format!(
                "`{name}` throws on a value it cannot convert, and in an index or projection one such row fails \
                 every insert: use accurateCastOrNull(x, 'Type'), or {name}OrNull / {name}OrZero on a String"
            ));
        }
        if matches!(lower.as_str(), "gcd" | "lcm") {
            return Err(format!("`{name}` throws on some values (overflow), which would fail inserts"));
        }
        if matches!(lower.as_str(), "intdiv" | "modulo" | "divide") {
            return divisor(name, args.get(1).copied());
        }
        if matches!(lower.as_str(), "match" | "extract" | "replaceregexpone" | "replaceregexpall") {
            // A pattern from the data is compiled per row, and a bad one throws.
            string_arg(name, &args, 1, usize::MAX, "the pattern")?;
        }
    }
    match lower.as_str() {
        "leftpad" | "rightpad" => int_arg(name, &args, 1, 0, MAX_PAD, "the length"),
        "tofixedstring" => int_arg(name, &args, 1, 1, MAX_PAD, "the width"),
        "ngrams" => int_arg(name, &args, 1, 1, MAX_NGRAM, "the n-gram length"),
        "replaceall" | "replaceregexpall" => string_arg(name, &args, 2, MAX_REPLACEMENT, "the replacement"),
        "arraystringconcat" if args.len() > 1 => string_arg(name, &args, 1, MAX_SEPARATOR, "the separator"),
        _ => Ok(()),
    }
}

/// The bounds on operator `op` with right operand `right`: `/` and `%` throw on a zero divisor (integers and
/// decimals), and `%` on the smallest integer by -1.
pub fn operator(op: &BinaryOperator, right: &Expr, place: Place) -> Result<(), String> {
    match op {
        BinaryOperator::Divide if materialised(place) => divisor("/", Some(right)),
        BinaryOperator::Modulo if materialised(place) => divisor("%", Some(right)),
        _ => Ok(()),
    }
}

fn divisor(name: &str, d: Option<&Expr>) -> Result<(), String> {
    match d.and_then(number) {
        Some(v) if v != 0.0 && v != -1.0 => Ok(()),
        _ => Err(format!(
            "`{name}` throws when its divisor is 0 (or -1 for the smallest integer), and in an index or projection \
             that fails every insert: divide by a non-zero constant, or use divideOrNull, intDivOrZero, moduloOrZero"
        )),
    }
}

fn aggregate(name: &str, base: &str, combinators: &[&str], f: &Function, place: Place) -> Result<(), String> {
    let params = list(&f.parameters);
    let lower = base.to_ascii_lowercase();
    match lower.as_str() {
        "topk" | "topkweighted" | "histogram" if !params.is_empty() || lower == "histogram" => {
            int_arg(name, &params, 0, 1, MAX_TOP, "the size parameter")?
        }
        _ => {}
    }
    if place != Place::Projection {
        return Ok(());
    }
    if combinators.contains(&"Distinct") {
        return Err(format!("`{name}`: -Distinct keeps every distinct value in a projection's row"));
    }
    if let Some((_, instead)) = GROWING_STATES.iter().find(|(g, _)| g.eq_ignore_ascii_case(base)) {
        return Err(format!(
            "`{name}` keeps every value in its state, so one projection row can grow with the table: use {instead}"
        ));
    }
    if matches!(lower.as_str(), "grouparray" | "groupuniqarray" | "grouparraysample") {
        return int_arg(name, &params, 0, 1, MAX_SAMPLE, "a size parameter, e.g. groupArray(100)(x),");
    }
    Ok(())
}

/// Argument `i` is an integer constant in `min..=max`.
fn int_arg(name: &str, args: &[&Expr], i: usize, min: i128, max: i128, what: &str) -> Result<(), String> {
    match args.get(i).and_then(|e| integer(e)) {
        Some(v) if (min..=max).contains(&v) => Ok(()),
        _ => Err(format!("`{name}`: {what} must be a constant from {min} to {max}")),
    }
}

/// Argument `i` is a string constant of at most `max` bytes.
fn string_arg(name: &str, args: &[&Expr], i: usize, max: usize, what: &str) -> Result<(), String> {
    match args.get(i).copied().map(unparen) {
        Some(Expr::Value(v)) if matches!(&v.value, Value::SingleQuotedString(s) if s.len() <= max) => Ok(()),
        _ if max == usize::MAX => Err(format!("`{name}`: {what} must be a '...' constant")),
        _ => Err(format!("`{name}`: {what} must be a '...' constant of at most {max} bytes")),
    }
}

fn list(args: &FunctionArguments) -> Vec<&Expr> {
    let FunctionArguments::List(list) = args else { return Vec::new() };
    list.args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => unparen(inner),
        other => other,
    }
}

/// An integer constant, possibly negated.
fn integer(e: &Expr) -> Option<i128> {
    match unparen(e) {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => integer(expr).map(|v| -v),
        _ => None,
    }
}

/// A numeric constant, possibly negated.
fn number(e: &Expr) -> Option<f64> {
    match unparen(e) {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<f64>().ok().filter(|v| v.is_finite()),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => number(expr).map(|v| -v),
        _ => None,
    }
}

#[cfg(test)]
#[path = "bounds_tests.rs"]
mod tests;
