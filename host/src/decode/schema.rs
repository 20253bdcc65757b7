//! Writer schemas: parsed from JSON (serde_json, our own walk) into an
//! arena of nodes, with named types resolved by full name, optionally
//! loading referenced types from sibling `.avsc` files.
//!
//! The parser is deliberately lenient where decoding with the writer
//! schema does not care: `default`, `doc`, `aliases`, `order` and logical
//! types are ignored, so ZTF's `["float", "null"]` with `"default": null`
//! (refused by strict parsers) is accepted. It is strict where decoding
//! does care: unknown type names, a name defined twice, empty unions,
//! fixed sizes, enum symbols.
//!
//! Two fields of one record with the same name (invalid Avro, but real
//! survey schemas have shipped it) are both decoded in order, as they are
//! written; a path naming them reads the last, as fastavro does (it reads
//! a record into a dict, where the last value of a name stays). The
//! schema lists such fields ([`Schema::duplicates`]) for the caller to
//! warn about.
//!
//! The root must be a record: paths name its fields. A valid schema with
//! another root is [`SchemaError::RootNotRecord`], told apart from an
//! invalid one.
//!
//! Length: about 760 lines of code (the parser, named-type resolution and
//! path resolution over one arena of nodes) and 200 of unit tests.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

/// Index of a node in [`Schema::nodes`].
pub(crate) type NodeId = u32;

/// Deepest JSON nesting (counting types reached through sibling files)
/// the parser accepts.
const MAX_SCHEMA_DEPTH: usize = 200;
/// Most paths [`Schema::leaf_paths`] lists (a schema that nests types
/// by doubling could otherwise name billions).
const MAX_LISTED_PATHS: usize = 100_000;
/// Most sibling files one schema may pull in.
const MAX_SIBLING_FILES: usize = 256;

#[derive(Debug)]
pub(crate) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed {
        name: String,
        size: u32,
    },
    Enum {
        name: String,
        symbols: Arc<[String]>,
    },
    Record {
        name: String,
        fields: Vec<Field>,
        version: Option<String>,
        /// The position in `fields` of each name's field that paths reach
        /// (the last of that name): a path's step is one lookup, so
        /// walking a record of many fields stays linear.
        index: HashMap<String, usize>,
    },
    Array(NodeId),
    Map(NodeId),
    Union(Vec<NodeId>),
    /// A named type whose definition is being parsed.
    Pending,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub name: String,
    pub node: NodeId,
    /// A later field of the same record has the same name: paths reach
    /// that one, and this one is only skipped.
    pub shadowed: bool,
}

/// A parsed writer schema.
#[derive(Debug)]
pub(crate) struct Schema {
    pub nodes: Vec<Node>,
    pub root: NodeId,
    /// Each (record full name, field name) that a record defines more
    /// than once, in the order met.
    pub duplicates: Vec<(String, String)>,
}

/// Why a schema cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SchemaError {
    /// Not JSON, or not valid Avro: a sentence fragment saying why.
    Invalid(String),
    /// Valid Avro whose root is not a record: what it is instead (`a
    /// union (null|t.r)`, `the primitive type 'string'`).
    RootNotRecord(String),
}

const PRIMITIVES: [(&str, Node); 8] = [
    ("null", Node::Null),
    ("boolean", Node::Boolean),
    ("int", Node::Int),
    ("long", Node::Long),
    ("float", Node::Float),
    ("double", Node::Double),
    ("bytes", Node::Bytes),
    ("string", Node::String),
];

fn primitive_id(name: &str) -> Option<NodeId> {
    PRIMITIVES
        .iter()
        .position(|(n, _)| *n == name)
        .map(|i| i as NodeId)
}

/// Largest schema file read (the largest published alert schema is tens
/// of KiB).
pub(crate) const MAX_SCHEMA_FILE_BYTES: u64 = 4 << 20;

