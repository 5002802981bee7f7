//! YAML into a tree that remembers where every node and key was written, so
//! every diagnostic can name a line and column. Scalars are resolved with the
//! YAML 1.2 core schema (what Pandium's tooling and most editors assume).

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 markers: 1-based lines, 0-based columns.
        Pos { line: m.line(), column: m.col() + 1 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: NodeValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Map(Vec<(Key, Node)>),
    Seq(Vec<Node>),
    Scalar { text: String, quoted: bool, tag: Option<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub text: String,
    pub pos: Pos,
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlProblem {
    pub pos: Pos,
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
}

/// Deeper nesting than any real manifest needs; the limit keeps hostile input
/// from overflowing the stack in the recursive passes that follow.
pub const MAX_DEPTH: usize = 64;

/// Aliases copy their anchor's tree, so a few lines can expand exponentially
/// ("billion laughs"); past this many nodes the document is refused.
pub const MAX_NODES: usize = 200_000;

/// Aliases also copy their anchor's text, so a few large scalars aliased
/// thousands of times stay under [`MAX_NODES`] and still cost gigabytes
/// (a 406 KB manifest cost 1.17 GB). Past this many bytes of scalar and key
/// text after expansion the document is refused: four times the largest
/// manifest a release may publish (1 MiB), ample for aliases that share
/// blocks of settings.
pub const MAX_EXPANDED_BYTES: usize = 4 * 1024 * 1024;

/// Parses one YAML document. Problems that still leave a usable tree (duplicate
/// keys, non-string keys) are returned alongside it.
pub fn parse(source: &str) -> Result<(Node, Vec<YamlProblem>), YamlProblem> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    let loaded = parser.load(&mut builder, true);
    if let Some(fatal) = builder.fatal.take() {
        return Err(fatal);
    }
    if let Err(e) = loaded {
        return Err(syntax_problem(
            source,
            &builder,
            Pos { line: e.marker().line(), column: e.marker().col() + 1 },
            e.info(),
        ));
    }
    let root = builder.root.unwrap_or(Node {
        pos: Pos { line: 1, column: 1 },
        value: NodeValue::Scalar { text: String::new(), quoted: false, tag: None },
    });
    Ok((root, builder.problems))
}

/// yaml-rust2 reports where it gave up, in its own words; restate the common
/// mistakes where the author made them.
fn syntax_problem(source: &str, builder: &Builder, pos: Pos, info: &str) -> YamlProblem {
    let problem = |pos: Pos, message: String, help: Option<&str>| YamlProblem {
        pos,
        code: "yaml_syntax",
        message: format!("YAML syntax error: {message}"),
        help: help.map(str::to_owned),
    };
    if let Some(open) = builder.unclosed_flow(source) {
        let (opener, closer) = match char_at(source, open) {
            Some('{') => ('{', '}'),
            _ => ('[', ']'),
        };
        return problem(
            open,
            format!("this `{opener}` is never closed by a `{closer}`"),
            Some(if opener == '[' {
                "close the list with `]`, or write it as one `- item` per line"
            } else {
                "close the mapping with `}`, or write it as one `key: value` per line"
            }),
        );
    }
    if info.contains("tabs disallowed") {
        // The marker is after the tabs; the tab itself is the mistake.
        let tab = line_text(source, pos.line)
            .and_then(|l| l.chars().position(|c| c == '\t'))
            .map(|i| Pos { line: pos.line, column: i + 1 })
            .unwrap_or(pos);
        return problem(tab, "a tab is used for indentation".into(), Some("YAML indents with spaces only"));
    }
    if info.contains("trailing content after double-quoted scalar") {
        // yaml-rust2 says "double-quoted" for both quote styles.
        return problem(
            pos,
            "text continues after the closing quote".into(),
            Some("inside '...' write a quote as '' (it''s), or use double quotes"),
        );
    }
    if info.contains("unknown anchor") {
        let alias: String = line_text(source, pos.line)
            .map(|l| l.chars().skip(pos.column).take_while(|c| !c.is_whitespace() && !",]}".contains(*c)).collect())
            .unwrap_or_default();
        return problem(
            pos,
            format!("alias `*{alias}` refers to no anchor defined before it"),
            Some("define the anchor first (`key: &name value`), then refer to it as `*name`"),
        );
    }
    problem(pos, info.to_owned(), None)
}

fn line_text(source: &str, line: usize) -> Option<&str> {
    source.split('\n').nth(line.checked_sub(1)?)
}

fn char_at(source: &str, pos: Pos) -> Option<char> {
    line_text(source, pos.line)?.chars().nth(pos.column.checked_sub(1)?)
}

/// Whether the flow collection opened at `open` is closed anywhere after it,
/// skipping quoted text and comments.
fn is_closed(source: &str, open: Pos) -> bool {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, line) in source.split('\n').enumerate().skip(open.line.saturating_sub(1)) {
        let skip = if i + 1 == open.line { open.column.saturating_sub(1) } else { 0 };
        let mut prev = ' ';
        let mut escaped = false;
        for c in line.chars().skip(skip) {
            match quote {
                Some('"') if escaped => escaped = false,
                Some('"') if c == '\\' => escaped = true,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                // A quote opens a quoted scalar only where a scalar can start.
                None if matches!(c, '\'' | '"') && (prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':')) => {
                    quote = Some(c)
                }
                None if c == '#' && prev.is_whitespace() => break,
                None if matches!(c, '[' | '{') => depth += 1,
                None if matches!(c, ']' | '}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return true;
                    }
                }
                None => {}
            }
            prev = c;
        }
    }
    false
}

