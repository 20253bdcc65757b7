//! Decoding real alerts, cross-checked against fastavro.
//!
//! The alert files are read in place from the shared data folder beside
//! the repository (`../shared/data`). The reference values come from
//! `tests/py/fastavro_dump.py`, and `tests/py/fastavro_rewrite.py` writes
//! alerts again with every codec (needs `python3` and `pip install
//! fastavro cramjam backports.zstd`, as `scripts/test.sh` does); without
//! them these tests fail, they never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bandpass::decode::{
    DecodeError, DecodedAlert, Decoder, FieldValue, SchemaRegistry, SchemaSource,
};
use bytes::Bytes;
use serde_json::Value;

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))
}

fn repo_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn avro_files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            avro_files_under(&p, out);
        } else if p.extension().is_some_and(|x| x == "avro") {
            out.push(p);
        }
    }
}

fn ztf_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    avro_files_under(&data_dir().join("ztf/alerts"), &mut v);
    v.sort();
    v
}

/// Every Rubin `fakeAlert.avro`, with its schema id (major*100 + minor).
fn rubin_files() -> Vec<(PathBuf, u32)> {
    let root = data_dir().join("rubin/schema");
    let mut v = Vec::new();
    for e in std::fs::read_dir(&root).unwrap() {
        let dir = e.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let Some((major, minor)) = name.strip_prefix('v').and_then(|s| s.split_once('_')) else {
            continue;
        };
        let file = dir.join("sample_data/fakeAlert.avro");
        if file.exists() {
            let id = major.parse::<u32>().unwrap() * 100 + minor.parse::<u32>().unwrap();
            v.push((file, id));
        }
    }
    v.sort();
    v
}

fn all_files() -> Vec<PathBuf> {
    let mut v = ztf_files();
    v.extend(rubin_files().into_iter().map(|(f, _)| f));
    assert!(
        v.len() >= 20,
        "expected the shared alert samples, found {v:?}"
    );
    v
}

fn read(p: &Path) -> Bytes {
    Bytes::from(std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display())))
}

/// Runs the fastavro reference decoder: {file: [{path: tagged value}]}.
fn fastavro_dump(files: &[PathBuf]) -> BTreeMap<String, Vec<BTreeMap<String, Value>>> {
    let script = repo_dir().join("tests/py/fastavro_dump.py");
    let out = Command::new("python3").arg(&script).args(files).output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run python3 ({e}): the decoder tests need python3 with fastavro; install them \
             (`pip install fastavro`) and run `python3 {}` to check",
            script.display()
        ),
    };
    assert!(
        out.status.success(),
        "the reference decoder failed: run `pip install fastavro`, then `python3 {} FILE.avro` \
         to see why.\nstderr: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the reference decoder printed invalid JSON")
}

fn tag_real(v: f64) -> String {
    if v.is_nan() {
        "real:nan".into()
    } else {
        format!("real:{:016x}", v.to_bits())
    }
}

/// A value in the reference decoder's tagged form.
fn tagged(v: &FieldValue) -> Value {
    fn col<T>(c: &[Option<T>], f: impl Fn(&T) -> String) -> Value {
        Value::Array(
            c.iter()
                .map(|x| x.as_ref().map_or(Value::Null, |x| Value::String(f(x))))
                .collect(),
        )
    }
    match v {
        FieldValue::Missing => Value::String("MISSING".into()),
        FieldValue::Absent => Value::Null,
        FieldValue::Boolean(b) => Value::String(format!("bool:{b}")),
        FieldValue::Integer(i) => Value::String(format!("int:{i}")),
        FieldValue::Real(r) => Value::String(tag_real(*r)),
        FieldValue::Text(s) => Value::String(format!("text:{s}")),
        FieldValue::Bytes(b) => Value::String(format!("bytes:{}", hex::encode(b))),
        FieldValue::Booleans(c) => col(c, |b| format!("bool:{b}")),
        FieldValue::Integers(c) => col(c, |i| format!("int:{i}")),
        FieldValue::Reals(c) => col(c, |r| tag_real(*r)),
        FieldValue::Texts(c) => col(c, |s| format!("text:{s}")),
    }
}

fn decode_one(d: &Decoder, msg: &Bytes) -> DecodedAlert {
    let mut v = d
        .decode(msg)
        .unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert_eq!(v.len(), 1, "expected one alert in the message");
    v.pop().unwrap()
}

