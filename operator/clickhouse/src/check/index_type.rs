//! Skipping-index types and GRANULARITY: the server's rules for each type's parameters, and bounds of our own so
//! that no index takes gigabytes (an index granule is GRANULARITY * index_granularity rows, 8192 by default).

/// Index types accepted.
pub const TYPES: [&str; 5] = ["minmax", "set", "bloom_filter", "ngrambf_v1", "tokenbf_v1"];
/// Most rows `set(max_rows)` keeps per index granule; `set(0)` (no limit) is refused.
pub const MAX_SET_ROWS: u64 = 100_000;
/// Lowest false-positive rate of `bloom_filter(p)`: about 19 bits and 13 hashes per distinct value.
pub const MIN_BLOOM_P: f64 = 0.0001;
/// Largest filter of ngrambf_v1/tokenbf_v1 per index granule (the server allows 1 GiB).
pub const MAX_FILTER_BYTES: u64 = 1 << 20;
/// Most hash functions of ngrambf_v1/tokenbf_v1 (each costs a hash per token of every row).
pub const MAX_HASHES: u64 = 16;
/// Longest n-gram of ngrambf_v1.
pub const MAX_NGRAM: u64 = 8;
/// Largest GRANULARITY: bloom_filter sizes its filter by the rows of an index granule.
pub const MAX_GRANULARITY: u32 = 1000;

/// Checks `text` and returns it as rendered, e.g. `ngrambf_v1(3, 256, 2, 0)`.
pub fn check(text: &str) -> Result<String, String> {
    let (name, args) = call(text).ok_or_else(|| not_a_type(text))?;
    let Some(name) = TYPES.iter().find(|t| **t == name) else { return Err(not_a_type(text)) };
    let rendered = match &args {
        Some(a) => format!("{name}({})", a.join(", ")),
        None => name.to_string(),
    };
    let args = args.unwrap_or_default();
    let int = |i: usize, what: &str, min: u64, max: u64| -> Result<(), String> {
        match args.get(i).and_then(|a| a.parse::<u64>().ok()) {
            Some(v) if (min..=max).contains(&v) => Ok(()),
            _ => Err(format!("`{rendered}`: {what} must be a whole number from {min} to {max}")),
        }
    };
    let count = |n: usize, usage: &str| -> Result<(), String> {
        if args.len() == n { Ok(()) } else { Err(format!("`{rendered}`: expected {usage}")) }
    };
    match *name {
        "minmax" => count(0, "no parameters")?,
        "set" => {
            count(1, "set(max_rows)")?;
            int(0, "max_rows", 1, MAX_SET_ROWS)?;
        }
        "bloom_filter" => {
            if args.len() > 1 {
                return Err(format!("`{rendered}`: expected bloom_filter or bloom_filter(false_positive_rate)"));
            }
            if let Some(p) = args.first() {
                let p: f64 = p.parse().map_err(|_| format!("`{rendered}`: the rate must be a number"))?;
                if !(MIN_BLOOM_P..1.0).contains(&p) {
                    return Err(format!("`{rendered}`: the false-positive rate must be from {MIN_BLOOM_P} to below 1"));
                }
            }
        }
        "ngrambf_v1" => {
            count(4, "ngrambf_v1(n, size_bytes, hashes, seed)")?;
            int(0, "n", 1, MAX_NGRAM)?;
            int(1, "size_bytes", 1, MAX_FILTER_BYTES)?;
            int(2, "hashes", 1, MAX_HASHES)?;
            int(3, "seed", 0, u64::MAX)?;
        }
        _ => {
            count(3, "tokenbf_v1(size_bytes, hashes, seed)")?;
            int(0, "size_bytes", 1, MAX_FILTER_BYTES)?;
            int(1, "hashes", 1, MAX_HASHES)?;
            int(2, "seed", 0, u64::MAX)?;
        }
    }
    Ok(rendered)
}

/// GRANULARITY within 1 and [`MAX_GRANULARITY`].
pub fn granularity(g: u32) -> Result<(), String> {
    if (1..=MAX_GRANULARITY).contains(&g) {
        Ok(())
    } else {
        Err(format!("expected a number from 1 to {MAX_GRANULARITY}"))
    }
}

fn not_a_type(text: &str) -> String {
    format!(
        "{text:?} is not an index type: expected one of {} with numeric parameters, e.g. bloom_filter(0.01)",
        TYPES.join(", ")
    )
}

/// `name` or `name(numbers)`: plain decimal numbers only (no sign, exponent, `inf` or `nan`).
fn call(text: &str) -> Option<(&str, Option<Vec<&str>>)> {
    let text = text.trim();
    let Some(open) = text.find('(') else { return Some((text, None)) };
    let args = text[open + 1..].strip_suffix(')')?;
    let args: Vec<&str> = if args.trim().is_empty() { Vec::new() } else { args.split(',').map(str::trim).collect() };
    let plain = |a: &&str| {
        !a.is_empty()
            && a.starts_with(|c: char| c.is_ascii_digit())
            && a.chars().all(|c| c.is_ascii_digit() || c == '.')
            && a.matches('.').count() <= 1
    };
    args.iter().all(plain).then_some((text[..open].trim(), Some(args)))
}

#[cfg(test)]
#[path = "index_type_tests.rs"]
mod tests;