enum Frame {
    /// `pending_key` is `Some(None)` after a complex key, whose value is dropped.
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Option<Key>>,
        /// The keys so far, so duplicates are found without a quadratic scan.
        keys: HashSet<String>,
    },
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Each anchor's tree with its size (nodes, bytes of text).
    anchors: HashMap<usize, (Node, Size)>,
    root: Option<Node>,
    problems: Vec<YamlProblem>,
    nodes: usize,
    bytes: usize,
    documents: usize,
    fatal: Option<YamlProblem>,
}

fn tag_name(tag: Option<Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

/// What a tree costs once copied: its nodes and the bytes of its keys and scalars.
#[derive(Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

impl Size {
    fn plus(self, other: Size) -> Size {
        Size { nodes: self.nodes.saturating_add(other.nodes), bytes: self.bytes.saturating_add(other.bytes) }
    }
}

fn size(node: &Node) -> Size {
    let one = Size { nodes: 1, bytes: 0 };
    match &node.value {
        NodeValue::Map(entries) => {
            entries.iter().fold(one, |s, (k, v)| s.plus(size(v)).plus(Size { nodes: 0, bytes: k.text.len() }))
        }
        NodeValue::Seq(items) => items.iter().fold(one, |s, v| s.plus(size(v))),
        NodeValue::Scalar { text, .. } => Size { nodes: 1, bytes: text.len() },
    }
}

impl Builder {
    /// The innermost open `[` or `{` that nothing in the rest of the source closes.
    fn unclosed_flow(&self, source: &str) -> Option<Pos> {
        self.stack
            .iter()
            .rev()
            .map(|f| match f {
                Frame::Map { pos, .. } | Frame::Seq { pos, .. } => *pos,
            })
            .filter(|pos| matches!(char_at(source, *pos), Some('[' | '{')))
            .find(|pos| !is_closed(source, *pos))
    }

    fn fail(&mut self, pos: Pos, message: String, help: &str) {
        if self.fatal.is_none() {
            self.fatal = Some(YamlProblem { pos, code: "yaml_syntax", message, help: Some(help.to_owned()) });
        }
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            let size = size(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, pending_key, keys, .. }) => match pending_key.take() {
                Some(None) => {}
                Some(Some(key)) => {
                    if !keys.insert(key.text.clone()) {
                        self.problems.push(YamlProblem {
                            pos: key.pos,
                            code: "duplicate_key",
                            message: format!("key `{}` appears twice in this mapping; keep one", key.text),
                            help: None,
                        });
                    } else {
                        entries.push((key, node));
                    }
                }
                None => match &node.value {
                    NodeValue::Scalar { text, .. } => {
                        *pending_key = Some(Some(Key { text: text.clone(), pos: node.pos }))
                    }
                    _ => {
                        self.problems.push(YamlProblem {
                            pos: node.pos,
                            code: "invalid_key",
                            message: "mapping keys must be plain strings, not lists or mappings".into(),
                            help: None,
                        });
                        *pending_key = Some(None);
                    }
                },
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.fatal.is_some() || self.documents > 1 {
            return;
        }
        let pos = Pos::from(mark);
        if matches!(ev, Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..)) {
            self.nodes += 1;
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                self.bytes = self.bytes.saturating_add(text.len());
                let quoted = !matches!(style, TScalarStyle::Plain);
                let node = Node { pos, value: NodeValue::Scalar { text, quoted, tag: tag_name(tag) } };
                self.push_node(node, anchor);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.fail(pos, format!("YAML nesting deeper than {MAX_DEPTH} levels"), "flatten the document");
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq { pos, anchor, items: Vec::new() }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                pos,
                anchor,
                entries: Vec::new(),
                pending_key: None,
                keys: HashSet::new(),
            }),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => {
                    self.push_node(Node { pos, value: NodeValue::Seq(items) }, anchor)
                }
                Some(Frame::Map { pos, anchor, entries, .. }) => {
                    // yaml-rust2 marks a block mapping where its first `:` is;
                    // a mapping starts at its first key.
                    let pos = match entries.first() {
                        Some((k, _)) if (k.pos.line, k.pos.column) < (pos.line, pos.column) => k.pos,
                        _ => pos,
                    };
                    self.push_node(Node { pos, value: NodeValue::Map(entries) }, anchor)
                }
                None => {}
            },
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some((n, size)) => {
                        self.nodes = self.nodes.saturating_add(size.nodes);
                        self.bytes = self.bytes.saturating_add(size.bytes);
                        if self.bytes > MAX_EXPANDED_BYTES {
                            self.fail(
                                pos,
                                format!("aliases expand the document to more than {MAX_EXPANDED_BYTES} bytes of text"),
                                "write the repeated parts out, or alias smaller parts fewer times",
                            );
                            return;
                        }
                        if self.nodes > MAX_NODES {
                            self.fail(
                                pos,
                                format!("aliases expand the document to more than {MAX_NODES} nodes"),
                                "write the repeated parts out, or use fewer nested aliases",
                            );
                            return;
                        }
                        Node { pos, value: n.value.clone() }
                    }
                    None => {
                        self.problems.push(YamlProblem {
                            pos,
                            code: "yaml_syntax",
                            message: "alias refers to an anchor that is not defined before it".into(),
                            help: None,
                        });
                        Node { pos, value: NodeValue::Scalar { text: String::new(), quoted: false, tag: None } }
                    }
                };
                self.push_node(node, 0);
            }
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.problems.push(YamlProblem {
                        pos,
                        code: "yaml_syntax",
                        message: "a manifest is one YAML document, but a second one starts here".into(),
                        help: Some("remove this `---` and merge what follows into the first document".into()),
                    });
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        if self.nodes > MAX_NODES {
            self.fail(pos, format!("the document has more than {MAX_NODES} nodes"), "a manifest is much smaller");
        }
    }
}

