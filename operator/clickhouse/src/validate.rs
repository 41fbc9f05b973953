//! Validation of the spec into [`Desired`] tables: the only values that are ever rendered into SQL.
//!
//! Expressions and projection queries go through a tokenizer that rejects what could end or escape the clause
//! they are placed in: `;`, comments, unbalanced brackets or quotes, `{}` parameters, `$` heredocs, top-level
//! commas (a second ALTER command) and top-level clause keywords. Index types and codecs come from allow-lists.

use crate::error::{Error, Result};
use perf_operator_api::clickhouse::{ClickHouseSpec, TableSpec};

/// A validated projection.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredProjection {
    pub name: String,
    /// The SELECT, trimmed.
    pub query: String,
    /// Normalised token stream of `query`, compared with the live definition.
    pub canonical: String,
}

/// A validated data-skipping index.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredIndex {
    pub name: String,
    pub expression: String,
    /// Type as rendered, e.g. `bloom_filter(0.01)`.
    pub index_type: String,
    pub granularity: u32,
    pub canonical: String,
}

/// A validated column codec.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredCodec {
    pub column: String,
    /// Codec chain as rendered inside `CODEC(...)`, names in the server's spelling, e.g. `DoubleDelta, ZSTD(1)`.
    pub codec: String,
    pub canonical: String,
}

/// A validated table.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DesiredTable {
    pub name: String,
    pub projections: Vec<DesiredProjection>,
    pub indexes: Vec<DesiredIndex>,
    pub codecs: Vec<DesiredCodec>,
}

/// Index types accepted (parameters are numbers only).
const INDEX_TYPES: [&str; 5] = ["minmax", "set", "bloom_filter", "ngrambf_v1", "tokenbf_v1"];
/// Codecs accepted, in the server's (case-sensitive) spelling; encryption codecs need server keys and are left out.
const CODECS: [&str; 10] = ["NONE", "LZ4", "LZ4HC", "ZSTD", "Delta", "DoubleDelta", "Gorilla", "FPC", "T64", "GCD"];
/// Words that start another clause or statement: not allowed outside brackets in an index expression.
const EXPRESSION_STOP_WORDS: [&str; 16] = [
    "TYPE",
    "GRANULARITY",
    "SETTINGS",
    "FORMAT",
    "SELECT",
    "FROM",
    "INTO",
    "ADD",
    "DROP",
    "MODIFY",
    "MATERIALIZE",
    "CLEAR",
    "DELETE",
    "UPDATE",
    "ALTER",
    "AFTER",
];
/// Words that would turn a projection's SELECT into something else.
const QUERY_STOP_WORDS: [&str; 8] = ["FROM", "INTO", "FORMAT", "SETTINGS", "UNION", "EXCEPT", "INTERSECT", "WITH"];
/// SQL keywords, compared case-insensitively when normalising.
const KEYWORDS: [&str; 27] = [
    "SELECT", "GROUP", "BY", "ORDER", "AND", "OR", "NOT", "AS", "IN", "IS", "NULL", "LIKE", "ILIKE", "BETWEEN", "CASE",
    "WHEN", "THEN", "ELSE", "END", "DISTINCT", "WHERE", "HAVING", "LIMIT", "INTERVAL", "DESC", "ASC", "WITH",
];

/// Validates the whole spec; the error names the first bad field.
pub fn desired(spec: &ClickHouseSpec) -> Result<Vec<DesiredTable>> {
    check_identifier("spec.clickhouse.database", &spec.database)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut tables = Vec::with_capacity(spec.tables.len());
    for (i, t) in spec.tables.iter().enumerate() {
        let field = format!("spec.clickhouse.tables[{i}]");
        if !seen.insert(t.name.as_str()) {
            return Err(Error::invalid(format!("{field}.name"), format!("table {:?} is listed twice", t.name)));
        }
        tables.push(desired_table(&field, t)?);
    }
    Ok(tables)
}

