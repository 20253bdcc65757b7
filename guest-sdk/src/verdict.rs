//! The decision on one alert, built with chained calls.

use core::fmt;

use crate::bindings::bandpass::filter::types as wit;

/// The decision on one alert: [`Verdict::reject`], or [`Verdict::accept`]
/// with an optional score, tags and notes.
///
/// ```rust,no_run
/// # use bandpass_sdk::Verdict;
/// # fn decide(drb: f64) -> Result<Verdict, String> {
/// Ok(Verdict::accept().score(drb).tag("fast-riser").note("band", "r"))
/// # }
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

    /// Adds a numeric note with `decimals` digits after the point
    /// (at most 17; more counts as 17): `.note_real("magpsf", 18.234, 2)`
    /// gives `"18.23"`.
    ///
    /// The text is `value`'s exact binary value rounded to `decimals`
    /// digits, an exact half rounded to the even digit, as
    /// `format!("{value:.2}")` writes it: `0.125` gives `"0.12"`, `0.375`
    /// `"0.38"`, and `0.015` (just below 0.015 in binary) `"0.01"`. A
    /// negative value keeps its sign even when it rounds to zero
    /// (`-0.001` gives `"-0.00"`), large values are written in full
    /// (never with an exponent), and not-a-number and the infinities
    /// read `NaN`, `inf`, `-inf`. The Python SDK's `bandpass.fixed` and
    /// the JavaScript SDK's `fixed` write the same text, so a filter and
    /// its twins in other languages note the same thing.
    #[must_use]
    pub fn note_real(mut self, key: impl Into<String>, value: f64, decimals: u8) -> Self {
        if let wit::Verdict::Accept(a) = &mut self.0 {
            a.annotations.push((key.into(), fixed(value, decimals)));
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

/// The most digits `note_real` writes after the point.
const MAX_DECIMALS: u8 = 17;

/// `value` with `decimals` digits after the point (see `note_real`).
fn fixed(value: f64, decimals: u8) -> String {
    let decimals = usize::from(decimals.min(MAX_DECIMALS));
    format!("{value:.decimals$}")
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

    #[test]
    fn real_notes_read_like_format_with_a_precision() {
        for (value, decimals, expected) in [
            (18.234, 2, "18.23"),
            (0.125, 2, "0.12"),
            (0.375, 2, "0.38"),
            (0.015, 2, "0.01"),
            (2.675, 2, "2.67"),
            (-0.125, 2, "-0.12"),
            (0.5, 0, "0"),
            (1.5, 0, "2"),
            (2.5, 0, "2"),
            (-0.5, 0, "-0"),
            (-0.001, 2, "-0.00"),
            (-0.0, 1, "-0.0"),
            (0.0, 3, "0.000"),
            (1234.5678, 3, "1234.568"),
            (19.999, 2, "20.00"),
            (1e21, 2, "1000000000000000000000.00"),
            (-1.5e22, 0, "-15000000000000000000000"),
            (0.1, 17, "0.10000000000000001"),
            (0.1, 200, "0.10000000000000001"),
            (f64::NAN, 2, "NaN"),
            (-f64::NAN, 2, "NaN"),
            (f64::INFINITY, 2, "inf"),
            (f64::NEG_INFINITY, 1, "-inf"),
        ] {
            assert_eq!(fixed(value, decimals), expected, "{value} to {decimals}");
        }
        let v = Verdict::accept().note_real("magpsf", 18.234, 2);
        assert_eq!(v.notes(), [("magpsf".to_string(), "18.23".to_string())]);
    }

    /// The table the Python and JavaScript SDK tests check their `fixed`
    /// against is what `note_real` writes.
    #[test]
    fn the_shared_table_is_what_note_real_writes() {
        let table = include_str!("../testdata/note-real.txt");
        let mut rows = 0;
        for line in table.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split(' ');
            let (Some(bits), Some(decimals), Some(text), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                panic!("bad row {line:?}");
            };
            let value = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
            let decimals: u8 = decimals.parse().unwrap();
            assert_eq!(
                fixed(value, decimals),
                text,
                "{bits} ({value:e}) to {decimals}"
            );
            rows += 1;
        }
        assert!(rows > 5000, "{rows} rows");
    }
}
