//! Decoding alerts: framing detection, writer schemas cached by
//! fingerprint, and a projection decoder that extracts only the declared
//! field paths and skips everything else.
//!
//! Owns: turning one message's bytes into the values of a fixed list of
//! field paths. Must never: panic on any input, re-parse a schema it has
//! seen, or copy the alert's bytes (the original bytes are forwarded
//! unchanged downstream).
//!
//! How it works:
//! - `container`: the Avro Object Container File framing (header, blocks,
//!   and the specification's codecs: `null`, `deflate`, `snappy`,
//!   `zstandard`, `bzip2`, `xz`; a message decompresses to at most 256
//!   MiB). Confluent wire format (0x00 + big-endian schema id) is
//!   handled in [`Decoder`], with the schema from a
//!   [`SchemaSource`]: a directory (`<id>.avsc`, or Rubin's
//!   `v{M}_{m}/lsst.v{M}_{m}.alert.avsc` with its sibling files) or a
//!   schema registry.
//! - `schema_registry`: the Confluent-API schema registry client
//!   ([`SchemaRegistry`]): `GET /schemas/ids/{id}`, bounded retries, basic auth;
//!   it fetches each id once per process. "Did not answer" is the one
//!   [`DecodeError::is_transient`] failure: it is never cached, the next
//!   message with that id asks again.
//! - `schema`: our own walk over the schema JSON (serde_json) into an
//!   arena of nodes. It ignores defaults, so ZTF's `["float", "null"]` with
//!   `"default": null` is accepted; named types resolve by full name.
//!   Path resolution and the list of leaf paths live there too.
//! - `plan`: per writer schema, a plan compiled for the decoder's paths
//!   that walks the binary record, reads the requested leaves and skips the
//!   rest (fixed-size runs in one jump, strings by length, sized array and
//!   map blocks by their byte size; no allocation for skipped values).
//! - Writer schemas from container headers are cached by the xxh3 of their
//!   text (the hash is the map key; a hit is confirmed by a full byte
//!   compare); schemas from a directory or a registry are cached by id.
//!   Each is parsed and compiled once per [`Decoder`].
//!
//! Length: this file is about 700 lines because the [`Decoder`]'s schema
//! cache (keyed by fingerprint and by id, bounded, with its locks) and
//! its two framings share that private state; the path ([`FieldPath`])
//! and the errors ([`DecodeError`]) have files of their own.

mod container;
mod error;
mod path;
mod plan;
mod schema;
mod schema_registry;
#[cfg(test)]
mod tests;
mod vocabulary;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

pub use container::single_record;
use container::{Codec, MAGIC};
use plan::{Fault, Plan, Reader, Walker};
use schema::{Schema, SchemaError, Siblings};

pub use error::DecodeError;
pub use path::{FieldPath, MAX_PATH_BYTES, MAX_PATH_SEGMENTS, PathError};
pub use schema_registry::{FAILURE_MEMORY, LOOKUP_BUDGET, SchemaRegistry};
pub use vocabulary::{PathCheck, Vocabulary, nearest};

/// Most records one container message may hold: a ZTF message holds
/// one; 256 MiB decompressed (the most of one message) is about 4,000
/// ZTF alerts. Each record costs its decoded values, so a message of many
/// tiny records is refused rather than held.
pub const MAX_RECORDS_PER_MESSAGE: usize = 20_000;

/// Declared paths under this prefix (`history.magpsf`) are not in any
/// alert's schema: they name the columns of an object's light curve as
/// the host keeps it (`memory::history`), and are checked against what it
/// keeps instead.
pub const HISTORY_PREFIX: &str = "history.";

/// Declared paths under this prefix (`xmatch.stars.dist`) name the
/// columns of a cross-match the filter's manifest asks for (`sky`), not an
/// alert's fields.
pub const XMATCH_PREFIX: &str = "xmatch.";

/// Declared paths under this prefix (`map.gw.credible`) name what a sky
/// map the host holds says at the alert (`sky::map`).
pub const MAP_PREFIX: &str = "map.";

