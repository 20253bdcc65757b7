//! Avro Object Container File framing: the header (magic, metadata map,
//! sync marker), the data blocks, and every codec the Avro specification
//! lists: `null`, `deflate`, `snappy`, `zstandard`, `bzip2`, `xz`.
//!
//! Decompression is bounded: one message's blocks together decompress to
//! at most [`MAX_DECOMPRESSED`] bytes (a compression bomb may be one huge
//! block or many large ones). Each block is decompressed into a buffer
//! that grows to at most what is left of that bound, and a block that has
//! more to give is refused ([`DecodeError::BlockTooLarge`]) without
//! decompressing further. The decompressors' own memory is bounded too
//! (zstandard's window, xz's memory limit; snappy says its length up
//! front and is refused before anything is allocated).

use std::io::{self, Read};
use std::ops::Range;

use super::DecodeError;
use super::plan::{Fault, Reader, write_long};

pub(crate) const MAGIC: &[u8; 4] = b"Obj\x01";

/// Most bytes the decoder decompresses of one message, all its blocks
/// together (a guard against compression bombs): no buffer grows past it.
pub(crate) const MAX_DECOMPRESSED: usize = 256 << 20;

/// The codecs [`parse_header`] accepts, as an error message lists them.
pub(crate) const SUPPORTED_CODECS: &str =
    "'null', 'deflate', 'snappy', 'zstandard', 'bzip2' and 'xz'";

/// Largest zstandard window accepted, as a power of two: 128 MiB (the
/// library's own default limit, below [`MAX_DECOMPRESSED`]).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// A block's codec, as the header's `avro.codec` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Null,
    Deflate,
    /// Raw snappy data followed by the big-endian CRC32 of the
    /// uncompressed data.
    Snappy,
    Zstandard,
    Bzip2,
    Xz,
}

impl Codec {
    /// The codec's name in `avro.codec`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Codec::Null => "null",
            Codec::Deflate => "deflate",
            Codec::Snappy => "snappy",
            Codec::Zstandard => "zstandard",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
        }
    }
}

/// A parsed container header.
#[derive(Debug)]
pub(crate) struct Header {
    /// Where the `avro.schema` value lies in the message.
    pub schema: Range<usize>,
    pub codec: Codec,
    pub sync: [u8; 16],
    /// Where the first block starts (the header is `message[..end]`).
    pub end: usize,
}

fn header_fault(f: Fault) -> DecodeError {
    match f.invalid {
        None => DecodeError::Truncated {
            what: f.what,
            offset: f.offset,
        },
        Some(reason) => DecodeError::BadContainerHeader {
            reason: format!("{} at byte {}: {reason}", f.what, f.offset),
        },
    }
}

/// Parses the header of a message that starts with [`MAGIC`].
pub(crate) fn parse_header(msg: &[u8]) -> Result<Header, DecodeError> {
    let mut r = Reader::new(msg);
    r.pos = MAGIC.len();
    let mut schema = None;
    let mut codec = None;
    loop {
        let at = r.pos;
        let count = r.long("header metadata count").map_err(header_fault)?;
        if count == 0 {
            break;
        }
        if count < 0 {
            r.len("header metadata block size").map_err(header_fault)?;
        }
        let count = count.unsigned_abs();
        // Each entry takes at least two bytes (two lengths).
        if count > (r.remaining() / 2) as u64 {
            return Err(DecodeError::Truncated {
                what: "header metadata",
                offset: at,
            });
        }
        for _ in 0..count {
            let key = r.blob("header metadata key").map_err(header_fault)?;
            let len = r.len("header metadata value").map_err(header_fault)?;
            let value = r.pos..r.pos + len;
            r.pos += len;
            match key {
                b"avro.schema" => schema = Some(value),
                b"avro.codec" => codec = Some(value),
                _ => {}
            }
        }
    }
    let sync_bytes = r.take(16, "container sync marker").map_err(header_fault)?;
    let mut sync = [0u8; 16];
    sync.copy_from_slice(sync_bytes);
    let schema = schema.ok_or_else(|| DecodeError::BadContainerHeader {
        reason: "its metadata has no 'avro.schema' entry".into(),
    })?;
    let codec = match codec.map(|c| &msg[c]) {
        None | Some(b"null") | Some(b"") => Codec::Null,
        Some(b"deflate") => Codec::Deflate,
        Some(b"snappy") => Codec::Snappy,
        Some(b"zstandard") => Codec::Zstandard,
        Some(b"bzip2") => Codec::Bzip2,
        Some(b"xz") => Codec::Xz,
        Some(other) => {
            return Err(DecodeError::UnsupportedCodec {
                codec: String::from_utf8_lossy(other).into_owned(),
            });
        }
    };
    Ok(Header {
        schema,
        codec,
        sync,
        end: r.pos,
    })
}

