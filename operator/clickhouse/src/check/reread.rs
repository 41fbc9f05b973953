//! The server's reading of checked SQL, compared with ours.
//!
//! The checker's tokenizer is not the server's: a text could end a name or a string for one and not for the other,
//! and what follows would reach the server unchecked. So before a checked piece is sent, the server formats it
//! (its own parser, nothing run; [`crate::proof`]), and its formatted text is read again here by the same checker,
//! with the same allow-list. The two readings are then compared in a normal form that undoes only what the
//! server's formatter rewrites without changing the meaning: operators written as functions (`a || b` is
//! `concat(a, b)`, BETWEEN is two comparisons, CASE is multiIf, INTERVAL is toInterval*), parentheses, chains of
//! AND, OR and concat, function-name case, number spelling, the default ASC, and `ORDER BY (a, b)` for
//! `ORDER BY a, b`. Anything else that differs is a different reading, and the piece is refused.

use super::expr::shorten;
use super::{Limits, REREAD, TENANT};
use sqlparser::ast::{
    AccessExpr, BinaryOperator, DateTimeField, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    InTarget, Interval, LimitClause, OrderByKind, OrderBySort, Query, SelectItem, SetExpr, Subscript, TableFactor,
    UnaryOperator, Value,
};

/// What kind of checked SQL a text is, and so which checker reads it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Piece {
    /// A projection's SELECT.
    Projection,
    /// An index expression.
    Expression,
    /// A representative query on `database`.`table`.
    Query { database: String, table: String },
}

/// One reading of a piece, in the normal form.
#[derive(Debug, PartialEq)]
pub enum Reading {
    Expression(Node),
    Select(Box<Select>),
}

/// An expression in the normal form: every operator a call of the server's function name.
#[derive(Debug, PartialEq)]
pub enum Node {
    Column(String),
    Int(i128),
    /// A float constant, by its bits.
    Float(u64),
    /// A number neither form holds, as written.
    Number(String),
    Str(String),
    Bool(bool),
    Null,
    Star,
    Call {
        name: String,
        params: Vec<Node>,
        args: Vec<Node>,
    },
    Other(String),
}

/// A SELECT in the normal form.
#[derive(Debug, Default, PartialEq)]
pub struct Select {
    items: Vec<(Node, Option<String>)>,
    from: Vec<String>,
    filter: Option<Node>,
    group_by: Vec<Node>,
    having: Option<Node>,
    order_by: Vec<(Node, bool, Option<bool>)>,
    limit: Option<Node>,
}

/// Our reading of `text`, a piece as sent (the checker's limits for tenants' text).
pub fn ours(piece: &Piece, text: &str) -> Result<Reading, String> {
    read(piece, text, TENANT)
}

/// The server's reading: its formatted text (with its string escapes undone), read by the same checker.
pub fn theirs(piece: &Piece, formatted: &str) -> Result<Reading, String> {
    read(piece, &unescape(formatted)?, REREAD)
}

/// `Ok` when the server reads `sent` as the checker does; else why not, for the object's status.
pub fn same(piece: &Piece, sent: &str, formatted: Option<&str>) -> Result<(), String> {
    let differs = |detail: String| format!("the server reads this differently: {detail}; nothing is sent for it");
    let Some(formatted) = formatted else {
        return Err(differs(format!("its parser refuses `{}`", shorten(sent))));
    };
    let ours = ours(piece, sent).map_err(|e| differs(format!("the checker no longer accepts it ({e})")))?;
    let theirs = theirs(piece, formatted)
        .map_err(|e| differs(format!("it reads `{}`, which the checker refuses: {e}", shorten(formatted))))?;
    if ours == theirs { Ok(()) } else { Err(differs(format!("it reads `{}`", shorten(formatted)))) }
}

fn read(piece: &Piece, text: &str, limits: Limits) -> Result<Reading, String> {
    match piece {
        Piece::Expression => super::expression_tree(text, limits).map(|(e, _)| Reading::Expression(node(&e))),
        Piece::Projection => super::projection_tree(text, limits).map(|(q, _)| Reading::Select(Box::new(select(&q)))),
        Piece::Query { database, table } => {
            super::query_tree(text, database, table, limits).map(|(q, _)| Reading::Select(Box::new(select(&q))))
        }
    }
}

