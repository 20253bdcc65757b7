//! The cut itself, free of the SDK, so that `bench/` can compile the very
//! same logic natively and compare it with the wasm component.

/// The twenty values the cut reads.
#[derive(Debug, Clone, Default)]
pub struct Twenty {
    pub magpsf: Option<f64>,
    pub sigmapsf: Option<f64>,
    pub diffmaglim: Option<f64>,
    pub rb: Option<f64>,
    pub drb: Option<f64>,
    pub isdiffpos: Option<String>,
    pub ssdistnr: Option<f64>,
    pub ssmagnr: Option<f64>,
    pub sgscore1: Option<f64>,
    pub distpsnr1: Option<f64>,
    pub distnr: Option<f64>,
    pub magnr: Option<f64>,
    pub ndethist: Option<i64>,
    pub ncovhist: Option<i64>,
    pub jd: Option<f64>,
    pub jdstarthist: Option<f64>,
    pub fid: Option<i64>,
    pub fwhm: Option<f64>,
    pub elong: Option<f64>,
    pub nbad: Option<i64>,
}

/// A clean, significant, positive detection away from asteroids and not
/// on a bright reference source; the score is the real-bogus
/// probability, halved next to a star and for sources older than 30 days.
pub fn decide(t: &Twenty) -> Option<f64> {
    let real = t.drb.or(t.rb)?;
    let positive = matches!(t.isdiffpos.as_deref(), Some("t" | "1"));
    let snr = 1.0857 / t.sigmapsf?.max(1e-3);
    let depth = t.diffmaglim? - t.magpsf?;
    let clean = t.fwhm.is_some_and(|f| f < 5.0)
        && t.elong.is_some_and(|e| e < 1.6)
        && t.nbad.is_some_and(|n| n == 0);
    let near_sso =
        t.ssdistnr.is_some_and(|d| (0.0..5.0).contains(&d)) && t.ssmagnr.is_some_and(|m| m > 0.0);
    let star = t.sgscore1.is_some_and(|s| s > 0.8) && t.distpsnr1.is_some_and(|d| d < 2.0);
    let on_reference = t.distnr.is_some_and(|d| d < 1.0) && t.magnr.is_some_and(|m| m < 16.0);
    let history = t.ndethist? >= 1 && t.ncovhist? >= t.ndethist?;
    let age = t.jd? - t.jdstarthist.unwrap_or(t.jd?);
    let band = matches!(t.fid?, 1..=3);
    let accept = real > 0.5
        && positive
        && snr > 5.0
        && depth > 0.0
        && clean
        && !near_sso
        && !on_reference
        && history
        && band;
    let penalty = if star { 0.5 } else { 1.0 } * if age > 30.0 { 0.5 } else { 1.0 };
    accept.then_some(real * penalty)
}
