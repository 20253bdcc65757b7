//! The fuzz targets' bodies: what a producer or a tenant hands the host,
//! from arbitrary bytes, through the code that checks it.
//!
//! Owns: one function per target of `fuzz/` (run there by libFuzzer with
//! coverage) and the same functions for the regression test that replays
//! every kept input in `fuzz/` on each test run (`tests/all/fuzzing.rs`).
//! Each returns normally on any input; a panic, a hang or an allocation
//! past libFuzzer's `-rss_limit_mb` is a finding. Where the code promises
//! a property (a bound on what it accepts, on how much of the input a
//! refusal quotes), the body asserts it, so that breaking it is a finding
//! too.
//!
//! Must never: be used by the service; it is `#[doc(hidden)]`.

use std::path::Path;
use std::sync::LazyLock;

use bytes::Bytes;

use crate::decode::{Decoder, SchemaSource};

/// Paths the decoder is asked for: the sample filters' kinds (scalars,
/// text, bytes, columns through an array, optional ones) in ZTF's and
/// Rubin's schemas, and short names a mutated schema may hold.
const PATHS: &[&str] = &[
    "objectId",
    "candid",
    "candidate.magpsf",
    "candidate.isdiffpos",
    "candidate.drb?",
    "candidate.jd",
    "prv_candidates.magpsf",
    "prv_candidates.isdiffpos",
    "fp_hists.forcediffimflux",
    "cutoutScience.stampData",
    "diaSource.psfFlux",
    "diaSource.band",
    "prvDiaSources.midpointMjdTai",
    "diaObject.ra?",
    "a",
    "a.b",
    "a.b.c",
];

fn decoder() -> Decoder {
    Decoder::new(
        PATHS.iter().map(|p| p.to_string()).collect(),
        SchemaSource::None,
    )
}

/// One decoder for every input, as serve keeps one for every message:
/// a writer schema seen before comes from its bounded cache, so the
/// fuzzer's time goes to the records (a fresh decoder per input parsed
/// the 20 KB ZTF schema each time: 669 inputs/s). A mutated schema is a
/// new cache key, parsed as before.
static SHARED: LazyLock<Decoder> = LazyLock::new(decoder);

/// One message as Kafka or an alert file carries it: a container file,
/// Confluent wire format (refused without schemas), or anything else.
pub fn decode_message(data: &[u8]) {
    let _ = SHARED.decode(&Bytes::copy_from_slice(data));
}

/// A writer schema (the bytes before the first NUL) and one record (the
/// rest), put in a container file: the schema parser and the projection
/// plan for it meet mutated schemas, which a mutated container rarely
/// gives them.
pub fn writer_schema(data: &[u8]) {
    let (schema, record) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let _ = decoder().decode(&Bytes::from(container(schema, record)));
}