/// The server writes a quote inside a string as `\'`; we send it doubled (`''`), and never send a backslash. So
/// `\'` inside a string is turned back into `''`, and any other backslash means the server read something we did
/// not write: refused.
pub fn unescape(formatted: &str) -> Result<String, String> {
    let mut out = String::with_capacity(formatted.len());
    let mut quote: Option<char> = None;
    let mut chars = formatted.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\\') if chars.clone().next() == Some('\'') => {
                chars.next();
                out.push_str("''");
            }
            (_, '\\') => return Err(format!("an escape the checker did not write: `{}`", shorten(formatted))),
            (None, '\'' | '`' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (_, c) => out.push(c),
        }
    }
    Ok(out)
}

/// The function the server reads `INTERVAL n <unit>` as; `None` for units it has no such function for.
pub fn interval_function(i: &Interval) -> Option<&'static str> {
    if i.last_field.is_some() || i.leading_precision.is_some() || i.fractional_seconds_precision.is_some() {
        return None;
    }
    Some(match i.leading_field.as_ref()? {
        DateTimeField::Year => "toIntervalYear",
        DateTimeField::Quarter => "toIntervalQuarter",
        DateTimeField::Month => "toIntervalMonth",
        DateTimeField::Week(None) => "toIntervalWeek",
        DateTimeField::Day => "toIntervalDay",
        DateTimeField::Hour => "toIntervalHour",
        DateTimeField::Minute => "toIntervalMinute",
        DateTimeField::Second => "toIntervalSecond",
        DateTimeField::Millisecond => "toIntervalMillisecond",
        DateTimeField::Microsecond => "toIntervalMicrosecond",
        DateTimeField::Nanosecond => "toIntervalNanosecond",
        _ => return None,
    })
}

fn call(name: &str, args: Vec<Node>) -> Node {
    let name = name.to_ascii_lowercase();
    let args = flatten(&name, args);
    Node::Call { name, params: Vec::new(), args }
}

/// `and(and(a, b), c)` is `and(a, b, c)`: the server joins chains of AND, OR and `||` (`name` in lower case).
fn flatten(name: &str, args: Vec<Node>) -> Vec<Node> {
    if !matches!(name, "and" | "or" | "concat") {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        match a {
            Node::Call { name: n, params, args } if n == name && params.is_empty() => out.extend(args),
            other => out.push(other),
        }
    }
    out
}

fn operator(op: &BinaryOperator) -> Option<&'static str> {
    use BinaryOperator as B;
    Some(match op {
        B::Plus => "plus",
        B::Minus => "minus",
        B::Multiply => "multiply",
        B::Divide => "divide",
        B::Modulo => "modulo",
        B::StringConcat => "concat",
        B::Gt => "greater",
        B::Lt => "less",
        B::GtEq => "greaterOrEquals",
        B::LtEq => "lessOrEquals",
        B::Eq => "equals",
        B::NotEq => "notEquals",
        B::And => "and",
        B::Or => "or",
        B::Xor => "xor",
        _ => return None,
    })
}

