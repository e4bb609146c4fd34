//! Manifest errors: each names the file, the line, the column and the field.

use std::fmt;
use std::path::PathBuf;

use super::yaml::{Mark, YamlDocument};

/// One problem in one manifest file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestError {
    /// The file, as given on the command line (relative paths stay relative).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Dotted field path inside the document (`spec.taskDefinition.cpu`), empty for the
    /// document itself.
    pub field: String,
    /// What is wrong, lower-case.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem of a manifest set, sorted by file and position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} error(s) in manifests:\n{}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ManifestErrors(pub Vec<ManifestError>);

/// Turns a JSON pointer into the dotted path users write (`/spec/ports/0` → `spec.ports[0]`).
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

/// Collects findings about one document, each placed by JSON pointer.
pub struct Findings<'a> {
    file: &'a std::path::Path,
    doc: &'a YamlDocument,
    /// What was found so far.
    pub errors: Vec<ManifestError>,
    /// Findings that do not stop the manifest from loading.
    pub warnings: Vec<ManifestError>,
}

impl<'a> Findings<'a> {
    /// Starts collecting for `doc` of `file`.
    pub fn new(file: &'a std::path::Path, doc: &'a YamlDocument) -> Self {
        Findings {
            file,
            doc,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Records the error `message` about the field at `pointer`.
    pub fn at(&mut self, pointer: &str, message: impl Into<String>) {
        let e = self.placed(pointer, message.into());
        self.errors.push(e);
    }

    /// Records the warning `message` about the field at `pointer`.
    pub fn warn(&mut self, pointer: &str, message: impl Into<String>) {
        let w = self.placed(pointer, message.into());
        self.warnings.push(w);
    }

    fn placed(&self, pointer: &str, message: String) -> ManifestError {
        let (file, Mark { line, col }) = self.doc.place_of(pointer);
        ManifestError {
            file: file.unwrap_or(self.file).to_path_buf(),
            line,
            col,
            field: dotted(pointer),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_dotted_paths() {
        assert_eq!(dotted(""), "");
        assert_eq!(
            dotted("/spec/taskDefinition/cpu"),
            "spec.taskDefinition.cpu"
        );
        assert_eq!(
            dotted("/spec/loadBalancers/0/targetGroupArn"),
            "spec.loadBalancers[0].targetGroupArn"
        );
        assert_eq!(dotted("/metadata/labels/a~1b"), "metadata.labels.a/b");
    }
}
