//! Rendering of actions into statements. Only validated values ([`crate::validate`]) and identifiers matching the
//! identifier pattern reach this module; identifiers are quoted with backticks.

use crate::diff::Action;
use crate::validate::is_identifier;

/// `name` quoted as an identifier. Callers pass names that passed [`is_identifier`], so no escaping is needed.
pub fn quote(name: &str) -> String {
    debug_assert!(is_identifier(name), "unvalidated identifier {name:?}");
    format!("`{name}`")
}

/// The statement for one action on `database.table`.
pub fn render(database: &str, table: &str, action: &Action) -> String {
    let alter = format!("ALTER TABLE {}.{}", quote(database), quote(table));
    match action {
        Action::KillMutation { mutation_id, .. } => format!(
            "KILL MUTATION WHERE database = '{database}' AND table = '{table}' AND mutation_id = '{mutation_id}' SYNC"
        ),
        Action::DropProjection { name } => format!("{alter} DROP PROJECTION IF EXISTS {}", quote(name)),
        Action::DropIndex { name } => format!("{alter} DROP INDEX IF EXISTS {}", quote(name)),
        Action::AddProjection(p) => format!("{alter} ADD PROJECTION {} ({})", quote(&p.name), p.query),
        Action::AddIndex(x) => format!(
            "{alter} ADD INDEX {} {} TYPE {} GRANULARITY {}",
            quote(&x.name),
            x.expression,
            x.index_type,
            x.granularity
        ),
        Action::ModifyCodec(c) => format!("{alter} MODIFY COLUMN {} CODEC({})", quote(&c.column), c.codec),
        Action::MaterializeProjection { name } => format!("{alter} MATERIALIZE PROJECTION {}", quote(name)),
        Action::MaterializeIndex { name } => format!("{alter} MATERIALIZE INDEX {}", quote(name)),
    }
}

/// Mutation ids come from the server (`mutation_12.txt`, `0000000003` on replicated tables); checked anyway
/// because they are put inside quotes.
pub fn is_mutation_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}