fn assert_values_match(
    file: &str,
    paths: &[String],
    got: &[FieldValue],
    want: &BTreeMap<String, Value>,
) {
    assert_eq!(got.len(), paths.len());
    let mut bad = Vec::new();
    for (p, v) in paths.iter().zip(got) {
        let expected = want
            .get(p)
            .cloned()
            .unwrap_or(Value::String("MISSING".into()));
        let actual = tagged(v);
        if actual != expected {
            let short = |v: &Value| v.to_string().chars().take(200).collect::<String>();
            bad.push(format!(
                "  {p}: decoder {} / fastavro {}",
                short(&actual),
                short(&expected)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{file}: {} paths differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_sample_alert_decodes_to_the_values_fastavro_reads() {
    let files = all_files();
    let reference = fastavro_dump(&files);
    for f in &files {
        let key = f.to_string_lossy().to_string();
        let want = &reference[&key][0];
        let paths: Vec<String> = want.keys().cloned().collect();
        assert!(paths.len() >= 12, "{key}: only {} paths", paths.len());
        let d = Decoder::new(paths.clone(), SchemaSource::None);
        let alert = decode_one(&d, &read(f));
        assert_values_match(&key, &paths, &alert.values, want);

        // The schema's listed paths are exactly those fastavro flattens to.
        let listed: BTreeSet<String> = d
            .schema_fields(&alert.schema)
            .expect("the schema just used is known")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let expected: BTreeSet<String> = paths.iter().cloned().collect();
        assert_eq!(
            listed, expected,
            "{key}: schema_fields differs from fastavro's paths"
        );
    }
}

#[test]
fn one_decoder_reads_every_survey_and_version_and_reports_missing_paths() {
    let files = all_files();
    let reference = fastavro_dump(&files);
    let mut all_paths: BTreeSet<String> = BTreeSet::new();
    for recs in reference.values() {
        all_paths.extend(recs[0].keys().cloned());
    }
    // Paths no schema has, and paths that are not values.
    all_paths.insert("candidate.no_such_field".into());
    all_paths.insert("candidate".into());
    all_paths.insert("prv_candidates".into());
    let paths: Vec<String> = all_paths.into_iter().collect();
    let d = Decoder::new(paths.clone(), SchemaSource::None);
    for f in &files {
        let key = f.to_string_lossy().to_string();
        let alert = decode_one(&d, &read(f));
        assert_values_match(&key, &paths, &alert.values, &reference[&key][0]);
        let info = &alert.schema;
        if key.contains("/ztf/") {
            assert_eq!(info.survey, "ztf");
            assert_eq!(info.full_name, "ztf.alert");
            let dir_version = f.parent().unwrap().file_name().unwrap().to_string_lossy();
            assert_eq!(
                info.version.as_deref().map(|v| format!("v{v}")).as_deref(),
                Some(&*dir_version)
            );
        } else {
            assert_eq!(info.survey, "rubin");
            assert!(info.full_name.starts_with("lsst.v"), "{}", info.full_name);
            assert!(info.version.is_some());
        }
    }
    let ztf = d.decode(&read(&ztf_files()[0])).unwrap().remove(0);
    let why = d
        .check_path(&ztf.schema, "candidate.no_such_field")
        .unwrap_err();
    assert!(why.contains("no field 'no_such_field'"), "{why}");
    let why = d.check_path(&ztf.schema, "prv_candidates").unwrap_err();
    assert!(why.contains("is a record"), "{why}");
    assert!(d.check_path(&ztf.schema, "prv_candidates.magpsf").is_ok());
}

/// A minimal reading of a container with one null-codec block, written
/// for the tests (independent of the decoder): (header text, schema JSON,
/// the block's record bytes).
struct RawContainer {
    header: Vec<u8>,
    schema: String,
    sync: [u8; 16],
    records: Vec<u8>,
    count: i64,
}

fn varint(b: &[u8], pos: &mut usize) -> i64 {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte < 0x80 {
            break;
        }
    }
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push(z as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn split_container(msg: &[u8]) -> RawContainer {
    assert_eq!(&msg[..4], b"Obj\x01");
    let mut pos = 4;
    let mut schema = None;
    loop {
        let n = varint(msg, &mut pos);
        if n == 0 {
            break;
        }
        for _ in 0..n {
            let kl = varint(msg, &mut pos) as usize;
            let key = msg[pos..pos + kl].to_vec();
            pos += kl;
            let vl = varint(msg, &mut pos) as usize;
            let value = msg[pos..pos + vl].to_vec();
            pos += vl;
            if key == b"avro.schema" {
                schema = Some(String::from_utf8(value).unwrap());
            }
        }
    }
    let mut sync = [0u8; 16];
    sync.copy_from_slice(&msg[pos..pos + 16]);
    pos += 16;
    let header = msg[..pos].to_vec();
    let count = varint(msg, &mut pos);
    let size = varint(msg, &mut pos) as usize;
    let records = msg[pos..pos + size].to_vec();
    pos += size;
    assert_eq!(&msg[pos..pos + 16], &sync);
    assert_eq!(pos + 16, msg.len(), "expected a single block");
    RawContainer {
        header,
        schema: schema.unwrap(),
        sync,
        records,
        count,
    }
}

/// The record bytes of a one-record container (for wire-format tests).
pub fn record_bytes(container: &[u8]) -> Vec<u8> {
    let raw = split_container(container);
    assert_eq!(raw.count, 1, "one record expected");
    raw.records
}

/// A container with the given header, codec and blocks of (count, data).
fn build_container(schema: &str, codec: &str, blocks: &[(i64, &[u8])]) -> Vec<u8> {
    let sync = *b"0123456789abcdef";
    let mut out = b"Obj\x01".to_vec();
    put_varint(&mut out, 2);
    for (k, v) in [("avro.schema", schema), ("avro.codec", codec)] {
        put_varint(&mut out, k.len() as i64);
        out.extend_from_slice(k.as_bytes());
        put_varint(&mut out, v.len() as i64);
        out.extend_from_slice(v.as_bytes());
    }
    put_varint(&mut out, 0);
    out.extend_from_slice(&sync);
    for (count, data) in blocks {
        put_varint(&mut out, *count);
        put_varint(&mut out, data.len() as i64);
        out.extend_from_slice(data);
        out.extend_from_slice(&sync);
    }
    out
}

fn wire(id: u32, record: &[u8]) -> Bytes {
    let mut m = vec![0u8];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(record);
    Bytes::from(m)
}

fn full_paths(d_file: &Path) -> Vec<String> {
    let probe = Decoder::new(vec![], SchemaSource::None);
    let a = decode_one(&probe, &read(d_file));
    let mut p: Vec<String> = probe
        .schema_fields(&a.schema)
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    p.push("no.such.path".into());
    p
}

#[test]
fn rubin_wire_format_alerts_decode_like_their_container_files() {
    let schema_dir = data_dir().join("rubin/schema");
    let own_dir = tempfile::tempdir().unwrap();
    let rubin = rubin_files();
    assert!(rubin.len() >= 10);
    for (file, id) in &rubin {
        let msg = read(file);
        let raw = split_container(&msg);
        assert_eq!(raw.count, 1);
        std::fs::write(own_dir.path().join(format!("{id}.avsc")), &raw.schema).unwrap();
        let paths = full_paths(file);
        let reference = decode_one(&Decoder::new(paths.clone(), SchemaSource::None), &msg);
        let framed = wire(*id, &raw.records);
        for source in [
            SchemaSource::Dir(schema_dir.clone()),
            SchemaSource::Dir(own_dir.path().to_path_buf()),
        ] {
            let d = Decoder::new(paths.clone(), source.clone());
            let alert = decode_one(&d, &framed);
            assert_eq!(
                alert.values,
                reference.values,
                "{}: wire format with {source:?} differs",
                file.display()
            );
            assert_eq!(alert.raw, framed, "raw must be the message itself");
            assert_eq!(alert.schema.survey, "rubin");
            assert_eq!(alert.schema.full_name, reference.schema.full_name);
            assert!(
                alert
                    .values
                    .iter()
                    .filter(|v| **v != FieldValue::Missing)
                    .count()
                    >= 12
            );
            // Decoding again uses the cached schema.
            decode_one(&d, &framed);
            assert_eq!(d.schemas_parsed(), 1);
        }
    }
}

#[test]
fn a_registry_answer_saved_as_a_file_is_unwrapped() {
    let (file, id) = rubin_files().remove(0);
    let raw = split_container(&read(&file));
    let dir = tempfile::tempdir().unwrap();
    let envelope = serde_json::json!({ "schema": raw.schema }).to_string();
    std::fs::write(dir.path().join(format!("{id}.avsc")), envelope).unwrap();
    let d = Decoder::new(
        full_paths(&file),
        SchemaSource::Dir(dir.path().to_path_buf()),
    );
    let container = Decoder::new(full_paths(&file), SchemaSource::None);
    assert_eq!(
        decode_one(&d, &wire(id, &raw.records)).values,
        decode_one(&container, &read(&file)).values
    );
}

/// One self-contained schema text for Rubin's schema `dir/vM_m`, as a
/// registry serves it: apache-avro parses the split files together and
/// prints the alert schema with every named type inlined.
pub fn self_contained_rubin_schema(version_dir: &Path) -> String {
    let mut texts = Vec::new();
    let mut alert = None;
    for e in std::fs::read_dir(version_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "avsc") {
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with(".alert.avsc")
            {
                alert = Some(texts.len());
            }
            texts.push(std::fs::read_to_string(&p).unwrap());
        }
    }
    let schemata = apache_avro::Schema::parse_list(&texts)
        .unwrap_or_else(|e| panic!("apache-avro refuses {}: {e}", version_dir.display()));
    let alert = alert.unwrap_or_else(|| panic!("no alert schema in {}", version_dir.display()));
    schemata[alert]
        .independent_canonical_form(&schemata)
        .unwrap_or_else(|e| panic!("{}: {e}", version_dir.display()))
}

/// A schema registry on a local port serving `schemas` by id (404 for
/// others); returns its URL and the number of requests so far.
pub fn serve_registry(
    schemas: BTreeMap<u32, String>,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let id = request_line
                .split_whitespace()
                .nth(1)
                .and_then(|path| path.strip_prefix("/schemas/ids/"))
                .and_then(|id| id.parse::<u32>().ok());
            let (status, body) = match id.and_then(|id| schemas.get(&id)) {
                Some(schema) => (200, serde_json::json!({ "schema": schema }).to_string()),
                None => (
                    404,
                    r#"{"error_code":40403,"message":"Schema not found"}"#.to_string(),
                ),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, requests)
}

#[test]
fn rubin_alerts_decode_the_same_through_a_schema_registry_as_through_the_schema_directory() {
    let schema_dir = data_dir().join("rubin/schema");
    let rubin = rubin_files();
    let schemas: BTreeMap<u32, String> = rubin
        .iter()
        .map(|(file, id)| {
            let version_dir = file.parent().unwrap().parent().unwrap();
            (*id, self_contained_rubin_schema(version_dir))
        })
        .collect();
    let (url, requests) = serve_registry(schemas);
    let registry = SchemaSource::Registry(SchemaRegistry::new(&url));
    for (file, id) in &rubin {
        let raw = split_container(&read(file));
        let framed = wire(*id, &raw.records);
        let paths = full_paths(file);
        let from_dir = decode_one(
            &Decoder::new(paths.clone(), SchemaSource::Dir(schema_dir.clone())),
            &framed,
        );
        let d = Decoder::new(paths, registry.clone());
        let from_registry = decode_one(&d, &framed);
        assert_eq!(
            from_registry.values,
            from_dir.values,
            "{}: the registry's schema decodes differently",
            file.display()
        );
        assert_eq!(from_registry.schema.full_name, from_dir.schema.full_name);
        assert_eq!(from_registry.schema.survey, "rubin");
        assert_eq!(from_registry.raw, framed);
        decode_one(&d, &framed);
    }
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        rubin.len(),
        "one request per schema id"
    );
    let e = Decoder::new(vec!["diaSource.ra".into()], registry)
        .decode(&wire(4242, &split_container(&read(&rubin[0].0)).records))
        .unwrap_err();
    assert!(
        matches!(e, DecodeError::RegistrySchemaNotFound { id: 4242, .. }),
        "{e}"
    );
}

#[test]
fn a_wire_format_message_without_a_schema_source_or_with_an_unknown_id_is_refused() {
    let (file, id) = rubin_files().remove(0);
    let raw = split_container(&read(&file));
    let d = Decoder::new(vec!["diaSource.ra".into()], SchemaSource::None);
    let e = d.decode(&wire(id, &raw.records)).unwrap_err();
    assert!(
        matches!(e, DecodeError::NoSchemaSource { id: i } if i == id),
        "{e}"
    );
    assert!(
        e.to_string().contains("configure a schema directory"),
        "{e}"
    );

    let dir = data_dir().join("rubin/schema");
    let d = Decoder::new(vec!["diaSource.ra".into()], SchemaSource::Dir(dir));
    let e = d.decode(&wire(4242, &raw.records)).unwrap_err();
    assert!(
        matches!(e, DecodeError::UnknownSchemaId { id: 4242, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("4242.avsc"), "{e}");

    let e = d.decode(&Bytes::from_static(&[0, 0, 2])).unwrap_err();
    assert!(matches!(e, DecodeError::Truncated { .. }), "{e}");

    // The wrong schema for the record: an error, not garbage or a panic.
    let wrong = if id == 300 { 400 } else { 300 };
    assert!(d.decode(&wire(wrong, &raw.records)).is_err());
}

#[test]
fn a_schema_is_parsed_once_per_decoder() {
    let files: Vec<PathBuf> = ztf_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("/v3.0/"))
        .collect();
    assert!(files.len() >= 2);
    let d = Decoder::new(
        vec!["candidate.magpsf".into(), "prv_candidates.jd".into()],
        SchemaSource::None,
    );
    for _ in 0..5 {
        for f in &files {
            decode_one(&d, &read(f));
        }
    }
    assert_eq!(d.schemas_parsed(), 1);
    let other = ztf_files()
        .into_iter()
        .find(|f| f.to_string_lossy().contains("/v3.1/"))
        .unwrap();
    decode_one(&d, &read(&other));
    decode_one(&d, &read(&other));
    assert_eq!(d.schemas_parsed(), 2);
}

#[test]
fn a_single_alert_message_is_forwarded_without_copying() {
    let f = &ztf_files()[0];
    let msg = read(f);
    let d = Decoder::new(vec!["objectId".into()], SchemaSource::None);
    let a = decode_one(&d, &msg);
    assert_eq!(a.raw.as_ptr(), msg.as_ptr());
    assert_eq!(a.raw.len(), msg.len());
}

/// Writes `msg` to a temp file and returns fastavro's reading of it.
fn fastavro_of(msg: &[u8]) -> Vec<BTreeMap<String, Value>> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.avro");
    std::fs::write(&p, msg).unwrap();
    fastavro_dump(std::slice::from_ref(&p))
        .into_values()
        .next()
        .unwrap()
}

#[test]
fn a_container_with_several_records_and_blocks_gives_one_standalone_alert_each() {
    for f in [ztf_files()[0].clone(), rubin_files()[0].0.clone()] {
        let msg = read(&f);
        let raw = split_container(&msg);
        let paths = full_paths(&f);
        let d = Decoder::new(paths.clone(), SchemaSource::None);
        let single = decode_one(&d, &msg);
        // Three records in one block, one in a second block.
        let three = raw.records.repeat(3);
        for codec in ["null", "deflate"] {
            let blocks: Vec<Vec<u8>> = [three.clone(), raw.records.clone()]
                .into_iter()
                .map(|b| {
                    if codec == "deflate" {
                        let mut e = flate2::write::DeflateEncoder::new(
                            Vec::new(),
                            flate2::Compression::fast(),
                        );
                        std::io::Write::write_all(&mut e, &b).unwrap();
                        e.finish().unwrap()
                    } else {
                        b
                    }
                })
                .collect();
            let many = Bytes::from(build_container(
                &raw.schema,
                codec,
                &[(3, &blocks[0]), (1, &blocks[1])],
            ));
            let alerts = d.decode(&many).unwrap();
            assert_eq!(alerts.len(), 4);
            let reference = fastavro_of(&many);
            assert_eq!(reference.len(), 4);
            for a in &alerts {
                assert_eq!(a.values, single.values, "{} ({codec})", f.display());
                // Each raw is a standalone container of one record that
                // decodes (here and in fastavro) to the same values.
                let again = decode_one(&d, &a.raw);
                assert_eq!(again.values, single.values);
                let theirs = fastavro_of(&a.raw);
                assert_eq!(theirs.len(), 1);
                assert_eq!(theirs[0], reference[0]);
            }
        }
        // A single-record deflate container is forwarded as is.
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, &raw.records).unwrap();
        let one = Bytes::from(build_container(
            &raw.schema,
            "deflate",
            &[(1, &e.finish().unwrap())],
        ));
        let a = decode_one(&d, &one);
        assert_eq!(a.values, single.values);
        assert_eq!(a.raw, one);
        let _ = raw.header;
        let _ = raw.sync;
    }
}

/// The codecs of the Avro specification.
const CODECS: [&str; 6] = ["null", "deflate", "snappy", "zstandard", "bzip2", "xz"];

/// Runs `tests/py/fastavro_rewrite.py`: fastavro writes the records of
/// `inputs` (or, given `--weather`, Apache Avro's weather records) again
/// with every codec into `out` (`<codec>.avro`, `<codec>-first.avro`).
fn fastavro_rewrite(out: &Path, inputs: &[&std::ffi::OsStr]) {
    let script = repo_dir().join("tests/py/fastavro_rewrite.py");
    let run = Command::new("python3")
        .arg(&script)
        .arg(out)
        .args(inputs)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): the decoder tests need python3"));
    assert!(
        run.status.success(),
        "fastavro could not write the codec files: run `pip install fastavro cramjam \
         backports.zstd`, then `python3 {} OUT_DIR FILE.avro` to see why.\nstderr: {}",
        script.display(),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The `avro.codec` a container's header names (`null` when it has none).
fn header_codec(msg: &[u8]) -> String {
    let mut pos = 4;
    let mut codec = "null".to_string();
    loop {
        let n = varint(msg, &mut pos);
        if n == 0 {
            return codec;
        }
        for _ in 0..n {
            let kl = varint(msg, &mut pos) as usize;
            let key = &msg[pos..pos + kl];
            pos += kl;
            let vl = varint(msg, &mut pos) as usize;
            if key == b"avro.codec" {
                codec = String::from_utf8(msg[pos..pos + vl].to_vec()).unwrap();
            }
            pos += vl;
        }
    }
}

#[test]
fn every_codec_fastavro_writes_decodes_to_the_values_fastavro_reads() {
    let dir = tempfile::tempdir().unwrap();
    // Real alerts written again by fastavro with each codec: four ZTF
    // alerts of one schema version (two blocks: three records, then one)
    // and a Rubin alert. Apache Avro's interoperability files
    // (weather-snappy.avro, weather-zstd.avro, ...) are not available
    // here: fastavro writes the same weather records with each codec
    // instead, five small records to a block.
    let ztf: Vec<PathBuf> = ztf_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("/v3.0/"))
        .collect();
    assert!(ztf.len() >= 3, "{ztf:?}");
    let rubin = rubin_files().remove(0).0;
    let sets: [(&str, Vec<&std::ffi::OsStr>); 3] = [
        ("ztf", ztf.iter().map(|f| f.as_os_str()).collect()),
        ("rubin", vec![rubin.as_os_str()]),
        ("weather", vec![std::ffi::OsStr::new("--weather")]),
    ];
    let mut files = Vec::new();
    for (set, inputs) in &sets {
        fastavro_rewrite(&dir.path().join(set), inputs);
        for codec in CODECS {
            for name in [format!("{codec}.avro"), format!("{codec}-first.avro")] {
                files.push((codec, dir.path().join(set).join(name)));
            }
        }
    }
    let paths_only: Vec<PathBuf> = files.iter().map(|(_, f)| f.clone()).collect();
    let reference = fastavro_dump(&paths_only);
    // Each alert alone (`raw`), for fastavro to read again: (file, its
    // reference record, the written file).
    let singles = dir.path().join("singles");
    std::fs::create_dir(&singles).unwrap();
    let mut standalone: Vec<(PathBuf, BTreeMap<String, Value>, String)> = Vec::new();
    for (codec, file) in &files {
        let key = file.to_string_lossy().to_string();
        let want = &reference[&key];
        let msg = read(file);
        assert_eq!(
            header_codec(&msg),
            *codec,
            "{key}: fastavro wrote another codec"
        );
        let paths: Vec<String> = want[0].keys().cloned().collect();
        let d = Decoder::new(paths.clone(), SchemaSource::None);
        let alerts = d
            .decode(&msg)
            .unwrap_or_else(|e| panic!("{key}: decode failed: {e}"));
        assert_eq!(alerts.len(), want.len(), "{key}");
        for (i, (a, w)) in alerts.iter().zip(want).enumerate() {
            assert_values_match(&format!("{key} record {i}"), &paths, &a.values, w);
            if alerts.len() == 1 {
                assert_eq!(a.raw, msg, "{key}: a one-alert message is forwarded as is");
            } else {
                assert_eq!(header_codec(&a.raw), *codec, "{key}");
                assert_eq!(decode_one(&d, &a.raw).values, a.values, "{key} record {i}");
                let single = singles.join(format!("{}.avro", standalone.len()));
                std::fs::write(&single, &a.raw).unwrap();
                standalone.push((single, w.clone(), format!("{key} record {i}")));
            }
        }
    }
    assert!(standalone.len() >= 5 * CODECS.len(), "{}", standalone.len());
    let files: Vec<PathBuf> = standalone.iter().map(|(f, _, _)| f.clone()).collect();
    let theirs = fastavro_dump(&files);
    for (file, want, what) in &standalone {
        let got = &theirs[&file.to_string_lossy().to_string()];
        assert_eq!(got.len(), 1, "{what}: a standalone alert holds one record");
        assert_eq!(
            &got[0], want,
            "{what}: fastavro reads the standalone alert differently"
        );
    }
}

/// Avro binary for the duplicate-field test.
fn avro_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

#[test]
fn a_record_with_a_field_name_defined_twice_decodes_as_fastavro_reads_it() {
    // Invalid Avro that real survey schemas have shipped, and fastavro
    // reads: its dict of a record keeps the last value of a name. Twice
    // at the root (a record, then a nullable double), in a nested record
    // (long, then string) and in the records of an array (float, then
    // int: a column).
    let schema = r#"{"type":"record","name":"alert","namespace":"dup","fields":[
        {"name":"a","type":{"type":"record","name":"inner","fields":[{"name":"y","type":"int"}]}},
        {"name":"x","type":"string"},
        {"name":"a","type":["null","double"]},
        {"name":"c","type":{"type":"record","name":"c","fields":[
            {"name":"m","type":"long"},{"name":"m","type":"string"}]}},
        {"name":"cs","type":{"type":"array","items":{"type":"record","name":"p","fields":[
            {"name":"k","type":"float"},{"name":"k","type":"int"}]}}},
        {"name":"z","type":"inner"}
    ]}"#;
    let mut rec = Vec::new();
    put_varint(&mut rec, 7); // a.y (the first a)
    avro_str(&mut rec, "hi"); // x
    put_varint(&mut rec, 1); // a: the double branch
    rec.extend_from_slice(&2.5f64.to_le_bytes());
    put_varint(&mut rec, 5); // c.m (long)
    avro_str(&mut rec, "five"); // c.m (string)
    put_varint(&mut rec, 2); // cs: two items
    for (f, i) in [(1.5f32, 3), (-1.0, 4)] {
        rec.extend_from_slice(&f.to_le_bytes());
        put_varint(&mut rec, i);
    }
    put_varint(&mut rec, 0);
    put_varint(&mut rec, 11); // z.y
    let msg = build_container(schema, "null", &[(1, &rec)]);
    let want = fastavro_of(&msg).remove(0);
    // What fastavro reads, written out: the last of each name.
    let expected: BTreeMap<String, Value> = [
        ("x", serde_json::json!("text:hi")),
        (
            "a",
            serde_json::json!(format!("real:{:016x}", 2.5f64.to_bits())),
        ),
        ("c.m", serde_json::json!("text:five")),
        ("cs.k", serde_json::json!(["int:3", "int:4"])),
        ("z.y", serde_json::json!("int:11")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(
        want, expected,
        "fastavro reads duplicate fields differently now"
    );
    let mut paths: Vec<String> = want.keys().cloned().collect();
    paths.push("a.y".into());
    let d = Decoder::new(paths.clone(), SchemaSource::None);
    let alert = decode_one(&d, &Bytes::from(msg));
    assert_values_match("duplicate fields", &paths, &alert.values, &want);
    let listed: BTreeSet<String> = d
        .schema_fields(&alert.schema)
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(listed, want.keys().cloned().collect::<BTreeSet<_>>());
}

#[test]
fn a_container_with_no_records_is_refused_as_no_alert() {
    let raw = split_container(&read(&ztf_files()[0]));
    let d = Decoder::new(vec!["objectId".into()], SchemaSource::None);
    let m = Bytes::from(build_container(&raw.schema, "null", &[]));
    assert_eq!(d.decode(&m).unwrap_err(), DecodeError::NoRecords);
}

#[test]
fn truncated_alert_files_give_errors_at_every_cut() {
    let d = Decoder::new(
        vec![
            "candidate.magpsf".into(),
            "prv_candidates.magpsf".into(),
            "diaSource.ra".into(),
            "prvDiaSources.psfFlux".into(),
            "cutoutScience.stampData".into(),
        ],
        SchemaSource::None,
    );
    for f in all_files() {
        let msg = read(&f);
        // Every offset in the header and the first and last 2 KB; a stride
        // through the rest.
        let n = msg.len();
        let raw = split_container(&msg);
        let cuts = (0..n).filter(|&i| i < 2048 || i + 2048 > n || i % 97 == 0);
        for cut in cuts {
            let m = msg.slice(..cut);
            match d.decode(&m) {
                Err(_) => {}
                Ok(v) => panic!(
                    "{} cut at {cut} of {n} decoded to {} alerts",
                    f.display(),
                    v.len()
                ),
            }
        }
        // The message ends in the middle of the record.
        let e = d.decode(&msg.slice(..raw.header.len() + 10)).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{e}");
    }
}

#[test]
fn random_bytes_and_other_files_are_refused_with_a_clear_error() {
    use rand::{Rng, SeedableRng};
    let d = Decoder::new(vec!["candidate.magpsf".into()], SchemaSource::None);
    let e = d.decode(&Bytes::new()).unwrap_err();
    assert!(matches!(e, DecodeError::Empty), "{e}");

    let json = read(&data_dir().join("rubin/schema/v7_1/sample_data/alert.json"));
    let e = d.decode(&json).unwrap_err();
    assert!(matches!(e, DecodeError::NotAvro { .. }), "{e}");
    assert!(e.to_string().contains("check the topic's framing"), "{e}");

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for len in [1usize, 5, 17, 100, 5000] {
        for _ in 0..200 {
            let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            assert!(d.decode(&Bytes::from(b.clone())).is_err());
            // And behind each valid framing prefix.
            b[0] = 0;
            let _ = d.decode(&Bytes::from(b.clone()));
            let mut c = b"Obj\x01".to_vec();
            c.extend_from_slice(&b);
            let _ = d.decode(&Bytes::from(c));
        }
    }
}

#[test]
fn random_corruption_of_real_alerts_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let files = all_files();
    let d = Decoder::new(
        vec![
            "candidate.magpsf".into(),
            "prv_candidates.fid".into(),
            "diaObject.ra".into(),
        ],
        SchemaSource::Dir(data_dir().join("rubin/schema")),
    );
    for f in &files {
        let msg = read(f).to_vec();
        let raw = split_container(&msg);
        for _ in 0..300 {
            let mut m = msg.clone();
            // Corrupt the records, not the schema (which would only be
            // parsed again and again).
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(raw.header.len()..m.len());
                m[at] = rng.random();
            }
            let _ = d.decode(&Bytes::from(m));
        }
    }
    // Wire format corruption.
    for (f, id) in rubin_files() {
        let raw = split_container(&read(&f));
        for _ in 0..300 {
            let mut r = raw.records.clone();
            let at = rng.random_range(0..r.len());
            r[at] = rng.random();
            let _ = d.decode(&wire(id, &r));
        }
    }
}

#[test]
fn random_corruption_of_compressed_alerts_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let dir = tempfile::tempdir().unwrap();
    let ztf = ztf_files().remove(0);
    fastavro_rewrite(dir.path(), &[ztf.as_os_str()]);
    let d = Decoder::new(
        vec![
            "candidate.magpsf".into(),
            "prv_candidates.fid".into(),
            "cutoutScience.stampData".into(),
        ],
        SchemaSource::None,
    );
    for codec in CODECS {
        let msg = read(&dir.path().join(format!("{codec}-first.avro")));
        decode_one(&d, &msg);
        // Corrupt the block (its count, size, compressed data or sync
        // marker), not the header.
        let start = split_container(&msg).header.len();
        for _ in 0..300 {
            let mut m = msg.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(start..m.len());
                m[at] = rng.random();
            }
            let _ = d.decode(&Bytes::from(m));
        }
    }
}