/// Reads a schema file of at most [`MAX_SCHEMA_FILE_BYTES`]; a larger one
/// is an error before it is read.
pub(crate) fn read_schema_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = Vec::new();
    file.take(MAX_SCHEMA_FILE_BYTES + 1)
        .read_to_end(&mut text)?;
    if text.len() as u64 > MAX_SCHEMA_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "over {MAX_SCHEMA_FILE_BYTES} bytes, too large for a schema"
        )));
    }
    Ok(text)
}

/// Where named types that a schema references but does not define are
/// looked up: `dir/<full name>.avsc`, then `dir/<short name>.avsc`.
pub(crate) struct Siblings<'a> {
    pub dir: &'a Path,
    /// Text of every sibling file read, in order (for the fingerprint).
    pub texts: Vec<Vec<u8>>,
}

/// Parses a schema. `siblings`, where given, resolves references to types
/// defined in other files. The error's text is a sentence fragment naming
/// the problem (the caller says which schema).
pub(crate) fn parse(
    text: &[u8],
    siblings: Option<&mut Siblings<'_>>,
) -> Result<Schema, SchemaError> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|e| SchemaError::Invalid(format!("it is not valid JSON ({e})")))?;
    let mut p = Parser {
        nodes: PRIMITIVES.iter().map(|(_, n)| clone_primitive(n)).collect(),
        names: HashMap::new(),
        siblings,
        depth: 0,
        loading: HashSet::new(),
        duplicates: Vec::new(),
    };
    let root = p.parse(&value, "").map_err(SchemaError::Invalid)?;
    let schema = Schema {
        nodes: p.nodes,
        root,
        duplicates: p.duplicates,
    };
    if !matches!(schema.node(root), Node::Record { .. }) {
        return Err(SchemaError::RootNotRecord(schema.describe(root)));
    }
    Ok(schema)
}

fn clone_primitive(n: &Node) -> Node {
    match n {
        Node::Null => Node::Null,
        Node::Boolean => Node::Boolean,
        Node::Int => Node::Int,
        Node::Long => Node::Long,
        Node::Float => Node::Float,
        Node::Double => Node::Double,
        Node::Bytes => Node::Bytes,
        _ => Node::String,
    }
}

struct Parser<'a, 'b> {
    nodes: Vec<Node>,
    names: HashMap<String, NodeId>,
    siblings: Option<&'a mut Siblings<'b>>,
    depth: usize,
    /// Sibling files being parsed (guards against files that define
    /// something other than what their name promises, in a loop).
    loading: HashSet<PathBuf>,
    /// See [`Schema::duplicates`].
    duplicates: Vec<(String, String)>,
}

/// Splits a possibly dotted name into (namespace, full name).
fn full_name(name: &str, namespace: &str) -> (String, String) {
    if let Some((ns, _)) = name.rsplit_once('.') {
        (ns.to_string(), name.to_string())
    } else if namespace.is_empty() {
        (String::new(), name.to_string())
    } else {
        (namespace.to_string(), format!("{namespace}.{name}"))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut c = part.chars();
            c.next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        })
}

impl Parser<'_, '_> {
    fn push(&mut self, n: Node) -> NodeId {
        self.nodes.push(n);
        (self.nodes.len() - 1) as NodeId
    }

    fn parse(&mut self, v: &Value, ns: &str) -> Result<NodeId, String> {
        self.depth += 1;
        if self.depth > MAX_SCHEMA_DEPTH {
            return Err(format!("it nests deeper than {MAX_SCHEMA_DEPTH} levels"));
        }
        let r = match v {
            Value::String(s) => self.reference(s, ns),
            Value::Array(branches) => self.union(branches, ns),
            Value::Object(o) => self.object(o, ns),
            other => Err(format!(
                "a type is given as {other}, not a name, union or object"
            )),
        };
        self.depth -= 1;
        r
    }

    fn union(&mut self, branches: &[Value], ns: &str) -> Result<NodeId, String> {
        if branches.is_empty() {
            return Err("a union has no branches".into());
        }
        let mut ids = Vec::with_capacity(branches.len());
        for b in branches {
            let id = self.parse(b, ns)?;
            if matches!(self.nodes[id as usize], Node::Union(_)) {
                return Err("a union directly contains another union".into());
            }
            ids.push(id);
        }
        Ok(self.push(Node::Union(ids)))
    }

