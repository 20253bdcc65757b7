//! The decision on one alert, built with chained calls.

use core::fmt;

use crate::bindings::bandpass::filter::types as wit;

/// The decision on one alert: [`Verdict::reject`], or [`Verdict::accept`]
/// with an optional score, tags and notes.
///
/// ```rust,ignore
/// Ok(Verdict::accept().score(drb).tag("fast-riser").note("band", "r"))
/// ```
///
/// The host bounds what an accepted verdict may carry (by default at most
/// 32 tags of at most 64 bytes and 16 notes of at most 256 bytes); a
/// verdict over the bounds counts as an error of the filter. The builder
/// methods do nothing on a rejection.
#[derive(Clone)]
pub struct Verdict(wit::Verdict);

impl Verdict {
    /// Not interesting: nothing is forwarded.
    pub fn reject() -> Self {
        Self(wit::Verdict::Reject)
    }

    /// Forward the alert, unchanged, to this filter's output.
    pub fn accept() -> Self {
        Self(wit::Verdict::Accept(wit::Accepted {
            score: None,
            tags: Vec::new(),
            annotations: Vec::new(),
        }))
    }

    /// [`Verdict::accept`] when `accept` is true, else [`Verdict::reject`].
    pub fn accept_if(accept: bool) -> Self {
        if accept {
            Self::accept()
        } else {
            Self::reject()
        }
    }

    /// Sets the ranking score passed downstream (the last call wins).
    #[must_use]
    pub fn score(mut self, score: f64) -> Self {
        if let wit::Verdict::Accept(a) = &mut self.0 {
            a.score = Some(score);
        }
        self
    }

    /// Adds a short label passed downstream (`fast-riser`).
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        if let wit::Verdict::Accept(a) = &mut self.0 {
            a.tags.push(tag.into());
        }
        self
    }

    /// Adds several tags at once, reserving room for them first.
    #[must_use]
    pub fn with_tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        if let wit::Verdict::Accept(a) = &mut self.0 {
            a.tags.extend(tags.into_iter().map(Into::into));
        }
        self
    }

    /// Adds a small key/value note passed downstream; the value is
    /// formatted with [`fmt::Display`] (`.note("rise_mag_per_day", 1.2)`).
    #[must_use]
    pub fn note(mut self, key: impl Into<String>, value: impl fmt::Display) -> Self {
        if let wit::Verdict::Accept(a) = &mut self.0 {
            a.annotations.push((key.into(), value.to_string()));
        }
        self
    }

    /// Whether this verdict forwards the alert.
    pub fn is_accept(&self) -> bool {
        matches!(self.0, wit::Verdict::Accept(_))
    }

    /// The score, if accepted with one.
    pub fn get_score(&self) -> Option<f64> {
        match &self.0 {
            wit::Verdict::Accept(a) => a.score,
            wit::Verdict::Reject => None,
        }
    }

    /// The tags, in the order added (empty for a rejection).
    pub fn tags(&self) -> &[String] {
        match &self.0 {
            wit::Verdict::Accept(a) => &a.tags,
            wit::Verdict::Reject => &[],
        }
    }

    /// The notes, in the order added (empty for a rejection).
    pub fn notes(&self) -> &[(String, String)] {
        match &self.0 {
            wit::Verdict::Accept(a) => &a.annotations,
            wit::Verdict::Reject => &[],
        }
    }

    pub(crate) fn into_wit(self) -> wit::Verdict {
        self.0
    }
}

impl fmt::Debug for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            wit::Verdict::Reject => f.write_str("Reject"),
            wit::Verdict::Accept(a) => f
                .debug_struct("Accept")
                .field("score", &a.score)
                .field("tags", &a.tags)
                .field("notes", &a.annotations)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accept_carries_score_tags_and_notes() {
        let v = Verdict::accept()
            .score(0.9)
            .tag("fast-riser")
            .note("band", "r");
        assert!(v.is_accept());
        assert_eq!(v.get_score(), Some(0.9));
        assert_eq!(v.tags(), ["fast-riser"]);
        assert_eq!(v.notes(), [("band".to_string(), "r".to_string())]);
        let v = v.with_tags(["new", "ztf-r"]);
        assert_eq!(v.tags(), ["fast-riser", "new", "ztf-r"]);
    }

    #[test]
    fn builder_calls_on_a_reject_do_nothing() {
        let v = Verdict::reject().score(1.0).tag("x").note("k", 1);
        assert!(!v.is_accept());
        assert!(v.tags().is_empty());
        assert_eq!(v.get_score(), None);
    }
}
