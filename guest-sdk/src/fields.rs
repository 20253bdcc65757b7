//! Declared fields and their typed conversion.
//!
//! A filter names its fields once ([`fields!`](crate::fields!)); the host
//! then sends their values in that order, in one call per alert (single
//! numbers and texts packed in one list of bytes, everything else as
//! `value`s). This module reads that as one [`Value`] per field and turns
//! those into the filter's struct by position: no name is looked up per
//! alert, and strings move rather than copy. It never panics on what the
//! host sends: a value of an unexpected type is an `Err` naming the field.

use core::fmt;

use crate::{TextColumn, Value};

/// The kinds of `evaluate`'s fields (wit/filter.wit).
mod kind {
    pub const REAL: u8 = 1;
    pub const INTEGER: u8 = 2;
    pub const BOOLEAN: u8 = 3;
    pub const OTHER: u8 = 4;
    pub const TEXT: u8 = 5;
}

/// One alert's fields as `evaluate` receives them (wit/filter.wit): for
/// `n` declared fields, 8 bytes per field, then one kind byte per field,
/// then the single texts, all in `fields`; the other values in order in
/// `others`.
#[doc(hidden)]
pub struct FieldValues {
    pub fields: Vec<u8>,
    pub others: Vec<Value>,
}

/// One [`Value`] per declared field (`count` of them), in order, from the
/// packed form the host sends. Kinds this SDK does not know (a later
/// minor version of the contract), fields past the end of the list and a
/// text whose span is not UTF-8 within the list read as absent.
pub(crate) fn unpack(fields: FieldValues, count: usize) -> Vec<Value> {
    let mut others = fields.others.into_iter();
    (0..count)
        .map(|i| value_at(&fields.fields, count, &mut others, i))
        .collect()
}

/// Field `i`'s [`Value`] in the packed form of `count` fields; `others`
/// yields the entries of `others` not yet taken (fields are read in
/// order, so field `i`'s, if it has one, is next).
#[inline]
fn value_at(
    fields: &[u8],
    count: usize,
    others: &mut impl Iterator<Item = Value>,
    i: usize,
) -> Value {
    let number = fields
        .get(8 * i..8 * i + 8)
        .and_then(|c| <[u8; 8]>::try_from(c).ok());
    match (fields.get(8 * count + i).copied(), number) {
        (Some(kind::REAL), Some(b)) => Value::Real(f64::from_le_bytes(b)),
        (Some(kind::INTEGER), Some(b)) => Value::Integer(i64::from_le_bytes(b)),
        (Some(kind::BOOLEAN), Some(b)) => Value::Boolean(i64::from_le_bytes(b) != 0),
        (Some(kind::OTHER), _) => others.next().unwrap_or(Value::Absent),
        (Some(kind::TEXT), Some(b)) => {
            let start = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let end = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
            fields
                .get(start..end)
                .and_then(|t| core::str::from_utf8(t).ok())
                .map_or(Value::Absent, |t| Value::Text(t.to_owned()))
        }
        _ => Value::Absent,
    }
}

/// The elements of a packed column of reals (8 little-endian bytes each).
fn reals(bytes: &[u8]) -> impl Iterator<Item = f64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
}

/// The elements of a packed column of integers (8 little-endian bytes
/// each).
fn integers(bytes: &[u8]) -> impl Iterator<Item = i64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
}

/// A struct whose fields are filled, in order, from the values the host
/// sends for the paths in [`Fields::PATHS`].
///
/// Implement it with [`fields!`](crate::fields!) rather than by hand.
pub trait Fields: Sized {
    /// The dotted paths the filter reads, in struct order, as reported to
    /// the host in the manifest (`candidate.magpsf`, `prv_candidates.jd`,
    /// `candidate.drb?`).
    const PATHS: &'static [&'static str];

    /// Builds the struct from one alert's values, in [`Fields::PATHS`]
    /// order.
    ///
    /// # Errors
    ///
    /// When the host sent a different number of values than there are
    /// paths, or a value whose type does not convert into its field's type;
    /// the message names the field.
    fn from_values(values: Vec<Value>) -> Result<Self, String>;

    /// Builds the struct from the values as the host packs them. What the
    /// SDK calls; [`fields!`](crate::fields!) reads each value as its
    /// field is filled, without a vector of them in between.
    #[doc(hidden)]
    fn from_packed(fields: FieldValues) -> Result<Self, String> {
        Values::checked(fields.fields.len(), Self::PATHS)?;
        Self::from_values(unpack(fields, Self::PATHS.len()))
    }
}

