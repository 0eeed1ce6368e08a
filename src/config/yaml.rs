//! A YAML tree in which every node knows where it was written.
//!
//! yaml-rust2's own `Yaml` type drops positions, so the tree is built here from the parser's
//! marked events. Scalars keep their text and whether they were quoted: the decoder decides
//! what a scalar means from the field it fills, and `"123"` must stay a string.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::config::env::Expanded;
use crate::config::model::Pos;

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub(super) enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub(super) struct Scalar {
    pub text: String,
    /// Plain (unquoted, not a block scalar, no `!!str`): only these can be numbers,
    /// booleans or null.
    pub plain: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

impl Node {
    /// YAML 1.2 core-schema null. Decoders treat it as an absent value.
    pub(super) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.plain && matches!(s.text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// How the node reads in "found ..." messages.
    pub(super) fn describe(&self) -> String {
        match &self.value {
            _ if self.is_null() => "an empty value".to_string(),
            Value::Scalar(s) => format!("{:?}", s.text),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }

    /// A mapping's value for `key` (`None` for a missing or null value, or a non-mapping).
    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|e| e.key == key)
                .map(|e| &e.value)
                .filter(|n| !n.is_null()),
            _ => None,
        }
    }

    /// A list's items as strings (`None` for an item that is not a scalar); a lone scalar is
    /// a list of one.
    pub(super) fn strings(&self) -> Vec<(Pos, Option<String>)> {
        match &self.value {
            Value::Seq(items) => items
                .iter()
                .map(|n| match &n.value {
                    Value::Scalar(s) => (n.pos, Some(s.text.clone())),
                    _ => (n.pos, None),
                })
                .collect(),
            Value::Scalar(s) => vec![(self.pos, Some(s.text.clone()))],
            Value::Map(_) => vec![(self.pos, None)],
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            Value::Scalar(_) => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Value::Map(entries) => 1 + entries.iter().map(|e| 1 + e.value.size()).sum::<usize>(),
        }
    }
}

/// A problem found while building the tree.
pub(super) struct Problem {
    pub pos: Pos,
    pub path: String,
    pub message: String,
}

pub(super) struct Parsed {
    /// `None` after a syntax error. An empty (or null) document is an empty mapping, so that
    /// an empty file reports the missing required sections instead of a type error.
    pub root: Option<Node>,
    pub problems: Vec<Problem>,
}

/// Aliases copy their anchor's subtree; this caps the copies so a "billion laughs" file is an
/// error rather than an out-of-memory.
const ALIAS_BUDGET: usize = 100_000;

pub(super) fn parse(input: &Expanded) -> Parsed {
    let mut builder = Builder {
        input,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        documents: 0,
        alias_budget: ALIAS_BUDGET,
        problems: Vec::new(),
    };
    let mut parser = Parser::new_from_str(&input.text);
    let root = match parser.load(&mut builder, true) {
        Ok(()) => Some(
            builder
                .root
                .take()
                .filter(|root| !root.is_null())
                .unwrap_or_else(|| Node {
                    pos: Pos { line: 1, col: 1 },
                    value: Value::Map(Vec::new()),
                }),
        ),
        Err(err) => {
            let pos = builder.pos(*err.marker());
            builder.problems.push(Problem {
                pos,
                path: String::new(),
                message: format!("invalid YAML: {}", err.info()),
            });
            None
        }
    };
    Parsed {
        root,
        problems: builder.problems,
    }
}

enum Frame {
    Seq {
        node: Node,
        anchor: usize,
        path: String,
    },
    Map {
        node: Node,
        anchor: usize,
        path: String,
        /// The key waiting for its value; `None` inside means the key was unusable and its
        /// value is dropped.
        key: Option<Option<(String, Pos)>>,
    },
}

struct Builder<'a> {
    input: &'a Expanded,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    alias_budget: usize,
    problems: Vec<Problem>,
}