fn desired_table(field: &str, t: &TableSpec) -> Result<DesiredTable> {
    check_identifier(&format!("{field}.name"), &t.name)?;
    let mut names = std::collections::BTreeSet::new();
    let mut out = DesiredTable { name: t.name.clone(), ..Default::default() };
    for (j, p) in t.projections.iter().enumerate() {
        let f = format!("{field}.projections[{j}]");
        unique(&mut names, &f, &p.name)?;
        let canonical = projection_query(&format!("{f}.query"), &p.query)?;
        out.projections.push(DesiredProjection { name: p.name.clone(), query: p.query.trim().to_string(), canonical });
    }
    for (j, x) in t.indexes.iter().enumerate() {
        let f = format!("{field}.indexes[{j}]");
        unique(&mut names, &f, &x.name)?;
        let expression = expression(&format!("{f}.expression"), &x.expression)?;
        let index_type = index_type(&format!("{f}.type"), &x.index_type)?;
        if !(1..=1_000_000).contains(&x.granularity) {
            return Err(Error::invalid(format!("{f}.granularity"), "expected a number from 1 to 1000000"));
        }
        let canonical = index_definition(&expression, &index_type, x.granularity);
        let expression = x.expression.trim().to_string();
        out.indexes.push(DesiredIndex {
            name: x.name.clone(),
            expression,
            index_type,
            granularity: x.granularity,
            canonical,
        });
    }
    let mut columns = std::collections::BTreeSet::new();
    for (j, c) in t.codecs.iter().enumerate() {
        let f = format!("{field}.codecs[{j}]");
        check_identifier(&format!("{f}.column"), &c.column)?;
        if !columns.insert(c.column.as_str()) {
            return Err(Error::invalid(format!("{f}.column"), format!("column {:?} is listed twice", c.column)));
        }
        let codec = codec(&format!("{f}.codec"), &c.codec)?;
        out.codecs.push(DesiredCodec { column: c.column.clone(), canonical: codec.clone(), codec });
    }
    Ok(out)
}

fn unique<'a>(names: &mut std::collections::BTreeSet<&'a str>, field: &str, name: &'a str) -> Result<()> {
    check_identifier(&format!("{field}.name"), name)?;
    if !names.insert(name) {
        // Projections and indexes share one namespace on a table.
        return Err(Error::invalid(format!("{field}.name"), format!("{name:?} is used twice on this table")));
    }
    Ok(())
}

/// `^[A-Za-z_][A-Za-z0-9_]{0,127}$`, the CRD's identifier pattern.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_identifier(field: &str, s: &str) -> Result<()> {
    if is_identifier(s) {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("{s:?} is not an identifier (letters, digits, `_`; at most 128)")))
    }
}

/// The normalised form of an index, as compared with the live one.
pub fn index_definition(canonical_expression: &str, index_type: &str, granularity: u32) -> String {
    format!("{canonical_expression} TYPE {index_type} GRANULARITY {granularity}")
}

/// A lexical token.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Token {
    Word(String),
    /// Backtick- or double-quoted identifier, without quotes.
    Quoted(String),
    /// String literal with its quotes.
    Str(String),
    Number(String),
    Punct(String),
    Open(char),
    Close(char),
}