/// A filter that reads no field at all (it decides on nothing but its
/// parameters).
impl Fields for () {
    const PATHS: &'static [&'static str] = &[];

    fn from_values(values: Vec<Value>) -> Result<Self, String> {
        Values::new(values, Self::PATHS).map(|_| ())
    }
}

/// Conversion of one [`Value`] into a field's Rust type.
///
/// Scalars convert into `Option<T>` (`None` where the alert has no value:
/// null, a null record on the way, or an optional path the schema lacks),
/// columns into `Vec<Option<T>>` (empty where the whole column is absent):
///
/// | Rust type                | accepts                                  |
/// | ------------------------ | ---------------------------------------- |
/// | `Option<f64>`            | `real`, `integer` (converted), `absent`  |
/// | `Option<i64>`            | `integer`, `absent`                      |
/// | `Option<String>`         | `text`, `absent`                         |
/// | `Option<bool>`           | `boolean`, `absent`                      |
/// | `Option<Vec<u8>>`        | `bytes`, `absent`                        |
/// | `Vec<Option<f64>>`       | `reals`, `integers` (converted), `absent`|
/// | `Vec<Option<i64>>`       | `integers`, `absent`                     |
/// | `Vec<Option<String>>`    | `texts`, `absent`                        |
/// | [`Reals`] (`Column<f64>`) | `reals`, `integers`, in place, `absent` |
/// | [`Integers`]             | `integers` read in place, `absent`       |
/// | [`Texts`]                | `texts` read in place, `absent`          |
/// | `Option<Reals>`, `Option<Integers>`, `Option<Texts>` | as above; `None` where the whole column is absent (an alert with no position for `xmatch.*`), where the plain column gives an empty one |
/// | `Vec<Option<bool>>`      | `booleans`, `absent`                     |
/// | [`Value`]                | anything, unconverted                    |
///
/// Integers convert to `f64` silently because Avro schemas change a field's
/// width between versions (an `int` that became a `double`) and every
/// integer a survey sends is exactly representable as an `f64` up to 2^53.
/// A real never converts to an integer: that would lose information.
pub trait FromValue: Sized {
    /// Converts one value.
    ///
    /// # Errors
    ///
    /// A [`TypeMismatch`] when the value's type does not convert.
    /// Take what you keep with `std::mem::replace(value, Value::Absent)`
    /// (or `std::mem::take` on the payload): the value is not used again.
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch>;
}

/// A value whose type does not convert into the field's Rust type.
///
/// Displays as `expected a real, got an integer`; the fields struct adds the
/// field's path in front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeMismatch {
    /// What the field's Rust type accepts (`a real`).
    pub expected: &'static str,
    /// What the host sent (`an integer`).
    pub found: &'static str,
}

impl fmt::Display for TypeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, got {}", self.expected, self.found)
    }
}

impl std::error::Error for TypeMismatch {}

/// How a value's type reads in an error message.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Absent => "absent",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "a text",
        Value::Bytes(_) => "bytes",
        Value::Booleans(_) => "a column of booleans",
        Value::Integers(_) => "a column of integers",
        Value::Reals(_) => "a column of reals",
        Value::Texts(_) => "a column of texts",
    }
}

fn mismatch<T>(expected: &'static str, value: &Value) -> Result<T, TypeMismatch> {
    Err(TypeMismatch {
        expected,
        found: describe(value),
    })
}

impl FromValue for Value {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        Ok(take(value))
    }
}

impl FromValue for Option<f64> {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match *value {
            Value::Absent => Ok(None),
            Value::Real(x) => Ok(Some(x)),
            Value::Integer(i) => Ok(Some(i as f64)),
            ref other => mismatch("a real", other),
        }
    }
}

impl FromValue for Option<i64> {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match *value {
            Value::Absent => Ok(None),
            Value::Integer(i) => Ok(Some(i)),
            ref other => mismatch("an integer", other),
        }
    }
}

