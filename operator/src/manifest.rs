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
    /// Paths of keys given more than once (`value` holds the last); see [`load_documents`].
    pub duplicates: Vec<String>,
}

impl Document {
    /// `file:doc`, the location of the document's findings.
    pub fn location(&self) -> String {
        format!("{}:{}", self.path.display(), self.index)
    }
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

/// Reads every YAML document of a file, refusing the file when a document repeats a key (`plan` acts on profiles,
/// and must not guess which value was meant). Empty documents are skipped.
pub fn read_documents(path: &Path) -> Result<Vec<Document>> {
    let docs = load_documents(path)?;
    if let Some(doc) = docs.iter().find(|d| !d.duplicates.is_empty()) {
        let keys = doc.duplicates.join(", ");
        return Err(Error::Manifest { path: doc.location(), message: format!("YAML: duplicate keys: {keys}") });
    }
    Ok(docs)
}

/// Reads every YAML document of a file, keeping documents with duplicate keys (noted in [`Document::duplicates`]) so
/// that `validate` reports them with everything else. Empty documents are skipped.
pub fn load_documents(path: &Path) -> Result<Vec<Document>> {
    let text = read_capped(path)?;
    parse_documents(path, &text)
}

/// Largest input file read (profiles, observations): a device or a runaway file must not grow the process.
pub const MAX_INPUT_BYTES: u64 = 8 << 20;

/// Reads a UTF-8 file of at most [`MAX_INPUT_BYTES`].
pub fn read_capped(path: &Path) -> Result<String> {
    use std::io::Read;
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        let message = format!("larger than {} MiB, refused", MAX_INPUT_BYTES >> 20);
        return Err(Error::Manifest { path: path.display().to_string(), message });
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::Manifest { path: path.display().to_string(), message: "not UTF-8".into() })
}

/// Parses the YAML documents of `text`, as read from `path`.
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<Document>> {
    let docs = crate::tracked::from_multiple(text)
        .map_err(|e| Error::Manifest { path: format!("{}", path.display()), message: format!("YAML: {e}") })?;
    Ok(docs
        .into_iter()
        .enumerate()
        .filter(|(_, d)| !d.value.is_null())
        .map(|(i, d)| Document { path: path.to_path_buf(), index: i + 1, value: d.value, duplicates: d.duplicates })
        .collect())
}

/// How `validate` treats a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Names our kind or our group, even misspelt or in a version we do not serve: checked in full.
    Profile,
    /// An `AnalysisTemplate` or `ClusterAnalysisTemplate`: checked in full, and used to resolve the profiles.
    Template,
    /// Lacks `apiVersion` or `kind` (or is not an object): kubectl refuses it whatever it is.
    Incomplete,
    /// Another resource (a ConfigMap next to the profile): not ours to check.
    Foreign,
}

/// Sorts a document for `validate`. Unlike [`is_profile`], a wrong version or kind is not a reason to skip.
pub fn identify(value: &serde_json::Value) -> Identity {
    let field = |name| value.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let our_group = api_version.is_some_and(|v| v.split('/').next() == Some(perf_operator_api::GROUP));
    if our_group && matches!(kind, Some("AnalysisTemplate" | "ClusterAnalysisTemplate")) {
        Identity::Template
    } else if our_group || kind == Some("PerformanceProfile") {
        Identity::Profile
    } else if api_version.is_none() || kind.is_none() {
        Identity::Incomplete
    } else {
        Identity::Foreign
    }
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
    parse_as(doc)
}

/// Parses a document as `T`; a type error is reported with the path of the offending field.
pub fn parse_as<T: serde::de::DeserializeOwned>(doc: &Document) -> std::result::Result<T, Finding> {
    serde_path_to_error::deserialize(serde_json::Value::clone(&doc.value)).map_err(|e| {
        let field = e.path().to_string();
        Finding {
            location: doc.location(),
            field: if field == "." { "(document)".into() } else { field },
            message: e.inner().to_string(),
        }
    })
}
