//! The allow-list for one expression node. Every node of a tenant's expression is visited (sqlparser's visitor
//! reaches nested ones, inside function arguments and CASE branches too), so a construct is either listed here
//! or refused, whatever it is nested in.

use super::bounds;
use super::functions::{is_aggregate, is_scalar};
use sqlparser::ast::{
    AccessExpr, BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, InTarget, Subscript,
    UnaryOperator, Value, visit_expressions,
};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// Where an expression stands: what it may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A data-skipping index: a function of one row, computed on every insert.
    Index,
    /// A projection's SELECT: aggregates allowed, computed on every insert.
    Projection,
    /// A representative query, only ever EXPLAINed: aggregates allowed.
    Query,
}

/// What an expression refers to: the columns it reads.
#[derive(Debug, Default)]
pub struct Refs {
    pub columns: BTreeSet<String>,
}

/// Checks every node of `expr`; returns the first refusal, naming the construct.
pub fn check(expr: &Expr, place: Place, refs: &mut Refs) -> Result<(), String> {
    let flow = visit_expressions(expr, |e| match node(e, place, refs) {
        Ok(()) => ControlFlow::Continue(()),
        Err(message) => ControlFlow::Break(message),
    });
    match flow {
        ControlFlow::Break(message) => Err(message),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn node(e: &Expr, place: Place, refs: &mut Refs) -> Result<(), String> {
    match e {
        Expr::Identifier(ident) => {
            column_name(&ident.value)?;
            refs.columns.insert(ident.value.clone());
            Ok(())
        }
        Expr::CompoundIdentifier(parts) => {
            let name = parts.iter().map(|p| p.value.as_str()).collect::<Vec<_>>().join(".");
            Err(format!("`{name}`: qualified names are not allowed; name a column of this table"))
        }
        Expr::Value(v) => value(&v.value),
        Expr::Function(f) => function(f, place),
        Expr::BinaryOp { op, right, .. } => binary(op).and_then(|()| bounds::operator(op, right, place)),
        Expr::UnaryOp { op, .. } => match op {
            UnaryOperator::Plus | UnaryOperator::Minus | UnaryOperator::Not => Ok(()),
            other => Err(format!("operator `{other}` is not allowed")),
        },
        Expr::In { target, global, .. } => match target {
            _ if *global => Err("GLOBAL IN is not allowed".into()),
            InTarget::List(_) => Ok(()),
            _ => Err("IN is allowed with a list of values only, not a subquery or a table".into()),
        },
        Expr::Like { any, escape_char, .. } | Expr::ILike { any, escape_char, .. } => {
            if *any || escape_char.is_some() {
                Err("LIKE ANY and LIKE ... ESCAPE are not allowed".into())
            } else {
                Ok(())
            }
        }
        // The parser rewrites type names (`String` -> `STRING`), and ClickHouse's types are case-sensitive.
        Expr::Cast { .. } => Err("CAST and `::` are not allowed: use the conversion functions (toString, toUInt64, \
                                  toDateTime, ...)"
            .into()),
        Expr::CompoundFieldAccess { access_chain, .. } => {
            let index_only = access_chain.iter().all(|a| matches!(a, AccessExpr::Subscript(Subscript::Index { .. })));
            if index_only { Ok(()) } else { Err("only `x[i]` element access is allowed".into()) }
        }
        // The server reads `x IS TRUE` as `x <=> true` and `CASE x WHEN` as caseWithExpression: refused here
        // rather than read one way here and another there.
        Expr::IsTrue(_) | Expr::IsFalse(_) | Expr::IsNotTrue(_) | Expr::IsNotFalse(_) => {
            Err("IS TRUE / IS FALSE are not allowed: compare with `= true`".into())
        }
        Expr::Case { operand: Some(_), .. } => {
            Err("`CASE x WHEN ...` is not allowed: write `CASE WHEN x = ... THEN ...` or multiIf".into())
        }
        Expr::Nested(_)
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::Between { .. }
        | Expr::Case { .. }
        | Expr::Tuple(_)
        | Expr::Array(_) => Ok(()),
        Expr::Interval(i) if super::reread::interval_function(i).is_some() => Ok(()),
        Expr::Interval(_) => Err("INTERVAL is allowed as `INTERVAL <n> <unit>` with one unit (SECOND to YEAR)".into()),
        Expr::Subquery(_) | Expr::Exists { .. } => Err("subqueries are not allowed".into()),
        Expr::Lambda(_) => Err("lambda functions are not allowed".into()),
        other => Err(format!("`{}` is not allowed here", shorten(&other.to_string()))),
    }
}

/// A column name the operator can put in a statement as it is.
fn column_name(name: &str) -> Result<(), String> {
    if crate::validate::is_identifier(name) {
        Ok(())
    } else {
        Err(format!("{:?} is not a column name the operator accepts (letters, digits, `_`)", shorten(name)))
    }
}

fn value(v: &Value) -> Result<(), String> {
    match v {
        // A whole number past UInt64 is a Float64 on the server: refused rather than read as another number.
        Value::Number(n, _) if !n.contains(['.', 'e', 'E']) && n.parse::<u64>().is_err() => {
            Err(format!("the number {} is larger than a UInt64: write it as a float", shorten(n)))
        }
        Value::Number(..) | Value::Boolean(_) | Value::Null => Ok(()),
        // Rendered back as '...' with quotes doubled; a backslash or a control character would read differently
        // on the server than here, so they are refused rather than re-escaped.
        Value::SingleQuotedString(s) if s.chars().any(|c| c == '\\' || c.is_control()) => {
            Err("string literals with `\\` or control characters are not allowed".into())
        }
        Value::SingleQuotedString(_) => Ok(()),
        Value::Placeholder(p) => Err(format!("query parameters ({p}) are not allowed")),
        other => Err(format!(
            "literal `{}` is not allowed: use '...' strings and plain numbers",
            shorten(&other.to_string())
        )),
    }
}

fn binary(op: &BinaryOperator) -> Result<(), String> {
    use BinaryOperator as B;
    match op {
        B::Plus
        | B::Minus
        | B::Multiply
        | B::Divide
        | B::Modulo
        | B::StringConcat
        | B::Gt
        | B::Lt
        | B::GtEq
        | B::LtEq
        | B::Eq
        | B::NotEq
        | B::And
        | B::Or
        | B::Xor => Ok(()),
        other => Err(format!("operator `{other}` is not allowed")),
    }
}

fn function(f: &Function, place: Place) -> Result<(), String> {
    let name = match f.name.0.as_slice() {
        [part] => part.as_ident().map(|i| i.value.clone()).unwrap_or_default(),
        _ => return Err(format!("`{}`: qualified function names are not allowed", f.name)),
    };
    let aggregate = is_aggregate(&name);
    if !aggregate && !is_scalar(&name) {
        return Err(format!(
            "function `{}` is not on the allow-list of pure functions (see the ClickHouse section of the docs)",
            shorten(&name)
        ));
    }
    if aggregate && place == Place::Index {
        return Err(format!("aggregate function `{name}` is not allowed in an index expression"));
    }
    if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
        return Err(format!("`{name}`: OVER, FILTER, WITHIN GROUP and NULLS clauses are not allowed"));
    }
    if f.uses_odbc_syntax {
        return Err(format!("`{name}`: ODBC escapes are not allowed"));
    }
    arguments(&name, &f.parameters)?;
    arguments(&name, &f.args)?;
    bounds::call(&name, f, place)
}

fn arguments(name: &str, args: &FunctionArguments) -> Result<(), String> {
    match args {
        FunctionArguments::None => Ok(()),
        FunctionArguments::Subquery(_) => Err(format!("`{name}`: subqueries are not allowed")),
        FunctionArguments::List(list) => {
            if !list.clauses.is_empty() {
                return Err(format!("`{name}`: clauses inside the argument list are not allowed"));
            }
            list.args.iter().try_for_each(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(_)) => Ok(()),
                // count(*) only: a wildcard elsewhere would expand to columns unchecked.
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if name.eq_ignore_ascii_case("count") => Ok(()),
                _ => Err(format!("`{name}`: only plain arguments are allowed")),
            })
        }
    }
}

/// At most 80 characters of `text` for a message.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}