impl FromValue for Option<bool> {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match *value {
            Value::Absent => Ok(None),
            Value::Boolean(b) => Ok(Some(b)),
            ref other => mismatch("a boolean", other),
        }
    }
}

impl FromValue for Option<String> {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(None),
            Value::Text(s) => Ok(Some(std::mem::take(s))),
            other => mismatch("a text", other),
        }
    }
}

impl FromValue for Option<Vec<u8>> {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(None),
            Value::Bytes(b) => Ok(Some(std::mem::take(b))),
            other => mismatch("bytes", other),
        }
    }
}

impl FromValue for Vec<Option<f64>> {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(Vec::new()),
            Value::Reals(c) => Ok(optional(reals(&c.values), &c.present, |x| x)),
            Value::Integers(c) => Ok(optional(integers(&c.values), &c.present, |i| i as f64)),
            other => mismatch("a column of reals", other),
        }
    }
}

impl FromValue for Vec<Option<i64>> {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(Vec::new()),
            Value::Integers(c) => Ok(optional(integers(&c.values), &c.present, |i| i)),
            other => mismatch("a column of integers", other),
        }
    }
}

impl FromValue for Vec<Option<String>> {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(Vec::new()),
            Value::Texts(c) => Ok(texts(c)),
            other => mismatch("a column of texts", other),
        }
    }
}

impl FromValue for Vec<Option<bool>> {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(Vec::new()),
            Value::Booleans(v) => Ok(std::mem::take(v)),
            other => mismatch("a column of booleans", other),
        }
    }
}

/// A numeric column: the values and the presence mask as they crossed
/// the boundary, unpacked in one pass (a `Vec<Option<f64>>` is built
/// element by element).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Column<T> {
    values: Vec<T>,
    present: Vec<u8>,
}

/// A column of reals (integer columns convert): `Column<f64>`.
pub type Reals = Column<f64>;
/// A column of integers: `Column<i64>`.
pub type Integers = Column<i64>;

impl<T: Copy> Column<T> {
    /// Entries in the column (one per array element).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the column has no entries (or the field was absent).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Entry `i`: `None` where it is null or `i` is out of range.
    pub fn get(&self, i: usize) -> Option<T> {
        match self.present.get(i) {
            Some(1) => self.values.get(i).copied(),
            _ => None,
        }
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<T>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl<T: Copy + Default> FromIterator<Option<T>> for Column<T> {
    fn from_iter<I: IntoIterator<Item = Option<T>>>(items: I) -> Self {
        let (values, present) = items
            .into_iter()
            .map(|v| (v.unwrap_or_default(), u8::from(v.is_some())))
            .unzip();
        Column { values, present }
    }
}

impl FromValue for Reals {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(Column::default()),
            Value::Reals(c) => Ok(Column {
                values: reals(&c.values).collect(),
                present: std::mem::take(&mut c.present),
            }),
            Value::Integers(c) => Ok(Column {
                values: integers(&c.values).map(|i| i as f64).collect(),
                present: std::mem::take(&mut c.present),
            }),
            other => mismatch("a column of reals", other),
        }
    }
}

impl FromValue for Integers {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(Column::default()),
            Value::Integers(c) => Ok(Column {
                values: integers(&c.values).collect(),
                present: std::mem::take(&mut c.present),
            }),
            other => mismatch("a column of integers", other),
        }
    }
}

/// A column of texts read in place: one string and offsets, with no
/// allocation per element (a `Vec<Option<String>>` allocates each one,
/// which a light-curve filter pays on every alert).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    text: String,
    ends: Vec<u32>,
    present: Vec<u8>,
}

