//! Reading profiles from files: single files, directories, multi-document YAML. For `validate` and `plan`.

use crate::{Error, Result};
use perf_operator_api::PerformanceProfile;
use std::path::{Path, PathBuf};

/// One YAML document of a file: where it came from and its content.
#[derive(Debug)]
pub struct Document {
    pub path: PathBuf,
    /// 1-based index of the document in its file.
    pub index: usize,
    pub value: serde_json::Value,
}

/// A problem in a document, printed as `file:doc:field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub location: String,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.location, self.field, self.message)
    }
}

/// Expands paths: files as they are, directories to their `.yaml`/`.yml`/`.json` files (sorted, recursive).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| Error::Io { path: path.display().to_string(), source })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            let nested: Vec<PathBuf> = entries
                .into_iter()
                .filter(|p| {
                    p.is_dir() || matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
                })
                .collect();
            out.extend(expand(&nested)?);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// Reads every YAML document of a file. Empty documents are skipped.
pub fn read_documents(path: &Path) -> Result<Vec<Document>> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    let values: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| Error::Manifest { path: format!("{}", path.display()), message: format!("YAML: {e}") })?;
    Ok(values
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_null())
        .map(|(i, value)| Document { path: path.to_path_buf(), index: i + 1, value })
        .collect())
}

/// True when a document is a PerformanceProfile (other kinds in the same file are ignored).
pub fn is_profile(value: &serde_json::Value) -> bool {
    value.get("kind").and_then(|k| k.as_str()) == Some("PerformanceProfile")
        && value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.starts_with(&format!("{}/", perf_operator_api::GROUP)))
}

/// Parses a profile document; a type error is reported with the path of the offending field.
pub fn parse_profile(doc: &Document) -> std::result::Result<PerformanceProfile, Finding> {
    let location = format!("{}:{}", doc.path.display(), doc.index);
    let de = serde_json::Value::clone(&doc.value);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        Finding {
            location,
            field: if field == "." { "(document)".into() } else { field },
            message: e.inner().to_string(),
        }
    })
}
