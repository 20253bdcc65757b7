//! What a set of filters asks of the sky, computed once per alert: the
//! cross-matches' columns (`xmatch.*`, [`CrossmatchPlan`]), the maps'
//! answers (`map.<name>.inside|prob|credible`) and the watchlists'
//! targets (`watch.<list>.name|dist|ra|dec`).
//!
//! Owns: the order of those values after the decoder's and the history's
//! (the order [`SkyPlan::slot`] first gave them out), and filling them
//! from the alert's position.

use std::sync::Arc;

use super::Sky;
use super::crossmatch::CrossmatchPlan;
use super::map::SkyMap;
use super::watchlist::Watchlist;
use crate::decode::{FieldValue, WATCH_PREFIX};
use crate::sandbox::Crossmatch;

use crate::decode::MAP_PREFIX;

/// What a `map.<name>.<answer>` field gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Inside,
    Prob,
    Credible,
}

impl Answer {
    fn of(name: &str) -> Option<Answer> {
        Some(match name {
            "inside" => Answer::Inside,
            "prob" => Answer::Prob,
            "credible" => Answer::Credible,
            _ => return None,
        })
    }
}

/// A `map.<name>.<answer>` path's two parts.
pub fn split_map(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix(MAP_PREFIX)?.split_once('.')
}

/// Why a map field cannot be given: none when it can.
pub(super) fn map_refusal(sky: &Sky, path: &str) -> Option<String> {
    let rest = path.strip_prefix(MAP_PREFIX)?;
    let shown = crate::text::shown(path, 256);
    let Some((name, answer)) = rest.split_once('.').filter(|(_, a)| !a.contains('.')) else {
        return Some(format!(
            "declared field '{shown}' must be 'map.<name>.inside', 'map.<name>.prob' or \
             'map.<name>.credible'"
        ));
    };
    let Some(map) = sky.map(name) else {
        return Some(format!(
            "declared field '{shown}': this host has no sky map '{}' ({}; {} adds one)",
            crate::text::shown(name, 64),
            super::crossmatch::what_it_has(sky.maps().map(|(n, _)| n)),
            sky.map_setting()
        ));
    };
    match Answer::of(answer) {
        None => Some(format!(
            "declared field '{shown}': a sky map gives 'inside'{}",
            if map.is_probability() {
                ", 'prob' and 'credible'"
            } else {
                " (it is a region, a MOC)"
            }
        )),
        Some(Answer::Prob | Answer::Credible) if !map.is_probability() => Some(format!(
            "declared field '{shown}': map '{name}' is a region (a MOC), not a probability map: \
             it gives only 'map.{name}.inside'"
        )),
        Some(_) => None,
    }
}

/// Why a watchlist field cannot be given: none when it can.
pub(super) fn watch_refusal(sky: &Sky, path: &str) -> Option<String> {
    let rest = path.strip_prefix(WATCH_PREFIX)?;
    let shown = crate::text::shown(path, 256);
    let Some((name, column)) = rest.split_once('.').filter(|(_, c)| !c.contains('.')) else {
        return Some(format!(
            "declared field '{shown}' must be 'watch.<list>.name', '.dist', '.ra' or '.dec'"
        ));
    };
    if sky.watchlist(name).is_none() {
        return Some(format!(
            "declared field '{shown}': this host has no watchlist '{}' ({}; {} adds one)",
            crate::text::shown(name, 64),
            super::crossmatch::what_it_has(sky.watchlists().map(|(n, _)| n)),
            sky.watchlist_setting()
        ));
    }
    WatchColumn::of(column).is_none().then(|| {
        format!("declared field '{shown}': a watchlist gives 'name', 'dist', 'ra' and 'dec'")
    })
}

/// What a `watch.<list>.<column>` field gives per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchColumn {
    Name,
    Dist,
    Ra,
    Dec,
}

