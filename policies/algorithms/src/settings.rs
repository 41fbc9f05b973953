//! Settings of the example policies: parsed from the profile's opaque `policy.settings` JSON text, checked, with
//! errors that name the field and what was expected.

use std::cell::RefCell;

use serde::Deserialize;

/// Longest settings text remembered; a longer one is parsed on every call.
const REMEMBERED_TEXT_MAX: usize = 256;

/// A settings text and its parsed value, held inline: the cache keeps no heap memory between calls, which lets the
/// guests' arena allocator start over after every call.
struct Remembered<T> {
    len: usize,
    text: [u8; REMEMBERED_TEXT_MAX],
    value: T,
}

// The last settings text and its parsed value, per thread (a WASM instance has one). A policy sees the same text call
// after call, and parsing JSON would cost more than the decision itself.
thread_local! {
    static TTL: RefCell<Option<Remembered<TtlSettings>>> = const { RefCell::new(None) };
    static RATE_LIMIT: RefCell<Option<Remembered<RateLimitSettings>>> = const { RefCell::new(None) };
}

/// Returns the cached value when `json` is the text parsed last time; parses (and remembers a success) otherwise.
fn cached<T: Copy>(
    cache: &'static std::thread::LocalKey<RefCell<Option<Remembered<T>>>>,
    json: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    // Borrowed in place: copying the remembered text out would cost more than comparing it.
    let hit = cache
        .with_borrow(|slot| slot.as_ref().filter(|r| r.text.get(..r.len) == Some(json.as_bytes())).map(|r| r.value));
    if let Some(value) = hit {
        return Ok(value);
    }
    let value = parse(json)?;
    if json.len() <= REMEMBERED_TEXT_MAX {
        cache.with_borrow_mut(|slot| {
            let r = slot.get_or_insert(Remembered { len: 0, text: [0; REMEMBERED_TEXT_MAX], value });
            r.text[..json.len()].copy_from_slice(json.as_bytes());
            r.len = json.len();
            r.value = value;
        });
    }
    Ok(value)
}

/// Settings of `adaptive-ttl`. All optional; defaults in [`TtlSettings::default`].
#[derive(Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TtlSettings {
    /// Lengthen TTLs while the hit ratio is below this, in [0, 1].
    pub target_hit_ratio: f64,
    /// Lengthen only while used/max memory is below this, in (0, 1].
    pub memory_high_watermark: f64,
    /// Shorten TTLs when evictions per lookup exceed this, in [0, 1].
    pub eviction_pressure: f64,
    /// Factor applied when lengthening, in (1, 10].
    pub grow_factor: f64,
    /// Factor applied when shortening, in (0, 1).
    pub shrink_factor: f64,
    /// Lower bound of a TTL as a factor of its spec value, in (0, 1].
    pub min_factor: f64,
    /// Upper bound of a TTL as a factor of its spec value, in [1, 100].
    pub max_factor: f64,
    /// Classes whose decided TTL is below this many seconds are not admitted to the cache.
    pub min_admit_ttl_seconds: u32,
}

impl Default for TtlSettings {
    fn default() -> Self {
        Self {
            target_hit_ratio: 0.8,
            memory_high_watermark: 0.85,
            eviction_pressure: 0.01,
            grow_factor: 1.25,
            shrink_factor: 0.8,
            min_factor: 0.25,
            max_factor: 4.0,
            min_admit_ttl_seconds: 0,
        }
    }
}

impl TtlSettings {
    /// [`TtlSettings::parse`], remembering the last text parsed on this thread.
    pub fn parse_cached(json: &str) -> Result<Self, String> {
        cached(&TTL, json, Self::parse)
    }

    /// Parses and checks the settings JSON text (`""` means defaults).
    pub fn parse(json: &str) -> Result<Self, String> {
        let s: Self = parse_object(json)?;
        in_range("targetHitRatio", s.target_hit_ratio, 0.0, 1.0, "[0, 1]")?;
        in_range("memoryHighWatermark", s.memory_high_watermark, f64::MIN_POSITIVE, 1.0, "(0, 1]")?;
        in_range("evictionPressure", s.eviction_pressure, 0.0, 1.0, "[0, 1]")?;
        in_range("growFactor", s.grow_factor, 1.0 + f64::EPSILON, 10.0, "(1, 10]")?;
        in_range("shrinkFactor", s.shrink_factor, f64::MIN_POSITIVE, 1.0 - f64::EPSILON, "(0, 1)")?;
        in_range("minFactor", s.min_factor, f64::MIN_POSITIVE, 1.0, "(0, 1]")?;
        in_range("maxFactor", s.max_factor, 1.0, 100.0, "[1, 100]")?;
        Ok(s)
    }
}

