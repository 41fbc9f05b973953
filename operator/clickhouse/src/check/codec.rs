//! Column codecs: the allow-list, the rules ClickHouse applies to a chain (with `allow_suspicious_codecs` at its
//! default, off), the rules of each codec against the column's type, and the canonical form with the server's
//! default parameters made explicit (`ZSTD` is stored as `ZSTD(1)`, `Delta` on UInt64 as `Delta(8)`).

/// Codecs accepted, in the server's (case-sensitive) spelling; encryption codecs need server keys and are left out.
const CODECS: [&str; 10] = ["NONE", "LZ4", "LZ4HC", "ZSTD", "Delta", "DoubleDelta", "Gorilla", "FPC", "T64", "GCD"];
/// General-purpose compression: at most one per chain, and last.
const GENERAL: [&str; 3] = ["LZ4", "LZ4HC", "ZSTD"];
/// Codecs that compress on their own; a chain without one "does not compress anything".
const COMPRESSING: [&str; 7] = ["LZ4", "LZ4HC", "ZSTD", "DoubleDelta", "Gorilla", "FPC", "T64"];

/// One codec of a chain, e.g. `ZSTD(3)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    pub name: &'static str,
    pub args: Vec<i64>,
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.args.is_empty() {
            return f.write_str(self.name);
        }
        let args: Vec<String> = self.args.iter().map(i64::to_string).collect();
        write!(f, "{}({})", self.name, args.join(", "))
    }
}

/// Parses `A, B(1, 2)`: names from the allow-list (any case), integer parameters.
pub fn parse(text: &str) -> Result<Vec<Codec>, String> {
    let mut out = Vec::new();
    for item in split(text) {
        let (name, args) = match item.split_once('(') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix(')').ok_or_else(|| format!("{item:?}: unbalanced parentheses"))?;
                let args: Result<Vec<i64>, _> =
                    inner.split(',').filter(|a| !a.trim().is_empty()).map(|a| a.trim().parse::<i64>()).collect();
                (name.trim(), args.map_err(|_| format!("{item:?}: parameters must be integers"))?)
            }
            None => (item, Vec::new()),
        };
        let Some(known) = CODECS.iter().find(|k| k.eq_ignore_ascii_case(name)) else {
            return Err(format!("{item:?} is not a codec: expected {}, e.g. ZSTD(3)", CODECS.join(", ")));
        };
        out.push(Codec { name: known, args });
    }
    if out.is_empty() {
        return Err("expected a codec chain, e.g. `DoubleDelta, ZSTD(1)`".into());
    }
    Ok(out)
}

