//! The alert's values as the contract sends them (`evaluate`'s arguments
//! in `wit/filter.wit`): numbers packed with their kind, single texts
//! after them (0.5.0 on: all three in one list of bytes), everything else
//! in order in `others`, columns as bytes with a presence mask. The
//! buffers are refilled in place, alert after alert.
//!
//! The same code packs for each contract version the host links: the
//! versions' generated types are distinct Rust types of one shape, so
//! [`packing!`] writes the functions once and instantiates them for each
//! (`current` for 0.5.0, `v4`, `v3` and `v2` for the frozen ones). How a
//! version lays out a field's kind and 8 bytes, and whether it has a lane
//! for single texts, is its [`Lane`]: [`Fields`], the current version's
//! arguments, writes them into one list with the texts after them; the
//! older versions append to their `kinds` and `numbers` and send a text
//! as an entry of `others`.

use crate::decode::FieldValue;

/// The kinds of a field (wit/filter.wit): how its 8 bytes read, or that
/// its value is the next entry of `others`.
mod kind {
    pub const ABSENT: u8 = 0;
    pub const REAL: u8 = 1;
    pub const INTEGER: u8 = 2;
    pub const BOOLEAN: u8 = 3;
    pub const OTHER: u8 = 4;
    pub const TEXT: u8 = 5;
}

/// The current contract's `evaluate` arguments but the state: `fields`
/// holds, for `n` fields, 8 bytes per field, then a kind byte per field,
/// then the single texts (wit/filter.wit); `others` the rest.
pub(in crate::sandbox) struct Fields<V> {
    pub fields: Vec<u8>,
    pub others: Vec<V>,
    /// How many fields this alert's call sends (`n`).
    count: usize,
    /// The next field's index.
    next: usize,
}

impl<V> Fields<V> {
    pub fn new() -> Self {
        Fields {
            fields: Vec::new(),
            others: Vec::new(),
            count: 0,
            next: 0,
        }
    }

    /// `others` as `evaluate` takes it: `none` when no field is of kind 4
    /// (an empty list would still cost a call into the guest's `realloc`).
    #[inline]
    pub fn others(&self) -> Option<&[V]> {
        (!self.others.is_empty()).then_some(&self.others[..])
    }
}

/// How a contract version lays out a field's kind and 8 bytes, and where
/// it takes single texts: the current version in one list with a lane for
/// texts; the older ones in `kinds` and `numbers`, a text then being an
/// entry of `others` (kind 4).
pub(in crate::sandbox) trait Lane {
    /// Whether single texts travel in their own lane (kind 5).
    const TEXTS: bool;
    /// Empties the buffers for an alert of `count` fields.
    fn begin(&mut self, count: usize);
    /// Adds the next field's kind and 8 bytes.
    fn put(&mut self, kind: u8, bits: u64);
    /// Adds a single text to the text lane; its span, as its 8 bytes say
    /// it. Only called where [`Lane::TEXTS`].
    fn text(&mut self, text: &str) -> u64;
}

impl<V> Lane for Fields<V> {
    const TEXTS: bool = true;

    #[inline]
    fn begin(&mut self, count: usize) {
        self.fields.clear();
        self.fields.resize(9 * count, 0);
        self.count = count;
        self.next = 0;
    }

    #[inline]
    fn put(&mut self, kind: u8, bits: u64) {
        let i = self.next;
        self.next += 1;
        self.fields[8 * i..8 * i + 8].copy_from_slice(&bits.to_le_bytes());
        self.fields[8 * self.count + i] = kind;
    }

    #[inline]
    fn text(&mut self, text: &str) -> u64 {
        // What the fields carry is held to the filter's memory cap, at
        // most 4 GiB (`Held::call`), so offsets fit in u32 (a list past
        // that would not lower into the guest's 32-bit memory anyway).
        let start = self.fields.len() as u64;
        self.fields.extend_from_slice(text.as_bytes());
        start | (self.fields.len() as u64) << 32
    }
}

