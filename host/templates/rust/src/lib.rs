//! `{{name}}`: bright, real, positive ZTF detections. A starting point:
//! change the fields, the cut and the description, then
//! `cargo build --release --target wasm32-wasip2` and `bandpass test` it.

use bandpass_sdk::prelude::*;

fields! {
    /// The alert fields the filter reads (list them all with
    /// `bandpass fields ALERT.avro`), in the order the host sends them.
    struct Candidate {
        /// Difference-image PSF magnitude.
        magpsf: Option<f64> = "candidate.magpsf",
        /// Deep real-bogus score; `?` because schemas before 3.3 lack it.
        drb: Option<f64> = "candidate.drb?",
        /// Random-forest real-bogus score, in every schema.
        rb: Option<f64> = "candidate.rb",
        /// "t" or "1" when the source got brighter than the reference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
    }
}

/// The filter's configuration, read from the operator's parameters.
struct Bright {
    max_mag: f64,
    min_real: f64,
}

/// `Filter` requires `Default`: `init` starts from these defaults, and a
/// filter without its own `init` gets `Self::default()`.
impl Default for Bright {
    fn default() -> Self {
        Self {
            max_mag: 18.5,
            min_real: 0.65,
        }
    }
}

impl Filter for Bright {
    type Fields = Candidate;
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = bandpass_sdk::survey::ZTF;
    const DESCRIPTION: &'static str = "Bright, real, positive ZTF detections.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["max_mag", "min_real"])?;
        let d = Self::default();
        Ok(Self {
            max_mag: params.f64("max_mag", d.max_mag)?,
            min_real: params.f64("min_real", d.min_real)?,
        })
    }

    fn evaluate(&self, c: Candidate) -> Result<Verdict, String> {
        let real = c.drb.or(c.rb).unwrap_or(0.0);
        let positive = matches!(c.isdiffpos.as_deref(), Some("t" | "1"));
        match c.magpsf {
            Some(mag) if positive && real >= self.min_real && mag <= self.max_mag => {
                Ok(Verdict::accept()
                    .score(real)
                    .tag("bright")
                    .note_real("magpsf", mag, 2))
            }
            _ => Ok(Verdict::reject()),
        }
    }
}

export_filter!(Bright);