impl Texts {
    /// Entries in the column (one per array element).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the column has no entries (or the field was absent).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Entry `i`: `None` where it is null or `i` is out of range.
    pub fn get(&self, i: usize) -> Option<&str> {
        if self.present.get(i) != Some(&1) {
            return None;
        }
        let start = match i {
            0 => 0,
            _ => *self.ends.get(i - 1)? as usize,
        };
        self.text.get(start..*self.ends.get(i)? as usize)
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl<'a> FromIterator<Option<&'a str>> for Texts {
    fn from_iter<I: IntoIterator<Item = Option<&'a str>>>(items: I) -> Self {
        let mut column = Texts::default();
        for item in items {
            column.text.push_str(item.unwrap_or(""));
            column.ends.push(column.text.len() as u32);
            column.present.push(u8::from(item.is_some()));
        }
        column
    }
}

impl FromValue for Texts {
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(Texts::default()),
            Value::Texts(c) => Ok(Texts {
                text: std::mem::take(&mut c.text),
                ends: std::mem::take(&mut c.ends),
                present: std::mem::take(&mut c.present),
            }),
            other => mismatch("a column of texts", other),
        }
    }
}

/// A column that tells "absent" (`None`) from "no elements" (empty).
impl<T> FromValue for Option<T>
where
    T: ColumnValue,
{
    fn from_value(value: &mut Value) -> Result<Self, TypeMismatch> {
        match value {
            Value::Absent => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// The column types [`Option`] wraps (see [`FromValue`]).
pub trait ColumnValue: FromValue {}
impl ColumnValue for Reals {}
impl ColumnValue for Integers {}
impl ColumnValue for Texts {}

/// Moves a value out, leaving `absent`.
fn take(value: &mut Value) -> Value {
    std::mem::replace(value, Value::Absent)
}

/// A column from its values and presence mask (1 = present), each
/// present value converted by `f`. A short mask marks the rest absent.
fn optional<T, U>(
    values: impl Iterator<Item = T>,
    present: &[u8],
    f: impl Fn(T) -> U,
) -> Vec<Option<U>> {
    values
        .enumerate()
        .map(|(i, v)| (present.get(i) == Some(&1)).then(|| f(v)))
        .collect()
}

/// A text column from its concatenated text, end offsets and presence
/// mask. Offsets out of order or off a character boundary read as empty.
fn texts(c: &TextColumn) -> Vec<Option<String>> {
    let mut start = 0usize;
    c.ends
        .iter()
        .enumerate()
        .map(|(i, &end)| {
            let end = end as usize;
            let piece = c.text.get(start..end).unwrap_or("");
            start = end.max(start);
            (c.present.get(i) == Some(&1)).then(|| piece.to_string())
        })
        .collect()
}

/// The values of one alert, handed out in declaration order by the code
/// [`fields!`](crate::fields!) generates.
#[doc(hidden)]
pub struct Values {
    source: Source,
    paths: &'static [&'static str],
    next: usize,
}

/// Where [`Values`] reads: a vector of values, or the packed form, read
/// value by value (no vector allocated and dropped per alert).
enum Source {
    Unpacked(Vec<Value>),
    Packed {
        fields: Vec<u8>,
        others: std::vec::IntoIter<Value>,
    },
}

impl Values {
    /// Checks that the host sent one value per declared path.
    pub fn new(values: Vec<Value>, paths: &'static [&'static str]) -> Result<Self, String> {
        if values.len() != paths.len() {
            return Err(format!(
                "the host sent {} values for {} declared fields",
                values.len(),
                paths.len()
            ));
        }
        Ok(Self {
            source: Source::Unpacked(values),
            paths,
            next: 0,
        })
    }

    /// The packed values, checked to hold a kind and 8 bytes for every
    /// declared path.
    pub fn packed(fields: FieldValues, paths: &'static [&'static str]) -> Result<Self, String> {
        Self::checked(fields.fields.len(), paths)?;
        let FieldValues { fields, others } = fields;
        Ok(Self {
            source: Source::Packed {
                fields,
                others: others.into_iter(),
            },
            paths,
            next: 0,
        })
    }

    /// Whether a packed list of `sent` bytes holds the 9 bytes of every
    /// declared path.
    fn checked(sent: usize, paths: &'static [&'static str]) -> Result<(), String> {
        if sent < 9 * paths.len() {
            return Err(format!(
                "the host sent {sent} bytes of fields for {} declared fields (9 a field at least)",
                paths.len()
            ));
        }
        Ok(())
    }

    /// Converts the next value into the next field's type.
    #[inline]
    pub fn next_field<T: FromValue>(&mut self) -> Result<T, String> {
        let index = self.next;
        self.next += 1;
        // The constructors checked the lengths, and `fields!` calls this
        // once per path, in order.
        let converted = match &mut self.source {
            Source::Unpacked(values) => {
                let mut absent = Value::Absent;
                T::from_value(values.get_mut(index).unwrap_or(&mut absent))
            }
            Source::Packed { fields, others } => {
                T::from_value(&mut value_at(fields, self.paths.len(), others, index))
            }
        };
        converted.map_err(|e| self.field_error(index, e))
    }

    /// The message for a value of the wrong type: out of line, as it is
    /// rare and formatting is heavy in wasm.
    #[cold]
    #[inline(never)]
    fn field_error(&self, index: usize, e: TypeMismatch) -> String {
        let path = self.paths.get(index).copied().unwrap_or("?");
        format!("field {path}: {e}")
    }
}

