//! A field path as a filter declares it ([`FieldPath`]), checked
//! against its bounds before anything is built from it.

/// A dotted field path as a filter declares it: `candidate.magpsf`,
/// `prv_candidates.jd`, or `candidate.drb?` (optional).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    /// The path without the optional marker: `candidate.drb`.
    pub text: String,
    /// `text` split on dots.
    pub segments: Vec<String>,
    /// Declared with a trailing `?`: absent where the schema lacks it.
    pub optional: bool,
}

/// Why a declared path is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid field path '{path}': {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

/// Longest declared path, in bytes (with its `?`): far beyond any real
/// schema's (ZTF's longest is 30), and small enough that a manifest of
/// [`MAX_PATH_BYTES`] × 512 paths is a bounded cost.
pub const MAX_PATH_BYTES: usize = 256;

/// Most dot-separated parts of a path: the deepest nesting a path may
/// name (real alert schemas nest three or four records deep).
pub const MAX_PATH_SEGMENTS: usize = 16;

impl FieldPath {
    /// Parses a declared path; see [`FieldPath`]. Checks the bounds
    /// ([`MAX_PATH_BYTES`], [`MAX_PATH_SEGMENTS`]) before it builds
    /// anything from the text.
    pub fn parse(declared: &str) -> Result<FieldPath, PathError> {
        let err = |reason: &str| PathError {
            path: crate::text::shown(declared, 80).into_owned(),
            reason: reason.to_string(),
        };
        if declared.len() > MAX_PATH_BYTES {
            return Err(err(&format!(
                "{} bytes long; a path may have at most {MAX_PATH_BYTES}",
                declared.len()
            )));
        }
        let (text, optional) = match declared.strip_suffix('?') {
            Some(t) => (t, true),
            None => (declared, false),
        };
        if text.is_empty() {
            return Err(err("empty path"));
        }
        if text.split('.').count() > MAX_PATH_SEGMENTS {
            return Err(err(&format!(
                "{} dot-separated parts; a path may have at most {MAX_PATH_SEGMENTS}",
                text.split('.').count()
            )));
        }
        let mut segments = Vec::new();
        for seg in text.split('.') {
            let mut chars = seg.chars();
            let ok_first = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err(
                    "each dot-separated part must be an Avro name ([A-Za-z_][A-Za-z0-9_]*)",
                ));
            }
            segments.push(seg.to_string());
        }
        Ok(FieldPath {
            text: text.to_string(),
            segments,
            optional,
        })
    }
}
