//! The operator's parameters, as `init` receives them.
//!
//! Parameters are strings on the wire; this module parses them once, in
//! `init`, into the filter's own typed configuration. Nothing here runs per
//! alert.

/// The key/value parameters one deployment of a filter was given.
///
/// Read them in [`Filter::init`](crate::Filter::init) with the typed
/// getters, each taking the default to use when the key is missing:
///
/// ```rust,no_run
/// # use bandpass_sdk::Params;
/// # struct Cut { min_drb: f64, max_mag: f64 }
/// # impl Cut {
/// fn init(params: &Params) -> Result<Self, String> {
///     params.deny_unknown(&["min_drb", "max_mag"])?;
///     Ok(Self {
///         min_drb: params.f64("min_drb", 0.65)?,
///         max_mag: params.f64("max_mag", 18.5)?,
///     })
/// }
/// # }
/// ```
///
/// When a key is given more than once, the last value wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Wraps the pairs the host passed to `init`.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The raw value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs, in the order the host passed them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether no parameter was given.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The number of pairs given.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// `key` as a finite number, or `default` when it is missing.
    ///
    /// # Errors
    ///
    /// When the value is not a finite decimal number.
    pub fn f64(&self, key: &str, default: f64) -> Result<f64, String> {
        self.parse(key, default, "a finite number", |s| {
            s.parse::<f64>().ok().filter(|x| x.is_finite())
        })
    }

    /// `key` as an integer, or `default` when it is missing.
    ///
    /// # Errors
    ///
    /// When the value is not a decimal integer that fits in an `i64`.
    pub fn i64(&self, key: &str, default: i64) -> Result<i64, String> {
        self.parse(key, default, "an integer", |s| s.parse::<i64>().ok())
    }

    /// `key` as a boolean (`true`/`false`, `yes`/`no`, `1`/`0`, any case),
    /// or `default` when it is missing.
    ///
    /// # Errors
    ///
    /// When the value is none of those words.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        self.parse(key, default, "true or false", |s| {
            match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Some(true),
                "false" | "no" | "0" => Some(false),
                _ => None,
            }
        })
    }

    /// `key` as a string, or `default` when it is missing.
    pub fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }

    /// Refuses keys outside `known`, so that a misspelt parameter fails the
    /// deployment instead of silently leaving a default in place.
    ///
    /// # Errors
    ///
    /// `unknown parameter "min_rbb"; this filter knows: min_drb, max_mag`.
    pub fn deny_unknown(&self, known: &[&str]) -> Result<(), String> {
        match self
            .pairs
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) if known.is_empty() => {
                Err(format!("unknown parameter {k:?}; this filter takes none"))
            }
            Some((k, _)) => Err(format!(
                "unknown parameter {k:?}; this filter knows: {}",
                known.join(", ")
            )),
        }
    }

    fn parse<T>(
        &self,
        key: &str,
        default: T,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => parse(raw.trim())
                .ok_or_else(|| format!("parameter {key}: expected {expected}, got {raw:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        )
    }

    #[test]
    fn typed_getters_parse_or_fall_back_to_the_default() {
        let p = params(&[("min_drb", "0.9"), ("n", "3"), ("flag", "Yes")]);
        assert_eq!(p.f64("min_drb", 0.5), Ok(0.9));
        assert_eq!(p.f64("missing", 0.5), Ok(0.5));
        assert_eq!(p.i64("n", 1), Ok(3));
        assert_eq!(p.bool("flag", false), Ok(true));
        assert_eq!(p.string("missing", "r"), "r");
    }

    #[test]
    fn a_value_that_does_not_parse_is_an_error_naming_the_key() {
        let p = params(&[("min_drb", "high"), ("x", "nan")]);
        assert_eq!(
            p.f64("min_drb", 0.5),
            Err("parameter min_drb: expected a finite number, got \"high\"".to_string())
        );
        assert!(p.f64("x", 0.0).is_err());
    }

    #[test]
    fn the_last_value_of_a_repeated_key_wins() {
        assert_eq!(params(&[("a", "1"), ("a", "2")]).i64("a", 0), Ok(2));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let p = params(&[("min_rbb", "0.9")]);
        assert_eq!(
            p.deny_unknown(&["min_drb", "max_mag"]),
            Err("unknown parameter \"min_rbb\"; this filter knows: min_drb, max_mag".to_string())
        );
        assert!(p.deny_unknown(&["min_rbb"]).is_ok());
    }
}
