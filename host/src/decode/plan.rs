//! The projection: a plan compiled once per (writer schema, path list)
//! that walks one Avro binary record, reads the requested values and
//! skips everything else (fixed-size runs in one jump, strings and bytes
//! by their length, array and map blocks by their byte size where the
//! writer gave one). No allocation happens for a skipped value.
//!
//! Length: one file of about 870 lines, because the compiler of a plan
//! and the walker that runs it must agree op for op: each op is built
//! and executed within a screen of each other, and a split would put
//! the two halves of every op in different files.

use std::collections::HashMap;
use std::sync::Arc;

use super::FieldValue;
use super::schema::{ColKind, Node, NodeId, Resolved, Schema};

/// Most array/map items (and recursive values) of zero encoded size, or
/// of a recursive type, one record may hold. Items that take at least one
/// byte are bounded by the message length instead.
const ITEM_BUDGET: u64 = 1 << 20;
/// Deepest nesting of values of a recursive type.
const MAX_VALUE_DEPTH: u32 = 64;

/// Why the walk stopped: a value runs past the end of the buffer
/// (`invalid` is None) or is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    pub what: &'static str,
    pub offset: usize,
    pub invalid: Option<&'static str>,
}

impl Fault {
    fn truncated(what: &'static str, offset: usize) -> Fault {
        Fault {
            what,
            offset,
            invalid: None,
        }
    }
    fn invalid(what: &'static str, offset: usize, reason: &'static str) -> Fault {
        Fault {
            what,
            offset,
            invalid: Some(reason),
        }
    }
}