/// The normal form of an expression.
pub fn node(e: &Expr) -> Node {
    let pair = |name: &str, a: &Expr, b: &Expr| call(name, vec![node(a), node(b)]);
    match e {
        Expr::Nested(inner) => node(inner),
        Expr::Identifier(i) => Node::Column(i.value.clone()),
        Expr::Value(v) => value(&v.value),
        Expr::BinaryOp { left, op, right } => match operator(op) {
            Some(name) => pair(name, left, right),
            None => Node::Other(e.to_string()),
        },
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } => node(expr),
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => call("negate", vec![node(expr)]),
        Expr::UnaryOp { op: UnaryOperator::Not, expr } => call("not", vec![node(expr)]),
        Expr::IsNull(x) => call("isNull", vec![node(x)]),
        Expr::IsNotNull(x) => call("isNotNull", vec![node(x)]),
        Expr::In { expr, target: InTarget::List(list), negated, global: false } => {
            call(if *negated { "notIn" } else { "in" }, vec![node(expr), call("tuple", nodes(list))])
        }
        Expr::Like { negated, expr, pattern, .. } => pair(if *negated { "notLike" } else { "like" }, expr, pattern),
        Expr::ILike { negated, expr, pattern, .. } => pair(if *negated { "notILike" } else { "ilike" }, expr, pattern),
        Expr::Between { expr, negated: false, low, high } => {
            call("and", vec![pair("greaterOrEquals", expr, low), pair("lessOrEquals", expr, high)])
        }
        Expr::Between { expr, negated: true, low, high } => {
            call("or", vec![pair("less", expr, low), pair("greater", expr, high)])
        }
        Expr::Case { operand: None, conditions, else_result, .. } => {
            let mut args: Vec<Node> = conditions.iter().flat_map(|w| [node(&w.condition), node(&w.result)]).collect();
            args.push(else_result.as_deref().map_or(Node::Null, node));
            call("multiIf", args)
        }
        Expr::Tuple(items) => call("tuple", nodes(items)),
        Expr::Array(a) => call("array", nodes(&a.elem)),
        Expr::Interval(i) => match interval_function(i) {
            Some(name) => call(name, vec![node(&i.value)]),
            None => Node::Other(e.to_string()),
        },
        Expr::CompoundFieldAccess { root, access_chain } => access_chain.iter().fold(node(root), |acc, a| match a {
            AccessExpr::Subscript(Subscript::Index { index }) => call("arrayElement", vec![acc, node(index)]),
            other => Node::Other(format!("{other:?}")),
        }),
        Expr::Function(f) => {
            // The name as read, whatever its quotes (`lower`(s) is lower(s)).
            let name = f.name.0.iter().map(|p| p.as_ident().map_or_else(|| p.to_string(), |i| i.value.clone()));
            let name = name.collect::<Vec<_>>().join(".");
            let args = arguments(&f.args);
            match arguments(&f.parameters) {
                params if params.is_empty() => call(&name, args),
                params => Node::Call { name: name.to_ascii_lowercase(), params, args },
            }
        }
        other => Node::Other(other.to_string()),
    }
}

fn nodes(list: &[Expr]) -> Vec<Node> {
    list.iter().map(node).collect()
}

fn arguments(args: &FunctionArguments) -> Vec<Node> {
    let FunctionArguments::List(list) = args else { return Vec::new() };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => node(e),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Node::Star,
            other => Node::Other(other.to_string()),
        })
        .collect()
}

fn value(v: &Value) -> Node {
    match v {
        Value::Number(n, false) if !n.contains(['.', 'e', 'E']) => {
            n.parse().map_or_else(|_| Node::Number(n.clone()), Node::Int)
        }
        Value::Number(n, false) => n
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map_or_else(|| Node::Number(n.clone()), |f| Node::Float(f.to_bits())),
        Value::SingleQuotedString(s) => Node::Str(s.clone()),
        Value::Boolean(b) => Node::Bool(*b),
        Value::Null => Node::Null,
        other => Node::Other(other.to_string()),
    }
}

/// The normal form of a checked SELECT (the checker has refused every clause not read here).
fn select(q: &Query) -> Select {
    let mut out = Select::default();
    let SetExpr::Select(s) = q.body.as_ref() else { return out };
    out.items = s
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => (node(e), None),
            SelectItem::ExprWithAlias { expr, alias } => (node(expr), Some(alias.value.clone())),
            SelectItem::Wildcard(_) => (Node::Star, None),
            other => (Node::Other(other.to_string()), None),
        })
        .collect();
    if let Some(TableFactor::Table { name, .. }) = s.from.first().map(|f| &f.relation) {
        out.from = name.0.iter().map(|p| p.as_ident().map_or_else(|| p.to_string(), |i| i.value.clone())).collect();
    }
    out.filter = s.selection.as_ref().map(node);
    out.having = s.having.as_ref().map(node);
    if let GroupByExpr::Expressions(list, _) = &s.group_by {
        out.group_by = nodes(list);
    }
    if let Some(order) = &q.order_by
        && let OrderByKind::Expressions(list) = &order.kind
    {
        for o in list {
            let desc = matches!(o.options.sort, Some(OrderBySort::Desc));
            match &o.expr {
                // `ORDER BY (a, b)` sorts as `ORDER BY a, b`; the server writes one for the other in projections.
                Expr::Tuple(parts) if list.len() == 1 && !desc && o.options.nulls_first.is_none() => {
                    out.order_by.extend(parts.iter().map(|p| (node(p), false, None)))
                }
                e => out.order_by.push((node(e), desc, o.options.nulls_first)),
            }
        }
    }
    if let Some(LimitClause::LimitOffset { limit: Some(l), .. }) = &q.limit_clause {
        out.limit = Some(node(l));
    }
    out
}

#[cfg(test)]
#[path = "reread_tests.rs"]
mod tests;
