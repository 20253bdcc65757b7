//! Unit tests of the decoder: varints, skipping, paths through unions and
//! arrays, corrupt input. Records are written by hand with [`Enc`].
//!
//! Length: about 1,300 lines of tests, one file so that they share the
//! hand encoder and the fake schema registry; no code of the crate is
//! here.

use super::plan::{Reader, write_long};
use super::*;

/// Writes Avro binary by hand.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn long(mut self, v: i64) -> Enc {
        write_long(&mut self.0, v);
        self
    }
    fn str(self, s: &str) -> Enc {
        self.blob(s.as_bytes())
    }
    fn blob(mut self, b: &[u8]) -> Enc {
        write_long(&mut self.0, b.len() as i64);
        self.0.extend_from_slice(b);
        self
    }
    fn raw(mut self, b: &[u8]) -> Enc {
        self.0.extend_from_slice(b);
        self
    }
    fn f32(self, v: f32) -> Enc {
        self.raw(&v.to_le_bytes())
    }
    fn f64(self, v: f64) -> Enc {
        self.raw(&v.to_le_bytes())
    }
    fn bool(self, v: bool) -> Enc {
        self.raw(&[u8::from(v)])
    }
}

const SYNC: [u8; 16] = *b"SYNCSYNCSYNCSYNC";

fn container_with(schema: &str, codec: &str, blocks: &[(i64, Vec<u8>)]) -> Bytes {
    let mut out = MAGIC.to_vec();
    write_long(&mut out, 2);
    for (k, v) in [("avro.schema", schema), ("avro.codec", codec)] {
        write_long(&mut out, k.len() as i64);
        out.extend_from_slice(k.as_bytes());
        write_long(&mut out, v.len() as i64);
        out.extend_from_slice(v.as_bytes());
    }
    write_long(&mut out, 0);
    out.extend_from_slice(&SYNC);
    for (n, data) in blocks {
        write_long(&mut out, *n);
        write_long(&mut out, data.len() as i64);
        out.extend_from_slice(data);
        out.extend_from_slice(&SYNC);
    }
    Bytes::from(out)
}

fn container(schema: &str, record: &[u8]) -> Bytes {
    container_with(schema, "null", &[(1, record.to_vec())])
}

fn decode(paths: &[&str], schema: &str, record: &[u8]) -> Result<Vec<FieldValue>, DecodeError> {
    let d = Decoder::new(
        paths.iter().map(|p| p.to_string()).collect(),
        SchemaSource::None,
    );
    let mut v = d.decode(&container(schema, record))?;
    assert_eq!(v.len(), 1);
    Ok(v.remove(0).values)
}

/// Decodes `record` framed in Confluent wire format (id 1), the schema
/// in a temporary directory.
fn decode_wire(
    paths: &[&str],
    schema: &str,
    record: &[u8],
) -> Result<Vec<FieldValue>, DecodeError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("1.avsc"), schema).unwrap();
    let d = Decoder::new(
        paths.iter().map(|p| p.to_string()).collect(),
        SchemaSource::Dir(dir.path().to_path_buf()),
    );
    let mut m = vec![0, 0, 0, 0, 1];
    m.extend_from_slice(record);
    let mut v = d.decode(&Bytes::from(m))?;
    assert_eq!(v.len(), 1);
    Ok(v.remove(0).values)
}

#[test]
fn zigzag_varints_round_trip_and_match_the_spec() {
    let known: [(i64, &[u8]); 6] = [
        (0, &[0]),
        (-1, &[1]),
        (1, &[2]),
        (-64, &[0x7f]),
        (64, &[0x80, 0x01]),
        (-8193, &[0x81, 0x80, 0x01]),
    ];
    for (v, bytes) in known {
        let mut out = Vec::new();
        write_long(&mut out, v);
        assert_eq!(out, bytes, "{v}");
    }
    for v in [
        0,
        1,
        -1,
        63,
        -64,
        127,
        300,
        i32::MAX as i64,
        i32::MIN as i64,
        i64::MAX,
        i64::MIN,
    ] {
        let mut out = Vec::new();
        write_long(&mut out, v);
        let mut r = Reader::new(&out);
        assert_eq!(r.long("x"), Ok(v));
        assert_eq!(r.pos, out.len());
    }
}

#[test]
fn malformed_varints_are_errors_not_panics() {
    // Eleven continuation bytes.
    let mut r = Reader::new(&[0xff; 11]);
    assert!(r.long("x").unwrap_err().invalid.is_some());
    // Ten bytes whose last overflows 64 bits.
    let mut b = vec![0xff; 9];
    b.push(0x02);
    assert!(Reader::new(&b).long("x").unwrap_err().invalid.is_some());
    // Cut in the middle.
    let e = Reader::new(&[0x80, 0x80]).long("x").unwrap_err();
    assert_eq!(e.invalid, None);
    assert_eq!(e.offset, 0);
    // An int that does not fit 32 bits.
    let mut out = Vec::new();
    write_long(&mut out, i64::from(i32::MAX) + 1);
    assert!(Reader::new(&out).int("x").unwrap_err().invalid.is_some());
    // A negative length.
    let e = Reader::new(&[0x01]).len("x").unwrap_err();
    assert_eq!(e.invalid, Some("length is negative"));
}

