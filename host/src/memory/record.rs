//! One object's record in the store ([`ObjectRecord`]): when its last
//! alert was observed, each deployment's state, and the object's light
//! curve, in a compact encoding of our own (a version byte, then
//! length-prefixed parts), so that an alert costs one read and one write
//! whatever the number of filters.

use super::history::{Cell, Point};

/// The encoding's version: the first byte of every record. Version 1 had
/// no history, version 2 no applied offset; both still read.
const VERSION: u8 = 3;

/// Most points and columns a stored history may hold: what a record read
/// may allocate is bounded whatever its bytes say.
const MAX_STORED_POINTS: usize = super::history::MAX_POINTS;
const MAX_STORED_COLUMNS: usize = super::history::MAX_COLUMNS;

/// What the store keeps of one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectRecord {
    /// When the object's latest alert was observed (the alert's own time,
    /// never the machine's clock), in nanoseconds since the Unix epoch.
    pub last_alert: u64,
    /// Each deployment's state, sorted by deployment.
    pub states: Vec<DeploymentState>,
    /// The object's light curve, if some filter declared history.
    pub history: Option<StoredHistory>,
    /// The input offset of the last message applied to this record
    /// (serve, at-least-once): a message at or before it, read again
    /// after a crash, was applied already (see `Runner::evaluate`).
    pub applied: Option<i64>,
}

/// A light curve as stored: the columns' names, and each point's cells
/// in that order (the host's kept columns may change between runs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredHistory {
    /// Shared: every record of a host names the same columns.
    pub columns: std::sync::Arc<[String]>,
    pub points: Vec<Point>,
}

/// One deployment's state for one object.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentState {
    /// The deployment's name (unique within a host's filter set).
    pub deployment: String,
    /// The format its filter declared when it wrote the bytes.
    pub format: String,
    pub bytes: Vec<u8>,
}

/// Why stored bytes do not read as a record.
#[derive(Debug, thiserror::Error)]
#[error("object record of {len} bytes is damaged: {why}")]
pub struct Damaged {
    len: usize,
    why: &'static str,
}

impl ObjectRecord {
    /// The bytes `deployment` left, if it wrote them in `format`: a filter
    /// whose format changed starts from none.
    pub fn state(&self, deployment: &str, format: &str) -> Option<&[u8]> {
        self.find(deployment)
            .ok()
            .map(|i| &self.states[i])
            .filter(|s| s.format == format)
            .map(|s| s.bytes.as_slice())
    }

    /// Replaces `deployment`'s state.
    /// Sets `deployment`'s state; whether it changed (the bytes are
    /// copied only then).
    pub fn set(&mut self, deployment: &str, format: &str, bytes: &[u8]) -> bool {
        match self.find(deployment) {
            Ok(i) => {
                let kept = &mut self.states[i];
                if kept.format == format && kept.bytes == bytes {
                    return false;
                }
                kept.format = format.to_string();
                kept.bytes = bytes.to_vec();
            }
            Err(i) => self.states.insert(
                i,
                DeploymentState {
                    deployment: deployment.to_string(),
                    format: format.to_string(),
                    bytes: bytes.to_vec(),
                },
            ),
        }
        true
    }