/// The JSON value of a node (YAML 1.2 core schema for plain scalars).
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &node.value {
        NodeValue::Map(entries) => Value::Object(entries.iter().map(|(k, v)| (k.text.clone(), to_json(v))).collect()),
        NodeValue::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeValue::Scalar { text, quoted, tag } => scalar(text, *quoted, tag.as_deref()),
    }
}

fn scalar(text: &str, quoted: bool, tag: Option<&str>) -> serde_json::Value {
    use serde_json::Value;
    match tag {
        Some("!!str") | Some("tag:yaml.org,2002:str") => return Value::String(text.to_owned()),
        Some(_) | None => {}
    }
    if quoted {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n.into());
    }
    if looks_like_float(text) {
        if let Some(n) = text.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<i64> {
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(sign * value)
}

fn looks_like_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && digits(int),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok && (frac.is_some() || exponent.is_some())
}

/// One step of a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Splits a JSON pointer (`/a/0/b~1c`) into segments.
pub fn pointer_segments(pointer: &str) -> Vec<Segment> {
    pointer
        .split('/')
        .skip(1)
        .map(|raw| {
            let s = raw.replace("~1", "/").replace("~0", "~");
            match s.parse::<usize>() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key(s),
            }
        })
        .collect()
}

/// Where the value at `path` was written; with `key`, where its key was written.
/// Falls back to the deepest existing ancestor.
pub fn locate(root: &Node, path: &[Segment], key: bool) -> Pos {
    let mut node = root;
    let mut last_key_pos = None;
    for seg in path {
        let next = match (&node.value, seg) {
            (NodeValue::Map(entries), Segment::Key(k)) => entries.iter().find(|(key, _)| &key.text == k),
            (NodeValue::Map(entries), Segment::Index(i)) => entries.iter().find(|(key, _)| key.text == i.to_string()),
            (NodeValue::Seq(items), Segment::Index(i)) => match items.get(*i) {
                Some(n) => {
                    node = n;
                    last_key_pos = None;
                    continue;
                }
                None => return node.pos,
            },
            _ => None,
        };
        match next {
            Some((k, v)) => {
                last_key_pos = Some(k.pos);
                node = v;
            }
            None => return last_key_pos.filter(|_| key).unwrap_or(node.pos),
        }
    }
    if key {
        last_key_pos.unwrap_or(node.pos)
    } else {
        node.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_resolve_like_yaml_1_2() {
        let (root, problems) =
            parse("a: 0.4\nb: '0.4'\nc: yes\nd: true\ne: ~\nf: 12\ng: -3\nh: 1e3\ni: .5\nj: 1.0.0\n").expect("parses");
        assert!(problems.is_empty());
        let v = to_json(&root);
        assert_eq!(v["a"], serde_json::json!(0.4));
        assert_eq!(v["b"], "0.4");
        assert_eq!(v["c"], "yes", "YAML 1.1 booleans stay strings");
        assert_eq!(v["d"], true);
        assert!(v["e"].is_null());
        assert_eq!(v["f"], 12);
        assert_eq!(v["g"], -3);
        assert_eq!(v["h"], serde_json::json!(1000.0));
        assert_eq!(v["i"], serde_json::json!(0.5));
        assert_eq!(v["j"], "1.0.0");
    }

    #[test]
    fn positions_point_at_keys_and_values() {
        let src = "top:\n  inner:\n    - x\n    - y: 1\n";
        let (root, _) = parse(src).expect("parses");
        let path = pointer_segments("/top/inner/1/y");
        assert_eq!(locate(&root, &path, true), Pos { line: 4, column: 7 });
        assert_eq!(locate(&root, &path, false), Pos { line: 4, column: 10 });
        assert_eq!(locate(&root, &pointer_segments("/top/missing"), false), Pos { line: 2, column: 3 });
    }

    #[test]
    fn duplicate_keys_are_reported_where_the_second_one_is() {
        let (_, problems) = parse("a: 1\nb: 2\na: 3\n").expect("parses");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].code, "duplicate_key");
        assert_eq!(problems[0].pos, Pos { line: 3, column: 1 });
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").expect_err("unterminated flow sequence");
        assert_eq!(err.code, "yaml_syntax");
        assert!(err.pos.line >= 1);
    }
}
