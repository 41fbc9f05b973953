//! What a tenant may write: projection queries, index expressions and representative queries, parsed with
//! sqlparser's ClickHouse dialect and accepted only if every part of them is on an allow-list (shapes here,
//! expression nodes in [`expr`], functions in [`functions`]). `validate`, `plan` and the reconcile all call this
//! module, so all three refuse the same profiles; what is sent is rendered from the checked syntax tree, never
//! the text as written, so the server runs exactly what was checked.

pub mod bounds;
pub mod codec;
pub mod conversions;
pub mod expr;
pub mod functions;
pub mod index_type;
pub mod reread;
pub mod schema;

use crate::error::{Error, Result};
use expr::{Place, Refs, shorten};
use sqlparser::ast::{
    Expr, GroupByExpr, ObjectName, ObjectNamePart, OrderByKind, Query, Select, SelectItem, SetExpr, Statement,
    TableFactor,
};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use std::collections::BTreeSet;

/// Longest projection or representative query, and index expression (the CRD's limits, checked here too).
pub const MAX_QUERY: usize = 8192;
pub const MAX_EXPRESSION: usize = 4096;
/// Nesting depth the parser accepts before refusing (deep nesting costs stack, on the server too).
const MAX_DEPTH: usize = 40;

/// How long and how deep a text the parser takes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Longest query; an expression takes half.
    len: usize,
    depth: usize,
}

/// For what tenants write.
pub(crate) const TENANT: Limits = Limits { len: MAX_QUERY, depth: MAX_DEPTH };
/// For the server's formatting of it ([`reread`]): the server adds parentheses around every operand, so the same
/// expression is longer and deeper there.
pub(crate) const REREAD: Limits = Limits { len: 4 * MAX_QUERY, depth: 3 * MAX_DEPTH };

/// A checked piece of SQL: what to send, and the columns it reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// Rendered from the syntax tree.
    pub sql: String,
    /// Columns referred to (select aliases excluded), for the check against the live table.
    pub columns: BTreeSet<String>,
}

/// An index expression: one expression of the row's columns, no aggregates.
pub fn expression(field: &str, text: &str) -> Result<Checked> {
    let (e, refs) = expression_tree(text, TENANT).map_err(|m| Error::invalid(field, m))?;
    Ok(Checked { sql: e.to_string(), columns: refs.columns })
}

/// A projection: one `SELECT` of the table's own columns with optional `GROUP BY` and `ORDER BY`, no `FROM`.
pub fn projection(field: &str, text: &str) -> Result<Checked> {
    let (query, refs) = projection_tree(text, TENANT).map_err(|m| Error::invalid(field, m))?;
    // Here, not in the tree's check: the server's formatter writes `ASC` when it formats a projection's SELECT on
    // its own, and that reading must still be read back.
    // The server's parser refuses ASC, DESC and NULLS in a projection's ORDER BY (it sorts the parts ascending).
    if let Some(order) = &query.order_by
        && let OrderByKind::Expressions(list) = &order.kind
        && list.iter().any(|o| o.options.nulls_first.is_some() || o.options.sort.is_some())
    {
        return Err(Error::invalid(field, "ASC, DESC and NULLS FIRST/LAST are not allowed in a projection's ORDER BY"));
    }

    Ok(Checked { sql: query.to_string(), columns: refs.columns })
}

/// A representative query for the EXPLAIN report: one `SELECT ... FROM <table>` (the profile's table, optionally
/// as `database.table`) with optional `WHERE`, `GROUP BY`, `ORDER BY`, `LIMIT`; rendered with the table as
/// `` `database`.`table` ``.
pub fn query(field: &str, text: &str, database: &str, table: &str) -> Result<Checked> {
    let (query, refs) = query_tree(text, database, table, TENANT).map_err(|m| Error::invalid(field, m))?;
    Ok(Checked { sql: query.to_string(), columns: refs.columns })
}