/// Declares the fields a filter reads: a struct whose fields are filled, in
/// order, from the values of the paths given after `=`.
///
/// ```rust,no_run
/// use bandpass_sdk::prelude::*;
///
/// fields! {
///     /// What the filter reads from a ZTF alert.
///     struct Cand {
///         /// PSF-fit magnitude of the difference detection.
///         magpsf: Option<f64> = "candidate.magpsf",
///         /// Deep real-bogus score; v3.3 and later only, hence `?`.
///         drb: Option<f64> = "candidate.drb?",
///         /// "t"/"1" for a positive difference.
///         isdiffpos: Option<String> = "candidate.isdiffpos",
///         /// The light curve's dates: a column, one entry per detection.
///         jds: Vec<Option<f64>> = "prv_candidates.jd",
///     }
/// }
/// ```
///
/// Each field's type implements [`FromValue`]. Attributes (docs, derives)
/// and visibilities pass through. A path ending in `?` is optional: where an
/// alert's schema lacks it, the field is `None` (or an empty column) instead
/// of the host refusing the filter.
#[macro_export]
macro_rules! fields {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $field_vis:vis $field:ident : $ty:ty = $path:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                $(#[$field_meta])*
                $field_vis $field: $ty,
            )*
        }

        impl $crate::Fields for $name {
            const PATHS: &'static [&'static str] = &[$($path),*];

            fn from_values(
                values: ::std::vec::Vec<$crate::Value>,
            ) -> ::core::result::Result<Self, ::std::string::String> {
                #[allow(unused_mut, unused_variables, reason = "a struct without fields reads nothing")]
                let mut values = $crate::__private::Values::new(values, Self::PATHS)?;
                ::core::result::Result::Ok(Self {
                    $($field: values.next_field::<$ty>()?,)*
                })
            }

            fn from_packed(
                fields: $crate::__private::FieldValues,
            ) -> ::core::result::Result<Self, ::std::string::String> {
                #[allow(unused_mut, unused_variables, reason = "a struct without fields reads nothing")]
                let mut values = $crate::__private::Values::packed(fields, Self::PATHS)?;
                ::core::result::Result::Ok(Self {
                    $($field: values.next_field::<$ty>()?,)*
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IntegerColumn, RealColumn};

    fn packed_reals(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn packed_integers(values: &[i64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// The packed list of fields with these 8-byte words and kinds, then
    /// `texts` (whose spans start at `9 * kinds.len()`).
    fn packed_fields(words: &[u64], kinds: &[u8], texts: &str) -> Vec<u8> {
        let mut fields: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        fields.extend_from_slice(kinds);
        fields.extend_from_slice(texts.as_bytes());
        fields
    }

    #[test]
    fn unpacks_numbers_by_kind_and_takes_the_others_in_order() {
        // Two texts, "t" and "Müller", by their byte spans in the list:
        // 11 fields, so the texts start at byte 99.
        let span = |start: u64, end: u64| (99 + start) | (99 + end) << 32;
        let words = [
            18.5f64.to_bits(),
            0,
            2_695_378_462_115_010_012i64 as u64,
            1,
            0,
            0,
            7,
            span(0, 1),
            span(1, 8),
            // A span past the end, or inside a character, reads as absent.
            span(1, 20),
            span(1, 3),
        ];
        let kinds = [1, 4, 2, 3, 0, 4, 9, 5, 5, 5, 5];
        let values = unpack(
            FieldValues {
                fields: packed_fields(&words, &kinds, "tMüller"),
                others: vec![Value::Bytes(vec![0]), Value::Bytes(vec![1])],
            },
            kinds.len(),
        );
        assert_eq!(
            format!("{values:?}"),
            format!(
                "{:?}",
                [
                    Value::Real(18.5),
                    Value::Bytes(vec![0]),
                    Value::Integer(2_695_378_462_115_010_012),
                    Value::Boolean(true),
                    Value::Absent,
                    Value::Bytes(vec![1]),
                    // A kind from a later contract reads as absent.
                    Value::Absent,
                    Value::Text("t".into()),
                    Value::Text("Müller".into()),
                    Value::Absent,
                    Value::Absent,
                ]
            )
        );
        // A list cut short reads as absent rather than panicking.
        let mut fields = packed_fields(&[1.0f64.to_bits(), 1.0f64.to_bits()], &[1, 1], "");
        fields.truncate(12);
        let short = unpack(
            FieldValues {
                fields,
                others: Vec::new(),
            },
            2,
        );
        assert_eq!(
            format!("{short:?}"),
            format!("{:?}", [Value::Absent, Value::Absent])
        );
    }

    crate::fields! {
        #[derive(Debug)]
        struct Cand {
            magpsf: Option<f64> = "candidate.magpsf",
            fid: Option<i64> = "candidate.fid",
            isdiffpos: Option<String> = "candidate.isdiffpos",
            jds: Vec<Option<f64>> = "prv_candidates.jd",
        }
    }

    #[test]
    fn fills_fields_by_position_and_converts_integers_to_reals() {
        let c = Cand::from_values(vec![
            Value::Integer(18),
            Value::Integer(2),
            Value::Text("t".into()),
            Value::Integers(IntegerColumn {
                values: packed_integers(&[1, 0]),
                present: vec![1, 0],
            }),
        ])
        .unwrap();
        assert_eq!(c.magpsf, Some(18.0));
        assert_eq!(c.fid, Some(2));
        assert_eq!(c.isdiffpos.as_deref(), Some("t"));
        assert_eq!(c.jds, vec![Some(1.0), None]);
    }

    #[test]
    fn the_packed_form_fills_the_fields_as_its_unpacked_values_do() {
        // magpsf an integer, fid absent, isdiffpos a text, jds a column.
        let packed = || FieldValues {
            fields: packed_fields(&[18, 0, 36 | 37 << 32, 0], &[2, 0, 5, 4], "t"),
            others: vec![Value::Reals(RealColumn {
                values: packed_reals(&[1.5, 0.0]),
                present: vec![1, 0],
            })],
        };
        let lazy = Cand::from_packed(packed()).unwrap();
        let eager = Cand::from_values(unpack(packed(), 4)).unwrap();
        assert_eq!(format!("{lazy:?}"), format!("{eager:?}"));
        assert_eq!(lazy.magpsf, Some(18.0));
        assert_eq!(lazy.fid, None);
        assert_eq!(lazy.isdiffpos.as_deref(), Some("t"));
        assert_eq!(lazy.jds, vec![Some(1.5), None]);
        // Too few bytes for the declared fields, and a value of the wrong
        // type, named alike.
        let mut short = packed();
        short.fields.truncate(35);
        let err = Cand::from_packed(short).unwrap_err();
        assert_eq!(
            err,
            "the host sent 35 bytes of fields for 4 declared fields (9 a field at least)"
        );
        let mut wrong = packed();
        wrong.fields[34] = 1;
        let err = Cand::from_packed(wrong).unwrap_err();
        assert!(err.starts_with("field candidate.isdiffpos: "), "{err}");
    }

    #[test]
    fn absent_values_become_none_and_empty_columns() {
        let c = Cand::from_values(vec![Value::Absent; 4]).unwrap();
        assert_eq!(c.magpsf, None);
        assert!(c.jds.is_empty());
    }

    #[test]
    fn an_optional_column_tells_absent_from_empty() {
        let mut absent = Value::Absent;
        assert_eq!(Option::<Reals>::from_value(&mut absent).unwrap(), None);
        let mut empty = Value::Reals(crate::RealColumn {
            values: Vec::new(),
            present: Vec::new(),
        });
        let got = Option::<Reals>::from_value(&mut empty).unwrap();
        assert!(got.is_some_and(|c| c.is_empty()));
        let mut ints = Value::Integers(crate::IntegerColumn {
            values: 7i64.to_le_bytes().to_vec(),
            present: vec![1],
        });
        let got = Option::<Integers>::from_value(&mut ints).unwrap().unwrap();
        assert_eq!(got.iter().collect::<Vec<_>>(), [Some(7)]);
        let mut wrong = Value::Real(1.0);
        assert!(Option::<Texts>::from_value(&mut wrong).is_err());
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_naming_the_field() {
        let err = Cand::from_values(vec![
            Value::Real(18.0),
            Value::Real(2.0),
            Value::Absent,
            Value::Absent,
        ])
        .unwrap_err();
        assert_eq!(err, "field candidate.fid: expected an integer, got a real");
    }

    #[test]
    fn a_wrong_number_of_values_is_an_error() {
        let err = Cand::from_values(vec![Value::Absent]).unwrap_err();
        assert_eq!(err, "the host sent 1 values for 4 declared fields");
    }

    #[test]
    fn columns_read_their_presence_masks() {
        let reals = Value::Reals(RealColumn {
            values: packed_reals(&[1.5, 0.0, 2.5]),
            present: vec![1, 0, 1],
        });
        assert_eq!(
            Vec::<Option<f64>>::from_value(&mut reals.clone()).unwrap(),
            [Some(1.5), None, Some(2.5)]
        );
        // A mask shorter than the values marks the rest absent.
        let short = Value::Integers(IntegerColumn {
            values: packed_integers(&[7, 8]),
            present: vec![1],
        });
        assert_eq!(
            Vec::<Option<i64>>::from_value(&mut short.clone()).unwrap(),
            [Some(7), None]
        );
    }

    #[test]
    fn numeric_columns_read_in_place() {
        let mut value = Value::Reals(RealColumn {
            values: packed_reals(&[1.5, 0.0, 2.5]),
            present: vec![1, 0, 1],
        });
        let reals = Reals::from_value(&mut value).unwrap();
        assert_eq!(
            reals,
            [Some(1.5), None, Some(2.5)].into_iter().collect::<Reals>()
        );
        assert_eq!(reals.get(1), None);
        assert_eq!(reals.get(7), None);
        let mut ints = Value::Integers(IntegerColumn {
            values: packed_integers(&[3, 4]),
            present: vec![1, 1],
        });
        assert_eq!(
            Reals::from_value(&mut ints.clone()).unwrap().get(1),
            Some(4.0)
        );
        assert_eq!(
            Integers::from_value(&mut ints)
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            [Some(3), Some(4)]
        );
    }

    #[test]
    fn texts_read_a_text_column_in_place() {
        let column: Texts = [Some("t"), None, Some("1")].into_iter().collect();
        let mut value = Value::Texts(TextColumn {
            text: "t1".into(),
            ends: vec![1, 1, 2],
            present: vec![1, 0, 1],
        });
        let read = Texts::from_value(&mut value).unwrap();
        assert_eq!(read, column);
        assert_eq!(
            read.iter().collect::<Vec<_>>(),
            [Some("t"), None, Some("1")]
        );
        assert_eq!(read.get(3), None);
        assert!(Texts::from_value(&mut Value::Absent).unwrap().is_empty());
    }

    #[test]
    fn a_text_column_splits_at_its_end_offsets() {
        let mut texts = Value::Texts(TextColumn {
            text: "t1f".into(),
            ends: vec![1, 2, 2, 3],
            present: vec![1, 1, 0, 1],
        });
        assert_eq!(
            Vec::<Option<String>>::from_value(&mut texts).unwrap(),
            [
                Some("t".to_string()),
                Some("1".to_string()),
                None,
                Some("f".to_string())
            ]
        );
        // Offsets past the text or off a character boundary read as empty.
        let mut bad = Value::Texts(TextColumn {
            text: "é".into(),
            ends: vec![1, 9],
            present: vec![1, 1],
        });
        assert_eq!(
            Vec::<Option<String>>::from_value(&mut bad).unwrap(),
            [Some(String::new()), Some(String::new())]
        );
    }
}
