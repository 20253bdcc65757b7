//! Why a message did not decode ([`DecodeError`]): each a sentence that
//! says what is wrong and what to do.

use std::path::PathBuf;

use super::plan::Fault;
use super::{MAX_RECORDS_PER_MESSAGE, MAX_SPLIT_BYTES, container};

/// Why a message did not decode. The messages are sentences that say
/// what is wrong and what to do; the caller adds the file or topic name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message has no bytes.
    #[error(
        "message is empty: expected an Avro container file or a Confluent wire-format record; check the producer"
    )]
    Empty,
    /// Neither framing: no `Obj\x01` magic and first byte not 0x00.
    #[error(
        "message is neither an Avro container file (no 'Obj\\x01' magic) nor Confluent wire format (first byte 0x00); it starts with {head}: check the topic's framing"
    )]
    NotAvro {
        /// The first bytes, in hex.
        head: String,
    },
    /// A value (or the header, or a block) runs past the end of the
    /// message: it was cut short.
    #[error(
        "message ends early: the {what} at byte {offset} runs past its end; the message was cut short or is corrupt"
    )]
    Truncated { what: &'static str, offset: usize },
    /// A container file with a valid header and no records: valid Avro,
    /// but no alert; usually a message cut short after its header.
    #[error(
        "the Avro container holds no records: an alert message holds at least one; it was probably cut short after its header"
    )]
    NoRecords,
    /// The container header is malformed or lacks `avro.schema`.
    #[error(
        "the Avro container header is corrupt: {reason}; the file is damaged or was not written by an Avro library"
    )]
    BadContainerHeader { reason: String },
    /// The container's `avro.codec` is none of the codecs the Avro
    /// specification lists (`null`, `deflate`, `snappy`, `zstandard`,
    /// `bzip2`, `xz`).
    #[error(
        "the Avro container uses codec '{codec}', which bandpass does not decode (it decodes {supported}, the codecs of the Avro specification): have the producer write one of those",
        supported = container::SUPPORTED_CODECS
    )]
    UnsupportedCodec { codec: String },
    /// A container data block is malformed: bad sync marker, negative
    /// count, corrupt compressed data (or a snappy CRC32 that does not
    /// match), bytes left over after its records, or invalid record data
    /// inside a compressed block.
    #[error("the data block at byte {offset} is corrupt: {reason}; the message is damaged")]
    CorruptBlock { offset: usize, reason: String },
    /// A compressed block decompresses past the decoder's bound (256 MiB
    /// for one message, all its blocks together): it was stopped there,
    /// nothing past the bound allocated.
    #[error(
        "the data block at byte {offset} decompresses ({codec}) past {mib} MiB, the most bandpass decompresses of one message (all its blocks together): it is corrupt or made to exhaust memory; if the producer really writes messages that large, have it write smaller ones",
        mib = .limit >> 20
    )]
    BlockTooLarge {
        offset: usize,
        /// The container's codec (`zstandard`, ...).
        codec: &'static str,
        /// The bound, in bytes.
        limit: usize,
    },
    /// A container message holding more records, or records that would
    /// make more bytes as messages of their own, than bandpass splits.
    #[error(
        "the container holds {records} records that would make {bytes} bytes as messages of their own; bandpass splits a message into at most {} records and {} MiB (each record gets the header, schema and all, again): have the producer write one alert per message, or smaller containers",
        MAX_RECORDS_PER_MESSAGE,
        MAX_SPLIT_BYTES >> 20
    )]
    TooManyRecords { records: usize, bytes: usize },
    /// One record of a container holding several could not be compressed
    /// again as a message of its own (for [`super::DecodedAlert::raw`]): the
    /// compressor failed, which happens only when memory runs out.
    #[error(
        "cannot compress one record of the container again ({codec}) as a message of its own: {reason}; this machine may be short of memory"
    )]
    Recompress { codec: &'static str, reason: String },
    /// The writer schema (from a container header or a schema file) is
    /// not valid JSON or not valid Avro.
    #[error(
        "the writer schema from {origin} cannot be used: {reason}; fix the schema where it is published"
    )]
    BadSchema { origin: String, reason: String },
    /// The writer schema is valid Avro, but its root is not a record:
    /// bandpass names values by the root record's field paths.
    #[error(
        "the writer schema from {origin} is valid Avro, but its root is {root}, not a record: bandpass needs a record at the root (filters name its fields in their paths); have the producer write each alert as a record"
    )]
    RootNotRecord {
        origin: String,
        /// What the root is: `a union (null|t.alert)`, `the primitive
        /// type 'string'`, ...
        root: String,
    },
    /// A schema file exists but could not be read.
    #[error("cannot read schema file {}: {reason}; check that it is readable", path.display())]
    SchemaFileUnreadable { path: PathBuf, reason: String },
    /// A wire-format message names a schema id the directory lacks.
    #[error(
        "schema id {id} is not in the schema directory {}: add {id}.avsc (or v{major}_{minor}/lsst.v{major}_{minor}.alert.avsc) there, or check which schema the producer registered",
        dir.display(), major = .id / 100, minor = .id % 100
    )]
    UnknownSchemaId { id: u32, dir: PathBuf },
    /// A wire-format message arrived but no schema source is configured.
    #[error(
        "message is in Confluent wire format (schema id {id}) but no schema source is configured: configure a schema directory holding {id}.avsc (schemas.dir) or a schema registry (schemas.registry_url)"
    )]
    NoSchemaSource { id: u32 },
    /// The schema registry answered that it has no such id (HTTP 404).
    #[error(
        "schema id {id} is not in the schema registry at {url}: check which schema the producer registered, and that it registered it in this registry"
    )]
    RegistrySchemaNotFound { id: u32, url: String },
    /// The schema registry could not be reached, timed out or answered
    /// 5xx on every attempt of one lookup. The only transient error: the
    /// next message with this id asks again.
    #[error(
        "the schema registry at {url} did not answer for schema id {id}: {reason}; check that the registry is up and reachable from here"
    )]
    RegistryUnreachable {
        id: u32,
        url: String,
        reason: String,
    },
    /// The schema registry refused the credentials (HTTP 401 or 403).
    #[error(
        "the schema registry at {url} refused to give schema id {id} (HTTP {status}): check schemas.registry_username and schemas.registry_password"
    )]
    RegistryDenied { id: u32, url: String, status: u16 },
    /// The registry holds the id, but not as a schema bandpass can use:
    /// not Avro, or with references to other registered schemas.
    #[error(
        "schema id {id} in the schema registry at {url} {reason}: bandpass decodes self-contained Avro schemas only; have the producer register the schema with every type written inline"
    )]
    RegistryUnsupported {
        id: u32,
        url: String,
        reason: String,
    },
    /// Asking the registry failed in a way retrying will not fix: an
    /// unexpected HTTP status, an answer that is not a registry's, a TLS
    /// or URL problem.
    #[error(
        "cannot get schema id {id} from the schema registry at {url}: {reason}; check schemas.registry_url"
    )]
    RegistryFailed {
        id: u32,
        url: String,
        reason: String,
    },
    /// The record's bytes do not follow its writer schema: a varint that
    /// overflows, a negative length, a union or enum index out of range,
    /// an int out of range, invalid UTF-8, absurd item counts, or bytes
    /// left after a wire-format record.
    #[error(
        "record data is invalid at byte {offset}: {reason}; the message is corrupt or was not written with the schema it names"
    )]
    InvalidData { offset: usize, reason: String },
}

impl DecodeError {
    /// Whether the same message may decode if tried again later: true
    /// only when the schema registry did not answer
    /// ([`DecodeError::RegistryUnreachable`]). Retry such a message
    /// instead of dead-lettering it.
    pub fn is_transient(&self) -> bool {
        matches!(self, DecodeError::RegistryUnreachable { .. })
    }

    pub(super) fn from_fault(f: Fault) -> DecodeError {
        match f.invalid {
            None => DecodeError::Truncated {
                what: f.what,
                offset: f.offset,
            },
            Some(reason) => DecodeError::InvalidData {
                offset: f.offset,
                reason: format!("{} ({reason})", f.what),
            },
        }
    }
}