/// [`expression`]'s checked tree.
pub(crate) fn expression_tree(text: &str, limits: Limits) -> std::result::Result<(Expr, Refs), String> {
    let tokens = tokens(text, limits.len / 2)?;
    let mut parser = Parser::new(&ClickHouseDialect {}).with_recursion_limit(limits.depth).with_tokens(tokens);
    let e = parser.parse_expr().map_err(|e| parse_error(&e.to_string(), limits))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!("unexpected `{}` after the expression: one expression only", next.token));
    }
    let mut refs = Refs::default();
    expr::check(&e, Place::Index, &mut refs)?;
    Ok((e, refs))
}

/// [`projection`]'s checked tree.
pub(crate) fn projection_tree(text: &str, limits: Limits) -> std::result::Result<(Box<Query>, Refs), String> {
    let query = parse_query(text, limits)?;
    let select = simple_select(&query)?;
    if !select.from.is_empty() {
        return Err("FROM is not allowed: a projection reads its own table".into());
    }
    if select.selection.is_some() || select.prewhere.is_some() || select.having.is_some() {
        return Err("WHERE, PREWHERE and HAVING are not allowed in a projection".into());
    }
    if query.limit_clause.is_some() {
        return Err("LIMIT is not allowed in a projection".into());
    }
    let refs = parts(&query, select, Place::Projection)?;
    Ok((query, refs))
}

/// [`query`]'s checked tree, with its table as `` `database`.`table` ``.
pub(crate) fn query_tree(
    text: &str,
    database: &str,
    table: &str,
    limits: Limits,
) -> std::result::Result<(Box<Query>, Refs), String> {
    let mut query = parse_query(text, limits)?;
    let select = simple_select(&query)?;
    own_table(select, database, table)?;
    if select.prewhere.is_some() {
        return Err("PREWHERE is not allowed".into());
    }
    let refs = parts(&query, select, Place::Query)?;
    let plain_limit = match &query.limit_clause {
        None => true,
        Some(sqlparser::ast::LimitClause::LimitOffset { limit, offset, limit_by }) => {
            limit.as_ref().is_none_or(is_number) && offset.is_none() && limit_by.is_empty()
        }
        Some(_) => false,
    };
    if !plain_limit {
        return Err("only `LIMIT <number>` is allowed".into());
    }
    if let SetExpr::Select(s) = query.body.as_mut()
        && let Some(from) = s.from.first_mut()
        && let TableFactor::Table { name, .. } = &mut from.relation
    {
        *name = ObjectName(vec![quoted(database), quoted(table)]);
    }
    Ok((query, refs))
}

fn is_number(e: &sqlparser::ast::Expr) -> bool {
    matches!(e, sqlparser::ast::Expr::Value(v) if matches!(v.value, sqlparser::ast::Value::Number(..)))
}

fn quoted(name: &str) -> ObjectNamePart {
    ObjectNamePart::Identifier(sqlparser::ast::Ident::with_quote('`', name))
}

/// Tokens of `text`, refusing what could end, comment out or parameterise the clause it is put in.
fn tokens(text: &str, max: usize) -> std::result::Result<Vec<Token>, String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if text.len() > max {
        return Err(format!("is {} bytes long; at most {max} are allowed", text.len()));
    }
    // ClickHouse reads `\` as an escape inside quoted names and strings, where this tokenizer may not: a name or a
    // string could end for one and go on for the other, and what follows would reach the server unchecked. No
    // escapes at all, nor control characters, rather than a second reading of each.
    if let Some(c) = text.chars().find(|c| *c == '\\' || (c.is_control() && !matches!(c, '\n' | '\t' | '\r'))) {
        return Err(format!("{c:?} is not allowed: no escapes or control characters"));
    }
    let dialect = ClickHouseDialect {};
    let tokens = Tokenizer::new(&dialect, text).tokenize().map_err(|e| format!("cannot be read: {}", e.message))?;
    for t in &tokens {
        allowed_token(t)?;
    }
    Ok(tokens)
}