/// One data block.
pub(crate) struct Block {
    /// Where the block starts (its count) in the message.
    pub offset: usize,
    pub count: u64,
    /// Where the (possibly compressed) data lies in the message.
    pub data: Range<usize>,
}

/// Reads the block at `pos`; returns it and where the next one starts.
pub(crate) fn read_block(
    msg: &[u8],
    pos: usize,
    header: &Header,
) -> Result<(Block, usize), DecodeError> {
    let mut r = Reader::new(msg);
    r.pos = pos;
    let trunc = |f: Fault| match f.invalid {
        None => DecodeError::Truncated {
            what: f.what,
            offset: f.offset,
        },
        Some(reason) => DecodeError::CorruptBlock {
            offset: pos,
            reason: format!("{}: {reason}", f.what),
        },
    };
    let count = r.long("block record count").map_err(trunc)?;
    if count < 0 {
        return Err(DecodeError::CorruptBlock {
            offset: pos,
            reason: format!("its record count is negative ({count})"),
        });
    }
    let size = r.len("block data").map_err(trunc)?;
    let data = r.pos..r.pos + size;
    r.pos += size;
    let sync = r.take(16, "block sync marker").map_err(trunc)?;
    if sync != header.sync {
        return Err(DecodeError::CorruptBlock {
            offset: pos,
            reason: "the sync marker after it differs from the header's".into(),
        });
    }
    Ok((
        Block {
            offset: pos,
            count: count as u64,
            data,
        },
        r.pos,
    ))
}

/// Decompresses one block's data (`offset`: where the block starts, for
/// errors) of a message whose earlier blocks decompressed to `spent`
/// bytes, into what is left of [`MAX_DECOMPRESSED`]; see
/// [`decompress_bounded`].
pub(crate) fn decompress(
    codec: Codec,
    data: &[u8],
    offset: usize,
    spent: usize,
) -> Result<Vec<u8>, DecodeError> {
    decompress_bounded(codec, data, offset, MAX_DECOMPRESSED.saturating_sub(spent)).map_err(|e| {
        match e {
            // The bound is the message's, whatever was left of it.
            DecodeError::BlockTooLarge { offset, codec, .. } => DecodeError::BlockTooLarge {
                offset,
                codec,
                limit: MAX_DECOMPRESSED,
            },
            other => other,
        }
    })
}