/// A cursor over Avro binary data.
pub(crate) struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    /// Items of zero encoded size (or of recursive types) still allowed.
    pub budget: u64,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            budget: ITEM_BUDGET,
        }
    }

    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub fn byte(&mut self, what: &'static str) -> Result<u8, Fault> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(Fault::truncated(what, self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 varint of at most 10 bytes.
    #[inline]
    pub fn varint(&mut self, what: &'static str) -> Result<u64, Fault> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_slow(what),
        }
    }

    #[cold]
    fn varint_slow(&mut self, what: &'static str) -> Result<u64, Fault> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(Fault::truncated(what, start))?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(Fault::invalid(what, start, "varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Fault::invalid(
            what,
            start,
            "varint is longer than 10 bytes",
        ))
    }

    /// A zigzag-encoded long.
    #[inline]
    pub fn long(&mut self, what: &'static str) -> Result<i64, Fault> {
        let v = self.varint(what)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A zigzag-encoded int.
    #[inline]
    pub fn int(&mut self, what: &'static str) -> Result<i32, Fault> {
        let at = self.pos;
        let v = self.long(what)?;
        i32::try_from(v).map_err(|_| Fault::invalid(what, at, "int value out of 32-bit range"))
    }

    #[inline]
    fn skip_varint(&mut self, what: &'static str) -> Result<(), Fault> {
        self.varint(what).map(|_| ())
    }

    #[inline]
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), Fault> {
        if n > self.remaining() {
            return Err(Fault::truncated(what, self.pos));
        }
        self.pos += n;
        Ok(())
    }

    #[inline]
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Fault> {
        if n > self.remaining() {
            return Err(Fault::truncated(what, self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A length (of bytes, a string or a block): not negative, and not
    /// past the end of the buffer.
    #[inline]
    pub fn len(&mut self, what: &'static str) -> Result<usize, Fault> {
        let at = self.pos;
        let n = self.long(what)?;
        if n < 0 {
            return Err(Fault::invalid(what, at, "length is negative"));
        }
        if n as u64 > self.remaining() as u64 {
            return Err(Fault::truncated(what, at));
        }
        Ok(n as usize)
    }

    /// A length-prefixed byte string.
    #[inline]
    pub fn blob(&mut self, what: &'static str) -> Result<&'a [u8], Fault> {
        let n = self.len(what)?;
        self.take(n, what)
    }

    fn spend(&mut self, n: u64, what: &'static str, at: usize) -> Result<(), Fault> {
        if n > self.budget {
            return Err(Fault::invalid(
                what,
                at,
                "more items than the message can plausibly hold",
            ));
        }
        self.budget -= n;
        Ok(())
    }
}

/// Appends a zigzag varint (used to build standalone containers and in
/// tests).
pub(crate) fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A primitive the plan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaf {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(u32),
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Skip this many bytes (runs of float, double, boolean, fixed, null).
    Skip(u32),
    /// Skip an int, long or enum index.
    SkipVarint,
    /// Skip a string or bytes.
    SkipBlob,
    Seq(Arc<[Op]>),
    /// Read the branch index, run that branch's op.
    Union(Arc<[Op]>),
    /// A union whose branches are all skipped simply (the common
    /// `["null", "float"]` nobody asked for): no recursion.
    SkipUnion(Arc<[Simple]>),
    /// A union whose branches are all of fixed size (`["float", "null"]`):
    /// the branch index picks the size, without a branch on the kind.
    SkipUnionFixed(Arc<[u32]>),
    Array(Arc<ArrayOp>),
    /// Skip a map whose values the op skips.
    Map(Arc<Op>),
    /// Skip a value of a recursive type by walking the schema.
    SkipNode(NodeId),
    Read {
        slot: u32,
        leaf: Leaf,
        col: bool,
    },
    ReadEnum {
        slot: u32,
        symbols: Arc<[String]>,
        col: bool,
    },
}

/// How a union branch is skipped, for [`Op::SkipUnion`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Simple {
    Bytes(u32),
    Varint,
    Blob,
}

#[derive(Debug)]
pub(crate) struct ArrayOp {
    item: Op,
    /// Column slots filled by this array (empty when it is skipped).
    cols: Vec<(u32, ColKind)>,
    /// Fewest bytes one item takes.
    min_item: u32,
    /// The item's size when every item takes the same number of bytes.
    fixed_item: Option<u32>,
}

fn min_size(op: &Op) -> u32 {
    match op {
        Op::Skip(n) => *n,
        Op::SkipVarint | Op::SkipBlob | Op::Array(_) | Op::Map(_) => 1,
        Op::Seq(ops) => ops.iter().fold(0u32, |a, o| a.saturating_add(min_size(o))),
        Op::Union(b) => 1u32.saturating_add(b.iter().map(min_size).min().unwrap_or(0)),
        Op::SkipUnionFixed(b) => 1u32.saturating_add(b.iter().copied().min().unwrap_or(0)),
        Op::SkipUnion(b) => 1u32.saturating_add(
            b.iter()
                .map(|s| match s {
                    Simple::Bytes(n) => *n,
                    Simple::Varint | Simple::Blob => 1,
                })
                .min()
                .unwrap_or(0),
        ),
        Op::SkipNode(_) => 0,
        Op::Read { leaf, .. } => match leaf {
            Leaf::Boolean | Leaf::Int | Leaf::Long | Leaf::Bytes | Leaf::String => 1,
            Leaf::Float => 4,
            Leaf::Double => 8,
            Leaf::Fixed(n) => *n,
        },
        Op::ReadEnum { .. } => 1,
    }
}

/// The compiled projection of one schema for one path list.
#[derive(Debug)]
pub(crate) struct Plan {
    pub root: Op,
    /// The values before the walk: `Missing` where the schema lacks the
    /// path, `Absent` elsewhere (overwritten by what the record holds).
    pub template: Vec<FieldValue>,
    /// Fewest bytes one record takes.
    pub min_record: u32,
}

struct Req<'p> {
    slot: u32,
    segs: &'p [String],
    kind: Resolved,
}

/// Compiles the plan for `paths` (None: not a valid path).
pub(crate) fn compile(schema: &Schema, paths: &[Option<Vec<String>>]) -> Plan {
    let mut template = Vec::with_capacity(paths.len());
    let mut reqs = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        match p.as_ref().map(|segs| (segs, schema.resolve(segs))) {
            Some((segs, Ok(kind))) => {
                template.push(FieldValue::Absent);
                reqs.push(Req {
                    slot: i as u32,
                    segs,
                    kind,
                });
            }
            _ => template.push(FieldValue::Missing),
        }
    }
    let mut c = Compiler {
        schema,
        memo: HashMap::new(),
        stack: Vec::new(),
    };
    let root = c.compile(schema.root, &reqs, false);
    let min_record = min_size(&root);
    Plan {
        root,
        template,
        min_record,
    }
}

struct Compiler<'s> {
    schema: &'s Schema,
    memo: HashMap<NodeId, Op>,
    stack: Vec<NodeId>,
}

