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
    /// (at most 9): `.note_real("magpsf", 18.234, 2)` gives `"18.23"`.
    ///
    /// Formatting a float with `format!` costs thousands of instructions
    /// in wasm (more than a typical cut); this costs tens. It rounds to
    /// nearest, so a value exactly halfway may differ from `format!` in
    /// the last digit. Not-a-number and infinities read `NaN`, `inf`,
    /// `-inf`.
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

/// `value` with `decimals` digits after the point, without `core::fmt`'s
/// float code.
fn fixed(value: f64, decimals: u8) -> String {
    let decimals = u32::from(decimals.min(9));
    let scale = 10u64.pow(decimals);
    let scaled = (value.abs() * scale as f64).round();
    // Past 2^53 the integer arithmetic below is no longer exact.
    if !value.is_finite() || scaled >= 9.0e15 {
        return format!("{value:.*}", decimals as usize);
    }
    let n = scaled as u64;
    let mut out = String::with_capacity(24);
    // As `format!`: a negative value keeps its sign even when it rounds
    // to zero.
    if value.is_sign_negative() {
        out.push('-');
    }
    push_digits(&mut out, n / scale, 1);
    if decimals > 0 {
        out.push('.');
        push_digits(&mut out, n % scale, decimals as usize);
    }
    out
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    while n > 0 || digits.len() - at < width {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
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
        for value in [
            18.234, -0.5, 0.0, -0.004, 1234.5678, 0.65, 19.999, 2.0, 1e-9, 123456.0,
        ] {
            for decimals in [0u8, 1, 2, 3, 5] {
                let expected = format!("{value:.*}", decimals as usize);
                // Exact halfway values may round the other way.
                let scaled = value * 10f64.powi(i32::from(decimals));
                if (scaled.abs().fract() - 0.5).abs() < 1e-9 {
                    continue;
                }
                assert_eq!(fixed(value, decimals), expected, "{value} to {decimals}");
            }
        }
        assert_eq!(fixed(f64::NAN, 2), "NaN");
        assert_eq!(fixed(f64::NEG_INFINITY, 1), "-inf");
        assert_eq!(fixed(1e300, 2), format!("{:.2}", 1e300));
        let v = Verdict::accept().note_real("magpsf", 18.234, 2);
        assert_eq!(v.notes(), [("magpsf".to_string(), "18.23".to_string())]);
    }
}