/// A schema with every kind of type, ending with `tail`, so that reading
/// `tail` right proves everything before it was skipped right.
const EVERYTHING: &str = r#"{"type":"record","name":"all","namespace":"t","fields":[
  {"name":"b","type":"boolean"},
  {"name":"i","type":"int"},
  {"name":"l","type":"long"},
  {"name":"f","type":"float"},
  {"name":"d","type":"double"},
  {"name":"s","type":"string"},
  {"name":"by","type":"bytes"},
  {"name":"fx","type":{"type":"fixed","name":"F3","size":3}},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["RED","GREEN"]}},
  {"name":"n","type":"null"},
  {"name":"u","type":["float","null"],"default":null},
  {"name":"rec","type":{"type":"record","name":"inner","fields":[
      {"name":"x","type":["null","double"]},{"name":"y","type":"string"}]}},
  {"name":"ds","type":{"type":"array","items":"double"}},
  {"name":"rs","type":["null",{"type":"array","items":"inner"}]},
  {"name":"m","type":{"type":"map","values":["null","inner"]}},
  {"name":"tail","type":"string"}
]}"#;

fn everything_record(blocked: bool) -> Vec<u8> {
    let inner = |x: Option<f64>, y: &str| {
        let e = match x {
            None => Enc::default().long(0),
            Some(v) => Enc::default().long(1).f64(v),
        };
        e.str(y).0
    };
    let rs_items = [
        inner(Some(1.5), "a"),
        inner(None, "b"),
        inner(Some(-2.0), "c"),
    ]
    .concat();
    let mut e = Enc::default()
        .bool(true)
        .long(-7)
        .long(1 << 40)
        .f32(0.25)
        .f64(6.5)
        .str("héllo")
        .blob(&[0, 1, 2])
        .raw(&[9, 8, 7])
        .long(1)
        // null: nothing
        .long(0)
        .f32(3.0)
        .long(1)
        .f64(2.5)
        .str("in");
    // ds: two blocks, the second with a byte size.
    e = e.long(2).f64(1.0).f64(2.0);
    e = e.long(-1).long(8).f64(3.0).long(0);
    // rs: the array branch, items in one block (with a size if blocked).
    e = e.long(1);
    e = if blocked {
        e.long(-3)
            .long(rs_items.len() as i64)
            .raw(&rs_items)
            .long(0)
    } else {
        e.long(3).raw(&rs_items).long(0)
    };
    // m: one entry with a record, one null, then a sized block.
    let entry = Enc::default().str("k2").long(1).raw(&inner(None, "z")).0;
    e = e
        .long(2)
        .str("k0")
        .long(1)
        .raw(&inner(Some(1.0), "q"))
        .str("k1")
        .long(0);
    e = e.long(-1).long(entry.len() as i64).raw(&entry).long(0);
    e.str("end").0
}

#[test]
fn skipping_every_kind_of_type_lands_on_the_next_field() {
    for blocked in [false, true] {
        let v = decode(&["tail"], EVERYTHING, &everything_record(blocked)).unwrap();
        assert_eq!(v, vec![FieldValue::Text("end".into())]);
    }
}

#[test]
fn every_kind_of_leaf_reads_its_value() {
    let paths = [
        "b",
        "i",
        "l",
        "f",
        "d",
        "s",
        "by",
        "fx",
        "e",
        "n",
        "u",
        "rec.x",
        "rec.y",
        "ds",
        "rs.x",
        "rs.y",
        "m",
        "rec",
        "tail",
        "nope",
        "rs.x.deeper",
    ];
    for blocked in [false, true] {
        let v = decode(&paths, EVERYTHING, &everything_record(blocked)).unwrap();
        use FieldValue::*;
        assert_eq!(
            v,
            vec![
                Boolean(true),
                Integer(-7),
                Integer(1 << 40),
                Real(0.25),
                Real(6.5),
                Text("héllo".into()),
                Bytes(vec![0, 1, 2]),
                Bytes(vec![9, 8, 7]),
                Text("GREEN".into()),
                Absent,
                Real(3.0),
                Real(2.5),
                Text("in".into()),
                Reals(vec![Some(1.0), Some(2.0), Some(3.0)]),
                Reals(vec![Some(1.5), None, Some(-2.0)]),
                Texts(vec![Some("a".into()), Some("b".into()), Some("c".into())]),
                Missing,
                Missing,
                Text("end".into()),
                Missing,
                Missing,
            ]
        );
    }
}

const UNIONS: &str = r#"{"type":"record","name":"u","namespace":"t","fields":[
  {"name":"obj","type":["null",
     {"type":"record","name":"A","fields":[{"name":"a","type":"int"},{"name":"both","type":"string"}]},
     {"type":"record","name":"B","fields":[{"name":"both","type":"string"},{"name":"b","type":["null","long"]}]}]},
  {"name":"items","type":["null",{"type":"array","items":["null","A"]}]},
  {"name":"mixed","type":["null","int","string"]}
]}"#;

#[test]
fn paths_follow_the_union_branch_written() {
    let paths = [
        "obj.a",
        "obj.both",
        "obj.b",
        "items.a",
        "items.both",
        "mixed",
    ];
    use FieldValue::*;
    // Branch B, items null, mixed a string.
    let rec = Enc::default()
        .long(2)
        .str("bee")
        .long(1)
        .long(5)
        .long(0)
        .long(2)
        .str("txt")
        .0;
    assert_eq!(
        decode(&paths, UNIONS, &rec).unwrap(),
        vec![
            Absent,
            Text("bee".into()),
            Integer(5),
            Absent,
            Absent,
            Text("txt".into())
        ]
    );
    // Branch A; items: [A, null, A]; mixed an int.
    let rec = Enc::default()
        .long(1)
        .long(3)
        .str("ay")
        .long(1)
        .long(3)
        .long(1)
        .long(10)
        .str("x")
        .long(0)
        .long(1)
        .long(11)
        .str("z")
        .long(0)
        .long(1)
        .long(42)
        .0;
    assert_eq!(
        decode(&paths, UNIONS, &rec).unwrap(),
        vec![
            Integer(3),
            Text("ay".into()),
            Absent,
            Integers(vec![Some(10), None, Some(11)]),
            Texts(vec![Some("x".into()), None, Some("z".into())]),
            Integer(42),
        ]
    );
    // obj null, items an empty array, mixed null.
    let rec = Enc::default().long(0).long(1).long(0).long(0).0;
    assert_eq!(
        decode(&paths, UNIONS, &rec).unwrap(),
        vec![
            Absent,
            Absent,
            Absent,
            Integers(vec![]),
            Texts(vec![]),
            Absent
        ]
    );
}