/// Appends `op` to a sequence, inlining small sequences and merging runs
/// of fixed-size skips.
fn push_flat(ops: &mut Vec<Op>, op: Op) {
    match op {
        Op::Skip(0) => {}
        Op::Seq(inner) if inner.len() <= 32 => {
            for o in inner.iter() {
                push_flat(ops, o.clone());
            }
        }
        Op::Skip(n) => {
            if let Some(Op::Skip(prev)) = ops.last_mut()
                && let Some(sum) = prev.checked_add(n)
            {
                *prev = sum;
                return;
            }
            ops.push(Op::Skip(n));
        }
        other => ops.push(other),
    }
}

fn seq(mut ops: Vec<Op>) -> Op {
    match ops.len() {
        0 => Op::Skip(0),
        1 => ops.pop().unwrap_or(Op::Skip(0)),
        _ => Op::Seq(ops.into()),
    }
}

impl Compiler<'_> {
    /// Compiles the op for a value of type `id` holding the requested
    /// paths (`segs` relative to it); `in_array`: inside the one array a
    /// path may cross, so leaves are column entries.
    fn compile(&mut self, id: NodeId, reqs: &[Req<'_>], in_array: bool) -> Op {
        if reqs.is_empty() {
            return self.skip(id);
        }
        let schema = self.schema;
        match schema.node(id) {
            Node::Record { fields, .. } => {
                let mut ops = Vec::with_capacity(fields.len());
                for f in fields {
                    // A field another of the same name follows is skipped:
                    // paths read the last (see schema.rs).
                    let sub: Vec<Req<'_>> = reqs
                        .iter()
                        .filter(|r| !f.shadowed && r.segs.first() == Some(&f.name))
                        .map(|r| Req {
                            slot: r.slot,
                            segs: &r.segs[1..],
                            kind: r.kind,
                        })
                        .collect();
                    let op = self.compile(f.node, &sub, in_array);
                    push_flat(&mut ops, op);
                }
                seq(ops)
            }
            Node::Union(branches) => {
                let ops: Vec<Op> = branches
                    .iter()
                    .map(|&b| self.compile(b, reqs, in_array))
                    .collect();
                Op::Union(ops.into())
            }
            Node::Array(item) => {
                if in_array {
                    return self.skip(id);
                }
                let cols: Vec<(u32, ColKind)> = reqs
                    .iter()
                    .filter_map(|r| match r.kind {
                        Resolved::Column(k) => Some((r.slot, k)),
                        Resolved::Scalar => None,
                    })
                    .collect();
                if cols.is_empty() {
                    return self.skip(id);
                }
                let item_op = self.compile(*item, reqs, true);
                array_op(item_op, cols)
            }
            Node::Map(_) => self.skip(id),
            Node::Enum { symbols, .. } => match reqs.iter().find(|r| r.segs.is_empty()) {
                Some(r) => Op::ReadEnum {
                    slot: r.slot,
                    symbols: symbols.clone(),
                    col: in_array,
                },
                None => self.skip(id),
            },
            n => {
                let leaf = match n {
                    Node::Boolean => Leaf::Boolean,
                    Node::Int => Leaf::Int,
                    Node::Long => Leaf::Long,
                    Node::Float => Leaf::Float,
                    Node::Double => Leaf::Double,
                    Node::Bytes => Leaf::Bytes,
                    Node::String => Leaf::String,
                    Node::Fixed { size, .. } => Leaf::Fixed(*size),
                    _ => return self.skip(id),
                };
                match reqs.iter().find(|r| r.segs.is_empty()) {
                    Some(r) => Op::Read {
                        slot: r.slot,
                        leaf,
                        col: in_array,
                    },
                    None => self.skip(id),
                }
            }
        }
    }

    fn skip(&mut self, id: NodeId) -> Op {
        let schema = self.schema;
        match schema.node(id) {
            Node::Null | Node::Pending => Op::Skip(0),
            Node::Boolean => Op::Skip(1),
            Node::Int | Node::Long | Node::Enum { .. } => Op::SkipVarint,
            Node::Float => Op::Skip(4),
            Node::Double => Op::Skip(8),
            Node::Bytes | Node::String => Op::SkipBlob,
            Node::Fixed { size, .. } => Op::Skip(*size),
            Node::Record { fields, .. } => {
                if let Some(op) = self.memo.get(&id) {
                    return op.clone();
                }
                if self.stack.contains(&id) {
                    return Op::SkipNode(id);
                }
                self.stack.push(id);
                let mut ops = Vec::with_capacity(fields.len());
                for f in fields {
                    let op = self.skip(f.node);
                    push_flat(&mut ops, op);
                }
                self.stack.pop();
                let op = seq(ops);
                self.memo.insert(id, op.clone());
                op
            }
            Node::Array(item) => {
                let item = self.skip(*item);
                array_op(item, Vec::new())
            }
            Node::Map(v) => Op::Map(Arc::new(self.skip(*v))),
            Node::Union(branches) => {
                let ops: Vec<Op> = branches.iter().map(|&b| self.skip(b)).collect();
                let simple: Option<Vec<Simple>> = ops
                    .iter()
                    .map(|o| match o {
                        Op::Skip(n) => Some(Simple::Bytes(*n)),
                        Op::SkipVarint => Some(Simple::Varint),
                        Op::SkipBlob => Some(Simple::Blob),
                        _ => None,
                    })
                    .collect();
                let fixed: Option<Vec<u32>> = ops
                    .iter()
                    .map(|o| match o {
                        Op::Skip(n) => Some(*n),
                        _ => None,
                    })
                    .collect();
                match (fixed, simple) {
                    (Some(f), _) => Op::SkipUnionFixed(f.into()),
                    (None, Some(s)) => Op::SkipUnion(s.into()),
                    _ => Op::Union(ops.into()),
                }
            }
        }
    }
}

