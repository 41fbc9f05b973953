//! Canonical forms for comparing a declared definition with the one the server stored.
//!
//! The server rewrites what it stores (`==` -> `=`, `1.0` -> `1.`, `AVG` -> `avg`, `(k, v)` -> `k, v`, parentheses
//! around AND/OR). Both sides are first formatted by the server itself (`formatQuerySingleLineOrNull`, read in
//! [`crate::observe`]); then the few differences that formatter and storage still disagree on are removed here on
//! the syntax tree: function-name case, the default `ASC`, one outer tuple or parenthesis of an index expression.
//! Without the server's formatter (older servers, offline) the second step alone still applies.

use sqlparser::ast::{Expr, OrderByKind, SelectItem, SetExpr, Statement, VisitMut, VisitorMut};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// Server-formatted texts by the text sent to the formatter.
pub type Formatted = BTreeMap<String, String>;

/// What the formatter is given for an index expression (a bare expression needs `implicit_select`).
pub fn expression_query(expression: &str) -> String {
    format!("SELECT {expression}")
}

/// Canonical projection query.
pub fn query(text: &str, formatted: &Formatted) -> String {
    let text = formatted.get(text).map_or(text, String::as_str);
    match parse(text) {
        Some(mut statement) => {
            normalise(&mut statement);
            statement.to_string()
        }
        None => text.trim().to_string(),
    }
}

/// Canonical index expression: the select list of `SELECT <expression>`, with one outer tuple or parenthesis
/// removed (the server stores the index `(k, v)` as `k, v`).
pub fn expression(text: &str, formatted: &Formatted) -> String {
    let wrapped = expression_query(text);
    let text = formatted.get(&wrapped).map_or(wrapped.as_str(), String::as_str);
    let Some(mut statement) = parse(text) else { return text.trim().to_string() };
    normalise(&mut statement);
    let Statement::Query(q) = &statement else { return statement.to_string() };
    let SetExpr::Select(s) = q.body.as_ref() else { return statement.to_string() };
    let mut items: Vec<String> = Vec::new();
    for item in &s.projection {
        match item {
            SelectItem::UnnamedExpr(Expr::Tuple(parts)) if s.projection.len() == 1 => {
                items.extend(parts.iter().map(ToString::to_string))
            }
            SelectItem::UnnamedExpr(Expr::Nested(inner)) if s.projection.len() == 1 => items.push(inner.to_string()),
            other => items.push(other.to_string()),
        }
    }
    items.join(", ")
}

fn parse(text: &str) -> Option<Statement> {
    let mut statements = Parser::parse_sql(&ClickHouseDialect {}, text).ok()?;
    (statements.len() == 1).then(|| statements.remove(0))
}

/// Function names lower-case (ClickHouse has no two functions differing in case only), `ASC` dropped.
fn normalise(statement: &mut Statement) {
    struct Normalise;
    impl VisitorMut for Normalise {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = expr {
                for part in &mut f.name.0 {
                    if let sqlparser::ast::ObjectNamePart::Identifier(ident) = part {
                        ident.value = ident.value.to_ascii_lowercase();
                    }
                }
            }
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, query: &mut sqlparser::ast::Query) -> ControlFlow<()> {
            if let Some(order) = &mut query.order_by
                && let OrderByKind::Expressions(list) = &mut order.kind
            {
                // The server stores `ORDER BY (a, b)` as `ORDER BY a, b`.
                if let [only] = list.as_slice()
                    && let Expr::Tuple(parts) = &only.expr
                    && matches!(only.options.sort, None | Some(sqlparser::ast::OrderBySort::Asc))
                {
                    let template = only.clone();
                    *list = parts
                        .iter()
                        .map(|e| sqlparser::ast::OrderByExpr { expr: e.clone(), ..template.clone() })
                        .collect();
                }
                for o in list {
                    if matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Asc)) {
                        o.options.sort = None;
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Normalise);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Formatted {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn stored_and_declared_forms_meet() {
        let none = Formatted::new();
        assert_eq!(query("select k, AVG(v) group by k", &none), query("SELECT k, avg(v) GROUP BY k", &none));
        assert_eq!(query("SELECT * ORDER BY s ASC", &none), query("SELECT * ORDER BY s", &none));
        assert_eq!(query("SELECT * ORDER BY (s, k)", &none), query("SELECT * ORDER BY s, k", &none));
        assert_eq!(expression("(k, v)", &none), expression("k, v", &none));
        assert_eq!(expression("LOWER(s)", &none), expression("lower(s)", &none));
        assert_eq!(expression("(v)", &none), expression("v", &none));
        // The server's formatter does the rest: `==` and `1.0`.
        let fmt = f(&[("SELECT v == 1.0", "SELECT v = 1."), ("SELECT v = 1.", "SELECT v = 1.")]);
        assert_eq!(expression("v == 1.0", &fmt), expression("v = 1.", &fmt));
        // Different meanings stay different.
        assert_ne!(expression("(a OR b) AND c", &none), expression("a OR (b AND c)", &none));
        assert_ne!(query("SELECT k ORDER BY k DESC", &none), query("SELECT k ORDER BY k", &none));
    }
}