impl Builder<'_> {
    fn pos(&self, mark: Marker) -> Pos {
        self.input.pos(mark.index())
    }

    fn problem(&mut self, pos: Pos, path: String, message: impl Into<String>) {
        self.problems.push(Problem {
            pos,
            path,
            message: message.into(),
        });
    }

    /// Field path of the next node added to the innermost open container.
    fn child_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { node, path, .. }) => match &node.value {
                Value::Seq(items) => format!("{path}[{}]", items.len()),
                _ => path.clone(),
            },
            Some(Frame::Map { path, key, .. }) => match key {
                Some(Some((key, _))) if path.is_empty() => key.clone(),
                Some(Some((key, _))) => format!("{path}.{key}"),
                _ => path.clone(),
            },
        }
    }

    fn tag_is_ok(&mut self, tag: &Option<yaml_rust2::parser::Tag>, pos: Pos, scalar: bool) -> bool {
        match tag {
            None => true,
            Some(t) if scalar && t.handle == "tag:yaml.org,2002:" && t.suffix == "str" => true,
            Some(t) => {
                let path = self.child_path();
                self.problem(
                    pos,
                    path,
                    format!(
                        "unsupported YAML tag `{}{}` (only !!str is allowed)",
                        // The parser resolves `!!` to the core-schema prefix; show it as written.
                        if t.handle == "tag:yaml.org,2002:" {
                            "!!"
                        } else {
                            &t.handle
                        },
                        t.suffix
                    ),
                );
                false
            }
        }
    }

    /// Adds a finished node to its parent (or makes it the root).
    fn add(&mut self, node: Node) {
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return;
        };
        let problem = match top {
            Frame::Seq { node: seq, .. } => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
                None
            }
            Frame::Map {
                node: map,
                key,
                path,
                ..
            } => match key.take() {
                None => {
                    // Block mappings report their start after the first key, so the
                    // mapping's position is taken from whichever comes first.
                    if map_is_empty(map) && before(node.pos, map.pos) {
                        map.pos = node.pos;
                    }
                    if let Value::Scalar(s) = node.value {
                        *key = Some(Some((s.text, node.pos)));
                        None
                    } else {
                        *key = Some(None);
                        Some((
                            node.pos,
                            path.clone(),
                            "mapping keys must be plain strings".to_string(),
                        ))
                    }
                }
                Some(None) => None,
                Some(Some((name, key_pos))) => {
                    let Value::Map(entries) = &mut map.value else {
                        return;
                    };
                    if let Some(first) = entries.iter().find(|e| e.key == name) {
                        let line = first.key_pos.line;
                        Some((
                            key_pos,
                            path.clone(),
                            format!("duplicate key `{name}` (first at line {line})"),
                        ))
                    } else {
                        entries.push(Entry {
                            key: name,
                            key_pos,
                            value: node,
                        });
                        None
                    }
                }
            },
        };
        if let Some((pos, path, message)) = problem {
            self.problem(pos, path, message);
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn alias(&mut self, id: usize, pos: Pos) {
        let found = self.anchors.get(&id).cloned();
        match found {
            Some(node) if node.size() <= self.alias_budget => {
                self.alias_budget -= node.size();
                self.add(node);
            }
            Some(_) => {
                let path = self.child_path();
                self.problem(pos, path, "aliases expand to too many nodes");
                self.add(null(pos));
            }
            None => {
                let path = self.child_path();
                self.problem(
                    pos,
                    path,
                    "an alias cannot refer to a node that contains it",
                );
                self.add(null(pos));
            }
        }
    }

    /// Applies `<<` merge keys: entries of the merged mappings are added unless the mapping
    /// already has the key, explicit keys first, then earlier merges.
    fn merge_keys(&mut self, node: &mut Node, path: &str) {
        let Value::Map(entries) = &mut node.value else {
            return;
        };
        if !entries.iter().any(|e| e.key == "<<") {
            return;
        }
        let explicit: Vec<String> = entries
            .iter()
            .filter(|e| e.key != "<<")
            .map(|e| e.key.clone())
            .collect();
        let mut seen = explicit;
        let mut out = Vec::new();
        for entry in std::mem::take(entries) {
            if entry.key != "<<" {
                out.push(entry);
                continue;
            }
            let sources: Vec<Node> = match entry.value.value {
                Value::Map(_) => vec![entry.value],
                Value::Seq(items) if items.iter().all(|i| matches!(i.value, Value::Map(_))) => {
                    items
                }
                _ => {
                    self.problem(
                        entry.value.pos,
                        path.to_string(),
                        "`<<` expects a mapping or a list of mappings",
                    );
                    continue;
                }
            };
            for source in sources {
                let Value::Map(merged) = source.value else {
                    continue;
                };
                for m in merged {
                    if !seen.contains(&m.key) {
                        seen.push(m.key.clone());
                        out.push(m);
                    }
                }
            }
        }
        *entries = out;
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let pos = self.pos(mark);
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.problem(pos, String::new(), "only one YAML document is allowed");
                }
            }
            // Later documents were reported above; their content must not replace the first.
            _ if self.documents > 1 => {}
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = style != TScalarStyle::Plain;
                let ok = self.tag_is_ok(&tag, pos, true);
                let node = Node {
                    pos,
                    value: Value::Scalar(Scalar {
                        text,
                        plain: !quoted && tag.is_none(),
                    }),
                };
                let node = if ok { node } else { null(pos) };
                self.remember(anchor, &node);
                self.add(node);
            }
            Event::Alias(id) => self.alias(id, pos),
            Event::SequenceStart(anchor, tag) => {
                self.tag_is_ok(&tag, pos, false);
                let path = self.child_path();
                self.stack.push(Frame::Seq {
                    node: Node {
                        pos,
                        value: Value::Seq(Vec::new()),
                    },
                    anchor,
                    path,
                });
            }
            Event::MappingStart(anchor, tag) => {
                self.tag_is_ok(&tag, pos, false);
                let path = self.child_path();
                self.stack.push(Frame::Map {
                    node: Node {
                        pos,
                        value: Value::Map(Vec::new()),
                    },
                    anchor,
                    path,
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { node, anchor, .. }) => {
                    self.remember(anchor, &node);
                    self.add(node);
                }
                Some(Frame::Map {
                    mut node,
                    anchor,
                    path,
                    ..
                }) => {
                    self.merge_keys(&mut node, &path);
                    self.remember(anchor, &node);
                    self.add(node);
                }
                None => {}
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

fn null(pos: Pos) -> Node {
    Node {
        pos,
        value: Value::Scalar(Scalar {
            text: String::new(),
            plain: true,
        }),
    }
}

fn map_is_empty(node: &Node) -> bool {
    matches!(&node.value, Value::Map(e) if e.is_empty())
}

fn before(a: Pos, b: Pos) -> bool {
    (a.line, a.col) < (b.line, b.col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env;

    fn parse_str(text: &str) -> Parsed {
        let expanded = env::expand(text, &|_| None).unwrap_or_else(|_| panic!("no env in tests"));
        parse(&expanded)
    }

    fn at(line: usize, col: usize) -> Pos {
        Pos { line, col }
    }

    fn map(node: &Node) -> &[Entry] {
        match &node.value {
            Value::Map(e) => e,
            other => panic!("not a map: {other:?}"),
        }
    }

    fn messages(p: &Parsed) -> Vec<String> {
        p.problems
            .iter()
            .map(|p| format!("{}:{}: {}: {}", p.pos.line, p.pos.col, p.path, p.message))
            .collect()
    }

    #[test]
    fn positions_are_one_based_and_point_at_nodes() {
        let p = parse_str("# c\na: 1\nb:\n  - x\n  - {k: \"v\"}\n");
        let root = p.root.unwrap();
        assert_eq!(root.pos, at(2, 1));
        let entries = map(&root);
        assert_eq!(entries[0].key_pos, at(2, 1));
        assert_eq!(entries[0].value.pos, at(2, 4));
        let Value::Seq(items) = &entries[1].value.value else {
            panic!()
        };
        assert_eq!(items[0].pos, at(4, 5));
        assert_eq!(items[1].pos, at(5, 5));
        let inner = map(&items[1]);
        assert_eq!(inner[0].value.pos, at(5, 9));
        let Value::Scalar(s) = &inner[0].value.value else {
            panic!()
        };
        assert!(!s.plain);
    }

    #[test]
    fn nested_block_mapping_position_is_its_first_key() {
        let p = parse_str("a:\n  b: 1\n- x\n");
        assert!(p.root.is_none());
        let p = parse_str("outer:\n  inner: 1\nlist:\n  - k: 1\n    j: 2\n");
        let root = p.root.unwrap();
        assert_eq!(map(&root)[0].value.pos, at(2, 3));
        let Value::Seq(items) = &map(&root)[1].value.value else {
            panic!()
        };
        assert_eq!(items[0].pos, at(4, 5));
    }

    #[test]
    fn duplicate_keys_are_reported_with_path() {
        let p = parse_str("a:\n  b: 1\n  c: 2\n  b: 3\nlist:\n  - {x: 1, x: 2}\n");
        assert_eq!(
            messages(&p),
            vec![
                "4:3: a: duplicate key `b` (first at line 2)",
                "6:12: list[0]: duplicate key `x` (first at line 6)",
            ]
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let p = parse_str("a: 1\n b: 2\n");
        assert!(p.root.is_none());
        assert_eq!(
            messages(&p),
            vec!["2:3: : invalid YAML: mapping values are not allowed in this context"]
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let p = parse_str("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nlist: [*b]\n");
        assert!(p.problems.is_empty());
        let root = p.root.unwrap();
        let used = map(&map(&root)[1].value);
        let keys: Vec<_> = used.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["x", "y"]);
        let Value::Scalar(y) = &used[1].value.value else {
            panic!()
        };
        assert_eq!(y.text, "3");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let p = parse_str(&text);
        assert!(messages(&p).iter().any(|m| m.contains("too many nodes")));
    }

    #[test]
    fn tags_quotes_and_documents() {
        let p = parse_str("a: !!str 12\nb: !x y\nd: !!int 3\n---\nc: 1\n");
        assert_eq!(
            messages(&p),
            vec![
                "2:7: b: unsupported YAML tag `!x` (only !!str is allowed)",
                "3:10: d: unsupported YAML tag `!!int` (only !!str is allowed)",
                "4:1: : only one YAML document is allowed",
            ]
        );
        let root = p.root.unwrap();
        let entries = map(&root);
        assert_eq!(entries.len(), 3);
        let Value::Scalar(s) = &entries[0].value.value else {
            panic!()
        };
        assert!(!s.plain && s.text == "12");
    }

    #[test]
    fn empty_document_is_an_empty_mapping() {
        let root = parse_str("# nothing\n").root.unwrap();
        assert!(map(&root).is_empty());
    }
}