impl WatchColumn {
    fn of(name: &str) -> Option<WatchColumn> {
        Some(match name {
            "name" => WatchColumn::Name,
            "dist" => WatchColumn::Dist,
            "ra" => WatchColumn::Ra,
            "dec" => WatchColumn::Dec,
            _ => return None,
        })
    }
}

/// Where one field sits among the plan's values, before the plan is
/// complete (see [`SkyPlan::position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkySlot {
    Crossmatch(usize),
    Map(usize),
    Watch(usize),
}

/// The cross-matches and map answers a set of filters asks for.
#[derive(Default)]
pub struct SkyPlan {
    crossmatches: CrossmatchPlan,
    /// Per map value: the map (none: not given, `Missing`) and what is
    /// read of it.
    maps: Vec<(Option<Arc<SkyMap>>, Answer, String)>,
    /// The watchlists read, each asked once per alert.
    lists: Vec<Arc<Watchlist>>,
    /// Per watchlist value: its list (none: not given, `Missing`) and
    /// column, and the path.
    watched: Vec<(Option<usize>, WatchColumn, String)>,
}

impl SkyPlan {
    /// The index, among the plan's values, of field `path` of a filter
    /// whose manifest declares `crossmatches`; none when the host does
    /// not compute it from the sky.
    pub fn slot(&mut self, sky: &Sky, crossmatches: &[Crossmatch], path: &str) -> Option<SkySlot> {
        if let Some(i) = self.crossmatches.slot(sky, crossmatches, path) {
            return Some(SkySlot::Crossmatch(i));
        }
        if let Some(rest) = path.strip_prefix(WATCH_PREFIX) {
            return Some(SkySlot::Watch(self.watch_slot(sky, rest, path)));
        }
        let (name, answer) = split_map(path)?;
        let map = sky.map(name).cloned();
        // Planned as `Missing` when the host cannot answer (a filter it
        // refuses is never planned; an optional field reads it absent).
        let answer = Answer::of(answer)
            .filter(|a| *a == Answer::Inside || map.as_ref().is_some_and(|m| m.is_probability()));
        let key = path.to_string();
        let i = match self.maps.iter().position(|(_, _, k)| *k == key) {
            Some(i) => i,
            None => {
                let map = if answer.is_some() { map } else { None };
                self.maps.push((map, answer.unwrap_or(Answer::Inside), key));
                self.maps.len() - 1
            }
        };
        Some(SkySlot::Map(i))
    }

    fn watch_slot(&mut self, sky: &Sky, rest: &str, path: &str) -> usize {
        if let Some(i) = self.watched.iter().position(|(_, _, k)| k == path) {
            return i;
        }
        let found = rest.split_once('.').and_then(|(name, column)| {
            let list = sky.watchlist(name)?;
            let column = WatchColumn::of(column)?;
            let at = match self.lists.iter().position(|l| Arc::ptr_eq(l, list)) {
                Some(at) => at,
                None => {
                    self.lists.push(list.clone());
                    self.lists.len() - 1
                }
            };
            Some((at, column))
        });
        self.watched.push((
            found.map(|(at, _)| at),
            found.map_or(WatchColumn::Name, |(_, c)| c),
            path.to_string(),
        ));
        self.watched.len() - 1
    }

