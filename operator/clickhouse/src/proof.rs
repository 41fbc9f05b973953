//! The proof that the server reads what would be sent as the checker did ([`check::reread`]).
//!
//! For every declared projection, index and representative query, the server's formatter (its parser; nothing
//! is run) is asked for its reading of the piece alone, of the statement built from it (ADD PROJECTION, ADD
//! INDEX, EXPLAIN), and of the same statement with a placeholder where the piece goes. The placeholder's
//! statement says where the piece is in the formatted statement; what stands there is read back by the checker
//! too, so the piece is proven both alone and in place. All texts go in the one formatter query of the round
//! ([`crate::explain::format_definitions`]). A piece the server does not read back is refused, never sent.

use crate::canon::{self, Formatted};
use crate::check::reread::{self, Piece};
use crate::diff::Action;
use crate::validate::{DesiredIndex, DesiredProjection, DesiredTable};
use std::collections::BTreeMap;

/// Stands where the piece goes in a statement's template: a name no tenant text is rendered next to.
const PLACEHOLDER: &str = "perf_operator_reread_placeholder";

/// Per declared piece (by what is sent): `Ok` when the server reads it, alone and in its statement, as the
/// checker does; else why not.
pub type Readings = BTreeMap<(Piece, String), Result<(), String>>;

/// One piece and the texts the formatter is given for it.
struct Proof {
    piece: Piece,
    /// The piece as sent (an index expression without `SELECT`).
    sent: String,
    /// The piece on its own, as the formatter takes it.
    alone: String,
    /// The statement that carries it.
    statement: String,
    /// The statement with [`PLACEHOLDER`] for the piece, and the placeholder's text in it.
    template: String,
    marker: String,
}

fn proofs(database: &str, d: &DesiredTable) -> Vec<Proof> {
    let select_marker = format!("SELECT {PLACEHOLDER}");
    let render = |action: &Action| crate::sql::render(database, &d.name, action);
    let mut out = Vec::new();
    for p in &d.projections {
        let template = DesiredProjection { query: select_marker.clone(), ..p.clone() };
        out.push(Proof {
            piece: Piece::Projection,
            sent: p.query.clone(),
            alone: p.query.clone(),
            statement: render(&Action::AddProjection(p.clone())),
            template: render(&Action::AddProjection(template)),
            marker: select_marker.clone(),
        });
    }
    for x in &d.indexes {
        let template = DesiredIndex { expression: PLACEHOLDER.into(), ..x.clone() };
        out.push(Proof {
            piece: Piece::Expression,
            sent: x.expression.clone(),
            alone: canon::expression_query(&x.expression),
            statement: render(&Action::AddIndex(x.clone())),
            template: render(&Action::AddIndex(template)),
            marker: PLACEHOLDER.into(),
        });
    }
    for q in &d.queries {
        out.push(Proof {
            piece: Piece::Query { database: database.into(), table: d.name.clone() },
            sent: q.sql.clone(),
            alone: q.sql.clone(),
            statement: crate::explain::statement(&q.sql),
            template: crate::explain::statement(&select_marker),
            marker: select_marker.clone(),
        });
    }
    out
}

/// Every text the formatter is asked to read for the declared pieces of `d`.
pub fn texts(database: &str, d: &DesiredTable) -> Vec<String> {
    proofs(database, d).into_iter().flat_map(|p| [p.alone, p.statement, p.template]).collect()
}

/// The verdict on each declared piece of `d`, from the formatter's answers (`formatted`; a text missing there is
/// one the server could not parse, or a formatter that did not answer).
pub fn readings(database: &str, d: &DesiredTable, formatted: &Formatted) -> Readings {
    let mut out = Readings::new();
    for p in proofs(database, d) {
        let verdict = reading(&p, formatted);
        let entry = out.entry((p.piece, p.sent)).or_insert(Ok(()));
        // The same piece in two objects (one expression, two indexes): the first refusal stands.
        if entry.is_ok() {
            *entry = verdict;
        }
    }
    out
}

fn reading(p: &Proof, formatted: &Formatted) -> Result<(), String> {
    let alone = formatted.get(&p.alone).map(|f| match p.piece {
        // The formatter was given `SELECT <expression>`.
        Piece::Expression => f.strip_prefix("SELECT ").unwrap_or(""),
        _ => f.as_str(),
    });
    reread::same(&p.piece, &p.sent, alone)?;
    let in_place = in_statement(p, formatted).ok_or_else(|| {
        let statement = formatted.get(&p.statement).map_or("nothing (its parser refuses it)", String::as_str);
        format!(
            "the server reads this differently: it reads the statement as `{}`; nothing is sent for it",
            crate::check::expr::shorten(statement)
        )
    })?;
    reread::same(&p.piece, &p.sent, Some(in_place))
}

/// What stands where the piece goes in the server's reading of the statement.
fn in_statement<'a>(p: &Proof, formatted: &'a Formatted) -> Option<&'a str> {
    let statement = formatted.get(&p.statement)?;
    let template = formatted.get(&p.template)?;
    if template.matches(&p.marker).count() != 1 {
        return None;
    }
    let (before, after) = template.split_once(&p.marker)?;
    statement.strip_prefix(before)?.strip_suffix(after)
}

#[cfg(test)]
#[path = "proof_tests.rs"]
mod tests;
