//! Durations and sizes as people write them (`"250ms"`, `"5s"`,
//! `"64MiB"`), for the config file, an upload's manifest and the
//! flags; with the serde adapters that read them.

use std::time::Duration;

/// Longest duration any setting takes: a week. Longer is a typo, and
/// would overflow the clock arithmetic it feeds.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"`, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let shown = crate::text::shown(s.trim(), 40);
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let too_long = || format!("'{shown}' is longer than the week a duration may be");
    let n: u64 = number.parse().map_err(|e: std::num::ParseIntError| {
        if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
            too_long()
        } else {
            format!("'{shown}' is not a duration such as \"250ms\", \"5s\" or \"2m\"")
        }
    })?;
    let millis_per = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "unknown unit '{}' in '{shown}': use ms, s, m or h",
                crate::text::shown(unit.trim(), 16)
            ));
        }
    };
    let millis = n.checked_mul(millis_per).ok_or_else(too_long)?;
    let duration = Duration::from_millis(millis);
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

/// Longest age a kept thing may reach (an object's state without alerts):
/// ten years of 365 days.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Parses an age in days or hours (`"365d"`, `"12h"`), at least an hour
/// and at most [`MAX_AGE`]: how long something is kept, measured in the
/// alerts' own time.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let shown = crate::text::shown(s.trim(), 40);
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let bad = || format!("'{shown}' is not an age such as \"365d\" or \"12h\"");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let hours = match unit.trim() {
        "d" => n.checked_mul(24),
        "h" => Some(n),
        _ => return Err(bad()),
    };
    let age = hours
        .and_then(|h| h.checked_mul(3600))
        .map(Duration::from_secs)
        .filter(|d| *d <= MAX_AGE)
        .ok_or_else(|| format!("'{shown}' is longer than the ten years an age may be"))?;
    if age.is_zero() {
        return Err(format!("'{shown}' keeps nothing: give at least 1h"));
    }
    Ok(age)
}

/// Parses `"64MiB"`, `"512KiB"`, `"1GiB"` or a number of bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let shown = crate::text::shown(s, 40);
    let n: usize = number.parse().map_err(|e: std::num::ParseIntError| {
        if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
            format!("'{shown}' is too large")
        } else {
            format!("'{shown}' is not a size such as \"64MiB\"")
        }
    })?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit '{}' in '{shown}': use B, KiB, MiB or GiB",
                crate::text::shown(other, 16)
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{shown}' is too large"))
}

/// `#[serde(with = "human::duration")]`.
pub mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "human::age")]`: `"365d"` or `"12h"`.
pub mod age {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_age(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(default, with = "human::optional_age")]`.
pub mod optional_age {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_age(&s)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(default, with = "human::optional_duration")]`.
pub mod optional_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// `#[serde(default, with = "human::optional_size")]`.
pub mod optional_size {
    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        super::size::deserialize(d).map(Some)
    }
}

/// `#[serde(with = "human::size")]`: a string with a unit, or bytes.
pub mod size {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(usize),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(n),
            Raw::Text(s) => super::parse_size(&s).map_err(serde::de::Error::custom),
        }
    }
}