fn allowed_token(t: &Token) -> std::result::Result<(), String> {
    match t {
        Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab) => Ok(()),
        Token::Whitespace(_) => Err("comments are not allowed".into()),
        Token::SemiColon => Err("`;` is not allowed: one statement only".into()),
        Token::LBrace | Token::RBrace => Err("`{` and `}` (query parameters) are not allowed".into()),
        Token::Placeholder(p) => Err(format!("query parameters ({p}) are not allowed")),
        Token::DollarQuotedString(_) => Err("`$` strings are not allowed".into()),
        // A quoted name may only be what needs no quotes: no quote characters inside it, however escaped.
        Token::Word(w) if w.quote_style.is_some() && !crate::validate::is_identifier(&w.value) => Err(format!(
            "quoted name {:?} is not allowed: quote only names of letters, digits and `_`",
            shorten(&w.value)
        )),
        Token::Word(_)
        | Token::Number(..)
        | Token::SingleQuotedString(_)
        | Token::Comma
        | Token::DoubleEq
        | Token::Eq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat
        | Token::LParen
        | Token::RParen
        | Token::Period
        | Token::DoubleColon
        | Token::LBracket
        | Token::RBracket
        | Token::EOF => Ok(()),
        other => Err(format!("`{}` is not allowed", shorten(&other.to_string()))),
    }
}

/// sqlparser says "sql parser error: Expected: ..., found: ..."; the prefix is noise in a field message.
fn parse_error(message: &str, limits: Limits) -> String {
    let m = message.strip_prefix("sql parser error: ").unwrap_or(message);
    if m.contains("recursion limit") {
        return format!("is nested more than {} levels deep", limits.depth);
    }
    format!("is not valid SQL: {}", shorten(m))
}

fn parse_query(text: &str, limits: Limits) -> std::result::Result<Box<Query>, String> {
    let tokens = tokens(text, limits.len)?;
    let mut parser = Parser::new(&ClickHouseDialect {}).with_recursion_limit(limits.depth).with_tokens(tokens);
    let statements = parser.parse_statements().map_err(|e| parse_error(&e.to_string(), limits))?;
    match <[Statement; 1]>::try_from(statements) {
        Ok([Statement::Query(q)]) => Ok(q),
        Ok([other]) => Err(format!("expected a SELECT, found `{}`", shorten(&other.to_string()))),
        Err(many) => Err(format!("expected one SELECT, found {} statements", many.len())),
    }
}

/// The query's single SELECT, refusing every clause neither a projection nor a representative query has.
fn simple_select(q: &Query) -> std::result::Result<&Select, String> {
    if q.with.is_some() {
        return Err("WITH is not allowed".into());
    }
    if q.fetch.is_some() || !q.locks.is_empty() || q.for_clause.is_some() || !q.pipe_operators.is_empty() {
        return Err("FETCH, FOR and locking clauses are not allowed".into());
    }
    if q.settings.is_some() || q.format_clause.is_some() {
        return Err("SETTINGS and FORMAT are not allowed".into());
    }
    if q.order_by.as_ref().is_some_and(|o| o.interpolate.is_some() || matches!(o.kind, OrderByKind::All(_))) {
        return Err("ORDER BY ALL and INTERPOLATE are not allowed".into());
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Err("expected one plain SELECT (no UNION, EXCEPT, INTERSECT, VALUES or parentheses)".into());
    };
    if s.distinct.is_some() || s.top.is_some() || s.into.is_some() || s.select_modifiers.is_some() {
        return Err("DISTINCT, TOP, INTO and SELECT modifiers are not allowed".into());
    }
    if !s.optimizer_hints.is_empty() || s.exclude.is_some() || !s.lateral_views.is_empty() {
        return Err("hints, EXCLUDE and LATERAL VIEW are not allowed".into());
    }
    let extra = !s.connect_by.is_empty()
        || !s.cluster_by.is_empty()
        || !s.distribute_by.is_empty()
        || !s.sort_by.is_empty()
        || !s.named_window.is_empty()
        || s.qualify.is_some()
        || s.value_table_mode.is_some();
    if extra {
        return Err("WINDOW, QUALIFY, CLUSTER/DISTRIBUTE/SORT BY and CONNECT BY are not allowed".into());
    }
    Ok(s)
}