/// A numeric column as the contract sends it: each element's 64 bits
/// (`bits`), little-endian, zero where null, and a presence mask.
fn fill_column<T: Copy>(
    values: &mut Vec<u8>,
    present: &mut Vec<u8>,
    column: &[Option<T>],
    bits: impl Fn(T) -> u64,
) {
    values.clear();
    present.clear();
    for v in column {
        values.extend_from_slice(&v.map_or(0, &bits).to_le_bytes());
        present.push(u8::from(v.is_some()));
    }
}

/// The packing functions over one contract version's generated types.
macro_rules! packing {
    ($version:ident, $args:ty, $($types:tt)+) => {
        pub(in crate::sandbox) mod $version {
            use super::{FieldValue, Lane, fill_column, kind};
            use $($types)+::{IntegerColumn, RealColumn, TextColumn, Value};

            /// This version's arguments.
            pub(in crate::sandbox) type Args = $args;

            /// Adds the next field to `args`: single numbers and booleans as a kind
            /// and 8 little-endian bytes; a single text, where the version has a
            /// text lane, as a kind and its span in that lane; anything else as
            /// a kind and the next entry of `others` (`others` entries already in
            /// `args` are refilled in place).
            #[inline]
            pub(in crate::sandbox) fn pack(args: &mut Args, others: &mut usize, value: &FieldValue) {
                let (kind, bits) = match value {
                    FieldValue::Missing | FieldValue::Absent => (kind::ABSENT, 0),
                    FieldValue::Real(r) => (kind::REAL, r.to_bits()),
                    FieldValue::Integer(i) => (kind::INTEGER, *i as u64),
                    FieldValue::Boolean(b) => (kind::BOOLEAN, u64::from(*b)),
                    FieldValue::Text(s) if <Args as Lane>::TEXTS => (kind::TEXT, args.text(s)),
                    _ => {
                        match args.others.get_mut(*others) {
                            Some(slot) => refill(slot, value),
                            None => args.others.push(to_wit(value)),
                        }
                        *others += 1;
                        (kind::OTHER, 0)
                    }
                };
                args.put(kind, bits);
            }

            /// Sets `arg` to `value`, reusing the buffers `arg` already holds.
            pub(in crate::sandbox) fn refill(arg: &mut Value, value: &FieldValue) {
                match (arg, value) {
                    (Value::Text(d), FieldValue::Text(s)) => {
                        d.clear();
                        d.push_str(s);
                    }
                    (Value::Bytes(d), FieldValue::Bytes(s)) => {
                        d.clear();
                        d.extend_from_slice(s);
                    }
                    (Value::Reals(d), FieldValue::Reals(c)) => {
                        fill_column(&mut d.values, &mut d.present, c, |r| r.to_bits())
                    }
                    (Value::Integers(d), FieldValue::Integers(c)) => {
                        fill_column(&mut d.values, &mut d.present, c, |i| i as u64)
                    }
                    (Value::Texts(d), FieldValue::Texts(c)) => fill_text_column(d, c),
                    (arg, value) => *arg = to_wit(value),
                }
            }

            pub(in crate::sandbox) fn to_wit(v: &FieldValue) -> Value {
                match v {
                    FieldValue::Missing | FieldValue::Absent => Value::Absent,
                    FieldValue::Boolean(b) => Value::Boolean(*b),
                    FieldValue::Integer(i) => Value::Integer(*i),
                    FieldValue::Real(r) => Value::Real(*r),
                    FieldValue::Text(s) => Value::Text(s.clone()),
                    FieldValue::Bytes(b) => Value::Bytes(b.clone()),
                    FieldValue::Booleans(c) => Value::Booleans(c.clone()),
                    FieldValue::Integers(c) => {
                        let mut column = IntegerColumn {
                            values: Vec::new(),
                            present: Vec::new(),
                        };
                        fill_column(&mut column.values, &mut column.present, c, |i| i as u64);
                        Value::Integers(column)
                    }
                    FieldValue::Reals(c) => {
                        let mut column = RealColumn {
                            values: Vec::new(),
                            present: Vec::new(),
                        };
                        fill_column(&mut column.values, &mut column.present, c, |r| r.to_bits());
                        Value::Reals(column)
                    }
                    FieldValue::Texts(c) => {
                        let mut column = TextColumn {
                            text: String::new(),
                            ends: Vec::new(),
                            present: Vec::new(),
                        };
                        fill_text_column(&mut column, c);
                        Value::Texts(column)
                    }
                }
            }

            /// A text column as the contract sends it: one concatenated string, the
            /// end offset of each element, and a presence mask.
            fn fill_text_column(out: &mut TextColumn, column: &[Option<String>]) {
                out.text.clear();
                out.ends.clear();
                out.present.clear();
                for value in column {
                    if let Some(s) = value {
                        out.text.push_str(s);
                    }
                    // Columns come from one alert (under the decoder's 64 MiB message
                    // cap), so offsets fit in u32.
                    out.ends.push(out.text.len() as u32);
                    out.present.push(u8::from(value.is_some()));
                }
            }

        }
    };
}