fn array_op(item: Op, cols: Vec<(u32, ColKind)>) -> Op {
    let min_item = min_size(&item);
    let fixed_item = match item {
        Op::Skip(n) if n > 0 => Some(n),
        _ => None,
    };
    Op::Array(Arc::new(ArrayOp {
        item,
        cols,
        min_item,
        fixed_item,
    }))
}

/// Runs a plan over one record.
pub(crate) struct Walker<'s> {
    pub schema: &'s Schema,
}

fn empty_column(k: ColKind) -> FieldValue {
    match k {
        ColKind::Booleans => FieldValue::Booleans(Vec::new()),
        ColKind::Integers => FieldValue::Integers(Vec::new()),
        ColKind::Reals => FieldValue::Reals(Vec::new()),
        ColKind::Texts => FieldValue::Texts(Vec::new()),
    }
}

/// Pads a column to `n` entries with None (an element that did not reach
/// the leaf: null on the way).
fn pad(v: &mut FieldValue, n: usize) {
    match v {
        FieldValue::Booleans(c) if c.len() < n => c.push(None),
        FieldValue::Integers(c) if c.len() < n => c.push(None),
        FieldValue::Reals(c) if c.len() < n => c.push(None),
        FieldValue::Texts(c) if c.len() < n => c.push(None),
        _ => {}
    }
}

#[inline]
fn put_int(slot: &mut FieldValue, v: i64, col: bool) {
    if !col {
        *slot = FieldValue::Integer(v);
    } else if let FieldValue::Integers(c) = slot {
        c.push(Some(v));
    }
}

#[inline]
fn put_real(slot: &mut FieldValue, v: f64, col: bool) {
    if !col {
        *slot = FieldValue::Real(v);
    } else if let FieldValue::Reals(c) = slot {
        c.push(Some(v));
    }
}

#[inline]
fn put_bool(slot: &mut FieldValue, v: bool, col: bool) {
    if !col {
        *slot = FieldValue::Boolean(v);
    } else if let FieldValue::Booleans(c) = slot {
        c.push(Some(v));
    }
}

#[inline]
fn put_text(slot: &mut FieldValue, v: String, col: bool) {
    if !col {
        *slot = FieldValue::Text(v);
    } else if let FieldValue::Texts(c) = slot {
        c.push(Some(v));
    }
}

fn utf8(b: &[u8], at: usize) -> Result<&str, Fault> {
    std::str::from_utf8(b).map_err(|_| Fault::invalid("string", at, "string is not valid UTF-8"))
}

