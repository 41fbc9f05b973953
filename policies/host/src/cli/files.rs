//! Reading the CLI's files: every read is capped, so a device file or a huge input is a clear error instead of a
//! process that grows until the kernel stops it.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// Largest input JSON (`--input`).
pub(crate) const MAX_INPUT_BYTES: usize = 1 << 20;
/// Largest settings (`--settings`), as the host accepts them (`Limits::max_string_bytes` x 64).
pub(crate) const MAX_SETTINGS_BYTES: usize = 64 << 10;

/// Reads at most `max` bytes of `path`; more is an error naming the file and the limit.
pub(crate) fn read(path: &Path, max: usize) -> Result<Vec<u8>> {
    let failed = |detail: String| Error::Input { what: format!("reading {}", path.display()), detail };
    let file = std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes).map_err(|e| failed(e.to_string()))?;
    if bytes.len() > max {
        return Err(failed(format!("larger than {max} bytes, the limit for this file")));
    }
    Ok(bytes)
}

/// `--settings`: inline JSON if it starts with `{`, else a file; must be a JSON object.
pub(crate) fn settings_arg(arg: &str) -> Result<String> {
    let text = if arg.trim_start().starts_with('{') {
        arg.to_string()
    } else {
        let bytes = read(Path::new(arg), MAX_SETTINGS_BYTES)?;
        String::from_utf8(bytes).map_err(|e| Error::Input { what: format!("reading {arg}"), detail: e.to_string() })?
    };
    if text.len() > MAX_SETTINGS_BYTES {
        let detail = format!("{} bytes, at most {MAX_SETTINGS_BYTES} allowed", text.len());
        return Err(Error::Input { what: "--settings".into(), detail });
    }
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) if value.is_object() => Ok(value.to_string()),
        Ok(_) => Err(Error::Input { what: "--settings".into(), detail: "expected a JSON object".into() }),
        Err(e) => Err(Error::Input { what: "--settings".into(), detail: format!("invalid JSON: {e}") }),
    }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Input { what: format!("parsing {}", path.display()), detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_must_be_an_object() {
        assert_eq!(settings_arg(r#"{ "a": 1 }"#).unwrap(), r#"{"a":1}"#);
        assert_eq!(settings_arg("{nope").unwrap_err().category(), "input");
        assert!(settings_arg("/does/not/exist.json").unwrap_err().to_string().contains("/does/not/exist.json"));
        let long = format!(r#"{{"a": "{}"}}"#, "x".repeat(MAX_SETTINGS_BYTES));
        assert!(settings_arg(&long).unwrap_err().to_string().contains("at most"));
    }

    #[test]
    fn reads_are_capped_even_for_endless_files() {
        let err = read(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(err.to_string().contains("larger than 1024 bytes"), "{err}");
        assert_eq!(read(Path::new("/dev/null"), 1024).unwrap(), Vec::<u8>::new());
        let err = read(Path::new("/"), 1024).unwrap_err();
        assert_eq!(err.category(), "input", "{err}");
    }
}