#[test]
fn bad_union_and_enum_indices_and_bad_utf8_are_invalid_data() {
    // Union index 3 of 3 branches.
    let e = decode(&["obj.a"], UNIONS, &Enc::default().long(3).0).unwrap_err();
    assert!(matches!(e, DecodeError::InvalidData { .. }), "{e}");
    // Negative union index.
    let e = decode(&["obj.a"], UNIONS, &Enc::default().long(-1).0).unwrap_err();
    assert!(matches!(e, DecodeError::InvalidData { .. }), "{e}");
    let schema = r#"{"type":"record","name":"r","fields":[
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}},{"name":"s","type":"string"}]}"#;
    let e = decode(&["e"], schema, &Enc::default().long(1).str("x").0).unwrap_err();
    assert!(e.to_string().contains("enum index out of range"), "{e}");
    let e = decode(
        &["s"],
        schema,
        &Enc::default().long(0).blob(&[0xff, 0xfe]).0,
    )
    .unwrap_err();
    assert!(e.to_string().contains("UTF-8"), "{e}");
    // Skipped, the same bad string is fine (it is not looked at).
    assert!(
        decode(
            &["e"],
            schema,
            &Enc::default().long(0).blob(&[0xff, 0xfe]).0
        )
        .is_ok()
    );
}

#[test]
fn absurd_counts_and_lengths_are_refused_without_allocating() {
    let arrays = r#"{"type":"record","name":"r","fields":[
        {"name":"xs","type":{"type":"array","items":"double"}},
        {"name":"ns","type":{"type":"array","items":"null"}},
        {"name":"s","type":"string"}]}"#;
    // A count of 2^60 doubles in a few bytes: skipped or read, refused.
    for paths in [&["s"][..], &["xs"][..]] {
        let e = decode_wire(paths, arrays, &Enc::default().long(1 << 60).f64(1.0).0).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{e}");
    }
    // i64::MIN as a block count (its absolute value overflows i64).
    let e = decode_wire(&["xs"], arrays, &Enc::default().long(i64::MIN).long(0).0).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::InvalidData { .. } | DecodeError::Truncated { .. }
        ),
        "{e}"
    );
    // 2^40 nulls take no bytes: refused by the item budget.
    let e = decode_wire(
        &["s"],
        arrays,
        &Enc::default().long(0).long(1 << 40).long(0).str("x").0,
    )
    .unwrap_err();
    assert!(matches!(e, DecodeError::InvalidData { .. }), "{e}");
    // A string longer than the message.
    let e = decode_wire(
        &["s"],
        arrays,
        &Enc::default().long(0).long(0).long(1 << 50).0,
    )
    .unwrap_err();
    assert!(matches!(e, DecodeError::Truncated { .. }), "{e}");
    // A negative length.
    let e = decode_wire(&["s"], arrays, &Enc::default().long(0).long(0).long(-5).0).unwrap_err();
    assert!(matches!(e, DecodeError::InvalidData { .. }), "{e}");
    // A block count claiming more records than the block holds.
    let schema = r#"{"type":"record","name":"r","fields":[{"name":"d","type":"double"}]}"#;
    let m = container_with(schema, "null", &[(1 << 50, Enc::default().f64(1.0).0)]);
    let d = Decoder::new(vec!["d".into()], SchemaSource::None);
    assert!(matches!(
        d.decode(&m),
        Err(DecodeError::CorruptBlock { .. })
    ));
}

const LIST: &str = r#"{"type":"record","name":"node","fields":[
    {"name":"v","type":"long"},{"name":"next","type":["null","node"]}]}"#;

fn list(n: usize) -> Vec<u8> {
    let mut e = Enc::default();
    for i in 0..n {
        e = e.long(i as i64).long(1);
    }
    e.long(n as i64).long(0).0
}

#[test]
fn recursive_types_decode_and_deep_nesting_is_refused() {
    let v = decode(
        &["v", "next.v", "next.next.v", "next.next.next.next.v"],
        LIST,
        &list(3),
    )
    .unwrap();
    use FieldValue::*;
    assert_eq!(v, vec![Integer(0), Integer(1), Integer(2), Absent]);
    // Skipping a long list walks the schema, with a depth limit.
    assert!(decode(&["v"], LIST, &list(30)).is_ok());
    let e = decode(&["v"], LIST, &list(100_000)).unwrap_err();
    assert!(e.to_string().contains("nest too deep"), "{e}");
}