/// Declared paths under this prefix (`watch.targets.name`) name the
/// targets of a watchlist the host holds that the alert falls within.
pub const WATCH_PREFIX: &str = "watch.";

/// Whether a declared path names something the host computes (an
/// object's history, a cross-match, a sky map's answer, a watchlist's
/// targets) rather than a path of the alert's schema.
pub fn is_host_path(text: &str) -> bool {
    [HISTORY_PREFIX, XMATCH_PREFIX, MAP_PREFIX, WATCH_PREFIX]
        .iter()
        .any(|p| text.starts_with(p))
}

/// Most bytes the standalone messages split from one container may make
/// together (each record gets the container's header again).
pub const MAX_SPLIT_BYTES: usize = 512 << 20;

/// The value of one path in one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// This alert's schema has no such path.
    Missing,
    /// Null (the field, or a record/array on the way to it).
    Absent,
    Boolean(bool),
    Integer(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
    Booleans(Vec<Option<bool>>),
    Integers(Vec<Option<i64>>),
    Reals(Vec<Option<f64>>),
    Texts(Vec<Option<String>>),
}

impl FieldValue {
    /// The bytes this value takes in a filter's arguments beyond its
    /// field's fixed 9 (a kind and 8 bytes): a text's or bytes' length,
    /// a column's elements with their presence mask, a text column's
    /// texts and 4-byte ends.
    pub fn carried_bytes(&self) -> usize {
        match self {
            FieldValue::Missing
            | FieldValue::Absent
            | FieldValue::Boolean(_)
            | FieldValue::Integer(_)
            | FieldValue::Real(_) => 0,
            FieldValue::Text(s) => s.len(),
            FieldValue::Bytes(b) => b.len(),
            FieldValue::Booleans(c) => c.len(),
            FieldValue::Integers(c) => 9 * c.len(),
            FieldValue::Reals(c) => 9 * c.len(),
            FieldValue::Texts(c) => c
                .iter()
                .map(|s| s.as_ref().map_or(0, String::len) + 5)
                .sum(),
        }
    }
}

/// What the decoder knows of one writer schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    /// Full name of the root record, e.g. `ztf.alert`, `lsst.v7_0.alert`.
    pub full_name: String,
    /// Survey, from the first namespace component (`lsst` reads as `rubin`).
    pub survey: String,
    /// The schema's `version` attribute where it has one.
    pub version: Option<String>,
    /// Fingerprint of the schema text the cache is keyed by.
    pub fingerprint: u64,
}

/// One decoded alert.
#[derive(Debug, Clone)]
pub struct DecodedAlert {
    pub schema: Arc<SchemaInfo>,
    /// One value per path given to [`Decoder::new`], in that order.
    pub values: Vec<FieldValue>,
    /// A standalone message holding just this alert, byte-identical to
    /// the input when the input held one alert.
    pub raw: Bytes,
}

/// Where Confluent wire-format schema ids are looked up.
#[derive(Debug, Clone, Default)]
pub enum SchemaSource {
    /// No registry: wire-format messages are refused.
    #[default]
    None,
    /// A local directory: `<id>.avsc` files, or Rubin's layout.
    Dir(PathBuf),
    /// A Confluent-API schema registry; each schema must be Avro and
    /// self-contained (no `references`).
    Registry(SchemaRegistry),
}

/// Most schemas kept per cache; past it the cache starts afresh (a
/// stream does not carry hundreds of writer schemas; garbage headers
/// must not grow memory without bound).
const MAX_CACHED_SCHEMAS: usize = 512;

/// The fingerprint is already a hash: use it as the map's hash.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FingerprintMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

/// One writer schema, parsed and compiled for the decoder's paths.
#[derive(Debug)]
struct Compiled {
    info: Arc<SchemaInfo>,
    /// The schema text, for the full compare on a fingerprint hit.
    text: Box<[u8]>,
    schema: Schema,
    plan: Plan,
}