    /// Drops `deployment`'s state; whether there was one.
    pub fn forget(&mut self, deployment: &str) -> bool {
        match self.find(deployment) {
            Ok(i) => {
                self.states.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether nothing is kept: the record can be deleted.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty() && self.history.as_ref().is_none_or(|h| h.points.is_empty())
    }

    fn find(&self, deployment: &str) -> Result<usize, usize> {
        self.states
            .binary_search_by(|s| s.deployment.as_str().cmp(deployment))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            11 + self
                .states
                .iter()
                .map(|s| 7 + s.deployment.len() + s.format.len() + s.bytes.len())
                .sum::<usize>(),
        );
        out.push(VERSION);
        out.extend_from_slice(&self.last_alert.to_le_bytes());
        out.extend_from_slice(&(self.states.len() as u16).to_le_bytes());
        for s in &self.states {
            // Bounded by construction: names of 64 bytes, formats of 64,
            // state of at most `Limits::MAX_STATE_BYTES`.
            out.extend_from_slice(&(s.deployment.len() as u16).to_le_bytes());
            out.extend_from_slice(s.deployment.as_bytes());
            out.push(s.format.len() as u8);
            out.extend_from_slice(s.format.as_bytes());
            out.extend_from_slice(&(s.bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&s.bytes);
        }
        match &self.history {
            None => out.push(0),
            Some(h) => {
                out.push(1);
                out.push(h.columns.len() as u8);
                for c in h.columns.iter() {
                    out.push(c.len() as u8);
                    out.extend_from_slice(c.as_bytes());
                }
                out.extend_from_slice(&(h.points.len() as u32).to_le_bytes());
                for p in &h.points {
                    out.extend_from_slice(&p.time.to_le_bytes());
                    for cell in &p.cells {
                        match cell {
                            Cell::Absent => out.push(0),
                            Cell::Real(r) => {
                                out.push(1);
                                out.extend_from_slice(&r.to_le_bytes());
                            }
                            Cell::Integer(i) => {
                                out.push(2);
                                out.extend_from_slice(&i.to_le_bytes());
                            }
                            Cell::Text(t) => {
                                out.push(3);
                                let t = t.as_str().as_bytes();
                                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                                out.extend_from_slice(t);
                            }
                        }
                    }
                }
            }
        }
        match self.applied {
            None => out.push(0),
            Some(offset) => {
                out.push(1);
                out.extend_from_slice(&offset.to_le_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ObjectRecord, Damaged> {
        let damaged = |why| Damaged {
            len: bytes.len(),
            why,
        };
        let mut r = Reader { bytes, at: 0 };
        let version = r.take(1).ok_or(damaged("empty"))?[0];
        if !(1..=VERSION).contains(&version) {
            return Err(damaged("an unknown encoding version"));
        }
        let last_alert = r.u64().ok_or(damaged("cut in the header"))?;
        let count = r.u16().ok_or(damaged("cut in the header"))?;
        let mut states = Vec::with_capacity(count.min(64) as usize);
        for _ in 0..count {
            let cut = || damaged("cut in a state");
            let n = r.u16().ok_or_else(cut)? as usize;
            let deployment = r.text(n).ok_or_else(cut)?;
            let n = *r.take(1).ok_or_else(cut)?.first().ok_or_else(cut)? as usize;
            let format = r.text(n).ok_or_else(cut)?;
            let n = r.u32().ok_or_else(cut)? as usize;
            let bytes = r.take(n).ok_or_else(cut)?.to_vec();
            states.push(DeploymentState {
                deployment,
                format,
                bytes,
            });
        }
        let history = if version == 1 {
            None
        } else {
            let cut = || damaged("cut in the history");
            match r.take(1).ok_or_else(cut)?[0] {
                0 => None,
                1 => Some(read_history(&mut r).ok_or_else(cut)?),
                _ => return Err(damaged("a history marker neither 0 nor 1")),
            }
        };
        let applied = if version < 3 {
            None
        } else {
            let cut = || damaged("cut in the applied offset");
            match r.take(1).ok_or_else(cut)?[0] {
                0 => None,
                1 => Some(r.u64().ok_or_else(cut)? as i64),
                _ => return Err(damaged("an applied-offset marker neither 0 nor 1")),
            }
        };
        if r.at != bytes.len() {
            return Err(damaged("bytes after the end"));
        }
        if !states.is_sorted_by(|a, b| a.deployment < b.deployment) {
            return Err(damaged("states out of order"));
        }
        Ok(ObjectRecord {
            last_alert,
            states,
            history,
            applied,
        })
    }
}

/// A stored history; `None` where the bytes are cut or over a bound.
fn read_history(r: &mut Reader) -> Option<StoredHistory> {
    let ncols = r.take(1)?[0] as usize;
    if ncols > MAX_STORED_COLUMNS {
        return None;
    }
    let mut names: Vec<&str> = Vec::with_capacity(ncols);
    for _ in 0..ncols {
        let n = r.take(1)?[0] as usize;
        names.push(std::str::from_utf8(r.take(n)?).ok()?);
    }
    let columns = shared_names(&names);
    let npoints = r.u32()? as usize;
    if npoints > MAX_STORED_POINTS {
        return None;
    }
    let mut points = Vec::with_capacity(npoints.min(4096));
    for _ in 0..npoints {
        let time = f64::from_bits(r.u64()?);
        let mut cells = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            cells.push(match r.take(1)?[0] {
                0 => Cell::Absent,
                1 => Cell::Real(f64::from_bits(r.u64()?)),
                2 => Cell::Integer(r.u64()? as i64),
                3 => {
                    let n = r.u32()? as usize;
                    Cell::Text(std::str::from_utf8(r.take(n)?).ok()?.into())
                }
                _ => return None,
            });
        }
        points.push(Point { time, cells });
    }
    Some(StoredHistory { columns, points })
}

thread_local! {
    /// The column names last read on this thread: a host's records name
    /// the same columns, so a read shares them rather than allocating each
    /// name again.
    static NAMES: std::cell::RefCell<std::sync::Arc<[String]>> =
        std::cell::RefCell::new(std::sync::Arc::from(Vec::new()));
}

/// `names`, shared with the last record read on this thread if the same.
fn shared_names(names: &[&str]) -> std::sync::Arc<[String]> {
    NAMES.with(|last| {
        let mut last = last.borrow_mut();
        if last.len() != names.len() || last.iter().zip(names).any(|(a, b)| a != b) {
            *last = names.iter().map(|n| n.to_string()).collect();
        }
        last.clone()
    })
}

/// Reads a record's parts, refusing to read past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let part = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(part)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn text(&mut self, n: usize) -> Option<String> {
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ObjectRecord {
        let mut r = ObjectRecord {
            last_alert: 1_700_000_000_000_000_000,
            applied: Some(41),
            states: Vec::new(),
            history: Some(StoredHistory {
                columns: vec!["jd".to_string(), "isdiffpos".into(), "fid".into()].into(),
                points: vec![
                    Point {
                        time: 10.5,
                        cells: vec![Cell::Real(10.5), Cell::Text("t".into()), Cell::Integer(2)],
                    },
                    Point {
                        time: 11.5,
                        cells: vec![Cell::Real(11.5), Cell::Absent, Cell::Integer(-1)],
                    },
                ],
            }),
        };
        r.set("rise-once", "rise-once/1", br#"{"done":true}"#);
        r.set("b-filter", "b/2", &[0, 255, 7]);
        r.set("empty", "e/1", &[]);
        r
    }

    #[test]
    fn a_record_reads_back_as_written_with_states_by_deployment() {
        let r = record();
        let back = ObjectRecord::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        // Records of the first encoding (no history) and the second (no
        // applied offset) still read.
        let mut v1 = ObjectRecord {
            history: None,
            applied: None,
            ..r.clone()
        }
        .encode();
        v1[0] = 1;
        v1.truncate(v1.len() - 2);
        assert_eq!(ObjectRecord::decode(&v1).unwrap().history, None);
        let mut v2 = ObjectRecord {
            applied: None,
            ..r.clone()
        }
        .encode();
        v2[0] = 2;
        v2.pop();
        let back2 = ObjectRecord::decode(&v2).unwrap();
        assert_eq!((back2.applied, &back2.history), (None, &r.history));
        let names: Vec<_> = back.states.iter().map(|s| s.deployment.as_str()).collect();
        assert_eq!(names, ["b-filter", "empty", "rise-once"]);
        assert_eq!(back.state("b-filter", "b/2"), Some(&[0, 255, 7][..]));
        assert_eq!(back.state("empty", "e/1"), Some(&[][..]));
    }

    #[test]
    fn a_state_of_another_format_is_none_and_forget_removes_it() {
        let mut r = record();
        assert_eq!(r.state("rise-once", "rise-once/2"), None);
        assert_eq!(r.state("nobody", "rise-once/1"), None);
        assert!(r.forget("rise-once"));
        assert!(!r.forget("rise-once"));
        assert_eq!(r.state("rise-once", "rise-once/1"), None);
        r.forget("b-filter");
        r.forget("empty");
        assert!(!r.is_empty(), "the history is still kept");
        r.history = None;
        assert!(r.is_empty());
    }

    #[test]
    fn damaged_bytes_are_an_error_never_a_panic_or_a_huge_allocation() {
        let good = record().encode();
        for cut in 0..good.len() {
            assert!(ObjectRecord::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(ObjectRecord::decode(&longer).is_err());
        // A count of 65,535 states and a length of 4 GiB in 20 bytes.
        let mut lying = vec![VERSION];
        lying.extend_from_slice(&0u64.to_le_bytes());
        lying.extend_from_slice(&u16::MAX.to_le_bytes());
        lying.extend_from_slice(&[1, 0, b'a', 0]);
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = ObjectRecord::decode(&lying).unwrap_err().to_string();
        assert!(err.contains("cut in a state"), "{err}");
        assert!(ObjectRecord::decode(&[9]).is_err());
        // A history claiming four billion points.
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&0u64.to_le_bytes());
        huge.extend_from_slice(&0u16.to_le_bytes());
        huge.extend_from_slice(&[1, 1, 2, b'j', b'd']);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(ObjectRecord::decode(&huge).is_err());
    }
}
