//! One record of the registry topic: what the fleet holds of one
//! uploaded filter ([`Record`], JSON), followed by its component's bytes.
//! Its key is `<group>/<filter>`; names and the output topic are derived
//! from the group and filter names, never chosen.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::deploy::deployment_key;
use crate::sandbox::Limits;

/// What the registry holds of one uploaded filter, besides its bytes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub group: String,
    pub name: String,
    /// Disabled filters stay registered but do not run.
    pub enabled: bool,
    pub params: BTreeMap<String, String>,
    pub limits: Limits,
    /// From the component's own manifest.
    pub version: String,
    pub survey: String,
    pub description: String,
    pub sha256: String,
    /// `operator` or the group that uploaded it.
    pub uploaded_by: String,
    pub uploaded_at_ms: u64,
}

impl Record {
    /// The registry key, `<group>/<filter>`.
    pub fn key(&self) -> String {
        key(&self.group, &self.name)
    }

    /// The deployment's name in headers, metrics and logs.
    pub fn deployment_name(&self) -> String {
        deployment_name(&self.group, &self.name)
    }

    /// Where its accepted alerts go: derived, never chosen.
    pub fn output_topic(&self) -> String {
        output_topic(&self.group, &self.name)
    }

    /// Equal keys mean one loaded filter can serve both.
    pub fn load_key(&self) -> String {
        let params: Vec<(String, String)> = self.params.clone().into_iter().collect();
        deployment_key(&self.sha256, &params, &self.limits)
    }
}

pub fn key(group: &str, name: &str) -> String {
    format!("{group}/{name}")
}

pub fn deployment_name(group: &str, name: &str) -> String {
    format!("{group}.{name}")
}

pub fn output_topic(group: &str, name: &str) -> String {
    format!("bandpass.{group}.{name}")
}

/// The first bytes of every record value (format version 1).
const MAGIC: &[u8; 4] = b"BPR1";

/// A record's value: magic, the JSON length (4 bytes, big-endian), the
/// JSON, the component.
pub fn encode(record: &Record, component: &[u8]) -> Vec<u8> {
    frame(MAGIC, record, component)
}

/// `magic`, the JSON's length (4 bytes, big-endian), the JSON, `bytes`:
/// the inverse of [`framed`].
fn frame(magic: &[u8; 4], record: &impl serde::Serialize, bytes: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(record).expect("a record serializes");
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(bytes);
    out
}

/// The inverse of [`encode`].
pub fn decode(value: &[u8]) -> Result<(Record, Bytes), String> {
    let rest = value
        .strip_prefix(MAGIC)
        .ok_or("not a bandpass registry record (no BPR1 prefix)")?;
    let (json, component) = framed(rest)?;
    let record: Record = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok((record, Bytes::copy_from_slice(component)))
}

/// A value after its magic: the JSON (its length first) and the bytes.
fn framed(rest: &[u8]) -> Result<(&[u8], &[u8]), String> {
    if rest.len() < 4 {
        return Err("truncated record".into());
    }
    let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
    let rest = &rest[4..];
    if rest.len() < len {
        return Err("truncated record".into());
    }
    Ok(rest.split_at(len))
}

/// What a group's sky file is: a watchlist or a sky map (a MOC or a
/// probability map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SkyKind {
    Watchlist,
    Map,
}

impl SkyKind {
    /// Its part of the registry key and of the API's path.
    pub fn plural(self) -> &'static str {
        match self {
            SkyKind::Watchlist => "watchlists",
            SkyKind::Map => "maps",
        }
    }
}

/// A group's sky file, read.
#[derive(Clone)]
pub enum SkyFile {
    Watchlist(std::sync::Arc<crate::sky::watchlist::Watchlist>),
    Map(std::sync::Arc<crate::sky::map::SkyMap>),
}

impl SkyFile {
    /// Reads `bytes` as a `kind`, each watchlist target's radius at most
    /// `max_radius_arcsec`; the error says what is wrong with the file.
    pub fn read(kind: SkyKind, bytes: &[u8], max_radius_arcsec: f64) -> anyhow::Result<SkyFile> {
        Ok(match kind {
            SkyKind::Watchlist => SkyFile::Watchlist(std::sync::Arc::new(
                crate::sky::watchlist::Watchlist::parse(bytes, max_radius_arcsec)?,
            )),
            SkyKind::Map => {
                SkyFile::Map(std::sync::Arc::new(crate::sky::map::SkyMap::parse(bytes)?))
            }
        })
    }

    /// Adds it to `sky` as `group`'s `name`.
    pub fn add_to(&self, sky: &mut crate::sky::Sky, group: &str, name: &str) {
        match self {
            SkyFile::Watchlist(l) => sky.add_group_watchlist(group, name, l.clone()),
            SkyFile::Map(m) => sky.add_group_map(group, name, m.clone()),
        }
    }
}