/// Decodes messages into the values of a fixed list of paths.
///
/// Framing is detected per message (Avro container file, or Confluent
/// wire format with the schema from [`SchemaSource`]). Each writer schema
/// is parsed once and compiled into a plan that reads only the paths
/// asked for; see the module docs. Shared by worker threads (`Send +
/// Sync`).
///
/// Path semantics: a path through records and unions (the branch written;
/// null gives [`FieldValue::Absent`]) is a scalar; a path crossing one
/// array (`prv_candidates.magpsf`, or a path ending at an array of
/// primitives) is a column with one entry per element (None where the
/// element's value is null). A path the schema lacks, that crosses two
/// arrays, goes into a map, ends at a record, map or array of records, or
/// is a column of bytes, is [`FieldValue::Missing`];
/// [`Decoder::check_path`] says why.
pub struct Decoder {
    paths: Vec<String>,
    schemas: SchemaSource,
    /// The distinct paths, split (None: not a valid path).
    unique: Vec<Option<Vec<String>>>,
    /// For each of `paths`, its index in `unique`; None when they are the
    /// same list.
    index: Option<Vec<usize>>,
    by_text: RwLock<FingerprintMap<Vec<Arc<Compiled>>>>,
    by_id: RwLock<HashMap<u32, Arc<Compiled>>>,
    /// The last header schema that failed to parse (text, why), so that a
    /// stream of messages with the same broken schema is not parsed again
    /// for each.
    last_bad: RwLock<Option<(Box<[u8]>, DecodeError)>>,
    parses: AtomicU64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("paths", &self.paths)
            .field("schemas", &self.schemas)
            .field("schemas_parsed", &self.schemas_parsed())
            .finish()
    }
}

fn split_path(p: &str) -> Option<Vec<String>> {
    FieldPath::parse(p).ok().map(|fp| fp.segments)
}

fn hex_head(msg: &[u8]) -> String {
    let n = msg.len().min(8);
    let mut s: Vec<String> = msg[..n].iter().map(|b| format!("{b:02x}")).collect();
    if msg.len() > n {
        s.push("...".into());
    }
    s.join(" ")
}