/// Splits `text` into tokens; rejects anything that could end or escape the surrounding statement.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut out, mut stack) = (0, Vec::new(), Vec::new());
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            ';' => return Err("`;` is not allowed: one expression, one statement".into()),
            '#' => return Err("comments are not allowed".into()),
            '-' if next == Some('-') => return Err("comments are not allowed".into()),
            '/' if next == Some('*') => return Err("comments are not allowed".into()),
            '{' | '}' => return Err("`{` and `}` (query parameters) are not allowed".into()),
            '$' => return Err("`$` (heredoc strings) is not allowed".into()),
            '\'' | '`' | '"' => {
                let (lit, end) = quoted(&chars, i)?;
                out.push(match c {
                    '\'' => Token::Str(format!("'{lit}'")),
                    _ => Token::Quoted(lit),
                });
                i = end;
            }
            '(' | '[' => {
                stack.push(c);
                out.push(Token::Open(c));
                i += 1;
            }
            ')' | ']' => {
                let open = if c == ')' { '(' } else { '[' };
                if stack.pop() != Some(open) {
                    return Err(format!("unbalanced `{c}` at character {}", i + 1));
                }
                out.push(Token::Close(c));
                i += 1;
            }
            c if c.is_ascii_digit() => {
                i = take(&chars, i, &mut out, |c| c.is_ascii_alphanumeric() || c == '.' || c == '_', Token::Number)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                i = take(&chars, i, &mut out, |c| c.is_ascii_alphanumeric() || c == '_', Token::Word)
            }
            c if "+-*/%=<>!|:?.,".contains(c) => {
                let two: String = [c, next.unwrap_or(' ')].iter().collect();
                let op = if ["<=", ">=", "!=", "<>", "==", "||", "->", "::"].contains(&two.as_str()) {
                    two
                } else {
                    c.to_string()
                };
                i += op.len();
                out.push(Token::Punct(op));
            }
            other => return Err(format!("unexpected character {other:?} at character {}", i + 1)),
        }
    }
    match stack.last() {
        Some(open) => Err(format!("unbalanced `{open}`: not closed")),
        None if out.is_empty() => Err("must not be empty".into()),
        None => Ok(out),
    }
}

fn take(
    chars: &[char],
    start: usize,
    out: &mut Vec<Token>,
    ok: impl Fn(char) -> bool,
    make: fn(String) -> Token,
) -> usize {
    let mut end = start + 1;
    while end < chars.len() && ok(chars[end]) {
        end += 1;
    }
    out.push(make(chars[start..end].iter().collect()));
    end
}

/// A quoted literal starting at `start`; returns its raw content and the index after the closing quote.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let q = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == q && chars.get(i + 1) == Some(&q) => i += 2,
            c if c == q => return Ok((chars[start + 1..i].iter().collect(), i + 1)),
            c if c.is_control() && c != '\t' => return Err("control characters are not allowed in quotes".into()),
            _ => i += 1,
        }
    }
    Err(format!("unterminated {q}...{q} starting at character {}", start + 1))
}

/// Tokens outside any bracket.
fn top_level(tokens: &[Token]) -> impl Iterator<Item = &Token> {
    let mut depth = 0usize;
    tokens.iter().filter(move |t| {
        match t {
            Token::Open(_) => depth += 1,
            Token::Close(_) => depth = depth.saturating_sub(1),
            _ => return depth == 0,
        }
        false
    })
}

fn word_in(t: &Token, words: &[&str]) -> Option<String> {
    match t {
        Token::Word(w) if words.iter().any(|k| k.eq_ignore_ascii_case(w)) => Some(w.clone()),
        _ => None,
    }
}

/// An index expression; returns its normalised form.
pub fn expression(field: &str, text: &str) -> Result<String> {
    let tokens = tokenize(text).map_err(|m| Error::invalid(field, m))?;
    for t in top_level(&tokens) {
        if t == &Token::Punct(",".into()) {
            return Err(Error::invalid(field, "a top-level `,` is not allowed: wrap a tuple in parentheses"));
        }
        if let Some(w) = word_in(t, &EXPRESSION_STOP_WORDS) {
            return Err(Error::invalid(field, format!("`{w}` is not allowed in an expression outside parentheses")));
        }
    }
    Ok(normalise(&tokens))
}

/// A projection's query: one SELECT without FROM/FORMAT/SETTINGS; returns its normalised form.
pub fn projection_query(field: &str, text: &str) -> Result<String> {
    let tokens = tokenize(text).map_err(|m| Error::invalid(field, m))?;
    if word_in(&tokens[0], &["SELECT"]).is_none() {
        return Err(Error::invalid(field, "expected a single SELECT, e.g. `SELECT model, avg(score) GROUP BY model`"));
    }
    if let Some(w) = top_level(&tokens).find_map(|t| word_in(t, &QUERY_STOP_WORDS)) {
        return Err(Error::invalid(field, format!("`{w}` is not allowed in a projection query")));
    }
    Ok(normalise(&tokens))
}