/// The frozen versions' `field-values` records: a kind and 8 bytes
/// appended per field, no text lane.
macro_rules! no_lane {
    ($($args:ty),+) => {$(
        impl Lane for $args {
            const TEXTS: bool = false;

            #[inline]
            fn begin(&mut self, _count: usize) {
                self.kinds.clear();
                self.numbers.clear();
            }

            #[inline]
            fn put(&mut self, kind: u8, bits: u64) {
                self.kinds.push(kind);
                self.numbers.extend_from_slice(&bits.to_le_bytes());
            }

            fn text(&mut self, _text: &str) -> u64 {
                unreachable!("a frozen version has no text lane")
            }
        }
    )+};
}
no_lane!(
    crate::sandbox::bindings_v4::bandpass::filter::types::FieldValues,
    crate::sandbox::bindings_v3::bandpass::filter::types::FieldValues,
    crate::sandbox::bindings_v2::bandpass::filter::types::FieldValues
);

packing!(
    current,
    super::Fields<Value>,
    crate::sandbox::bindings::bandpass::filter::types
);
packing!(
    v4,
    crate::sandbox::bindings_v4::bandpass::filter::types::FieldValues,
    crate::sandbox::bindings_v4::bandpass::filter::types
);
packing!(
    v3,
    crate::sandbox::bindings_v3::bandpass::filter::types::FieldValues,
    crate::sandbox::bindings_v3::bandpass::filter::types
);
packing!(
    v2,
    crate::sandbox::bindings_v2::bandpass::filter::types::FieldValues,
    crate::sandbox::bindings_v2::bandpass::filter::types
);

#[cfg(test)]
mod tests {
    use super::current::*;
    use super::*;
    use crate::sandbox::bindings::bandpass::filter::types::Value;

    #[test]
    fn columns_become_values_and_a_presence_mask() {
        let Value::Reals(reals) = to_wit(&FieldValue::Reals(vec![Some(1.5), None, Some(2.0)]))
        else {
            panic!("a real column")
        };
        let packed: Vec<u8> = [1.5f64, 0.0, 2.0]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        assert_eq!((reals.values, reals.present), (packed, vec![1, 0, 1]));
        let texts = vec![
            Some("t".into()),
            None,
            Some("1".into()),
            Some(String::new()),
        ];
        let Value::Texts(texts) = to_wit(&FieldValue::Texts(texts)) else {
            panic!("a text column")
        };
        assert_eq!(texts.text, "t1");
        assert_eq!(texts.ends, [1, 1, 2, 2]);
        assert_eq!(texts.present, [1, 0, 1, 1]);
    }

    /// The fields every packing test sends, in this order.
    fn one_of_each() -> [FieldValue; 8] {
        [
            FieldValue::Real(18.25),
            FieldValue::Text("t".into()),
            FieldValue::Integer(2_695_378_462_115_010_012),
            FieldValue::Absent,
            FieldValue::Boolean(true),
            FieldValue::Missing,
            FieldValue::Reals(vec![Some(-1.0)]),
            FieldValue::Text("Müller".into()),
        ]
    }

    fn words(numbers: &[u8]) -> Vec<[u8; 8]> {
        numbers
            .chunks_exact(8)
            .map(|c| c.try_into().unwrap())
            .collect()
    }