#[test]
fn a_record_cut_at_any_byte_is_an_error() {
    let rec = everything_record(true);
    let d = Decoder::new(vec!["tail".into(), "rs.x".into()], SchemaSource::None);
    let full = container(EVERYTHING, &rec);
    assert!(d.decode(&full).is_ok());
    for cut in 0..rec.len() {
        // Cut inside the block's data (the block size still says the full
        // length: the message is truncated) ...
        let header_len = full.len() - rec.len() - 16 - 3;
        let m = full.slice(..header_len + 3 + cut);
        assert!(d.decode(&m).is_err(), "cut at {cut}");
        // ... and a block whose size matches the shorter record.
        let m = container(EVERYTHING, &rec[..cut]);
        let e = d.decode(&m).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::CorruptBlock { .. } | DecodeError::InvalidData { .. }
            ),
            "cut at {cut}: {e}"
        );
        // ... and the same record in wire format, where the record runs
        // past the message's end.
        let e = decode_wire(&["tail", "rs.x"], EVERYTHING, &rec[..cut]).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::Truncated { .. } | DecodeError::InvalidData { .. }
            ),
            "cut at {cut}: {e}"
        );
    }
}

fn real_alert() -> Bytes {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/ztf/alerts/v3.3"
    );
    let f = std::fs::read_dir(dir)
        .expect("the shared ZTF samples beside the repository")
        .next()
        .unwrap()
        .unwrap()
        .path();
    Bytes::from(std::fs::read(f).unwrap())
}

#[test]
fn a_real_alert_cut_at_a_sample_of_offsets_is_an_error() {
    let msg = real_alert();
    let d = Decoder::new(
        vec![
            "candidate.magpsf".into(),
            "prv_candidates.magpsf".into(),
            "cutoutScience.stampData".into(),
        ],
        SchemaSource::None,
    );
    let ok = d.decode(&msg).unwrap();
    assert_eq!(ok.len(), 1);
    let header_end = container::parse_header(&msg).unwrap().end;
    for cut in (0..msg.len()).step_by(13).chain([header_end]) {
        if let Ok(v) = d.decode(&msg.slice(..cut)) {
            panic!("cut at {cut} decoded to {} alerts", v.len());
        }
    }
    assert_eq!(d.schemas_parsed(), 1);
}

#[test]
fn an_unknown_codec_is_named_in_the_error_with_the_supported_ones() {
    // lz4: fastavro writes it, the Avro specification does not list it.
    let m = container_with(LIST, "lz4", &[(1, list(1))]);
    let d = Decoder::new(vec!["v".into()], SchemaSource::None);
    let e = d.decode(&m).unwrap_err();
    assert!(matches!(&e, DecodeError::UnsupportedCodec { codec } if codec == "lz4"));
    let text = e.to_string();
    assert!(
        text.contains("codec 'lz4'")
            && text
                .contains("it decodes 'null', 'deflate', 'snappy', 'zstandard', 'bzip2' and 'xz'"),
        "{text}"
    );
}

#[test]
fn deflate_blocks_decode_and_corrupt_ones_are_reported() {
    let rec = everything_record(false);
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &rec).unwrap();
    let deflated = enc.finish().unwrap();
    let d = Decoder::new(vec!["tail".into()], SchemaSource::None);
    let m = container_with(EVERYTHING, "deflate", &[(1, deflated.clone())]);
    assert_eq!(
        d.decode(&m).unwrap()[0].values,
        vec![FieldValue::Text("end".into())]
    );
    // Inflated data cut short.
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &rec[..rec.len() - 2]).unwrap();
    let m = container_with(EVERYTHING, "deflate", &[(1, enc.finish().unwrap())]);
    let e = d.decode(&m).unwrap_err();
    assert!(matches!(e, DecodeError::CorruptBlock { .. }), "{e}");
    // Deflate data cut short.
    let m = container_with(
        EVERYTHING,
        "deflate",
        &[(1, deflated[..deflated.len() / 2].to_vec())],
    );
    assert!(d.decode(&m).is_err());
}

/// The codecs of the Avro specification other than null, by name.
const CODECS: [&str; 5] = ["deflate", "snappy", "zstandard", "bzip2", "xz"];

/// `data` compressed for a block of `codec`, by that codec's library
/// directly, as a producer writes it (not by bandpass's own
/// `container::compress`). `level` is the library's level (xz: preset).
fn compressed_at(codec: &str, data: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write;
    match codec {
        "deflate" => {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "snappy" => {
            let mut out = snap::raw::Encoder::new().compress_vec(data).unwrap();
            out.extend_from_slice(&crc32fast::hash(data).to_be_bytes());
            out
        }
        "zstandard" => zstd::bulk::compress(data, level as i32).unwrap(),
        "bzip2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(level));
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), level);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        other => panic!("no codec {other}"),
    }
}

fn compressed(codec: &str, data: &[u8]) -> Vec<u8> {
    compressed_at(codec, data, if codec == "xz" { 6 } else { 3 })
}

#[test]
fn every_codec_of_the_specification_decodes_blocks_of_several_records() {
    let rec = everything_record(true);
    let paths = vec!["tail".to_string(), "rs.x".to_string(), "s".to_string()];
    let d = Decoder::new(paths.clone(), SchemaSource::None);
    let plain = d.decode(&container(EVERYTHING, &rec)).unwrap().remove(0);
    for codec in CODECS {
        // Three records in one block, one in a second.
        let m = container_with(
            EVERYTHING,
            codec,
            &[
                (3, compressed(codec, &rec.repeat(3))),
                (1, compressed(codec, &rec)),
            ],
        );
        let alerts = d.decode(&m).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!(alerts.len(), 4, "{codec}");
        for a in &alerts {
            assert_eq!(a.values, plain.values, "{codec}");
            // Each alone: the original header (so the same codec), one
            // block of one record that decodes to the same values.
            assert!(
                a.raw
                    .starts_with(&m[..container::parse_header(&m).unwrap().end])
            );
            let again = d.decode(&a.raw).unwrap_or_else(|e| panic!("{codec}: {e}"));
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].values, plain.values, "{codec}");
        }
        // A single-record message is forwarded as it came.
        let one = container_with(EVERYTHING, codec, &[(1, compressed(codec, &rec))]);
        assert_eq!(d.decode(&one).unwrap()[0].raw, one, "{codec}");
    }
    assert_eq!(d.schemas_parsed(), 1);
}