/// Splits a chain at the commas between codecs.
fn split(chain: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in chain.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(chain[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(chain[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// The rules for a chain whatever the column: what the server calls suspicious or meaningless.
pub fn chain_rules(chain: &[Codec]) -> Result<(), String> {
    let rendered = render(chain);
    if chain.len() > 1 && chain.iter().any(|c| c.name == "NONE") {
        return Err(format!("`{rendered}`: NONE cannot be combined with other codecs"));
    }
    if chain.iter().filter(|c| GENERAL.contains(&c.name)).count() > 1 {
        return Err(format!("`{rendered}`: at most one of LZ4, LZ4HC, ZSTD per chain"));
    }
    if let Some(pos) = chain.iter().position(|c| GENERAL.contains(&c.name))
        && pos + 1 < chain.len()
    {
        return Err(format!(
            "`{rendered}`: {} must come last (nothing is applied after a general compression)",
            chain[pos]
        ));
    }
    if chain.iter().all(|c| c.name != "NONE" && !COMPRESSING.contains(&c.name)) {
        return Err(format!(
            "`{rendered}` does not compress anything: add a general codec, e.g. `{rendered}, ZSTD(1)`"
        ));
    }
    chain.iter().try_for_each(parameters)?;
    // The server calls a floating-point codec after a delta transformation meaningless.
    if let Some(delta) = chain.iter().position(|c| matches!(c.name, "Delta" | "DoubleDelta"))
        && let Some(float) = chain[delta..].iter().find(|c| matches!(c.name, "Gorilla" | "FPC"))
    {
        return Err(format!(
            "`{rendered}`: {} after {} is meaningless (a float codec on deltas)",
            float.name, chain[delta]
        ));
    }
    Ok(())
}

/// Lowest and highest ZSTD level (zstd's own range; the server takes more and clamps).
const ZSTD_LEVELS: std::ops::RangeInclusive<i64> = -131_072..=22;

/// Each codec's parameters as the server takes them, within our bounds: no ZSTD window log (up to 2 GiB of
/// memory per stream), LZ4HC levels the server does not clamp.
fn parameters(c: &Codec) -> Result<(), String> {
    let bad = |rule: &str| Err(format!("`{c}`: {rule}"));
    let width = |w: &i64| matches!(w, 1 | 2 | 4 | 8);
    match (c.name, c.args.as_slice()) {
        ("NONE" | "LZ4" | "T64" | "GCD", []) => Ok(()),
        ("NONE" | "LZ4" | "T64" | "GCD", _) => bad("takes no parameters"),
        ("ZSTD", []) => Ok(()),
        ("ZSTD", [level]) if ZSTD_LEVELS.contains(level) => Ok(()),
        ("ZSTD", [_]) => bad("the level is from -131072 to 22"),
        ("ZSTD", _) => bad("takes one parameter, the level (no window log)"),
        ("LZ4HC", []) => Ok(()),
        ("LZ4HC", [level]) if (0..=12).contains(level) => Ok(()),
        ("LZ4HC", _) => bad("takes one parameter, the level from 0 to 12"),
        ("Delta" | "DoubleDelta" | "Gorilla", []) => Ok(()),
        ("Delta" | "DoubleDelta" | "Gorilla", [w]) if width(w) => Ok(()),
        ("Delta" | "DoubleDelta" | "Gorilla", _) => bad("takes one parameter, the width 1, 2, 4 or 8"),
        ("FPC", []) => Ok(()),
        ("FPC", [level]) if (1..=28).contains(level) => Ok(()),
        ("FPC", [level, size]) if (1..=28).contains(level) && matches!(size, 4 | 8) => Ok(()),
        ("FPC", _) => bad("takes a level from 1 to 28 and a float size of 4 or 8"),
        _ => bad("unknown codec"),
    }
}

/// What the server knows of a column's type for codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kind {
    /// Byte width of a fixed-size value; `None` for String and other variable-size types.
    width: Option<u32>,
    float: bool,
    /// Int*, UInt*, Decimal*, Date*, DateTime* (GCD's list).
    integral: bool,
    /// Numeric in the server's sense (DoubleDelta, T64): integral, floats, Bool and Enum.
    numeric: bool,
}

/// The value type under Nullable, LowCardinality and Array.
fn inner(data_type: &str) -> &str {
    unwrap_type(data_type, &["Nullable(", "LowCardinality(", "Array("])
}

/// `data_type` without any of `wrappers`, in whatever order they nest (`LowCardinality(Nullable(String))`).
pub fn unwrap_type<'a>(data_type: &'a str, wrappers: &[&str]) -> &'a str {
    let mut t = data_type.trim();
    while let Some(rest) = wrappers.iter().find_map(|w| t.strip_prefix(w).and_then(|r| r.strip_suffix(')'))) {
        t = rest.trim();
    }
    t
}

fn kind(data_type: &str) -> Kind {
    let t = inner(data_type);
    let base = t.split('(').next().unwrap_or(t);
    let int = |w| Kind { width: Some(w), float: false, integral: true, numeric: true };
    match base {
        "UInt8" | "Int8" => int(1),
        "UInt16" | "Int16" | "Date" => int(2),
        "UInt32" | "Int32" | "Date32" | "DateTime" | "Decimal32" => int(4),
        "UInt64" | "Int64" | "DateTime64" | "Decimal64" => int(8),
        "UInt128" | "Int128" | "Decimal128" => int(16),
        "UInt256" | "Int256" | "Decimal256" => int(32),
        "Decimal" => int(decimal_width(t)),
        "Float32" => Kind { width: Some(4), float: true, integral: false, numeric: true },
        "Float64" => Kind { width: Some(8), float: true, integral: false, numeric: true },
        // Bool takes GCD (it is a UInt8 underneath); enums do not.
        "Bool" => Kind { width: Some(1), float: false, integral: true, numeric: true },
        "Enum8" => Kind { width: Some(1), float: false, integral: false, numeric: true },
        "Enum16" => Kind { width: Some(2), float: false, integral: false, numeric: true },
        _ => Kind { width: None, float: false, integral: false, numeric: false },
    }
}

/// Decimal(P, S) is stored in 4, 8, 16 or 32 bytes by precision.
fn decimal_width(t: &str) -> u32 {
    let p: u32 =
        t.trim_start_matches("Decimal(").split([',', ')']).next().and_then(|p| p.trim().parse().ok()).unwrap_or(38);
    match p {
        0..=9 => 4,
        10..=18 => 8,
        19..=38 => 16,
        _ => 32,
    }
}

/// Whether each codec of `chain` can be applied to a column of `data_type`; the message says which does not.
pub fn fits(chain: &[Codec], data_type: &str) -> Result<(), String> {
    let k = kind(data_type);
    for c in chain {
        let fixed = matches!(k.width, Some(1 | 2 | 4 | 8));
        let problem = match c.name {
            "Delta" if !fixed => Some("needs a fixed-size value of 1, 2, 4 or 8 bytes"),
            "Gorilla" if !(fixed && k.float) => Some("is for Float32 and Float64 columns"),
            "FPC" if !k.float => Some("is for Float32 and Float64 columns"),
            "DoubleDelta" if !k.numeric => Some("needs a numeric column"),
            "T64" if !(k.numeric && !k.float && k.width.is_some_and(|w| w <= 8)) => {
                Some("needs an integer, date, decimal or enum column of at most 8 bytes")
            }
            "GCD" if !k.integral => Some("needs an Int, UInt, Decimal, Date or DateTime column"),
            _ => None,
        };
        if let Some(p) = problem {
            return Err(format!("codec {} {p}; the column is {}", c.name, data_type.trim()));
        }
    }
    Ok(())
}

/// The chain as the server stores it: default parameters explicit where the server spells them out, dropped
/// where it drops them. Without a type, type-dependent widths stay as declared.
pub fn canonical(chain: &[Codec], data_type: Option<&str>) -> String {
    let width = data_type.and_then(|t| kind(t).width).map(i64::from);
    let out: Vec<Codec> = chain
        .iter()
        .map(|c| {
            let args = match (c.name, c.args.as_slice()) {
                ("ZSTD", []) => vec![1],
                ("LZ4HC", []) => vec![0],
                ("Delta" | "Gorilla", []) => width.into_iter().collect(),
                ("FPC", []) => vec![12],
                ("FPC", [level, ..]) => vec![*level],
                ("DoubleDelta" | "T64" | "GCD", _) => Vec::new(),
                (_, args) => args.to_vec(),
            };
            Codec { name: c.name, args }
        })
        .collect();
    render(&out)
}

/// `A, B(1)`.
pub fn render(chain: &[Codec]) -> String {
    chain.iter().map(Codec::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