    fn reference(&mut self, name: &str, ns: &str) -> Result<NodeId, String> {
        if let Some(id) = primitive_id(name) {
            return Ok(id);
        }
        let candidates: Vec<String> = if name.contains('.') || ns.is_empty() {
            vec![name.to_string()]
        } else {
            vec![format!("{ns}.{name}"), name.to_string()]
        };
        for c in &candidates {
            if let Some(&id) = self.names.get(c) {
                return Ok(id);
            }
        }
        if let Some(id) = self.load_sibling(name, &candidates)? {
            return Ok(id);
        }
        Err(format!(
            "it refers to type '{name}', which it does not define"
        ))
    }

    /// Looks for the definition of `name` in a sibling file.
    fn load_sibling(
        &mut self,
        name: &str,
        candidates: &[String],
    ) -> Result<Option<NodeId>, String> {
        let Some(dir) = self.siblings.as_deref().map(|s| s.dir.to_path_buf()) else {
            return Ok(None);
        };
        let short = name.rsplit('.').next().unwrap_or(name);
        let mut files: Vec<PathBuf> = candidates
            .iter()
            .map(|c| dir.join(format!("{c}.avsc")))
            .collect();
        files.push(dir.join(format!("{short}.avsc")));
        for file in files {
            if self.loading.contains(&file) {
                continue;
            }
            let text = match read_schema_file(&file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("reading {} failed ({e})", file.display())),
            };
            let value: Value = serde_json::from_slice(&text)
                .map_err(|e| format!("{} is not valid JSON ({e})", file.display()))?;
            if let Some(sib) = self.siblings.as_deref_mut() {
                if sib.texts.len() >= MAX_SIBLING_FILES {
                    return Err(format!("it pulls in more than {MAX_SIBLING_FILES} files"));
                }
                sib.texts.push(text);
            }
            self.loading.insert(file.clone());
            self.parse(&value, "")
                .map_err(|e| format!("{}: {e}", file.display()))?;
            for c in candidates {
                if let Some(&id) = self.names.get(c) {
                    return Ok(Some(id));
                }
            }
        }
        Ok(None)
    }

    fn register(&mut self, full: &str) -> Result<NodeId, String> {
        if !valid_name(full) {
            return Err(format!("'{full}' is not a valid Avro name"));
        }
        if primitive_id(full).is_some() || self.names.contains_key(full) {
            return Err(format!("type '{full}' is defined twice"));
        }
        let id = self.push(Node::Pending);
        self.names.insert(full.to_string(), id);
        Ok(id)
    }

    fn object(&mut self, o: &Map<String, Value>, ns: &str) -> Result<NodeId, String> {
        let ty = o
            .get("type")
            .ok_or_else(|| "a type object has no 'type' attribute".to_string())?;
        let ty = match ty {
            Value::String(s) => s.as_str(),
            // {"type": {...}} or {"type": [...]}: a wrapped type.
            other => return self.parse(other, ns),
        };
        let name_attr = || -> Result<(String, String), String> {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("a {ty} has no 'name'"))?;
            let ns_here = match o.get("namespace") {
                Some(Value::String(s)) => s.as_str(),
                Some(Value::Null) => "",
                _ => ns,
            };
            Ok(full_name(name, ns_here))
        };
        match ty {
            "record" | "error" => {
                let (child_ns, full) = name_attr()?;
                let id = self.register(&full)?;
                let fields = o
                    .get("fields")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("record '{full}' has no 'fields' array"))?;
                let mut out: Vec<Field> = Vec::with_capacity(fields.len());
                let mut index: HashMap<String, usize> = HashMap::with_capacity(fields.len());
                for f in fields {
                    let fname = f
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("a field of record '{full}' has no name"))?;
                    let fty = f.get("type").ok_or_else(|| {
                        format!("field '{fname}' of record '{full}' has no 'type'")
                    })?;
                    let node = self.parse(fty, &child_ns)?;
                    if let Some(&earlier) = index.get(fname) {
                        out[earlier].shadowed = true;
                        let dup = (full.clone(), fname.to_string());
                        // Kept for reports: a few are enough, and a bound
                        // keeps a hostile schema from making this quadratic.
                        if self.duplicates.len() < 64 && !self.duplicates.contains(&dup) {
                            self.duplicates.push(dup);
                        }
                    }
                    index.insert(fname.to_string(), out.len());
                    out.push(Field {
                        name: fname.to_string(),
                        node,
                        shadowed: false,
                    });
                }
                let version = match o.get("version") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                self.nodes[id as usize] = Node::Record {
                    name: full,
                    fields: out,
                    version,
                    index,
                };
                Ok(id)
            }
            "enum" => {
                let (_, full) = name_attr()?;
                let id = self.register(&full)?;
                let symbols = o
                    .get("symbols")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("enum '{full}' has no 'symbols' array"))?;
                let symbols: Vec<String> = symbols
                    .iter()
                    .map(|s| {
                        s.as_str().map(str::to_string).ok_or_else(|| {
                            format!("enum '{full}' has a symbol that is not a string")
                        })
                    })
                    .collect::<Result<_, _>>()?;
                self.nodes[id as usize] = Node::Enum {
                    name: full,
                    symbols: symbols.into(),
                };
                Ok(id)
            }
            "fixed" => {
                let (_, full) = name_attr()?;
                let id = self.register(&full)?;
                let size = o
                    .get("size")
                    .and_then(Value::as_u64)
                    .filter(|&s| s <= i32::MAX as u64)
                    .ok_or_else(|| format!("fixed '{full}' has no valid 'size'"))?;
                self.nodes[id as usize] = Node::Fixed {
                    name: full,
                    size: size as u32,
                };
                Ok(id)
            }
            "array" => {
                let items = o
                    .get("items")
                    .ok_or_else(|| "an array has no 'items'".to_string())?;
                let item = self.parse(items, ns)?;
                Ok(self.push(Node::Array(item)))
            }
            "map" => {
                let values = o
                    .get("values")
                    .ok_or_else(|| "a map has no 'values'".to_string())?;
                let value = self.parse(values, ns)?;
                Ok(self.push(Node::Map(value)))
            }
            // A primitive written as an object (maybe with a logicalType),
            // or a reference to a named type.
            other => self.reference(other, ns),
        }
    }
}