/// Decompresses one block's data into at most `limit` bytes: a block that
/// gives more is [`DecodeError::BlockTooLarge`], found without
/// decompressing (or allocating) past `limit`.
pub(crate) fn decompress_bounded(
    codec: Codec,
    data: &[u8],
    offset: usize,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |e: &dyn std::fmt::Display| DecodeError::CorruptBlock {
        offset,
        reason: format!("its {} data is corrupt ({e})", codec.name()),
    };
    let too_large = || DecodeError::BlockTooLarge {
        offset,
        codec: codec.name(),
        limit,
    };
    // A first guess at the size: compressed alerts are mostly cutouts
    // that are already gzipped, so they shrink little.
    let hint = data.len().saturating_mul(2);
    let read = |r: &mut dyn Read| match read_bounded(r, limit, hint) {
        Ok(out) => Ok(out),
        Err(Stop::TooLarge) => Err(too_large()),
        Err(Stop::Failed(e)) => Err(corrupt(&e)),
    };
    match codec {
        Codec::Null => {
            if data.len() > limit {
                return Err(too_large());
            }
            Ok(data.to_vec())
        }
        Codec::Deflate => read(&mut flate2::bufread::DeflateDecoder::new(data)),
        Codec::Snappy => unsnappy(data, offset, limit),
        Codec::Zstandard => {
            let mut d = zstd::stream::read::Decoder::with_buffer(data).map_err(|e| corrupt(&e))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| corrupt(&e))?;
            read(&mut d)
        }
        Codec::Bzip2 => read(&mut bzip2::bufread::MultiBzDecoder::new(data)),
        Codec::Xz => {
            // Concatenated streams are read as one, as Python's lzma
            // (fastavro) reads them; the decoder may use at most `limit`
            // bytes of memory of its own (mostly its dictionary).
            let stream = liblzma::stream::Stream::new_stream_decoder(
                limit as u64,
                liblzma::stream::CONCATENATED,
            )
            .map_err(|e| corrupt(&e))?;
            match read_bounded(
                &mut liblzma::bufread::XzDecoder::new_stream(data, stream),
                limit,
                hint,
            ) {
                Ok(out) => Ok(out),
                Err(Stop::TooLarge) => Err(too_large()),
                Err(Stop::Failed(e))
                    if e.get_ref()
                        .and_then(|e| e.downcast_ref::<liblzma::stream::Error>())
                        .is_some_and(|e| matches!(e, liblzma::stream::Error::MemLimit)) =>
                {
                    Err(DecodeError::CorruptBlock {
                        offset,
                        reason: format!(
                            "its xz data needs more memory to decompress than the {} MiB left for it (bandpass decompresses at most {} MiB of one message)",
                            limit >> 20,
                            MAX_DECOMPRESSED >> 20
                        ),
                    })
                }
                Err(Stop::Failed(e)) => Err(corrupt(&e)),
            }
        }
    }
}

/// Why [`read_bounded`] stopped short.
enum Stop {
    /// There is more than the limit.
    TooLarge,
    /// The decompressor failed: the data is corrupt.
    Failed(io::Error),
}

/// Reads `r` to its end into a buffer of at most `limit` bytes. The
/// buffer starts at `hint` and doubles, each time reserved exactly and
/// filled through a `take` of the room left, so it never grows past
/// `limit`; at the limit, one more byte read says whether there was more.
fn read_bounded(r: &mut dyn Read, limit: usize, hint: usize) -> Result<Vec<u8>, Stop> {
    const FIRST: usize = 64 << 10;
    let mut out: Vec<u8> = Vec::new();
    loop {
        let room = out.capacity().min(limit) - out.len();
        if room == 0 {
            if out.len() >= limit {
                let mut probe = [0u8; 1];
                return loop {
                    match r.read(&mut probe) {
                        Ok(0) => break Ok(out),
                        Ok(_) => break Err(Stop::TooLarge),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(Stop::Failed(e)),
                    }
                };
            }
            let grown = if out.is_empty() {
                hint.max(FIRST)
            } else {
                out.len().saturating_mul(2)
            }
            .min(limit);
            out.reserve_exact(grown - out.len());
            continue;
        }
        let n = r
            .take(room as u64)
            .read_to_end(&mut out)
            .map_err(Stop::Failed)?;
        if n < room {
            return Ok(out);
        }
    }
}