/// `name` or `name(numbers)`.
fn call(text: &str) -> Option<(&str, Option<Vec<&str>>)> {
    let text = text.trim();
    let Some(open) = text.find('(') else { return Some((text, None)) };
    let args = text[open + 1..].strip_suffix(')')?;
    let args: Vec<&str> = if args.trim().is_empty() { Vec::new() } else { args.split(',').map(str::trim).collect() };
    let numeric = |a: &&str| !a.is_empty() && a.parse::<f64>().is_ok_and(f64::is_finite);
    args.iter().all(numeric).then_some((text[..open].trim(), Some(args)))
}

/// An index type from the allow-list with numeric parameters; returns it as rendered.
pub fn index_type(field: &str, text: &str) -> Result<String> {
    let expected = format!("one of {} with numeric parameters, e.g. bloom_filter(0.01)", INDEX_TYPES.join(", "));
    match call(text) {
        Some((name, args)) if INDEX_TYPES.contains(&name) => Ok(render_call(name, args.as_deref())),
        _ => Err(Error::invalid(field, format!("{text:?} is not an index type: expected {expected}"))),
    }
}

/// A codec chain from the allow-list; returns it as rendered inside `CODEC(...)`.
pub fn codec(field: &str, text: &str) -> Result<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        // A comma ends a codec unless it is inside its parentheses.
        let end = match (rest.find(','), rest.find('(')) {
            (Some(c), Some(p)) if p < c => rest[p..].find(')').map_or(rest.len(), |e| p + e + 1),
            (Some(c), _) => c,
            (None, _) => rest.len(),
        };
        let item = rest[..end].trim();
        let known = call(item).and_then(|(name, args)| {
            let name = CODECS.iter().find(|k| k.eq_ignore_ascii_case(name))?;
            let integers = args.as_ref().is_none_or(|a| a.iter().all(|x| x.parse::<i64>().is_ok()));
            integers.then(|| render_call(name, args.as_deref()))
        });
        match known {
            Some(rendered) => parts.push(rendered),
            None => {
                let list = CODECS.join(", ");
                return Err(Error::invalid(field, format!("{item:?} is not a codec: expected {list}, e.g. ZSTD(3)")));
            }
        }
        rest = rest[end..].trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    }
    if parts.is_empty() {
        return Err(Error::invalid(field, "expected a codec chain, e.g. `DoubleDelta, ZSTD(1)`"));
    }
    Ok(parts.join(", "))
}

fn render_call(name: &str, args: Option<&[&str]>) -> String {
    match args {
        Some(a) => format!("{name}({})", a.join(", ")),
        None => name.to_string(),
    }
}

/// Normalised token stream: keywords upper-case, function names lower-case (the server rewrites `AVG` to `avg`),
/// plain quoted identifiers unquoted, one space between tokens.
pub(crate) fn normalise(tokens: &[Token]) -> String {
    let mut out = Vec::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        let s = match t {
            Token::Word(w) if matches!(tokens.get(i + 1), Some(Token::Open('('))) => w.to_ascii_lowercase(),
            Token::Word(w) if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w)) => w.to_ascii_uppercase(),
            Token::Quoted(q) if is_identifier(q) => q.clone(),
            Token::Quoted(q) => format!("`{q}`"),
            Token::Word(s) | Token::Str(s) | Token::Number(s) | Token::Punct(s) => s.clone(),
            Token::Open(c) | Token::Close(c) => c.to_string(),
        };
        out.push(s);
    }
    out.join(" ")
}

/// Normalised form of a definition the server returned; falls back to the trimmed text.
pub(crate) fn normalise_live(text: &str) -> String {
    tokenize(text).map(|t| normalise(&t)).unwrap_or_else(|_| text.trim().to_string())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
