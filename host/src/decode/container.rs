//! Avro Object Container File framing: the header (magic, metadata map,
//! sync marker) and the data blocks.

use std::io::Read;
use std::ops::Range;

use super::DecodeError;
use super::plan::{Fault, Reader, write_long};

pub(crate) const MAGIC: &[u8; 4] = b"Obj\x01";

/// Largest block the decoder inflates (a guard against deflate bombs).
pub(crate) const MAX_INFLATED_BLOCK: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Null,
    Deflate,
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

/// Inflates a deflate block (raw RFC 1951 data, as Avro writes it).
pub(crate) fn inflate(data: &[u8], offset: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut d = flate2::read::DeflateDecoder::new(data).take(MAX_INFLATED_BLOCK as u64 + 1);
    d.read_to_end(&mut out)
        .map_err(|e| DecodeError::CorruptBlock {
            offset,
            reason: format!("its deflate data is corrupt ({e})"),
        })?;
    if out.len() > MAX_INFLATED_BLOCK {
        return Err(DecodeError::CorruptBlock {
            offset,
            reason: format!("it inflates to more than {} MiB", MAX_INFLATED_BLOCK >> 20),
        });
    }
    Ok(out)
}

/// A standalone container holding one record: the original header, one
/// block with that record (deflated again under the deflate codec), the
/// sync marker.
pub(crate) fn single_record_container(msg: &[u8], header: &Header, record: &[u8]) -> Vec<u8> {
    let deflated;
    let data: &[u8] = match header.codec {
        Codec::Null => record,
        Codec::Deflate => {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            // Writing to a Vec cannot fail.
            let _ = std::io::Write::write_all(&mut e, record);
            deflated = e.finish().unwrap_or_default();
            &deflated
        }
    };
    let mut out = Vec::with_capacity(header.end + data.len() + 36);
    out.extend_from_slice(&msg[..header.end]);
    write_long(&mut out, 1);
    write_long(&mut out, data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(&header.sync);
    out
}
