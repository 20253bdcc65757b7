//! The benchmark filter: the cut in `cut.rs` over twenty ZTF fields. The
//! benchmark compiles `cut.rs` natively too, to measure what the sandbox
//! adds per alert. See `docs/benchmarks.md`.

use bandpass_sdk::prelude::*;

mod cut;

fields! {
    /// The twenty fields of the cut.
    struct Fields20 {
        /// PSF magnitude.
        magpsf: Option<f64> = "candidate.magpsf",
        /// Its uncertainty.
        sigmapsf: Option<f64> = "candidate.sigmapsf",
        /// Limiting magnitude of the difference image.
        diffmaglim: Option<f64> = "candidate.diffmaglim",
        /// Random-forest real-bogus score.
        rb: Option<f64> = "candidate.rb",
        /// Deep real-bogus score (schema 3.3 and later).
        drb: Option<f64> = "candidate.drb?",
        /// Sign of the difference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
        /// Distance to the nearest known asteroid.
        ssdistnr: Option<f64> = "candidate.ssdistnr",
        /// Its magnitude.
        ssmagnr: Option<f64> = "candidate.ssmagnr",
        /// Star/galaxy score of the nearest PS1 source.
        sgscore1: Option<f64> = "candidate.sgscore1",
        /// Distance to it.
        distpsnr1: Option<f64> = "candidate.distpsnr1",
        /// Distance to the nearest reference source.
        distnr: Option<f64> = "candidate.distnr",
        /// Its magnitude.
        magnr: Option<f64> = "candidate.magnr",
        /// Detections here so far.
        ndethist: Option<i64> = "candidate.ndethist",
        /// Times covered so far.
        ncovhist: Option<i64> = "candidate.ncovhist",
        /// Observation date.
        jd: Option<f64> = "candidate.jd",
        /// First detection date.
        jdstarthist: Option<f64> = "candidate.jdstarthist",
        /// Band.
        fid: Option<i64> = "candidate.fid",
        /// Seeing.
        fwhm: Option<f64> = "candidate.fwhm",
        /// Elongation.
        elong: Option<f64> = "candidate.elong",
        /// Bad pixels nearby.
        nbad: Option<i64> = "candidate.nbad",
    }
}

/// The benchmark filter.
#[derive(Default)]
struct BenchTwenty {
    /// Accept only scores at or above this (parameter `min_score`,
    /// default 0). The end-to-end benchmark sets it above 1 to read and
    /// judge every alert without producing any.
    min_score: f64,
}

impl Filter for BenchTwenty {
    type Fields = Fields20;
    const NAME: &'static str = "bench-twenty-fields";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = bandpass_sdk::survey::ZTF;
    const DESCRIPTION: &'static str = "Benchmark: a quality cut over twenty ZTF fields.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["min_score"])?;
        Ok(Self {
            min_score: params.f64("min_score", 0.0)?,
        })
    }

    fn evaluate(&self, f: Fields20) -> Result<Verdict, String> {
        let twenty = cut::Twenty {
            magpsf: f.magpsf,
            sigmapsf: f.sigmapsf,
            diffmaglim: f.diffmaglim,
            rb: f.rb,
            drb: f.drb,
            isdiffpos: f.isdiffpos,
            ssdistnr: f.ssdistnr,
            ssmagnr: f.ssmagnr,
            sgscore1: f.sgscore1,
            distpsnr1: f.distpsnr1,
            distnr: f.distnr,
            magnr: f.magnr,
            ndethist: f.ndethist,
            ncovhist: f.ncovhist,
            jd: f.jd,
            jdstarthist: f.jdstarthist,
            fid: f.fid,
            fwhm: f.fwhm,
            elong: f.elong,
            nbad: f.nbad,
        };
        Ok(match cut::decide(&twenty) {
            Some(score) if score >= self.min_score => Verdict::accept().score(score),
            _ => Verdict::reject(),
        })
    }
}

export_filter!(BenchTwenty);