#[test]
fn corrupt_compressed_blocks_are_reported_naming_the_codec() {
    let rec = everything_record(false);
    let d = Decoder::new(vec!["tail".into()], SchemaSource::None);
    for codec in CODECS {
        let good = compressed(codec, &rec);
        let cut = good[..good.len() / 2].to_vec();
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        for (what, data) in [
            (
                "not compressed at all",
                b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8".to_vec(),
            ),
            ("cut in half", cut),
            ("with a byte changed", flipped),
        ] {
            let m = container_with(EVERYTHING, codec, &[(1, data)]);
            let e = d.decode(&m).unwrap_err();
            // Deflate has no checksum: a changed byte may decompress, and
            // the records it gives then fail to decode.
            let text = e.to_string();
            assert!(
                matches!(e, DecodeError::CorruptBlock { .. }),
                "{codec} {what}: {text}"
            );
            assert!(
                text.contains(codec) || text.contains("record data"),
                "{codec} {what}: {text}"
            );
        }
    }
    // Snappy's CRC32 is checked: the right data with a wrong checksum.
    let mut bad_crc = compressed("snappy", &rec);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let e = d
        .decode(&container_with(EVERYTHING, "snappy", &[(1, bad_crc)]))
        .unwrap_err();
    assert!(e.to_string().contains("fails its CRC32 check"), "{e}");
    // Shorter than its checksum.
    let e = d
        .decode(&container_with(EVERYTHING, "snappy", &[(1, vec![0, 0])]))
        .unwrap_err();
    assert!(e.to_string().contains("4-byte CRC32"), "{e}");
}

#[test]
fn a_block_decompresses_to_exactly_the_bound_and_not_a_byte_more() {
    const LIMIT: usize = 1 << 20;
    for codec in CODECS {
        let c = match codec {
            "deflate" => container::Codec::Deflate,
            "snappy" => container::Codec::Snappy,
            "zstandard" => container::Codec::Zstandard,
            "bzip2" => container::Codec::Bzip2,
            _ => container::Codec::Xz,
        };
        // Preset 0: a dictionary (256 KiB) well inside the bound.
        let level = if codec == "xz" { 0 } else { 3 };
        let at = compressed_at(codec, &vec![7u8; LIMIT], level);
        let out = container::decompress_bounded(c, &at, 40, LIMIT).unwrap();
        assert_eq!(out.len(), LIMIT, "{codec}");
        assert!(out.capacity() <= LIMIT, "{codec}: {}", out.capacity());
        let over = compressed_at(codec, &vec![7u8; LIMIT + 1], level);
        let e = container::decompress_bounded(c, &over, 40, LIMIT).unwrap_err();
        assert_eq!(
            e,
            DecodeError::BlockTooLarge {
                offset: 40,
                codec,
                limit: LIMIT
            }
        );
        let text = e.to_string();
        assert!(
            text.contains(&format!("decompresses ({codec}) past 1 MiB")),
            "{text}"
        );
    }
    // xz asking for a dictionary larger than the bound is refused before
    // it is allocated (preset 1: a 1 MiB dictionary, plus the decoder's
    // own state).
    let xz = compressed_at("xz", b"small", 1);
    let e = container::decompress_bounded(container::Codec::Xz, &xz, 40, LIMIT).unwrap_err();
    assert!(
        e.to_string()
            .contains("needs more memory to decompress than the 1 MiB left for it"),
        "{e}"
    );
}

#[test]
fn compression_bombs_are_stopped_at_256_mib_a_message() {
    let d = Decoder::new(vec!["v".into()], SchemaSource::None);
    // Snappy says its length first: 300 MiB is refused before anything is
    // decompressed or allocated.
    let mut claim = Vec::new();
    let mut n = 300u64 << 20;
    while n >= 0x80 {
        claim.push((n as u8) | 0x80);
        n >>= 7;
    }
    claim.push(n as u8);
    claim.extend_from_slice(&[0; 8]);
    let e = d
        .decode(&container_with(LIST, "snappy", &[(1, claim)]))
        .unwrap_err();
    assert!(
        matches!(e, DecodeError::BlockTooLarge { codec: "snappy", limit, .. } if limit == 256 << 20),
        "{e}"
    );
    // Two blocks of 129 MiB of zeros, a few KiB of zstandard each: the
    // first decodes (one record, a 129 MiB fixed), the second is stopped
    // where the two reach 256 MiB.
    let schema = format!(
        r#"{{"type":"record","name":"big","fields":[
            {{"name":"b","type":{{"type":"fixed","name":"F","size":{}}}}}]}}"#,
        129 << 20
    );
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..129 {
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let one = container_with(&schema, "zstandard", &[(1, bomb.clone())]);
    assert_eq!(d.decode(&one).unwrap().len(), 1);
    let two = container_with(&schema, "zstandard", &[(1, bomb.clone()), (1, bomb)]);
    let e = d.decode(&two).unwrap_err();
    assert!(
        matches!(e, DecodeError::BlockTooLarge { codec: "zstandard", limit, .. } if limit == 256 << 20),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains(
            "decompresses (zstandard) past 256 MiB, the most bandpass decompresses of one message (all its blocks together)"
        ),
        "{text}"
    );
}