impl Schema {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// Full name of the root record.
    pub fn full_name(&self) -> &str {
        match self.node(self.root) {
            Node::Record { name, .. } => name,
            _ => "",
        }
    }

    /// The `version` attribute of the root record, else of a field named
    /// `candidate` that is a record; else, for Rubin's `lsst.vM_m`
    /// namespaces, `M.m`.
    pub fn version(&self) -> Option<String> {
        let Node::Record {
            fields, version, ..
        } = self.node(self.root)
        else {
            return None;
        };
        if version.is_some() {
            return version.clone();
        }
        for f in fields {
            if f.name == "candidate"
                && !f.shadowed
                && let Node::Record {
                    version: Some(v), ..
                } = self.node(f.node)
            {
                return Some(v.clone());
            }
        }
        let mut parts = self.full_name().split('.');
        if parts.next() == Some("lsst")
            && let Some(v) = parts.next().and_then(|p| p.strip_prefix('v'))
            && let Some((major, minor)) = v.split_once('_')
            && !major.is_empty()
            && major
                .chars()
                .chain(minor.chars())
                .all(|c| c.is_ascii_digit())
        {
            return Some(format!("{major}.{minor}"));
        }
        None
    }

    /// The survey: the root's first namespace component, `lsst` read as
    /// `rubin`; `unknown` without a namespace.
    pub fn survey(&self) -> String {
        let name = self.full_name();
        match name.split_once('.') {
            Some(("lsst", _)) => "rubin".into(),
            Some((first, _)) => first.to_string(),
            None => "unknown".into(),
        }
    }

