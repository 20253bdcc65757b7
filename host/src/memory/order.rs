//! Offline inputs in alert time order ([`TimeOrder`]): what a filter
//! remembers depends on the order it sees an object's alerts, and files
//! are named, not dated, so `bandpass test` and `bandpass run` sort their
//! inputs by the time each alert was observed before filters with state
//! see them. The sort goes through a temporary store on disk, so a night's
//! archive is sorted in bounded memory.

use anyhow::Context;
use bytes::Bytes;

use crate::input::Item;

/// Messages sorted by alert time on disk; equal times keep their input
/// order, and messages with no time (unreadable ones) come first.
pub struct TimeOrder {
    // Declared before the folder, so that it is dropped first.
    _keyspace: fjall::Keyspace,
    _dir: tempfile::TempDir,
    spool: fjall::PartitionHandle,
    seq: u64,
}

impl TimeOrder {
    pub fn new() -> anyhow::Result<TimeOrder> {
        let dir = tempfile::Builder::new()
            .prefix("bandpass-order-")
            .tempdir()
            .context("cannot create a temporary folder to sort alerts by time ($TMPDIR)")?;
        let keyspace = fjall::Config::new(dir.path()).open().map_err(|e| {
            anyhow::anyhow!(
                "cannot sort alerts by time in {}: {e}",
                dir.path().display()
            )
        })?;
        let spool = keyspace
            .open_partition("spool", fjall::PartitionCreateOptions::default())
            .map_err(|e| anyhow::anyhow!("cannot sort alerts by time: {e}"))?;
        Ok(TimeOrder {
            _keyspace: keyspace,
            _dir: dir,
            spool,
            seq: 0,
        })
    }

    /// Adds one input item observed at `time` (nanoseconds since the Unix
    /// epoch; `None` sorts first).
    pub fn push(&mut self, time: Option<u64>, item: Item) -> anyhow::Result<()> {
        let mut key = [0u8; 17];
        // 0 for no time, so that those come first; then the time, then the
        // input order.
        key[0] = u8::from(time.is_some());
        key[1..9].copy_from_slice(&time.unwrap_or(0).to_be_bytes());
        key[9..].copy_from_slice(&self.seq.to_be_bytes());
        self.seq += 1;
        let mut value = Vec::with_capacity(
            5 + item.name.len() + item.bytes.as_ref().map_or_else(String::len, Bytes::len),
        );
        value.extend_from_slice(&(item.name.len() as u32).to_le_bytes());
        value.extend_from_slice(item.name.as_bytes());
        match &item.bytes {
            Ok(bytes) => {
                value.push(0);
                value.extend_from_slice(bytes);
            }
            Err(why) => {
                value.push(1);
                value.extend_from_slice(why.as_bytes());
            }
        }
        self.spool
            .insert(key, value)
            .map_err(|e| anyhow::anyhow!("cannot sort alerts by time (disk full?): {e}"))
    }

    /// The items in time order.
    pub fn into_items(self) -> impl Iterator<Item = Item> {
        let entries = self.spool.iter();
        // The store, then its folder, live as long as the iterator (a
        // tuple drops its fields in order).
        let keep = (self._keyspace, self._dir);
        entries.map(move |entry| {
            let _ = &keep;
            match entry {
                Ok((_, value)) => unspool(&value),
                Err(e) => Item {
                    name: "(alerts sorted by time)".into(),
                    bytes: Err(format!("cannot read back: {e}")),
                },
            }
        })
    }
}

fn unspool(value: &[u8]) -> Item {
    let damaged = || Item {
        name: "(alerts sorted by time)".into(),
        bytes: Err("a sorted alert came back damaged".into()),
    };
    let Some(len) = value.get(..4) else {
        return damaged();
    };
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    let (Some(name), Some(&tag)) = (value.get(4..4 + len), value.get(4 + len)) else {
        return damaged();
    };
    let rest = &value[5 + len..];
    Item {
        name: String::from_utf8_lossy(name).into_owned(),
        bytes: if tag == 0 {
            Ok(Bytes::copy_from_slice(rest))
        } else {
            Err(String::from_utf8_lossy(rest).into_owned())
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, bytes: Result<&[u8], &str>) -> Item {
        Item {
            name: name.into(),
            bytes: bytes.map(Bytes::copy_from_slice).map_err(String::from),
        }
    }

    #[test]
    fn items_come_back_by_time_then_input_order_with_untimed_ones_first() {
        let mut order = TimeOrder::new().unwrap();
        order.push(Some(30), item("c", Ok(b"third"))).unwrap();
        order.push(Some(10), item("a", Ok(b"first"))).unwrap();
        order
            .push(None, item("bad", Err("cannot read: gone")))
            .unwrap();
        order.push(Some(30), item("d", Ok(b""))).unwrap();
        order.push(Some(u64::MAX), item("e", Ok(b"last"))).unwrap();
        let back: Vec<(String, Result<Bytes, String>)> =
            order.into_items().map(|i| (i.name, i.bytes)).collect();
        let names: Vec<&str> = back.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bad", "a", "c", "d", "e"]);
        assert_eq!(back[0].1, Err("cannot read: gone".to_string()));
        assert_eq!(back[2].1.as_deref().unwrap(), b"third");
        assert_eq!(back[3].1.as_deref().unwrap(), b"");
    }
}