#[test]
fn a_schema_whose_root_is_not_a_record_is_refused_as_such() {
    let d = Decoder::new(vec!["v".into()], SchemaSource::None);
    for (schema, record, root) in [
        (
            r#""string""#,
            Enc::default().str("hi").0,
            "the primitive type 'string'",
        ),
        (
            r#"["null",{"type":"record","name":"r","namespace":"t","fields":[{"name":"v","type":"long"}]}]"#,
            Enc::default().long(1).long(42).0,
            "a union (null|t.r)",
        ),
    ] {
        let e = d.decode(&container(schema, &record)).unwrap_err();
        assert!(
            matches!(&e, DecodeError::RootNotRecord { root: r, .. } if r == root),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "is valid Avro, but its root is {root}, not a record"
            )) && text.contains("bandpass needs a record at the root")
                && !text.contains("cannot be used"),
            "{text}"
        );
    }
    // The same in wire format, from a schema directory.
    let e = decode_wire(&["v"], r#""long""#, &Enc::default().long(1).0).unwrap_err();
    assert!(matches!(e, DecodeError::RootNotRecord { .. }), "{e}");
}

/// Log lines written while `f` runs (on this thread), as text.
fn logs_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn a_field_name_defined_twice_reads_the_last_and_is_warned_about_once() {
    // As fastavro reads it (tests/all/decode.rs compares): both fields are
    // in the data, a reader of 'a' gets the second.
    let schema = r#"{"type":"record","name":"twice","namespace":"dup","fields":[
        {"name":"a","type":"long"},{"name":"x","type":"string"},
        {"name":"a","type":"double"},{"name":"z","type":"long"}]}"#;
    let rec = Enc::default().long(5).str("hi").f64(2.5).long(9).0;
    let logs = logs_of(|| {
        for _ in 0..2 {
            let v = decode(&["a", "x", "z"], schema, &rec).unwrap();
            assert_eq!(
                v,
                vec![
                    FieldValue::Real(2.5),
                    FieldValue::Text("hi".into()),
                    FieldValue::Integer(9)
                ]
            );
        }
    });
    assert_eq!(logs.lines().count(), 1, "{logs}");
    assert!(
        logs.contains("WARN")
            && logs.contains("schema=dup.twice")
            && logs.contains("fields=dup.twice.a")
            && logs.contains("read the last of them"),
        "{logs}"
    );
}

#[test]
fn duplicate_and_invalid_paths_are_answered_in_order() {
    let v = decode(&["v", "bad..path", "v", "next.v"], LIST, &list(2)).unwrap();
    use FieldValue::*;
    assert_eq!(v, vec![Integer(0), Missing, Integer(0), Integer(1)]);
}

#[test]
fn schema_fields_and_check_path_explain_the_schema() {
    let d = Decoder::new(vec![], SchemaSource::None);
    let info = d.register_schema(EVERYTHING).unwrap();
    assert_eq!(info.full_name, "t.all");
    assert_eq!(info.survey, "t");
    let fields = d.schema_fields(&info).unwrap();
    let get = |p: &str| fields.iter().find(|(x, _)| x == p).map(|(_, t)| t.as_str());
    assert_eq!(get("u"), Some("float|null"));
    assert_eq!(get("ds"), Some("array<double>"));
    assert_eq!(get("rs.x"), Some("array<null|double>"));
    assert_eq!(get("fx"), Some("t.F3"));
    assert_eq!(get("m"), None);
    assert_eq!(get("rec"), None);
    assert!(d.check_path(&info, "rec.x").is_ok());
    let why = d.check_path(&info, "rec").unwrap_err();
    assert!(
        why.contains("is a record (t.inner)") && why.contains("x, y"),
        "{why}"
    );
    let why = d.check_path(&info, "m.k").unwrap_err();
    assert!(why.contains("map"), "{why}");
    // Registering the same text again does not parse it again.
    d.register_schema(EVERYTHING).unwrap();
    assert_eq!(d.schemas_parsed(), 1);
}