    /// A short type label: `float`, `null|float`, `ztf.alert.cutout`,
    /// `array<double>`, `map<string>`.
    pub fn label(&self, id: NodeId) -> String {
        match self.node(id) {
            Node::Null => "null".into(),
            Node::Boolean => "boolean".into(),
            Node::Int => "int".into(),
            Node::Long => "long".into(),
            Node::Float => "float".into(),
            Node::Double => "double".into(),
            Node::Bytes => "bytes".into(),
            Node::String => "string".into(),
            Node::Fixed { name, .. } | Node::Enum { name, .. } | Node::Record { name, .. } => {
                name.clone()
            }
            Node::Array(i) => format!("array<{}>", self.label(*i)),
            Node::Map(v) => format!("map<{}>", self.label(*v)),
            Node::Union(b) => b
                .iter()
                .map(|&x| self.label(x))
                .collect::<Vec<_>>()
                .join("|"),
            Node::Pending => "?".into(),
        }
    }

    /// What a type is, for a sentence: `a record (t.r)`, `a union
    /// (null|t.r)`, `an array (array<double>)`, `the primitive type
    /// 'string'`.
    pub fn describe(&self, id: NodeId) -> String {
        let label = self.label(id);
        match self.node(id) {
            Node::Record { .. } => format!("a record ({label})"),
            Node::Enum { .. } => format!("an enum ({label})"),
            Node::Fixed { .. } => format!("a fixed ({label})"),
            Node::Array(_) => format!("an array ({label})"),
            Node::Map(_) => format!("a map ({label})"),
            Node::Union(_) => format!("a union ({label})"),
            _ => format!("the primitive type '{label}'"),
        }
    }
}

/// The kind of value a resolved path yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColKind {
    Booleans,
    Integers,
    Reals,
    Texts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Scalar,
    Column(ColKind),
}

fn kind_of(n: &Node) -> Option<Result<ColKind, &'static str>> {
    match n {
        Node::Null => None,
        Node::Boolean => Some(Ok(ColKind::Booleans)),
        Node::Int | Node::Long => Some(Ok(ColKind::Integers)),
        Node::Float | Node::Double => Some(Ok(ColKind::Reals)),
        Node::String | Node::Enum { .. } => Some(Ok(ColKind::Texts)),
        Node::Bytes | Node::Fixed { .. } => Some(Err("bytes")),
        _ => Some(Err("container")),
    }
}

impl Schema {
    /// Expands unions into their branches, and an array into its items
    /// (counting the arrays crossed).
    fn expand(&self, start: &[(NodeId, u8)]) -> Vec<(NodeId, u8)> {
        let mut out = Vec::new();
        let mut stack: Vec<(NodeId, u8)> = start.to_vec();
        while let Some((id, arrays)) = stack.pop() {
            match self.node(id) {
                Node::Union(b) => stack.extend(b.iter().rev().map(|&x| (x, arrays))),
                Node::Array(item) => stack.push((*item, arrays.saturating_add(1))),
                _ => {
                    if !out.contains(&(id, arrays)) {
                        out.push((id, arrays));
                    }
                }
            }
        }
        out
    }