    /// How many values [`SkyPlan::append`] appends.
    pub fn len(&self) -> usize {
        self.crossmatches.len() + self.maps.len() + self.watched.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The plan's values at `position` (degrees), appended to `values`:
    /// the cross-matches', then the maps'. A position that is none gives
    /// absent values.
    pub fn append(&mut self, position: Option<(f64, f64)>, values: &mut Vec<FieldValue>) {
        self.crossmatches.append(position, values);
        let at = position.filter(|&(ra, dec)| super::radians(ra, dec).is_some());
        for (map, answer, _) in &self.maps {
            let Some(map) = map else {
                values.push(FieldValue::Missing);
                continue;
            };
            let Some((ra, dec)) = at else {
                values.push(FieldValue::Absent);
                continue;
            };
            let said = map.at(ra, dec);
            values.push(match answer {
                Answer::Inside => FieldValue::Boolean(said.inside),
                Answer::Prob => said.prob.map_or(FieldValue::Missing, FieldValue::Real),
                Answer::Credible => said.credible.map_or(FieldValue::Missing, FieldValue::Real),
            });
        }
        if self.watched.is_empty() {
            return;
        }
        let hits: Vec<Vec<super::watchlist::Hit<'_>>> = match at {
            Some((ra, dec)) => self.lists.iter().map(|l| l.hits(ra, dec)).collect(),
            None => Vec::new(),
        };
        for (list, column, _) in &self.watched {
            let Some(list) = list else {
                values.push(FieldValue::Missing);
                continue;
            };
            let Some(hits) = hits.get(*list) else {
                values.push(FieldValue::Absent);
                continue;
            };
            values.push(match column {
                WatchColumn::Name => {
                    FieldValue::Texts(hits.iter().map(|h| Some(h.name.to_string())).collect())
                }
                WatchColumn::Dist => {
                    FieldValue::Reals(hits.iter().map(|h| Some(h.dist_arcsec)).collect())
                }
                WatchColumn::Ra => FieldValue::Reals(hits.iter().map(|h| Some(h.ra)).collect()),
                WatchColumn::Dec => FieldValue::Reals(hits.iter().map(|h| Some(h.dec)).collect()),
            });
        }
    }

    /// Where a slot [`SkyPlan::slot`] gave sits among the appended
    /// values, once every slot is given (the maps' follow every
    /// cross-match's).
    pub fn position(&self, slot: SkySlot) -> usize {
        match slot {
            SkySlot::Crossmatch(i) => i,
            SkySlot::Map(i) => self.crossmatches.len() + i,
            SkySlot::Watch(i) => self.crossmatches.len() + self.maps.len() + i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::FieldPath;

    #[test]
    fn map_fields_are_refused_naming_the_map_and_what_it_gives() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("base0.json");
        std::fs::write(&file, r#"{"0":[0]}"#).unwrap();
        let mut sky = Sky::new(Default::default(), super::super::crossmatch::FLAG_SETTING);
        sky.add_map("footprint", &file).unwrap();
        let why = |path: &str| {
            sky.refusals(&[], &[FieldPath::parse(path).unwrap()])
                .into_iter()
                .map(|(_, w)| w)
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert_eq!(why("map.footprint.inside"), "");
        assert_eq!(
            why("map.gw.credible"),
            "declared field 'map.gw.credible': this host has no sky map 'gw' (it has footprint; \
             --map NAME=FILE adds one)"
        );
        assert!(why("map.footprint.prob").contains("is a region (a MOC)"));
        assert!(why("map.footprint.area").contains("a sky map gives 'inside' (it is a region"));
        assert!(why("map.footprint").contains("must be 'map.<name>.inside'"));
        assert!(why("map.footprint.inside.x").contains("must be 'map.<name>.inside'"));
        // Optional: given absent when the host cannot answer.
        assert_eq!(why("map.gw.credible?"), "");
        let mut plan = SkyPlan::default();
        let slots: Vec<SkySlot> = [
            "map.footprint.inside",
            "map.gw.credible",
            "map.footprint.inside",
        ]
        .iter()
        .map(|p| plan.slot(&sky, &[], p).unwrap())
        .collect();
        assert_eq!(slots[0], slots[2], "one value per distinct field");
        let mut values = Vec::new();
        plan.append(Some((45.0, 41.8)), &mut values);
        assert_eq!(values, [FieldValue::Boolean(true), FieldValue::Missing]);
        values.clear();
        plan.append(None, &mut values);
        assert_eq!(values, [FieldValue::Absent, FieldValue::Missing]);
    }
}