#[test]
fn messages_in_neither_framing_are_refused() {
    let d = Decoder::new(vec!["v".into()], SchemaSource::None);
    let e = d.decode(&Bytes::from_static(b"{\"a\": 1}")).unwrap_err();
    assert!(matches!(e, DecodeError::NotAvro { .. }));
    assert!(e.to_string().contains("7b 22 61 22"), "{e}");
    assert!(matches!(d.decode(&Bytes::new()), Err(DecodeError::Empty)));
    // Magic only.
    assert!(matches!(
        d.decode(&Bytes::from_static(b"Obj\x01")),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn a_broken_header_schema_repeated_is_parsed_once() {
    let d = Decoder::new(vec!["v".into()], SchemaSource::None);
    let m = container_with(
        r#"{"type":"record","name":"r","fields":[{"name":"v","type":"nope"}]}"#,
        "null",
        &[(1, list(1))],
    );
    for _ in 0..3 {
        let e = d.decode(&m).unwrap_err();
        assert!(
            matches!(&e, DecodeError::BadSchema { reason, .. } if reason.contains("'nope'")),
            "{e}"
        );
    }
    assert_eq!(d.schemas_parsed(), 1);
}

/// A schema registry on a local port, for the registry tests: a thread
/// answers each request with `answer(request line)` and keeps every
/// request's head (request line and headers) for the test to look at.
struct FakeRegistry {
    url: String,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

type Answerer = dyn Fn(&str) -> (u16, String) + Send + Sync;

impl FakeRegistry {
    fn start(answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> FakeRegistry {
        FakeRegistry::serve(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), answer)
    }

    /// Serves on `listener` (one thread per connection, so that slow
    /// answers overlap); the threads end with the test process.
    fn serve(
        listener: std::net::TcpListener,
        answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
    ) -> FakeRegistry {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let answer: Arc<Answerer> = Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, answer) = (seen.clone(), answer.clone());
                std::thread::spawn(move || FakeRegistry::reply(stream, &seen, &*answer));
            }
        });
        FakeRegistry { url, requests }
    }

    fn reply(
        mut stream: std::net::TcpStream,
        seen: &std::sync::Mutex<Vec<String>>,
        answer: &Answerer,
    ) {
        use std::io::{BufRead, BufReader, Write};
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        seen.lock().unwrap().push(head.clone());
        let (status, body) = answer(head.lines().next().unwrap_or(""));
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-type: application/vnd.schemaregistry.v1+json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

const ONE_LONG: &str =
    r#"{"type":"record","name":"r","namespace":"t","fields":[{"name":"v","type":"long"}]}"#;

/// The registry's answer holding `schema`.
fn envelope(schema: &str) -> String {
    serde_json::json!({ "schema": schema }).to_string()
}

/// A wire-format message for schema `id` whose record is `v = 42`.
fn wire_42(id: u32) -> Bytes {
    let mut m = vec![0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&Enc::default().long(42).0);
    Bytes::from(m)
}

fn registry_decoder(registry: &SchemaRegistry) -> Decoder {
    Decoder::new(vec!["v".into()], SchemaSource::Registry(registry.clone()))
}

#[test]
fn a_wire_format_message_decodes_with_the_schema_the_registry_serves() {
    let server = FakeRegistry::start(|line| {
        if line.starts_with("GET /schemas/ids/7 ") {
            (200, envelope(ONE_LONG))
        } else {
            (500, String::new())
        }
    });
    let d = registry_decoder(&SchemaRegistry::new(&format!("{}/", server.url)));
    let alert = d.decode(&wire_42(7)).unwrap().remove(0);
    assert_eq!(alert.values, vec![FieldValue::Integer(42)]);
    assert_eq!(alert.schema.full_name, "t.r");
    let head = &server.requests()[0];
    assert!(
        !head.to_ascii_lowercase().contains("authorization"),
        "{head}"
    );
}

#[test]
fn the_registry_is_asked_once_per_schema_id() {
    let server = FakeRegistry::start(|_| (200, envelope(ONE_LONG)));
    let registry = SchemaRegistry::new(&server.url);
    let d = registry_decoder(&registry);
    for _ in 0..2 {
        assert_eq!(
            d.decode(&wire_42(7)).unwrap()[0].values,
            vec![FieldValue::Integer(42)]
        );
    }
    assert_eq!(d.schemas_parsed(), 1);
    // Another decoder sharing the registry (another filter's paths) does
    // not ask again either.
    let other = registry_decoder(&registry);
    other.decode(&wire_42(7)).unwrap();
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
}

#[test]
fn threads_missing_the_same_id_at_once_ask_the_registry_once() {
    let server = FakeRegistry::start(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        (200, envelope(ONE_LONG))
    });
    let d = Arc::new(registry_decoder(&SchemaRegistry::new(&server.url)));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let d = d.clone();
            std::thread::spawn(move || d.decode(&wire_42(7)).map(|mut v| v.remove(0).values))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), vec![FieldValue::Integer(42)]);
    }
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn an_id_the_registry_lacks_is_named_with_the_registry() {
    let server = FakeRegistry::start(|_| {
        (
            404,
            r#"{"error_code":40403,"message":"Schema 702 not found"}"#.into(),
        )
    });
    let d = registry_decoder(&SchemaRegistry::new(&server.url));
    let e = d.decode(&wire_42(702)).unwrap_err();
    assert!(
        matches!(&e, DecodeError::RegistrySchemaNotFound { id: 702, url } if *url == server.url),
        "{e}"
    );
    assert!(!e.is_transient());
    let text = e.to_string();
    assert!(
        text.contains("schema id 702")
            && text.contains(&server.url)
            && text.contains("check which schema the producer registered"),
        "{text}"
    );
    // A stream of such messages does not ask for each one.
    assert!(d.decode(&wire_42(702)).is_err());
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn an_unreachable_registry_is_transient_and_not_remembered() {
    // A port nothing listens on (bound, then closed).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let registry = SchemaRegistry::new(&format!("http://{addr}"))
        .with_lookup_budget(std::time::Duration::from_secs(2));
    let d = registry_decoder(&registry);
    let started = std::time::Instant::now();
    let e = d.decode(&wire_42(7)).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(e, DecodeError::RegistryUnreachable { id: 7, .. }),
        "{e}"
    );
    assert!(e.is_transient());
    let text = e.to_string();
    assert!(
        text.contains(&format!("http://{addr}"))
            && text.contains("did not answer for schema id 7")
            && text.contains("attempts")
            && text.contains("check that the registry is up"),
        "{text}"
    );
    // The registry comes up on that port: the next message decodes.
    let server = FakeRegistry::serve(std::net::TcpListener::bind(addr).unwrap(), |_| {
        (200, envelope(ONE_LONG))
    });
    assert_eq!(
        d.decode(&wire_42(7)).unwrap()[0].values,
        vec![FieldValue::Integer(42)]
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_registry_that_accepts_but_never_answers_times_out_within_the_budget() {
    // Connections queue in the backlog; nothing reads them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let registry = SchemaRegistry::new(&format!("http://{}", silent.local_addr().unwrap()))
        .with_lookup_budget(std::time::Duration::from_millis(600));
    let started = std::time::Instant::now();
    let e = registry_decoder(&registry).decode(&wire_42(7)).unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn server_errors_are_retried_within_one_lookup() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let server = FakeRegistry::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            (
                503,
                r#"{"error_code":50003,"message":"leader not known"}"#.into(),
            )
        } else {
            (200, envelope(ONE_LONG))
        }
    });
    let d = registry_decoder(&SchemaRegistry::new(&server.url));
    assert_eq!(
        d.decode(&wire_42(7)).unwrap()[0].values,
        vec![FieldValue::Integer(42)]
    );
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn basic_auth_is_sent_when_configured_and_a_refusal_names_the_keys() {
    let server = FakeRegistry::start(|_| (200, envelope(ONE_LONG)));
    let registry = SchemaRegistry::new(&server.url).with_basic_auth("alice", "s3cret");
    registry_decoder(&registry).decode(&wire_42(7)).unwrap();
    let head = server.requests()[0].to_ascii_lowercase();
    // base64("alice:s3cret")
    assert!(
        head.contains("authorization: basic ywxpy2u6cznjcmv0"),
        "{head}"
    );

    let denying =
        FakeRegistry::start(|_| (401, r#"{"error_code":401,"message":"Unauthorized"}"#.into()));
    let e = registry_decoder(&SchemaRegistry::new(&denying.url).with_basic_auth("alice", "wrong"))
        .decode(&wire_42(7))
        .unwrap_err();
    assert!(
        matches!(e, DecodeError::RegistryDenied { status: 401, .. }),
        "{e}"
    );
    assert!(!e.is_transient());
    assert!(e.to_string().contains("schemas.registry_password"), "{e}");
    assert!(!e.to_string().contains("wrong"), "{e}");
}

#[test]
fn non_avro_schemas_and_schemas_with_references_are_refused() {
    let server = FakeRegistry::start(|line| {
        if line.contains("/ids/1 ") {
            (
                200,
                serde_json::json!({"schemaType": "PROTOBUF", "schema": "syntax = \"proto3\";"})
                    .to_string(),
            )
        } else if line.contains("/ids/2 ") {
            (
                200,
                serde_json::json!({
                    "schemaType": "AVRO",
                    "schema": ONE_LONG,
                    "references": [{"name": "t.other", "subject": "other", "version": 1}]
                })
                .to_string(),
            )
        } else {
            (200, "<html>a web page</html>".into())
        }
    });
    let d = registry_decoder(&SchemaRegistry::new(&server.url));
    let e = d.decode(&wire_42(1)).unwrap_err();
    assert!(
        matches!(e, DecodeError::RegistryUnsupported { id: 1, .. }),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("PROTOBUF") && text.contains(&server.url),
        "{text}"
    );
    let e = d.decode(&wire_42(2)).unwrap_err();
    assert!(
        matches!(e, DecodeError::RegistryUnsupported { id: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("t.other"), "{e}");
    let e = d.decode(&wire_42(3)).unwrap_err();
    assert!(
        matches!(e, DecodeError::RegistryFailed { id: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("check schemas.registry_url"), "{e}");
    assert!(!e.is_transient());
}

#[test]
fn a_path_over_its_bounds_is_refused_before_it_is_split_and_named_shortly() {
    let long = format!("{}?", "a".repeat(60_000));
    let err = FieldPath::parse(&long).unwrap_err();
    assert!(
        err.reason
            .contains("60001 bytes long; a path may have at most 256")
    );
    assert!(err.path.len() < 120, "the path is named, cut: {}", err.path);
    let deep = vec!["a"; 17].join(".");
    let err = FieldPath::parse(&deep).unwrap_err();
    assert!(
        err.reason
            .contains("17 dot-separated parts; a path may have at most 16")
    );
    assert!(FieldPath::parse(&vec!["a"; 16].join(".")).is_ok());
    let escaped = FieldPath::parse("candidate.\u{1b}[2Jx").unwrap_err();
    assert!(escaped.path.contains("\\u{1b}[2Jx"), "{}", escaped.path);
}

#[test]
fn a_container_of_more_records_than_bandpass_splits_is_refused_naming_the_bound() {
    // 20,001 one-byte records (a boolean each): 20 KB, yet each record
    // would cost its decoded values and a copy of the header.
    let schema =
        br#"{"type":"record","name":"a","namespace":"t","fields":[{"name":"b","type":"boolean"}]}"#;
    let one = crate::fuzzing::container(schema, &[]);
    // Without its one empty block (count, size, sync marker).
    let mut msg = one[..one.len() - 18].to_vec();
    let n = MAX_RECORDS_PER_MESSAGE + 1;
    write_long(&mut msg, n as i64);
    write_long(&mut msg, n as i64);
    msg.extend(std::iter::repeat_n(1u8, n));
    msg.extend_from_slice(&one[one.len() - 16..]);
    let decoder = Decoder::new(vec!["b".into()], SchemaSource::None);
    let err = decoder.decode(&Bytes::from(msg)).unwrap_err();
    assert!(matches!(err, DecodeError::TooManyRecords { .. }), "{err}");
    assert!(err.to_string().contains("at most 20000 records"), "{err}");
}