/// Decompresses a snappy block: raw snappy data, then the big-endian
/// CRC32 of the uncompressed data, which is checked. Snappy states the
/// uncompressed length first: past `limit`, nothing is allocated.
fn unsnappy(data: &[u8], offset: usize, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |reason: String| DecodeError::CorruptBlock { offset, reason };
    let Some(split) = data.len().checked_sub(4).filter(|&n| n > 0) else {
        return Err(corrupt(format!(
            "its snappy data is {} bytes long, too short for snappy data and its 4-byte CRC32",
            data.len()
        )));
    };
    let (compressed, crc) = data.split_at(split);
    let len = snap::raw::decompress_len(compressed)
        .map_err(|e| corrupt(format!("its snappy data is corrupt ({e})")))?;
    if len > limit {
        return Err(DecodeError::BlockTooLarge {
            offset,
            codec: Codec::Snappy.name(),
            limit,
        });
    }
    let mut out = vec![0u8; len];
    snap::raw::Decoder::new()
        .decompress(compressed, &mut out)
        .map_err(|e| corrupt(format!("its snappy data is corrupt ({e})")))?;
    let want = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let got = crc32fast::hash(&out);
    if got != want {
        return Err(corrupt(format!(
            "its snappy data fails its CRC32 check (the block says {want:08x}, its data gives {got:08x})"
        )));
    }
    Ok(out)
}

/// Compresses one block's data with `codec`, as the block of a message of
/// its own. Deflate at its default level; the others at fast settings,
/// as this runs for each record of a message that holds several.
pub(crate) fn compress(codec: Codec, data: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    match codec {
        Codec::Null => Ok(data.to_vec()),
        Codec::Deflate => {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data)?;
            e.finish()
        }
        Codec::Snappy => {
            let mut out = snap::raw::Encoder::new()
                .compress_vec(data)
                .map_err(io::Error::other)?;
            out.extend_from_slice(&crc32fast::hash(data).to_be_bytes());
            Ok(out)
        }
        Codec::Zstandard => zstd::bulk::compress(data, 1),
        Codec::Bzip2 => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data)?;
            e.finish()
        }
        Codec::Xz => {
            // Preset 1: a few MiB of encoder memory (the default, 6, takes
            // about 94 MiB).
            let stream =
                liblzma::stream::Stream::new_easy_encoder(1, liblzma::stream::Check::Crc64)?;
            let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
            e.write_all(data)?;
            e.finish()
        }
    }
}

/// The parts of a container that holds exactly one record (as
/// [`crate::decode::Decoder::decode`] gives each alert): its writer
/// schema's text and the record's bytes, decompressed. What a Confluent
/// wire-format message carries instead is the record after a schema id.
pub fn single_record(msg: &[u8]) -> Result<(&[u8], Vec<u8>), DecodeError> {
    let header = parse_header(msg)?;
    let (block, next) = read_block(msg, header.end, &header)?;
    if block.count != 1 || next != msg.len() {
        return Err(DecodeError::CorruptBlock {
            offset: block.offset,
            reason: format!(
                "a container of one record was expected; this one has {} records in its first block{}",
                block.count,
                if next != msg.len() {
                    " and more blocks"
                } else {
                    ""
                }
            ),
        });
    }
    let record = decompress(header.codec, &msg[block.data.clone()], block.offset, 0)?;
    Ok((&msg[header.schema.clone()], record))
}

/// A standalone container holding one record: the original header, one
/// block with that record (compressed again with the header's codec),
/// the sync marker.
pub(crate) fn single_record_container(
    msg: &[u8],
    header: &Header,
    record: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    let compressed;
    let data: &[u8] = match header.codec {
        Codec::Null => record,
        codec => {
            compressed = compress(codec, record).map_err(|e| DecodeError::Recompress {
                codec: codec.name(),
                reason: e.to_string(),
            })?;
            &compressed
        }
    };
    let mut out = Vec::with_capacity(header.end + data.len() + 36);
    out.extend_from_slice(&msg[..header.end]);
    write_long(&mut out, 1);
    write_long(&mut out, data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(&header.sync);
    Ok(out)
}