/// Settings of `adaptive-rate-limit`. All optional; defaults in [`RateLimitSettings::default`].
#[derive(Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Multiplicative decrease when a route breaks the SLO, in (0, 1).
    pub decrease_factor: f64,
    /// Additive increase per healthy evaluation, as a fraction of the spec rate, in (0, 1].
    pub increase_fraction: f64,
    /// A route is healthy when p99 and errors are below this fraction of the SLO, in (0, 1].
    pub healthy_headroom: f64,
    /// Lower bound of the rate as a factor of its spec value, in (0, 1].
    pub min_factor: f64,
    /// Upper bound of the rate as a factor of its spec value, in [1, 100].
    pub max_factor: f64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self { decrease_factor: 0.7, increase_fraction: 0.1, healthy_headroom: 0.8, min_factor: 0.1, max_factor: 1.0 }
    }
}

impl RateLimitSettings {
    /// [`RateLimitSettings::parse`], remembering the last text parsed on this thread.
    pub fn parse_cached(json: &str) -> Result<Self, String> {
        cached(&RATE_LIMIT, json, Self::parse)
    }

    /// Parses and checks the settings JSON text (`""` means defaults).
    pub fn parse(json: &str) -> Result<Self, String> {
        let s: Self = parse_object(json)?;
        in_range("decreaseFactor", s.decrease_factor, f64::MIN_POSITIVE, 1.0 - f64::EPSILON, "(0, 1)")?;
        in_range("increaseFraction", s.increase_fraction, f64::MIN_POSITIVE, 1.0, "(0, 1]")?;
        in_range("healthyHeadroom", s.healthy_headroom, f64::MIN_POSITIVE, 1.0, "(0, 1]")?;
        in_range("minFactor", s.min_factor, f64::MIN_POSITIVE, 1.0, "(0, 1]")?;
        in_range("maxFactor", s.max_factor, 1.0, 100.0, "[1, 100]")?;
        Ok(s)
    }
}

fn parse_object<T: for<'de> Deserialize<'de> + Default>(json: &str) -> Result<T, String> {
    let json = json.trim();
    // The common case (no settings) skips the JSON parser.
    if json.is_empty() || json == "{}" {
        return Ok(T::default());
    }
    if !json.starts_with('{') {
        return Err("settings: expected a JSON object".into());
    }
    serde_json::from_str(json).map_err(|e| format!("settings: {e}"))
}

fn in_range(field: &str, value: f64, low: f64, high: f64, shown: &str) -> Result<(), String> {
    if value.is_finite() && value >= low && value <= high {
        Ok(())
    } else {
        Err(format!("settings.{field}: expected a number in {shown}, got {value}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_settings_are_defaults() {
        assert_eq!(TtlSettings::parse("").unwrap(), TtlSettings::default());
        assert_eq!(RateLimitSettings::parse(" {} ").unwrap(), RateLimitSettings::default());
    }

    #[test]
    fn cached_parse_follows_the_text() {
        let a = r#"{"growFactor": 2.0}"#;
        assert_eq!(TtlSettings::parse_cached(a).unwrap().grow_factor, 2.0);
        assert_eq!(TtlSettings::parse_cached(a).unwrap().grow_factor, 2.0);
        assert_eq!(TtlSettings::parse_cached("{}").unwrap().grow_factor, 1.25);
        assert!(TtlSettings::parse_cached(r#"{"growFactor": 0}"#).is_err());
        assert_eq!(TtlSettings::parse_cached("{}").unwrap(), TtlSettings::default());
        let long = format!(r#"{{"growFactor": 3.0{}}}"#, " ".repeat(REMEMBERED_TEXT_MAX));
        assert_eq!(TtlSettings::parse_cached(&long).unwrap().grow_factor, 3.0);
        assert_eq!(TtlSettings::parse_cached(&long).unwrap().grow_factor, 3.0);
        assert_eq!(TtlSettings::parse_cached("{}").unwrap().grow_factor, 1.25);
    }

    #[test]
    fn fields_are_read_and_checked() {
        let s = TtlSettings::parse(r#"{"growFactor": 2.0, "minAdmitTtlSeconds": 5}"#).unwrap();
        assert_eq!((s.grow_factor, s.min_admit_ttl_seconds), (2.0, 5));
        let err = TtlSettings::parse(r#"{"shrinkFactor": 1.5}"#).unwrap_err();
        assert!(err.contains("settings.shrinkFactor") && err.contains("(0, 1)"), "{err}");
        let err = RateLimitSettings::parse(r#"{"decreseFactor": 0.5}"#).unwrap_err();
        assert!(err.contains("unknown field `decreseFactor`"), "{err}");
        assert!(RateLimitSettings::parse("[1]").unwrap_err().contains("expected a JSON object"));
    }
}