/// An Avro object container file holding `record` under `schema`.
pub fn container(schema: &[u8], record: &[u8]) -> Vec<u8> {
    fn long(out: &mut Vec<u8>, v: i64) {
        let mut n = ((v << 1) ^ (v >> 63)) as u64;
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn blob(out: &mut Vec<u8>, b: &[u8]) {
        long(out, b.len() as i64);
        out.extend_from_slice(b);
    }
    let sync = [0x5a; 16];
    let mut out = b"Obj\x01".to_vec();
    long(&mut out, 2);
    blob(&mut out, b"avro.schema");
    blob(&mut out, schema);
    blob(&mut out, b"avro.codec");
    blob(&mut out, b"null");
    long(&mut out, 0);
    out.extend_from_slice(&sync);
    long(&mut out, 1);
    blob(&mut out, record);
    out.extend_from_slice(&sync);
    out
}

/// A manifest and a verdict as a guest could return them, made from the
/// bytes by `arbitrary` (as `fuzz_target!` makes typed inputs). What
/// passes the checks is within the documented bounds, and a refusal
/// quotes the offending text cut short.
pub fn manifest_verdict(data: &[u8]) {
    use arbitrary::Arbitrary;
    type Input = (
        (String, String, String, Vec<String>, String),
        (Option<f64>, Vec<String>, Vec<(String, String)>),
    );
    let Ok(((name, version, survey, fields, description), (score, tags, annotations))) =
        Input::arbitrary_take_rest(arbitrary::Unstructured::new(data))
    else {
        return;
    };
    use crate::sandbox::fuzzing::{check_manifest, check_verdict};
    use crate::sandbox::manifest_bounds as bound;
    let total = fields.len();
    let widest = fields.iter().map(String::len).max().unwrap_or(0);
    match check_manifest(
        name.clone(),
        version.clone(),
        survey,
        fields,
        description.clone(),
    ) {
        Ok(()) => {
            assert!(name.len() <= bound::NAME_BYTES && version.len() <= bound::VERSION_BYTES);
            assert!(description.len() <= bound::DESCRIPTION_BYTES);
            assert!(total <= bound::FIELDS && widest <= crate::decode::MAX_PATH_BYTES);
        }
        Err(reason) => assert!(reason.len() < 2048, "a refusal quoted too much"),
    }
    let limits = crate::sandbox::Limits::default();
    match check_verdict(score, tags, annotations) {
        Ok(crate::sandbox::Verdict::Accept {
            score,
            tags,
            annotations,
        }) => {
            assert!(score.is_none_or(f64::is_finite));
            assert!(tags.len() <= limits.max_tags);
            assert!(tags.iter().all(|t| t.len() <= limits.max_tag_bytes));
            assert!(annotations.len() <= limits.max_annotations);
            for (k, _) in &annotations {
                assert!(
                    !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')),
                    "a note key that is not a plain header name passed"
                );
            }
            let joined = crate::text::joined_tags(&tags);
            assert_eq!(joined.split(',').count(), tags.len().max(1));
        }
        Ok(crate::sandbox::Verdict::Reject) => unreachable!("an accept was checked"),
        Err(reason) => assert!(reason.len() < 2048, "a refusal quoted too much"),
    }
}

/// A configuration file's text.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::Config::parse(text, Path::new("fuzz.toml"), |_| None);
    }
}

/// An upload's body: the first line is its content type (so that the
/// boundary can be mutated with it), the rest the multipart body, read
/// as the upload route reads it (parts, the 64 KiB manifest part, the
/// manifest's bounds). A refusal's reason is bounded.
pub fn upload_request(data: &[u8]) {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime")
    });
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    let content_type = String::from_utf8_lossy(content_type);
    let read = RUNTIME.block_on(crate::admin::upload::fuzzing::read_upload(
        &content_type,
        body.to_vec(),
        1 << 20,
    ));
    match read {
        Ok((params, component)) => assert!(params <= 64 && component <= 1 << 20),
        Err(reason) => assert!(reason.len() < 4096, "a refusal quoted too much"),
    }
}

/// An object's record as the store holds it (`memory::ObjectRecord`):
/// bytes a damaged disk or another version may give. Decoding returns a
/// record or an error, within bounded allocations; a record that decodes
/// encodes to bytes that decode to the same bytes again; and adopting its
/// history into a survey's plan gives points of the plan's width.
pub fn object_record(data: &[u8]) {
    use crate::memory::ObjectRecord;
    let kept = crate::memory::history::Kept::default();
    let Ok(record) = ObjectRecord::decode(data) else {
        return;
    };
    let once = record.encode();
    let again = ObjectRecord::decode(&once).expect("an encoded record decodes");
    assert_eq!(again.encode(), once, "a record's encoding is stable");
    if let Some(history) = record.history {
        for plan in kept.plans() {
            let adopted = plan.adopt(history.clone());
            assert!(
                adopted
                    .points
                    .iter()
                    .all(|p| p.cells.len() == plan.columns.len())
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_made_here_decodes_with_its_schema() {
        let schema = br#"{"type":"record","name":"a","namespace":"ztf.x","fields":[{"name":"b","type":"long"}]}"#;
        let alerts = decoder()
            .decode(&Bytes::from(container(schema, &[0x54])))
            .unwrap();
        assert_eq!(alerts.len(), 1);
    }
}
