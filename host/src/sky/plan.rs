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
use crate::decode::{FieldPath, FieldValue, WATCH_PREFIX};
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

/// Why a map field of a filter of `group` (none: the operator's) cannot
/// be given: none when it can.
pub(super) fn map_refusal(sky: &Sky, group: Option<&str>, field: &FieldPath) -> Option<String> {
    let path = field.text.as_str();
    let rest = path.strip_prefix(MAP_PREFIX)?;
    let shown = crate::text::shown(path, 256);
    let parts = rest.split_once('.').filter(|(_, a)| !a.contains('.'));
    let Some((name, answer)) = parts else {
        return (!field.optional).then(|| {
            format!(
                "declared field '{shown}' must be 'map.<name>.inside', 'map.<name>.prob' or \
                 'map.<name>.credible'"
            )
        });
    };
    let Some((_, map)) = sky.map_for(group, name) else {
        return absent_refusal(sky, true, group, field, name).map(|why| {
            format!(
                "declared field '{shown}': {why} ({}; {} adds one)",
                super::crossmatch::what_it_has(sky.maps(group).map(|(n, _)| n)),
                sky.map_setting()
            )
        });
    };
    if lenient(sky, group, field) {
        return None;
    }
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

/// Why a field naming map (`maps`) or watchlist `name`, which a filter of
/// `group` does not see, is refused: when the field is required and the
/// file cannot come later (see [`Sky::uploads`]); else none (read
/// absent). Another group's file is as good as none: a filter never sees
/// it, and the refusal does not tell whether one exists.
fn absent_refusal(
    sky: &Sky,
    maps: bool,
    group: Option<&str>,
    field: &FieldPath,
    name: &str,
) -> Option<String> {
    if lenient(sky, group, field) {
        return None;
    }
    let kind = if maps { "sky map" } else { "watchlist" };
    Some(format!(
        "this host has no {kind} '{}'",
        crate::text::shown(name, 64)
    ))
}

/// Whether what `field` asks of a map or watchlist may be missing at
/// load: an optional field, or a group's filter where groups upload (the
/// file may come, be replaced by another kind, or expire; it reads
/// absent meanwhile, and the upload was checked, see [`Sky::missing`]).
fn lenient(sky: &Sky, group: Option<&str>, field: &FieldPath) -> bool {
    field.optional || (sky.uploads && group.is_some())
}

impl Sky {
    /// Why an upload of `group` is refused though it would load: a
    /// required field naming a sky map or watchlist the group does not
    /// have (nor the operator), most likely a typo, or asking what the
    /// one it has cannot give (`prob` of a region). A record loading
    /// later is not refused for these: the file may have expired or been
    /// replaced since, and the field reads absent.
    pub fn missing(&self, group: Option<&str>, fields: &[FieldPath]) -> Option<String> {
        for f in fields.iter().filter(|f| !f.optional) {
            let (maps, rest) = if let Some(rest) = f.text.strip_prefix(MAP_PREFIX) {
                (true, rest)
            } else if let Some(rest) = f.text.strip_prefix(WATCH_PREFIX) {
                (false, rest)
            } else {
                continue;
            };
            let Some((name, _)) = rest.split_once('.') else {
                continue;
            };
            let (kind, route, flag, seen) = if maps {
                if self.map_for(group, name).is_some() {
                    continue;
                }
                let seen = super::crossmatch::what_it_has(self.maps(group).map(|(n, _)| n));
                ("sky map", "maps", "--map", seen)
            } else {
                if self.watchlist_for(group, name).is_some() {
                    continue;
                }
                let seen = super::crossmatch::what_it_has(self.watchlists(group).map(|(n, _)| n));
                ("watchlist", "watchlists", "--watchlist", seen)
            };
            let name = crate::text::shown(name, 64);
            let group = group.unwrap_or("GROUP");
            return Some(format!(
                "declared field '{}': your group has no {kind} '{name}' and the operator \
                 publishes none ({seen}): upload it first (`bandpass upload {flag} {name}=FILE`, \
                 or PUT /v1/groups/{group}/{route}/{name}), or declare the field optional to \
                 read it absent until it comes",
                crate::text::shown(&f.text, 256)
            ));
        }
        let mut strict = self.clone();
        strict.uploads = false;
        fields.iter().filter(|f| !f.optional).find_map(|f| {
            map_refusal(&strict, group, f).or_else(|| watch_refusal(&strict, group, f))
        })
    }
}

/// Why a watchlist field of a filter of `group` cannot be given: none
/// when it can.
pub(super) fn watch_refusal(sky: &Sky, group: Option<&str>, field: &FieldPath) -> Option<String> {
    let path = field.text.as_str();
    let rest = path.strip_prefix(WATCH_PREFIX)?;
    let shown = crate::text::shown(path, 256);
    let Some((name, column)) = rest.split_once('.').filter(|(_, c)| !c.contains('.')) else {
        return (!field.optional).then(|| {
            format!(
                "declared field '{shown}' must be 'watch.<list>.name', '.dist', '.ra' or '.dec'"
            )
        });
    };
    if sky.watchlist_for(group, name).is_none() {
        return absent_refusal(sky, false, group, field, name).map(|why| {
            format!(
                "declared field '{shown}': {why} ({}; {} adds one)",
                super::crossmatch::what_it_has(sky.watchlists(group).map(|(n, _)| n)),
                sky.watchlist_setting()
            )
        });
    }
    (WatchColumn::of(column).is_none() && !lenient(sky, group, field)).then(|| {
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

/// Whether a map or watchlist field names one a group may upload later
/// (or that has expired): read absent meanwhile, not missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Later(bool);

impl Later {
    fn of(sky: &Sky, group: Option<&str>, found: bool) -> Later {
        Later(!found && sky.uploads && group.is_some())
    }

    /// A value's key in the plan: its path, after the key its map or
    /// list is held under (two groups' of one name are two), or marked
    /// as one to come.
    fn key(self, held: Option<&str>, path: &str) -> String {
        match (held, self.0) {
            (Some(held), _) => format!("{held}\0{path}"),
            (None, true) => format!("later\0{path}"),
            (None, false) => path.to_string(),
        }
    }

    /// What the field reads while there is none.
    fn value(self) -> FieldValue {
        if self.0 {
            FieldValue::Absent
        } else {
            FieldValue::Missing
        }
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
    /// read of it, and its key (the path, after the key the map is held
    /// under when there is one).
    maps: Vec<(Option<Arc<SkyMap>>, Answer, String, Later)>,
    /// The watchlists read, each asked once per alert.
    lists: Vec<Arc<Watchlist>>,
    /// Per watchlist value: its list (none: not given, `Missing`) and
    /// column, and its key (as a map value's).
    watched: Vec<(Option<usize>, WatchColumn, String, Later)>,
}

impl SkyPlan {
    /// The index, among the plan's values, of field `path` of a filter
    /// whose manifest declares `crossmatches`; none when the host does
    /// not compute it from the sky.
    pub fn slot(
        &mut self,
        sky: &Sky,
        group: Option<&str>,
        crossmatches: &[Crossmatch],
        path: &str,
    ) -> Option<SkySlot> {
        if let Some(i) = self.crossmatches.slot(sky, crossmatches, path) {
            return Some(SkySlot::Crossmatch(i));
        }
        if let Some(rest) = path.strip_prefix(WATCH_PREFIX) {
            return Some(SkySlot::Watch(self.watch_slot(sky, group, rest, path)));
        }
        let (name, answer) = split_map(path)?;
        let found = sky.map_for(group, name);
        let map = found.map(|(_, m)| m.clone());
        // Planned as `Missing` when the host cannot answer (a filter it
        // refuses is never planned; an optional field reads it absent).
        let answer = Answer::of(answer)
            .filter(|a| *a == Answer::Inside || map.as_ref().is_some_and(|m| m.is_probability()));
        // A group's map replaced by a region no longer answers `prob`:
        // absent, as if the map had gone.
        let later = Later::of(sky, group, found.is_some() && answer.is_some());
        let key = later.key(found.map(|(k, _)| k), path);
        let i = match self.maps.iter().position(|(_, _, k, _)| *k == key) {
            Some(i) => i,
            None => {
                let map = if answer.is_some() { map } else { None };
                self.maps
                    .push((map, answer.unwrap_or(Answer::Inside), key, later));
                self.maps.len() - 1
            }
        };
        Some(SkySlot::Map(i))
    }

    fn watch_slot(&mut self, sky: &Sky, group: Option<&str>, rest: &str, path: &str) -> usize {
        let found = rest
            .split_once('.')
            .and_then(|(name, _)| sky.watchlist_for(group, name));
        let column = rest
            .split_once('.')
            .and_then(|(_, column)| WatchColumn::of(column));
        let later = Later::of(sky, group, found.is_some() && column.is_some());
        let key = later.key(found.map(|(k, _)| k), path);
        if let Some(i) = self.watched.iter().position(|(_, _, k, _)| *k == key) {
            return i;
        }
        let found = rest.split_once('.').and_then(|(_, column)| {
            let (_, list) = found?;
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
            key,
            later,
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
        for (map, answer, _, later) in &self.maps {
            let Some(map) = map else {
                values.push(later.value());
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
        for (list, column, _, later) in &self.watched {
            let Some(list) = list else {
                values.push(later.value());
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
            sky.refusals(None, &[], &[FieldPath::parse(path).unwrap()])
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
        .map(|p| plan.slot(&sky, None, &[], p).unwrap())
        .collect();
        assert_eq!(slots[0], slots[2], "one value per distinct field");
        let mut values = Vec::new();
        plan.append(Some((45.0, 41.8)), &mut values);
        assert_eq!(values, [FieldValue::Boolean(true), FieldValue::Missing]);
        values.clear();
        plan.append(None, &mut values);
        assert_eq!(values, [FieldValue::Absent, FieldValue::Missing]);
    }

    /// A list of one target at (10, 20) within 5 arcseconds, named `who`.
    fn list(who: &str) -> Arc<Watchlist> {
        let csv = format!("name,ra,dec,radius_arcsec\n{who},10,20,5\n");
        Arc::new(Watchlist::parse(csv.as_bytes(), 60.0).unwrap())
    }

    #[test]
    fn a_group_reads_its_own_lists_before_the_operator_s_and_never_another_group_s() {
        let mut sky = Sky::new(Default::default(), super::super::crossmatch::CONFIG_SETTING);
        sky.uploads = true;
        sky.add_group_watchlist("hosts", "mine", list("hosts-target"));
        sky.add_group_watchlist("rivals", "theirs", list("rivals-target"));
        sky.add_group_watchlist("rivals", "mine", list("rivals-own"));
        let region = SkyMap::parse(br#"{"0":[0]}"#).unwrap();
        sky.add_group_map("hosts", "gw", Arc::new(region));
        let field = |p: &str| FieldPath::parse(p).unwrap();
        let why = |group: Option<&str>, path: &str| {
            sky.refusals(group, &[], &[field(path)])
                .into_iter()
                .map(|(_, w)| w)
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert_eq!(why(Some("hosts"), "watch.mine.name"), "");
        // Another group's is as good as none: refused at upload exactly
        // as a name nobody has (so a refusal tells nothing of others'
        // files), and never read.
        let theirs = sky
            .missing(Some("hosts"), &[field("watch.theirs.name")])
            .unwrap();
        let nobody = sky
            .missing(Some("hosts"), &[field("watch.nobodys.name")])
            .unwrap();
        assert_eq!(
            theirs.replace("theirs", "X"),
            nobody.replace("nobodys", "X")
        );
        assert!(!theirs.contains("rivals"), "{theirs}");
        // A group's probability map replaced by a region: `prob` reads
        // absent in the running filter, and is refused at upload.
        assert_eq!(why(Some("hosts"), "map.gw.prob"), "");
        let refused = sky.missing(Some("hosts"), &[field("map.gw.prob")]).unwrap();
        assert!(refused.contains("map 'gw' is a region"), "{refused}");
        let mut plan = SkyPlan::default();
        plan.slot(&sky, Some("hosts"), &[], "map.gw.prob").unwrap();
        let mut values = Vec::new();
        plan.append(Some((45.0, 41.8)), &mut values);
        assert_eq!(values, [FieldValue::Absent]);
        // A missing one may come (or has expired): read absent at load,
        // refused only at upload.
        assert_eq!(why(Some("hosts"), "watch.later.name"), "");
        let missing = sky
            .missing(Some("hosts"), &[field("watch.later.name")])
            .unwrap();
        assert!(
            missing.contains("your group has no watchlist 'later'"),
            "{missing}"
        );
        assert!(missing.contains("it has mine"), "{missing}");
        assert!(
            sky.missing(Some("hosts"), &[field("watch.later.name?")])
                .is_none()
        );
        // Two groups' lists of one name are two values.
        let mut plan = SkyPlan::default();
        let ours = plan
            .slot(&sky, Some("hosts"), &[], "watch.mine.name")
            .unwrap();
        let theirs = plan
            .slot(&sky, Some("rivals"), &[], "watch.mine.name")
            .unwrap();
        assert_ne!(ours, theirs);
        // One to come (or expired) reads absent for a group's filter; for
        // the operator's, whose lists come only from the config, missing.
        plan.slot(&sky, Some("hosts"), &[], "watch.later.name")
            .unwrap();
        plan.slot(&sky, None, &[], "watch.later.name").unwrap();
        let mut values = Vec::new();
        plan.append(Some((10.0, 20.0)), &mut values);
        let name = |s: &str| FieldValue::Texts(vec![Some(s.to_string())]);
        assert_eq!(
            values,
            [
                name("hosts-target"),
                name("rivals-own"),
                FieldValue::Absent,
                FieldValue::Missing
            ]
        );
        // Outputs name the version each read.
        let versions = sky
            .versions_read(
                Some("hosts"),
                &[field("watch.mine.name"), field("watch.mine.dist")],
            )
            .unwrap();
        assert_eq!(
            versions,
            format!(
                "watch.mine={}",
                sky.watchlist_for(Some("hosts"), "mine")
                    .unwrap()
                    .1
                    .version()
            )
        );
        assert_eq!(versions.len(), "watch.mine=".len() + 12);
    }

    #[test]
    fn a_group_s_list_hides_the_operator_s_of_its_name_from_that_group_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ops.csv");
        std::fs::write(
            &file,
            "name,ra,dec,radius_arcsec\noperator-target,10,20,5\n",
        )
        .unwrap();
        let mut sky = Sky::new(Default::default(), super::super::crossmatch::CONFIG_SETTING);
        sky.add_watchlist("mine", &file).unwrap();
        sky.add_group_watchlist("hosts", "mine", list("hosts-target"));
        let mut plan = SkyPlan::default();
        plan.slot(&sky, Some("hosts"), &[], "watch.mine.name")
            .unwrap();
        plan.slot(&sky, Some("rivals"), &[], "watch.mine.name")
            .unwrap();
        plan.slot(&sky, None, &[], "watch.mine.name").unwrap();
        let mut values = Vec::new();
        plan.append(Some((10.0, 20.0)), &mut values);
        let name = |s: &str| FieldValue::Texts(vec![Some(s.to_string())]);
        assert_eq!(
            values,
            [name("hosts-target"), name("operator-target")],
            "the rivals' filter and the operator's share the operator's list"
        );
        let seen: Vec<&str> = sky.watchlists(Some("hosts")).map(|(n, _)| n).collect();
        assert_eq!(seen, ["mine"], "listed once, as the group reads it");
    }
}