impl Decoder {
    /// A decoder for these paths (plain dotted text; a trailing `?` is
    /// ignored). A path that is not valid yields `Missing` everywhere.
    pub fn new(paths: Vec<String>, schemas: SchemaSource) -> Decoder {
        let mut unique: Vec<Option<Vec<String>>> = Vec::new();
        let mut seen: HashMap<Option<Vec<String>>, usize> = HashMap::new();
        let mut index = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let split = split_path(p);
            // Invalid paths stay distinct (they cannot be merged by text).
            let key = split.clone().or_else(|| Some(vec![format!("\0{i}")]));
            let at = *seen.entry(key).or_insert_with(|| {
                unique.push(split);
                unique.len() - 1
            });
            index.push(at);
        }
        let identity = index.iter().enumerate().all(|(i, &u)| i == u);
        Decoder {
            paths,
            schemas,
            unique,
            index: if identity { None } else { Some(index) },
            by_text: RwLock::new(FingerprintMap::default()),
            by_id: RwLock::new(HashMap::new()),
            last_bad: RwLock::new(None),
            parses: AtomicU64::new(0),
        }
    }

    /// The paths this decoder extracts, in value order.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// How many schemas this decoder has parsed (each writer schema once;
    /// for tests and metrics).
    pub fn schemas_parsed(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    /// Decodes one message (which may hold several alerts; a container
    /// with no records is refused as [`DecodeError::NoRecords`]).
    pub fn decode(&self, message: &Bytes) -> Result<Vec<DecodedAlert>, DecodeError> {
        if message.is_empty() {
            Err(DecodeError::Empty)
        } else if message.starts_with(MAGIC) {
            let alerts = self.decode_container(message)?;
            if alerts.is_empty() {
                return Err(DecodeError::NoRecords);
            }
            Ok(alerts)
        } else if message[0] == 0 {
            self.decode_wire(message)
        } else {
            Err(DecodeError::NotAvro {
                head: hex_head(message),
            })
        }
    }

    /// Parses a self-contained writer schema (as a container header holds
    /// it) and caches it, e.g. to check a filter's paths before alerts
    /// arrive.
    pub fn register_schema(&self, schema_json: &str) -> Result<Arc<SchemaInfo>, DecodeError> {
        self.compiled_for_text(schema_json.as_bytes(), "the given schema")
            .map(|c| c.info.clone())
    }

    /// The writer schema for a Confluent schema id, from the schema source.
    pub fn schema_for_id(&self, id: u32) -> Result<Arc<SchemaInfo>, DecodeError> {
        self.compiled_for_id(id).map(|c| c.info.clone())
    }

    /// Whether `writer_schema` (a schema's JSON text) is the schema the
    /// schema source has under `id`, compared in Avro's canonical form
    /// (whitespace, docs and attribute order aside), or field by field
    /// for a schema kept in several files.
    pub fn is_schema_of_id(&self, id: u32, writer_schema: &[u8]) -> Result<bool, DecodeError> {
        let registered = self.compiled_for_id(id)?;
        let canonical = |text: &[u8]| {
            std::str::from_utf8(text)
                .ok()
                .and_then(|t| apache_avro::Schema::parse_str(t).ok())
                .map(|s| s.canonical_form())
        };
        if let (Some(w), Some(r)) = (canonical(writer_schema), canonical(&registered.text)) {
            return Ok(w == r);
        }
        // A schema spread over several files (Rubin's layout), or one
        // apache-avro cannot put in canonical form: the same root record
        // and the same fields in the same order, with the same types.
        let writer = self.compiled_for_text(writer_schema, "the alert's writer schema")?;
        Ok(writer.info.full_name == registered.info.full_name
            && writer.schema.leaf_paths() == registered.schema.leaf_paths())
    }

    /// Every path of a writer schema this decoder has seen that yields a
    /// value, with its Avro type (`candidate.magpsf` → `float`,
    /// `candidate.drb` → `null|float`, `prv_candidates.jd` →
    /// `array<double>`); for "did you mean" suggestions. None if the
    /// schema is unknown to this decoder.
    pub fn schema_fields(&self, info: &SchemaInfo) -> Option<Vec<(String, String)>> {
        self.find(info).map(|c| c.schema.leaf_paths())
    }

    /// Whether `path` yields a value under a schema this decoder has seen;
    /// the error says why not (no such field, a record not a value, two
    /// arrays crossed, ...).
    pub fn check_path(&self, info: &SchemaInfo, path: &str) -> Result<(), String> {
        let c = self
            .find(info)
            .ok_or_else(|| format!("schema {} is not known to this decoder", info.full_name))?;
        let segs = FieldPath::parse(path).map_err(|e| e.to_string())?.segments;
        c.schema.resolve(&segs).map(|_| ())
    }

    /// Adds a writer schema this decoder has seen to `vocabulary`; false
    /// if the schema is unknown to this decoder.
    pub fn add_schema_to(&self, info: &SchemaInfo, vocabulary: &mut Vocabulary) -> bool {
        self.find(info)
            .map(|c| vocabulary.add_alert_schema(&c.schema))
            .is_some()
    }

    fn find(&self, info: &SchemaInfo) -> Option<Arc<Compiled>> {
        let matches = |c: &&Arc<Compiled>| {
            c.info.fingerprint == info.fingerprint && c.info.full_name == info.full_name
        };
        if let Some(v) = read(&self.by_text).get(&info.fingerprint)
            && let Some(c) = v.iter().find(matches)
        {
            return Some(c.clone());
        }
        read(&self.by_id).values().find(matches).cloned()
    }

    fn build(
        &self,
        text: &[u8],
        fingerprint: u64,
        siblings: Option<&mut Siblings<'_>>,
        origin: &str,
    ) -> Result<Compiled, DecodeError> {
        self.parses.fetch_add(1, Ordering::Relaxed);
        let schema = schema::parse(text, siblings).map_err(|e| match e {
            SchemaError::Invalid(reason) => DecodeError::BadSchema {
                origin: origin.to_string(),
                reason,
            },
            SchemaError::RootNotRecord(root) => DecodeError::RootNotRecord {
                origin: origin.to_string(),
                root,
            },
        })?;
        if !schema.duplicates.is_empty() {
            warn_duplicates(&schema, text, origin);
        }
        let plan = plan::compile(&schema, &self.unique);
        let info = Arc::new(SchemaInfo {
            full_name: schema.full_name().to_string(),
            survey: schema.survey(),
            version: schema.version(),
            fingerprint,
        });
        Ok(Compiled {
            info,
            text: text.into(),
            schema,
            plan,
        })
    }

    fn compiled_for_text(&self, text: &[u8], origin: &str) -> Result<Arc<Compiled>, DecodeError> {
        let fp = xxh3_64(text);
        if let Some(v) = read(&self.by_text).get(&fp)
            && let Some(c) = v.iter().find(|c| *c.text == *text)
        {
            return Ok(c.clone());
        }
        if let Some((bad, e)) = read(&self.last_bad).as_ref()
            && **bad == *text
        {
            return Err(e.clone());
        }
        let built = match self.build(text, fp, None, origin) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                *write(&self.last_bad) = Some((text.into(), e.clone()));
                return Err(e);
            }
        };
        let mut cache = write(&self.by_text);
        if cache.len() >= MAX_CACHED_SCHEMAS {
            cache.clear();
        }
        let v = cache.entry(fp).or_default();
        if let Some(c) = v.iter().find(|c| *c.text == *text) {
            return Ok(c.clone());
        }
        v.push(built.clone());
        Ok(built)
    }

    fn compiled_for_id(&self, id: u32) -> Result<Arc<Compiled>, DecodeError> {
        if let Some(c) = read(&self.by_id).get(&id) {
            return Ok(c.clone());
        }
        let built = match &self.schemas {
            SchemaSource::None => return Err(DecodeError::NoSchemaSource { id }),
            SchemaSource::Dir(dir) => self.build_from_dir(dir, id)?,
            SchemaSource::Registry(registry) => {
                let text = registry.schema_text(id)?;
                let origin = format!(
                    "schema id {id} in the schema registry at {}",
                    registry.url()
                );
                self.build(&text, xxh3_64(&text), None, &origin)?
            }
        };
        let built = Arc::new(built);
        let mut cache = write(&self.by_id);
        if cache.len() >= MAX_CACHED_SCHEMAS {
            cache.clear();
        }
        Ok(cache.entry(id).or_insert(built).clone())
    }

    /// Builds schema `id` from a directory (see [`locate_schema`]).
    fn build_from_dir(&self, dir: &Path, id: u32) -> Result<Compiled, DecodeError> {
        let (file, text, sibling_dir) = locate_schema(dir, id)?;
        let text = unwrap_registry_envelope(text);
        let mut siblings = Siblings {
            dir: &sibling_dir,
            texts: Vec::new(),
        };
        let origin = file.display().to_string();
        // Parse first (it reads the sibling files), then fingerprint the
        // text of every file used.
        let mut built = self.build(&text, 0, Some(&mut siblings), &origin)?;
        let mut all = text.clone();
        for t in &siblings.texts {
            all.extend_from_slice(t);
        }
        let fingerprint = xxh3_64(&all);
        built.info = Arc::new(SchemaInfo {
            fingerprint,
            ..SchemaInfo::clone(&built.info)
        });
        built.text = all.into();
        Ok(built)
    }

    /// Maps duplicate paths back to the caller's order.
    fn arrange(&self, values: Vec<FieldValue>) -> Vec<FieldValue> {
        match &self.index {
            None => values,
            Some(index) => index
                .iter()
                .map(|&i| values.get(i).cloned().unwrap_or(FieldValue::Missing))
                .collect(),
        }
    }

    fn decode_container(&self, msg: &Bytes) -> Result<Vec<DecodedAlert>, DecodeError> {
        let header = container::parse_header(msg)?;
        let c = self.compiled_for_text(&msg[header.schema.clone()], "the container header")?;
        let walker = Walker { schema: &c.schema };
        // (values, block, record range within the block's data)
        let mut records: Vec<(Vec<FieldValue>, usize, std::ops::Range<usize>)> = Vec::new();
        let mut blocks: Vec<Cow<'_, [u8]>> = Vec::new();
        // Bytes decompressed so far, held to container::MAX_DECOMPRESSED.
        let mut decompressed = 0;
        let mut pos = header.end;
        while pos < msg.len() {
            let (block, next) = container::read_block(msg, pos, &header)?;
            let (data, base): (Cow<'_, [u8]>, Option<usize>) = match header.codec {
                Codec::Null => (
                    Cow::Borrowed(&msg[block.data.clone()]),
                    Some(block.data.start),
                ),
                codec => {
                    let data = container::decompress(
                        codec,
                        &msg[block.data.clone()],
                        block.offset,
                        decompressed,
                    )?;
                    decompressed += data.len();
                    (Cow::Owned(data), None)
                }
            };
            // A record running past its block's end: the block (or the
            // schema) is wrong; the message itself is whole (a cut message
            // fails above, on the block's size).
            let fault = |f: Fault| match (base, f.invalid) {
                (Some(base), Some(_)) => DecodeError::from_fault(Fault {
                    offset: f.offset + base,
                    ..f
                }),
                (Some(base), None) => DecodeError::CorruptBlock {
                    offset: block.offset,
                    reason: format!(
                        "its records run past its end (the {} at byte {})",
                        f.what,
                        f.offset + base
                    ),
                },
                (None, _) => DecodeError::CorruptBlock {
                    offset: block.offset,
                    reason: format!(
                        "its decompressed record data is {} at byte {}: {}",
                        if f.invalid.is_some() {
                            "invalid"
                        } else {
                            "cut short"
                        },
                        f.offset,
                        f.invalid.unwrap_or(f.what)
                    ),
                },
            };
            let mut r = Reader::new(&data);
            // A guard against absurd counts only (one record too many is
            // left to the walk, which says precisely what is missing).
            let too_many = if c.plan.min_record > 0 {
                block.count > (data.len() / c.plan.min_record as usize) as u64 + 1
            } else {
                block.count > r.budget
            };
            if too_many {
                return Err(DecodeError::CorruptBlock {
                    offset: block.offset,
                    reason: format!("it claims {} records in {} bytes", block.count, data.len()),
                });
            }
            if records.len() as u64 + block.count > MAX_RECORDS_PER_MESSAGE as u64 {
                return Err(DecodeError::TooManyRecords {
                    records: records.len().saturating_add(block.count as usize),
                    bytes: 0,
                });
            }
            for _ in 0..block.count {
                let start = r.pos;
                let mut values = c.plan.template.clone();
                walker
                    .run(&c.plan.root, &mut r, &mut values)
                    .map_err(&fault)?;
                records.push((values, blocks.len(), start..r.pos));
            }
            if r.pos != data.len() {
                return Err(DecodeError::CorruptBlock {
                    offset: block.offset,
                    reason: format!(
                        "{} bytes follow its {} records",
                        data.len() - r.pos,
                        block.count
                    ),
                });
            }
            blocks.push(data);
            pos = next;
        }
        let single = records.len() == 1;
        if !single {
            // Each record becomes a container of its own: the header again
            // (schema and all) plus the record.
            let bytes = records.iter().fold(0usize, |sum, (_, _, range)| {
                sum.saturating_add(header.end + 64 + range.len())
            });
            if bytes > MAX_SPLIT_BYTES {
                return Err(DecodeError::TooManyRecords {
                    records: records.len(),
                    bytes,
                });
            }
        }
        records
            .into_iter()
            .map(|(values, b, range)| {
                Ok(DecodedAlert {
                    schema: c.info.clone(),
                    values: self.arrange(values),
                    raw: if single {
                        msg.clone()
                    } else {
                        Bytes::from(container::single_record_container(
                            msg,
                            &header,
                            &blocks[b][range],
                        )?)
                    },
                })
            })
            .collect()
    }

    fn decode_wire(&self, msg: &Bytes) -> Result<Vec<DecodedAlert>, DecodeError> {
        let Some(id) = msg.get(1..5) else {
            return Err(DecodeError::Truncated {
                what: "Confluent wire-format header (0x00 + 4-byte schema id)",
                offset: 0,
            });
        };
        let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        let c = self.compiled_for_id(id)?;
        let mut r = Reader::new(msg);
        r.pos = 5;
        let mut values = c.plan.template.clone();
        Walker { schema: &c.schema }
            .run(&c.plan.root, &mut r, &mut values)
            .map_err(DecodeError::from_fault)?;
        if r.pos != msg.len() {
            return Err(DecodeError::InvalidData {
                offset: r.pos,
                reason: format!(
                    "{} bytes follow the record (schema id {id} is probably not the schema it was written with)",
                    msg.len() - r.pos
                ),
            });
        }
        Ok(vec![DecodedAlert {
            schema: c.info.clone(),
            values: self.arrange(values),
            raw: msg.clone(),
        }])
    }
}