#[test]
fn a_corrupt_container_header_is_reported_as_such() {
    let msg = read(&ztf_files()[0]).to_vec();
    let raw = split_container(&msg);
    let d = Decoder::new(vec!["candidate.magpsf".into()], SchemaSource::None);

    // The metadata map's entry count replaced by a huge count.
    let mut m = msg.clone();
    m[4] = 0xff;
    assert!(d.decode(&Bytes::from(m)).is_err());

    // The schema key renamed: no avro.schema entry.
    let mut m = msg.clone();
    let at = msg.windows(11).position(|w| w == b"avro.schema").unwrap();
    m[at] = b'x';
    let e = d.decode(&Bytes::from(m)).unwrap_err();
    assert!(matches!(e, DecodeError::BadContainerHeader { .. }), "{e}");
    assert!(e.to_string().contains("avro.schema"), "{e}");

    // A schema that is not JSON.
    let m = build_container("{not json", "null", &[(1, &raw.records)]);
    let e = d.decode(&Bytes::from(m)).unwrap_err();
    assert!(matches!(e, DecodeError::BadSchema { .. }), "{e}");

    // The sync marker after the block damaged.
    let mut m = msg.clone();
    let last = m.len() - 1;
    m[last] ^= 1;
    let e = d.decode(&Bytes::from(m)).unwrap_err();
    assert!(matches!(e, DecodeError::CorruptBlock { .. }), "{e}");

    // An unsupported codec (fastavro writes lz4; the specification does
    // not list it).
    let m = build_container(&raw.schema, "lz4", &[(1, &raw.records)]);
    let e = d.decode(&Bytes::from(m)).unwrap_err();
    assert!(
        matches!(&e, DecodeError::UnsupportedCodec { codec } if codec == "lz4"),
        "{e}"
    );
    assert!(e.to_string().contains("'lz4'"), "{e}");

    // Snappy data that is not snappy.
    let m = build_container(&raw.schema, "snappy", &[(1, &raw.records)]);
    let e = d.decode(&Bytes::from(m)).unwrap_err();
    assert!(matches!(e, DecodeError::CorruptBlock { .. }), "{e}");
    assert!(e.to_string().contains("snappy"), "{e}");

    // Deflate data that is not deflate.
    let m = build_container(&raw.schema, "deflate", &[(1, b"\xff\xff\xff\xff")]);
    let e = d.decode(&Bytes::from(m)).unwrap_err();
    assert!(matches!(e, DecodeError::CorruptBlock { .. }), "{e}");

    // A block claiming more records than it holds, or fewer.
    let m = build_container(&raw.schema, "null", &[(2, &raw.records)]);
    assert!(d.decode(&Bytes::from(m)).is_err());
    let two = raw.records.repeat(2);
    let m = build_container(&raw.schema, "null", &[(1, &two)]);
    let e = d.decode(&Bytes::from(m)).unwrap_err();
    assert!(matches!(e, DecodeError::CorruptBlock { .. }), "{e}");
}

#[test]
fn the_decoder_is_shared_by_threads() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Decoder>();
    let files = all_files();
    let msgs: Vec<Bytes> = files.iter().map(|f| read(f)).collect();
    let d = Arc::new(Decoder::new(
        vec!["candidate.magpsf".into(), "prvDiaSources.psfFlux".into()],
        SchemaSource::None,
    ));
    let expected: Vec<Vec<FieldValue>> = msgs.iter().map(|m| decode_one(&d, m).values).collect();
    let fresh = Arc::new(Decoder::new(d.paths().to_vec(), SchemaSource::None));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (fresh, msgs, expected) = (fresh.clone(), &msgs, &expected);
            s.spawn(move || {
                for (m, e) in msgs.iter().zip(expected) {
                    assert_eq!(&decode_one(&fresh, m).values, e);
                }
            });
        }
    });
    // Each distinct schema parsed once per thread that raced on it at most.
    assert!(fresh.schemas_parsed() <= 4 * d.schemas_parsed());
}