    #[test]
    fn numbers_kinds_and_texts_travel_in_one_list_and_the_rest_in_others() {
        let mut args = Fields::new();
        args.others = vec![Value::Bytes(Vec::new())];
        // A longer alert first: the list is refilled, not appended to.
        args.begin(20);
        args.text("an earlier alert's text");
        let n = one_of_each().len();
        args.begin(n);
        let mut others = 0;
        for value in one_of_each() {
            pack(&mut args, &mut others, &value);
        }
        args.others.truncate(others);
        let fields = &args.fields;
        assert_eq!(fields[8 * n..9 * n], [1, 5, 2, 0, 3, 0, 4, 5], "the kinds");
        let numbers = words(&fields[..8 * n]);
        assert_eq!(f64::from_le_bytes(numbers[0]), 18.25);
        assert_eq!(i64::from_le_bytes(numbers[2]), 2_695_378_462_115_010_012);
        assert_eq!(i64::from_le_bytes(numbers[4]), 1);
        for i in [3, 5, 6] {
            assert_eq!(numbers[i], [0; 8], "field {i} has no number");
        }
        // The texts follow the kinds; a text's 8 bytes are its first and
        // past-its-last byte in the list.
        assert_eq!(&fields[9 * n..], "tMüller".as_bytes());
        let span = |w: [u8; 8]| {
            let start = u32::from_le_bytes(w[..4].try_into().unwrap()) as usize;
            let end = u32::from_le_bytes(w[4..].try_into().unwrap()) as usize;
            std::str::from_utf8(&fields[start..end]).unwrap()
        };
        assert_eq!((span(numbers[1]), span(numbers[7])), ("t", "Müller"));
        assert_eq!(args.others.len(), 1, "texts take no entry of others");
        assert!(
            matches!(&args.others[0], Value::Reals(c) if c.values == (-1.0f64).to_le_bytes() && c.present == [1])
        );
    }

    #[test]
    fn a_frozen_version_sends_a_text_as_an_entry_of_others_refilled_in_place() {
        use crate::sandbox::bindings_v4::bandpass::filter::types::{FieldValues, Value};
        let mut args = FieldValues {
            kinds: Vec::new(),
            numbers: Vec::new(),
            others: vec![Value::Text(String::with_capacity(32))],
        };
        let mut others = 0;
        for value in one_of_each() {
            super::v4::pack(&mut args, &mut others, &value);
        }
        args.others.truncate(others);
        assert_eq!(args.kinds, [1, 4, 2, 0, 3, 0, 4, 4]);
        let numbers = words(&args.numbers);
        for i in [1, 3, 5, 6, 7] {
            assert_eq!(numbers[i], [0; 8], "field {i} has no number");
        }
        assert!(matches!(&args.others[0], Value::Text(s) if s == "t" && s.capacity() >= 32));
        assert!(matches!(&args.others[1], Value::Reals(c) if c.present == [1]));
        assert!(matches!(&args.others[2], Value::Text(s) if s == "Müller"));
    }

    #[test]
    fn refilling_an_argument_reuses_its_buffers_and_gives_the_new_value() {
        let mut arg = to_wit(&FieldValue::Text("first value".into()));
        refill(&mut arg, &FieldValue::Text("t".into()));
        assert!(matches!(&arg, Value::Text(s) if s == "t" && s.capacity() >= 11));
        refill(&mut arg, &FieldValue::Real(2.5));
        assert!(matches!(arg, Value::Real(2.5)));
        let mut col = to_wit(&FieldValue::Integers(vec![Some(1), Some(2), Some(3)]));
        refill(&mut col, &FieldValue::Integers(vec![None, Some(-9)]));
        let packed: Vec<u8> = [0i64, -9].iter().flat_map(|i| i.to_le_bytes()).collect();
        assert!(matches!(&col, Value::Integers(c) if c.values == packed && c.present == [0, 1]));
        let mut texts = to_wit(&FieldValue::Texts(vec![Some("abc".into())]));
        refill(&mut texts, &FieldValue::Texts(vec![None, Some("d".into())]));
        assert!(
            matches!(&texts, Value::Texts(c) if c.text == "d" && c.ends == [0, 1] && c.present == [0, 1])
        );
    }
}
