//! Conversions of a column where they cannot fail. `toDate(ts)` on a DateTime column is the common projection key
//! and never throws; the same call on a String column throws on the first row it cannot parse, and in an index or
//! projection that fails every insert. So a conversion of a bare column is accepted by the offline check
//! ([`super::bounds`]) and judged here on the live column's type, against what the server does (measured on the
//! engine: DateTime64 or Float to an integer throws on overflow or NaN; DateTime64 to DateTime64 of a finer scale
//! overflows; the rest wrap or saturate).

use crate::observe::LiveColumn;
use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, visit_expressions};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

const INTEGERS: &[&str] = &[
    "toInt8",
    "toInt16",
    "toInt32",
    "toInt64",
    "toInt128",
    "toInt256",
    "toUInt8",
    "toUInt16",
    "toUInt32",
    "toUInt64",
    "toUInt128",
    "toUInt256",
];
const FLOATS: &[&str] = &["toFloat32", "toFloat64"];
const DATES: &[&str] = &["toDate", "toDate32", "toDateTime"];
const DATETIME64: &str = "toDateTime64";

/// Whether `name` converts a column whose type this module may accept.
pub fn judged_live(name: &str) -> bool {
    [INTEGERS, FLOATS, DATES].iter().any(|set| set.iter().any(|f| f.eq_ignore_ascii_case(name)))
        || name.eq_ignore_ascii_case(DATETIME64)
}

/// Whether `function` of a column of `data_type` cannot throw, whatever the row.
pub fn cannot_fail(function: &str, data_type: &str) -> bool {
    let base = base_type(data_type);
    let integer = base.starts_with("Int") || base.starts_with("UInt") || base == "Bool";
    let is = |set: &[&str]| set.iter().any(|f| f.eq_ignore_ascii_case(function));
    if is(INTEGERS) {
        integer || matches!(base, "Date" | "Date32" | "DateTime")
    } else if is(FLOATS) {
        integer || base.starts_with("Float") || base.starts_with("Decimal")
    } else if is(DATES) {
        matches!(base, "Date" | "Date32" | "DateTime" | "DateTime64")
    } else if function.eq_ignore_ascii_case(DATETIME64) {
        matches!(base, "Date" | "Date32" | "DateTime")
    } else {
        false
    }
}

/// The type's name without Nullable, LowCardinality or its parameters (`DateTime('UTC')` is `DateTime`).
fn base_type(data_type: &str) -> &str {
    // Not under Array: converting an array is not a conversion of its values.
    let t = super::codec::unwrap_type(data_type, &["Nullable(", "LowCardinality("]);
    t.split('(').next().unwrap_or(t).trim()
}

/// Why `sql` (a projection query, or `SELECT <index expression>`) converts a column that can fail, if it does.
pub fn refusal(sql: &str, columns: &BTreeMap<String, LiveColumn>) -> Option<String> {
    let statements = Parser::parse_sql(&ClickHouseDialect {}, sql).ok()?;
    let mut found = None;
    let _ = statements.iter().try_for_each(|statement| {
        visit_expressions(statement, |e| {
            if let Expr::Function(f) = e
                && let [name] = f.name.0.as_slice()
                && let Some(name) = name.as_ident().map(|i| i.value.as_str())
                && judged_live(name)
                && let Some(column) = first_column(&f.args)
                && let Some(live) = columns.get(column)
                && !cannot_fail(name, &live.data_type)
            {
                found = Some(format!(
                    "`{name}({column})` throws on a {} value it cannot convert, and in an index or projection one \
                     such row fails every insert: use accurateCastOrNull({column}, 'Type'), or {name}OrNull on a \
                     String",
                    live.data_type
                ));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
    });
    found
}

/// The column a call converts: its first argument, a bare name.
fn first_column(args: &FunctionArguments) -> Option<&str> {
    let FunctionArguments::List(list) = args else { return None };
    match list.args.first()? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(ident))) => Some(ident.value.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_conversion_accepts_follows_the_engine() {
        let cases = [
            ("toDate", "DateTime", true),
            ("toDate", "Nullable(DateTime64(3, 'UTC'))", true),
            ("toDate", "String", false),
            ("toDate", "UInt32", false),
            ("toDateTime", "LowCardinality(Nullable(Date32))", true),
            ("toDateTime64", "DateTime('UTC')", true),
            ("toDateTime64", "DateTime64(3)", false),
            ("toUInt8", "Int64", true),
            ("toInt32", "Date32", true),
            ("toInt32", "DateTime64(3)", false),
            ("toInt32", "Float64", false),
            ("toInt32", "Decimal(18, 2)", false),
            ("toInt64", "Bool", true),
            ("toFloat64", "Decimal128(4)", true),
            ("toFloat32", "String", false),
            ("toUUID", "String", false),
        ];
        for (function, data_type, expected) in cases {
            assert_eq!(cannot_fail(function, data_type), expected, "{function}({data_type})");
        }
    }

    #[test]
    fn a_conversion_of_a_column_is_judged_on_its_live_type() {
        let column = |t: &str| LiveColumn { data_type: t.into(), codec: String::new() };
        let columns: BTreeMap<String, LiveColumn> =
            [("ts".to_string(), column("DateTime")), ("s".to_string(), column("String"))].into();
        assert_eq!(refusal("SELECT toDate(ts), count() GROUP BY toDate(ts)", &columns), None);
        let err = refusal("SELECT lower(s) AS l, count() GROUP BY toUInt8(s)", &columns).unwrap_or_default();
        assert!(err.contains("`toUInt8(s)` throws on a String value"), "{err}");
        assert!(refusal("SELECT toDateTime(s, 'UTC')", &columns).is_some());
        assert_eq!(refusal("SELECT toDate(missing)", &columns), None, "a missing column is reported elsewhere");
    }
}