impl Walker<'_> {
    /// Runs `op`, writing values into `out` (indexed by slot).
    pub fn run(&self, op: &Op, r: &mut Reader<'_>, out: &mut [FieldValue]) -> Result<(), Fault> {
        self.step(op, r, out)
    }

    /// The skips that make up most of a record, inlined into the loops
    /// that run sequences; anything else goes through [`Walker::complex`].
    #[inline(always)]
    fn step(&self, op: &Op, r: &mut Reader<'_>, out: &mut [FieldValue]) -> Result<(), Fault> {
        match op {
            Op::Skip(n) => r.skip(*n as usize, "fixed-size value"),
            Op::SkipVarint => r.skip_varint("int or long"),
            Op::SkipBlob => {
                let n = r.len("string or bytes length")?;
                r.pos += n;
                Ok(())
            }
            Op::SkipUnionFixed(sizes) => {
                let at = r.pos;
                let i = r.long("union branch index")?;
                match usize::try_from(i).ok().and_then(|i| sizes.get(i)) {
                    Some(&n) => r.skip(n as usize, "fixed-size value"),
                    None => Err(Fault::invalid(
                        "union branch index",
                        at,
                        "union branch index out of range",
                    )),
                }
            }
            _ => self.complex(op, r, out),
        }
    }

    #[inline(never)]
    fn complex(&self, op: &Op, r: &mut Reader<'_>, out: &mut [FieldValue]) -> Result<(), Fault> {
        match op {
            Op::Skip(_) | Op::SkipVarint | Op::SkipBlob | Op::SkipUnionFixed(_) => {
                self.step(op, r, out)
            }
            Op::Seq(ops) => {
                for o in ops.iter() {
                    self.step(o, r, out)?;
                }
                Ok(())
            }
            Op::Union(branches) => {
                let at = r.pos;
                let i = r.long("union branch index")?;
                let b = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or(Fault::invalid(
                        "union branch index",
                        at,
                        "union branch index out of range",
                    ))?;
                self.run(b, r, out)
            }
            Op::SkipUnion(branches) => {
                let at = r.pos;
                let i = r.long("union branch index")?;
                match usize::try_from(i).ok().and_then(|i| branches.get(i)) {
                    Some(Simple::Bytes(n)) => r.skip(*n as usize, "fixed-size value"),
                    Some(Simple::Varint) => r.skip_varint("int or long"),
                    Some(Simple::Blob) => {
                        let n = r.len("string or bytes length")?;
                        r.pos += n;
                        Ok(())
                    }
                    None => Err(Fault::invalid(
                        "union branch index",
                        at,
                        "union branch index out of range",
                    )),
                }
            }
            Op::Array(a) => self.array(a, r, out),
            Op::Map(v) => self.map(v, r, out),
            Op::SkipNode(id) => skip_node(self.schema, *id, r, 0),
            Op::Read { slot, leaf, col } => {
                let at = r.pos;
                let mut scratch = FieldValue::Missing;
                let slot = out.get_mut(*slot as usize).unwrap_or(&mut scratch);
                let col = *col;
                match leaf {
                    Leaf::Boolean => put_bool(slot, r.byte("boolean")? != 0, col),
                    Leaf::Int => put_int(slot, i64::from(r.int("int")?), col),
                    Leaf::Long => put_int(slot, r.long("long")?, col),
                    Leaf::Float => {
                        let b = r.take(4, "float")?;
                        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        put_real(slot, f64::from(v), col);
                    }
                    Leaf::Double => {
                        let b = r.take(8, "double")?;
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        put_real(slot, f64::from_le_bytes(a), col);
                    }
                    Leaf::String => {
                        let s = utf8(r.blob("string")?, at)?;
                        put_text(slot, s.to_owned(), col);
                    }
                    Leaf::Bytes => {
                        let b = r.blob("bytes")?;
                        if !col {
                            *slot = FieldValue::Bytes(b.to_vec());
                        }
                    }
                    Leaf::Fixed(n) => {
                        let b = r.take(*n as usize, "fixed")?;
                        if !col {
                            *slot = FieldValue::Bytes(b.to_vec());
                        }
                    }
                }
                Ok(())
            }
            Op::ReadEnum { slot, symbols, col } => {
                let at = r.pos;
                let i = r.long("enum index")?;
                let s = usize::try_from(i)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or(Fault::invalid("enum index", at, "enum index out of range"))?;
                if let Some(slot) = out.get_mut(*slot as usize) {
                    put_text(slot, s.clone(), *col);
                }
                Ok(())
            }
        }
    }

    /// Reads one block header: the item count (None at the end), jumping
    /// over the block when it carries a byte size and `jump` is set.
    #[inline]
    fn block(r: &mut Reader<'_>, jump: bool, what: &'static str) -> Result<Option<u64>, Fault> {
        let count = r.long(what)?;
        if count == 0 {
            return Ok(None);
        }
        if count > 0 {
            return Ok(Some(count as u64));
        }
        let size = r.len("block byte size")?;
        if jump {
            r.pos += size;
            return Ok(Some(0));
        }
        Ok(Some(count.unsigned_abs()))
    }

    fn array(&self, a: &ArrayOp, r: &mut Reader<'_>, out: &mut [FieldValue]) -> Result<(), Fault> {
        for &(slot, k) in &a.cols {
            if let Some(v) = out.get_mut(slot as usize) {
                *v = empty_column(k);
            }
        }
        let jump = a.cols.is_empty();
        let mut n: usize = 0;
        loop {
            let at = r.pos;
            let Some(count) = Self::block(r, jump, "array block count")? else {
                return Ok(());
            };
            if a.min_item > 0 {
                if count > (r.remaining() / a.min_item as usize) as u64 {
                    return Err(Fault::truncated("array items", at));
                }
            } else {
                r.spend(count, "array block count", at)?;
            }
            let count = count as usize;
            if jump && let Some(size) = a.fixed_item {
                // Bounded by the check above: count * size <= remaining.
                r.skip(count * size as usize, "array items")?;
                continue;
            }
            for _ in 0..count {
                self.step(&a.item, r, out)?;
                n += 1;
                for &(slot, _) in &a.cols {
                    if let Some(v) = out.get_mut(slot as usize) {
                        pad(v, n);
                    }
                }
            }
        }
    }

    fn map(&self, value: &Op, r: &mut Reader<'_>, out: &mut [FieldValue]) -> Result<(), Fault> {
        loop {
            let at = r.pos;
            let Some(count) = Self::block(r, true, "map block count")? else {
                return Ok(());
            };
            // Every entry has a key, which takes at least one byte.
            if count > r.remaining() as u64 {
                return Err(Fault::truncated("map entries", at));
            }
            for _ in 0..count {
                let n = r.len("map key")?;
                r.pos += n;
                self.run(value, r, out)?;
            }
        }
    }
}