/// Schemas whose duplicate field names were logged, by the xxh3 of their
/// text: each is logged once per process, not once per decoder (every
/// filter set has its own). Cleared past [`MAX_CACHED_SCHEMAS`].
static WARNED_DUPLICATES: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

/// Logs, once per schema, that it defines a field name twice in a record
/// (see `schema.rs`: paths read the last of them, as fastavro does).
fn warn_duplicates(schema: &Schema, text: &[u8], origin: &str) {
    let key = xxh3_64(text);
    {
        let mut warned = WARNED_DUPLICATES.lock().unwrap_or_else(|e| e.into_inner());
        let warned = warned.get_or_insert_with(HashSet::new);
        if warned.len() >= MAX_CACHED_SCHEMAS {
            warned.clear();
        }
        if !warned.insert(key) {
            return;
        }
    }
    let fields: Vec<String> = schema
        .duplicates
        .iter()
        .take(16)
        .map(|(record, field)| format!("{record}.{field}"))
        .collect();
    tracing::warn!(
        schema = %schema.full_name(),
        origin,
        fields = %fields.join(", "),
        "writer schema defines a field name twice in a record; paths to it read the last of them, as fastavro does"
    );
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Finds the schema file for `id`: `dir/<id>.avsc`, else Rubin's layout
/// `dir/v{M}_{m}/lsst.v{M}_{m}.alert.avsc` (id = M*100 + m). Returns the
/// file, its text and the directory its referenced types are looked up in.
fn locate_schema(dir: &Path, id: u32) -> Result<(PathBuf, Vec<u8>, PathBuf), DecodeError> {
    let (major, minor) = (id / 100, id % 100);
    let version_dir = dir.join(format!("v{major}_{minor}"));
    let candidates = [
        (dir.join(format!("{id}.avsc")), dir.to_path_buf()),
        (
            version_dir.join(format!("lsst.v{major}_{minor}.alert.avsc")),
            version_dir.clone(),
        ),
    ];
    for (file, siblings) in candidates {
        match std::fs::read(&file) {
            Ok(text) => return Ok((file, text, siblings)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DecodeError::SchemaFileUnreadable {
                    path: file,
                    reason: e.to_string(),
                });
            }
        }
    }
    Err(DecodeError::UnknownSchemaId {
        id,
        dir: dir.to_path_buf(),
    })
}

/// A schema registry's answer (`{"schema": "<schema JSON as a string>"}`)
/// stored as a file holds the schema as a string: unwrap it.
fn unwrap_registry_envelope(text: Vec<u8>) -> Vec<u8> {
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(&text)
        && !o.contains_key("type")
        && let Some(serde_json::Value::String(s)) = o.get("schema")
    {
        return s.clone().into_bytes();
    }
    text
}