/// What the registry holds of one group's watchlist or sky map, besides
/// its file's bytes. Its key is `<group>/<kind>s/<name>`, which no
/// filter's key (`<group>/<filter>`, one slash) can be.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SkyRecord {
    pub group: String,
    pub kind: SkyKind,
    pub name: String,
    /// Of the file: what outputs' `bandpass-sky` header names (its first
    /// 12 digits).
    pub sha256: String,
    /// After this (milliseconds since 1970), filters read it absent and
    /// the registry drops it; none: until deleted or replaced.
    pub expires_at_ms: Option<u64>,
    pub uploaded_by: String,
    pub uploaded_at_ms: u64,
}

impl SkyRecord {
    pub fn key(&self) -> String {
        sky_key(&self.group, self.kind, &self.name)
    }

    /// Whether it has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

pub fn sky_key(group: &str, kind: SkyKind, name: &str) -> String {
    format!("{group}/{}/{name}", kind.plural())
}

/// The first bytes of a sky record's value (format version 1).
const SKY_MAGIC: &[u8; 4] = b"BPS1";

/// A sky record's value: magic, the JSON length (4 bytes, big-endian),
/// the JSON, the file.
pub fn encode_sky(record: &SkyRecord, file: &[u8]) -> Vec<u8> {
    frame(SKY_MAGIC, record, file)
}

/// What a registry value holds: a filter or a group's sky file.
pub enum Stored {
    Filter(Record, Bytes),
    Sky(SkyRecord, Bytes),
}

/// [`decode`] for either kind of record.
pub fn decode_any(value: &[u8]) -> Result<Stored, String> {
    let Some(rest) = value.strip_prefix(SKY_MAGIC) else {
        return decode(value).map(|(r, c)| Stored::Filter(r, c));
    };
    let (json, file) = framed(rest)?;
    let record: SkyRecord = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(Stored::Sky(record, Bytes::copy_from_slice(file)))
}

/// A group's watchlist or sky map as registered.
#[derive(Clone)]
pub struct SkyEntry {
    pub record: SkyRecord,
    pub file: Bytes,
    pub offset: (i32, i64),
}

/// One registered filter.
#[derive(Clone)]
pub struct Entry {
    pub record: Record,
    pub component: Bytes,
    /// Where the record is in the topic: a new record, a new offset.
    pub offset: (i32, i64),
}

impl Entry {
    /// Whether the component is the one its record's sha256 names.
    pub fn intact(&self) -> Result<(), String> {
        if crate::sandbox::sha256_hex(&self.component) == self.record.sha256 {
            Ok(())
        } else {
            Err("the component is not the one its sha256 names".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            group: "hosts".into(),
            name: "bright".into(),
            enabled: true,
            params: [("max_mag".to_string(), "18".to_string())].into(),
            limits: Limits::default(),
            version: "0.1.0".into(),
            survey: "ztf".into(),
            description: "d".into(),
            sha256: "ab".into(),
            uploaded_by: "hosts".into(),
            uploaded_at_ms: 1,
        }
    }

    #[test]
    fn a_record_reads_back_as_written_with_its_component() {
        let r = record();
        let (back, component) = decode(&encode(&r, b"\0asm...")).unwrap();
        assert_eq!(back, r);
        assert_eq!(&component[..], b"\0asm...");
    }

    #[test]
    fn a_sky_record_reads_back_with_its_file_under_a_key_no_filter_has() {
        let r = SkyRecord {
            group: "hosts".into(),
            kind: SkyKind::Watchlist,
            name: "mine".into(),
            sha256: "ab".into(),
            expires_at_ms: Some(10),
            uploaded_by: "hosts".into(),
            uploaded_at_ms: 1,
        };
        let Ok(Stored::Sky(back, file)) = decode_any(&encode_sky(&r, b"name,ra")) else {
            panic!("not read back as a sky record");
        };
        assert_eq!((back.clone(), &file[..]), (r, &b"name,ra"[..]));
        assert_eq!(back.key(), "hosts/watchlists/mine");
        assert!(!back.expired(9) && back.expired(10));
        assert!(matches!(
            decode_any(&encode(&record(), b"x")),
            Ok(Stored::Filter(..))
        ));
    }

    #[test]
    fn a_value_that_is_not_a_record_is_refused() {
        assert!(decode(b"{}").unwrap_err().contains("BPR1"));
        let mut v = encode(&record(), b"x");
        v.truncate(10);
        assert!(decode(&v).unwrap_err().contains("truncated"));
    }

    #[test]
    fn an_entry_is_intact_when_its_component_is_the_one_its_sha256_names() {
        let component = Bytes::from_static(b"\0asm component");
        let mut entry = Entry {
            record: Record {
                sha256: crate::sandbox::sha256_hex(&component),
                ..record()
            },
            component,
            offset: (0, 0),
        };
        assert_eq!(entry.intact(), Ok(()));
        entry.record.sha256 = "ab".into();
        assert!(entry.intact().unwrap_err().contains("sha256"));
    }

    #[test]
    fn names_and_topics_are_derived_from_group_and_filter() {
        let r = record();
        assert_eq!(r.key(), "hosts/bright");
        assert_eq!(r.deployment_name(), "hosts.bright");
        assert_eq!(r.output_topic(), "bandpass.hosts.bright");
    }
}