/// Skips a value by walking the schema itself (recursive types).
fn skip_node(schema: &Schema, id: NodeId, r: &mut Reader<'_>, depth: u32) -> Result<(), Fault> {
    if depth > MAX_VALUE_DEPTH {
        return Err(Fault::invalid(
            "nested value",
            r.pos,
            "values of a recursive type nest too deep",
        ));
    }
    match schema.node(id) {
        Node::Null | Node::Pending => Ok(()),
        Node::Boolean => r.skip(1, "boolean"),
        Node::Int | Node::Long | Node::Enum { .. } => r.skip_varint("int or long"),
        Node::Float => r.skip(4, "float"),
        Node::Double => r.skip(8, "double"),
        Node::Bytes | Node::String => r.blob("string or bytes").map(|_| ()),
        Node::Fixed { size, .. } => r.skip(*size as usize, "fixed"),
        Node::Record { fields, .. } => {
            let at = r.pos;
            r.spend(1, "record", at)?;
            for f in fields {
                skip_node(schema, f.node, r, depth + 1)?;
            }
            Ok(())
        }
        Node::Union(branches) => {
            let at = r.pos;
            let i = r.long("union branch index")?;
            let b = usize::try_from(i)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or(Fault::invalid(
                    "union branch index",
                    at,
                    "union branch index out of range",
                ))?;
            skip_node(schema, *b, r, depth + 1)
        }
        Node::Array(item) | Node::Map(item) => {
            let is_map = matches!(schema.node(id), Node::Map(_));
            loop {
                let at = r.pos;
                let Some(count) = Walker::block(r, true, "array or map block count")? else {
                    return Ok(());
                };
                r.spend(count, "array or map block count", at)?;
                for _ in 0..count {
                    if is_map {
                        r.blob("map key")?;
                    }
                    skip_node(schema, *item, r, depth + 1)?;
                }
            }
        }
    }
}