/// Checks the select list, GROUP BY, ORDER BY and (for queries) WHERE; returns the columns read.
fn parts(q: &Query, s: &Select, place: Place) -> std::result::Result<Refs, String> {
    let mut refs = Refs::default();
    let mut aliases = BTreeSet::new();
    for item in &s.projection {
        match item {
            SelectItem::UnnamedExpr(e) => expr::check(e, place, &mut refs)?,
            SelectItem::ExprWithAlias { expr: e, alias } => {
                expr::check(e, place, &mut refs)?;
                aliases.insert(alias.value.clone());
            }
            SelectItem::Wildcard(w) if w.opt_ilike.is_none() && w.opt_exclude.is_none() => {
                if w.opt_except.is_some() || w.opt_replace.is_some() || w.opt_rename.is_some() || w.opt_alias.is_some()
                {
                    return Err("`*` with EXCEPT, REPLACE or RENAME is not allowed".into());
                }
            }
            other => return Err(format!("`{}` is not allowed in the select list", shorten(&other.to_string()))),
        }
    }
    match &s.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => {
            exprs.iter().try_for_each(|e| expr::check(e, place, &mut refs))?
        }
        _ => return Err("GROUP BY ALL and GROUP BY modifiers (ROLLUP, CUBE, TOTALS) are not allowed".into()),
    }
    if let Some(w) = &s.selection {
        expr::check(w, place, &mut refs)?;
    }
    if let Some(h) = &s.having {
        expr::check(h, place, &mut refs)?;
    }
    if let Some(order) = &q.order_by
        && let OrderByKind::Expressions(list) = &order.kind
    {
        for o in list {
            if o.with_fill.is_some() {
                return Err("ORDER BY ... WITH FILL is not allowed".into());
            }
            expr::check(&o.expr, place, &mut refs)?;
        }
    }
    refs.columns.retain(|c| !aliases.contains(c));
    Ok(refs)
}

/// `FROM <table>` or `FROM <database>.<table>`, nothing else: no table function, join, sample or alias tricks.
fn own_table(s: &Select, database: &str, table: &str) -> std::result::Result<(), String> {
    let expected = || format!("expected `FROM {table}` (this table only)");
    let [from] = s.from.as_slice() else { return Err(expected()) };
    if !from.joins.is_empty() {
        return Err("JOIN is not allowed: a representative query reads this table only".into());
    }
    let TableFactor::Table { name, args, with_hints, version, partitions, json_path, sample, index_directives, .. } =
        &from.relation
    else {
        return Err(format!("{}: subqueries and table functions are not allowed", expected()));
    };
    if args.is_some() {
        return Err(format!("{}: table functions are not allowed", expected()));
    }
    if !with_hints.is_empty() || version.is_some() || !partitions.is_empty() || json_path.is_some() {
        return Err(format!("{}: hints, versions and partitions are not allowed", expected()));
    }
    if sample.is_some() || !index_directives.is_empty() {
        return Err(format!("{}: SAMPLE and index hints are not allowed", expected()));
    }
    let parts: Vec<&str> = name.0.iter().filter_map(|p| p.as_ident()).map(|i| i.value.as_str()).collect();
    let ok = parts.len() == name.0.len() && (parts.as_slice() == [table] || parts.as_slice() == [database, table]);
    if ok { Ok(()) } else { Err(format!("`{name}`: {}", expected())) }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