    /// Resolves a dotted path: a value of one kind per alert (scalar), or
    /// one per element of the one array it crosses (column). The error
    /// says why the path yields nothing.
    pub fn resolve(&self, segments: &[String]) -> Result<Resolved, String> {
        let mut here: Vec<(NodeId, u8)> = vec![(self.root, 0)];
        let mut walked = String::new();
        for seg in segments {
            let expanded = self.expand(&here);
            let mut next = Vec::new();
            let mut what = Vec::new();
            for &(id, arrays) in &expanded {
                if arrays > 1 {
                    return Err(format!(
                        "'{walked}' crosses two arrays; a path may cross one array (it is then a column)"
                    ));
                }
                match self.node(id) {
                    Node::Record {
                        fields,
                        name,
                        index,
                        ..
                    } => {
                        if let Some(f) = index.get(seg).map(|&i| &fields[i]) {
                            next.push((f.node, arrays));
                        } else {
                            what.push(format!("record '{name}' has no field '{seg}'"));
                        }
                    }
                    Node::Map(_) => {
                        what.push(format!("'{walked}' is a map; paths cannot go into maps"))
                    }
                    Node::Null => {}
                    _ => what.push(format!(
                        "'{walked}' is a {}, which has no fields",
                        self.label(id)
                    )),
                }
            }
            if next.is_empty() {
                let reason = what
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| format!("'{walked}' is always null"));
                return Err(reason);
            }
            if !walked.is_empty() {
                walked.push('.');
            }
            walked.push_str(seg);
            here = next;
        }
        let ends = self.expand(&here);
        let mut kind: Option<ColKind> = None;
        let column = ends.iter().any(|&(_, a)| a == 1);
        if column
            && ends
                .iter()
                .any(|&(id, a)| a == 0 && !matches!(self.node(id), Node::Null))
        {
            return Err(format!(
                "'{walked}' is a column in some union branches and a single value in others"
            ));
        }
        for &(id, arrays) in &ends {
            if arrays > 1 {
                return Err(format!(
                    "'{walked}' crosses two arrays; a path may cross one array (it is then a column)"
                ));
            }
            match kind_of(self.node(id)) {
                None => {}
                Some(Ok(k)) => match kind {
                    None => kind = Some(k),
                    Some(prev) if prev == k => {}
                    Some(_) if arrays == 0 => {}
                    Some(_) => {
                        return Err(format!(
                            "'{walked}' mixes value types across its union branches; columns need one type"
                        ));
                    }
                },
                Some(Err("bytes")) if arrays == 1 => {
                    return Err(format!(
                        "'{walked}' is a column of bytes; byte columns are not supported"
                    ));
                }
                Some(Err("bytes")) => {}
                Some(Err(_)) => {
                    let n = self.node(id);
                    return Err(match n {
                        Node::Record { name, fields, .. } => {
                            let names: Vec<&str> = fields
                                .iter()
                                .filter(|f| !f.shadowed)
                                .map(|f| f.name.as_str())
                                .collect();
                            format!(
                                "'{walked}' is a record ({name}), not a value: name one of its fields ({}{})",
                                names[..names.len().min(8)].join(", "),
                                if names.len() > 8 { ", ..." } else { "" }
                            )
                        }
                        Node::Map(_) => format!("'{walked}' is a map; maps are not supported"),
                        _ => format!("'{walked}' is not a value"),
                    });
                }
            }
        }
        if column {
            match kind {
                Some(k) => Ok(Resolved::Column(k)),
                None => Err(format!("'{walked}' is a column that is always null")),
            }
        } else {
            Ok(Resolved::Scalar)
        }
    }

    /// Every path [`Schema::resolve`] accepts, with a type label.
    pub fn leaf_paths(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = Vec::new();
        self.walk_leaves(self.root, "", 0, &mut stack, &mut out, &mut seen);
        out
    }

    fn walk_leaves(
        &self,
        id: NodeId,
        prefix: &str,
        arrays: u8,
        stack: &mut Vec<NodeId>,
        out: &mut Vec<(String, String)>,
        seen: &mut HashSet<String>,
    ) {
        let Node::Record { fields, .. } = self.node(id) else {
            return;
        };
        if stack.contains(&id) || stack.len() > 64 || out.len() >= MAX_LISTED_PATHS {
            return;
        }
        stack.push(id);
        for f in fields.iter().filter(|f| !f.shadowed) {
            let path = if prefix.is_empty() {
                f.name.clone()
            } else {
                format!("{prefix}.{}", f.name)
            };
            let segs: Vec<String> = path.split('.').map(str::to_string).collect();
            if self.resolve(&segs).is_ok() && seen.insert(path.clone()) {
                let label = self.path_label(f.node, arrays);
                out.push((path.clone(), label));
            }
            for (sub, a) in self.expand(&[(f.node, arrays)]) {
                if a <= 1 && matches!(self.node(sub), Node::Record { .. }) {
                    self.walk_leaves(sub, &path, a, stack, out, seen);
                }
            }
        }
        stack.pop();
    }

    /// Label of a leaf reached through `arrays` arrays: the field's own
    /// type, wrapped in `array<...>` when it is a column reached through an
    /// enclosing array.
    fn path_label(&self, id: NodeId, arrays: u8) -> String {
        let l = self.label(id);
        if arrays == 1 {
            format!("array<{l}>")
        } else {
            l
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_a_hundred_thousand_fields_parses_and_lists_in_linear_time() {
        // Every step that looked a field up by scanning the record made
        // this quadratic: minutes for a 3.5 MB schema.
        let fields: Vec<String> = (0..100_000)
            .map(|i| format!(r#"{{"name":"f{}","type":"int"}}"#, i % 90_000))
            .collect();
        let text = format!(
            r#"{{"type":"record","name":"wide","fields":[{}]}}"#,
            fields.join(",")
        );
        let schema = parse(text.as_bytes(), None).unwrap();
        assert_eq!(schema.leaf_paths().len(), 90_000);
        assert!(schema.resolve(&segs("f89999")).is_ok());
        assert_eq!(schema.duplicates.len(), 64);
    }

    fn segs(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    /// Why `text` is not a valid schema.
    fn invalid(text: &[u8]) -> String {
        match parse(text, None) {
            Err(SchemaError::Invalid(why)) => why,
            other => panic!("expected an invalid schema, got {other:?}"),
        }
    }

    #[test]
    fn a_union_whose_default_does_not_match_its_first_branch_is_accepted() {
        let s = parse(
            br#"{"type":"record","name":"a","namespace":"ztf","fields":[
                {"name":"x","type":["float","null"],"default":null}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(s.full_name(), "ztf.a");
        assert_eq!(s.survey(), "ztf");
        assert_eq!(s.resolve(&segs("x")), Ok(Resolved::Scalar));
    }

    #[test]
    fn named_types_resolve_by_full_and_short_name() {
        let s = parse(
            br#"{"type":"record","name":"alert","namespace":"ztf","fields":[
                {"name":"c","type":{"type":"record","name":"cutout","namespace":"ztf.alert",
                    "fields":[{"name":"d","type":"bytes"}]}},
                {"name":"c2","type":["null","ztf.alert.cutout"]},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
                {"name":"e2","type":"E"}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(s.resolve(&segs("c2.d")), Ok(Resolved::Scalar));
        assert_eq!(s.resolve(&segs("e2")), Ok(Resolved::Scalar));
    }

    #[test]
    fn an_unknown_type_name_is_refused() {
        let e = invalid(br#"{"type":"record","name":"a","fields":[{"name":"x","type":"nope"}]}"#);
        assert!(e.contains("'nope'"), "{e}");
    }

    #[test]
    fn a_type_defined_twice_is_refused() {
        let e = invalid(
            br#"{"type":"record","name":"a","fields":[
              {"name":"x","type":{"type":"fixed","name":"f","size":2}},
              {"name":"y","type":{"type":"fixed","name":"f","size":3}}]}"#,
        );
        assert!(e.contains("defined twice"), "{e}");
    }

    #[test]
    fn a_valid_schema_whose_root_is_not_a_record_is_told_apart_from_an_invalid_one() {
        let cases: [(&[u8], &str); 6] = [
            (br#""string""#, "the primitive type 'string'"),
            (
                br#"{"type":"long","logicalType":"timestamp-millis"}"#,
                "the primitive type 'long'",
            ),
            (
                br#"["null",{"type":"record","name":"alert","namespace":"t","fields":[]}]"#,
                "a union (null|t.alert)",
            ),
            (
                br#"{"type":"array","items":"double"}"#,
                "an array (array<double>)",
            ),
            (br#"{"type":"map","values":"int"}"#, "a map (map<int>)"),
            (
                br#"{"type":"enum","name":"E","symbols":["A"]}"#,
                "an enum (E)",
            ),
        ];
        for (text, root) in cases {
            assert_eq!(
                parse(text, None).unwrap_err(),
                SchemaError::RootNotRecord(root.to_string()),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        // Invalid Avro stays invalid, whatever its root.
        assert!(invalid(br#""strin""#).contains("'strin'"));
        assert!(invalid(br#"["null","nope"]"#).contains("'nope'"));
        assert!(invalid(b"[]").contains("no branches"));
    }

    #[test]
    fn a_field_name_defined_twice_resolves_to_the_last_of_them() {
        let s = parse(
            br#"{"type":"record","name":"alert","namespace":"t","fields":[
              {"name":"a","type":{"type":"record","name":"in","fields":[{"name":"y","type":"int"}]}},
              {"name":"x","type":"string"},
              {"name":"a","type":["null","double"]},
              {"name":"c","type":{"type":"record","name":"c","fields":[
                  {"name":"m","type":"long"},{"name":"m","type":"string"},{"name":"m","type":"float"}]}}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            s.duplicates,
            vec![
                ("t.alert".to_string(), "a".to_string()),
                ("t.c".to_string(), "m".to_string())
            ]
        );
        assert_eq!(s.resolve(&segs("a")), Ok(Resolved::Scalar));
        // The first 'a' (a record) is not reachable: a reader of 'a' gets
        // the double.
        assert!(
            s.resolve(&segs("a.y"))
                .unwrap_err()
                .contains("has no fields"),
            "{:?}",
            s.resolve(&segs("a.y"))
        );
        assert_eq!(
            s.leaf_paths(),
            vec![
                ("x".to_string(), "string".to_string()),
                ("a".to_string(), "null|double".to_string()),
                ("c.m".to_string(), "float".to_string()),
            ]
        );
        let why = s.resolve(&segs("c")).unwrap_err();
        assert!(why.contains("name one of its fields (m)"), "{why}");
    }

    #[test]
    fn a_recursive_record_parses() {
        let s = parse(
            br#"{"type":"record","name":"node","fields":[
              {"name":"v","type":"long"},{"name":"next","type":["null","node"]}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(s.resolve(&segs("next.next.v")), Ok(Resolved::Scalar));
        let leaves = s.leaf_paths();
        assert_eq!(leaves, vec![("v".to_string(), "long".to_string())]);
    }

    #[test]
    fn paths_through_one_array_are_columns_and_through_two_are_refused() {
        let s = parse(
            br#"{"type":"record","name":"a","fields":[
              {"name":"xs","type":["null",{"type":"array","items":{"type":"record","name":"p",
                 "fields":[{"name":"m","type":["float","null"]},
                           {"name":"ys","type":{"type":"array","items":"int"}},
                           {"name":"b","type":"bytes"}]}}]},
              {"name":"fs","type":{"type":"array","items":"double"}},
              {"name":"mp","type":{"type":"map","values":"int"}}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            s.resolve(&segs("xs.m")),
            Ok(Resolved::Column(ColKind::Reals))
        );
        assert_eq!(
            s.resolve(&segs("xs.ys")),
            Err(
                "'xs.ys' crosses two arrays; a path may cross one array (it is then a column)"
                    .into()
            )
        );
        assert!(s.resolve(&segs("xs.b")).unwrap_err().contains("bytes"));
        assert_eq!(s.resolve(&segs("fs")), Ok(Resolved::Column(ColKind::Reals)));
        assert!(s.resolve(&segs("xs")).unwrap_err().contains("is a record"));
        assert!(s.resolve(&segs("mp")).unwrap_err().contains("map"));
        assert!(s.resolve(&segs("mp.k")).unwrap_err().contains("map"));
        assert!(
            s.resolve(&segs("nope"))
                .unwrap_err()
                .contains("no field 'nope'")
        );
        assert!(s.resolve(&segs("fs.x")).unwrap_err().contains("no fields"));
        let leaves: Vec<String> = s.leaf_paths().into_iter().map(|(p, _)| p).collect();
        assert_eq!(leaves, vec!["xs.m", "fs"]);
    }

    #[test]
    fn rubin_versions_come_from_the_namespace() {
        let s = parse(
            br#"{"type":"record","name":"alert","namespace":"lsst.v7_1","fields":[]}"#,
            None,
        )
        .unwrap();
        assert_eq!(s.survey(), "rubin");
        assert_eq!(s.version().as_deref(), Some("7.1"));
    }
}
