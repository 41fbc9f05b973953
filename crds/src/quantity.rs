//! Sizes in bytes written as Kubernetes quantities (`512Mi`, `1.5Gi`, `512M`, `129e6`, `1G`), as a container's
//! memory or a claim's storage are: the same grammar and meaning, read here into whole bytes (rounded up, as the API
//! server rounds). Two traps are refused instead of read: a size of zero, and the milli suffix `m` (`512m` is half
//! a byte, never what was meant).

/// Schema pattern: a positive decimal number with a binary (`Ki`..`Ei`) or decimal (`k`, `M`..`E`) suffix or a
/// non-negative exponent (`e6`); the Rust reading below accepts exactly this language.
pub const BYTES_PATTERN: &str =
    r"^([0-9]*[1-9][0-9]*(\.[0-9]*)?|[0-9]*\.[0-9]*[1-9][0-9]*)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][0-9]{1,2})?$";

/// What a size is expected to be, for messages.
pub const EXPECTED: &str = "a Kubernetes quantity of bytes above zero, e.g. 512Mi, 1.5Gi, 512M or 129e6";

/// Longest number read (digits of the mantissa): far beyond any real size, and it keeps the arithmetic in range.
const MAX_DIGITS: usize = 24;

/// Whole bytes of `text`, rounded up; the error says what was expected.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not {EXPECTED}");
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.len() + frac.len() > MAX_DIGITS || frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return Err(bad());
    }
    let (multiplier, exponent): (u128, u32) = match suffix {
        "" => (1, 0),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "m" => return Err(format!("{text:?}: m is milli (thousandths of a byte); write M (10^6) or Mi (2^20)")),
        e if e.len() > 1 && (e.starts_with('e') || e.starts_with('E')) => {
            let digits = &e[1..];
            let exp: u32 = digits.parse().map_err(|_| bad())?;
            if digits.len() > 2 || !digits.chars().all(|c| c.is_ascii_digit()) || exp > 18 {
                return Err(bad());
            }
            (1, exp)
        }
        _ => return Err(bad()),
    };
    let mantissa: u128 = format!("{int}{frac}").parse().unwrap_or(0);
    if mantissa == 0 {
        return Err(bad());
    }
    // value = mantissa * multiplier * 10^exponent / 10^frac.len(), rounded up.
    let numerator = mantissa * multiplier * 10u128.pow(exponent);
    let denominator = 10u128.pow(frac.len() as u32);
    let bytes = numerator.div_ceil(denominator);
    u64::try_from(bytes).map_err(|_| format!("{text:?} is too large: at most 2^64 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_kubernetes_reads_them() {
        for (text, bytes) in [
            ("256Mi", 256 << 20),
            ("1.5Gi", 3 << 29),
            ("512M", 512_000_000),
            ("129e6", 129_000_000),
            ("129E6", 129_000_000),
            ("1G", 1_000_000_000),
            ("1k", 1000),
            ("1", 1),
            ("0.5", 1),
            (".5Ki", 512),
            ("1.", 1),
            ("0.1Ki", 103),
            ("2Ti", 2 << 40),
            ("1Ei", 1 << 60),
            ("007Mi", 7 << 20),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn zero_milli_and_malformed_sizes_are_refused_saying_why() {
        for text in [
            "",
            "0",
            "0.0",
            ".0",
            "0Mi",
            "-1Gi",
            "+1Gi",
            "1.5.5Gi",
            "1GB",
            "1gi",
            "Mi",
            ".",
            "1 Gi",
            "1e",
            "1e100",
            "1e-3",
            "99999999999999999999999999Gi",
            "20Ei",
        ] {
            let error = parse_bytes(text).expect_err(text);
            assert!(error.contains("quantity") || error.contains("too large"), "{text}: {error}");
        }
        assert!(parse_bytes("512m").unwrap_err().contains("m is milli"));
    }

    #[test]
    fn validate_reads_both_sizes_as_quantities() {
        let spec = |max_memory: &str, size: &str| {
            let mut provision =
                crate::RedisProvision { max_memory: max_memory.into(), ..crate::RedisProvision::default() };
            provision.persistence =
                Some(crate::RedisPersistence { size: size.into(), ..crate::RedisPersistence::default() });
            let cache = crate::CacheSpec {
                redis: crate::RedisSpec { provision: Some(provision), external: None },
                ..crate::CacheSpec::default()
            };
            let target_ref = crate::TargetRef { name: "web".into(), ..crate::TargetRef::default() };
            let spec = crate::PerformanceProfileSpec { cache: Some(cache), target_ref, ..Default::default() };
            crate::validation::validate_spec(&spec).into_iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(spec("1.5Gi", "512M"), Vec::<String>::new());
        assert_eq!(spec("129e6", "2Gi"), Vec::<String>::new());
        let small = spec("256Mi", "10");
        assert!(
            small.iter().any(|e| e.starts_with("spec.cache.redis.provision.persistence.size: \"10\" is below")),
            "{small:?}"
        );
        let huge = spec("20Ei", "2Gi");
        assert!(
            huge.iter().any(|e| e.starts_with("spec.cache.redis.provision.maxMemory: \"20Ei\" is too large")),
            "{huge:?}"
        );
    }
}
