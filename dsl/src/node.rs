//! A light KDL tree: just what the reader needs (names, values, children and spans), without
//! the formatting the `kdl` crate keeps for printing documents back. The fast parser builds it
//! directly; documents the `kdl` crate parses are converted into it.

use kdl::KdlValue;
use miette::SourceSpan;

/// A list of nodes: a whole file, or a children block.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub nodes: Vec<Node>,
    pub span: SourceSpan,
}

/// A node: a name, arguments and properties in order, and maybe children.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: Identifier,
    pub entries: Vec<Entry>,
    pub children: Option<Document>,
    pub span: SourceSpan,
}

/// A node name or property key, as written (quotes included in the span).
#[derive(Debug, Clone, PartialEq)]
pub struct Identifier {
    pub value: String,
    pub span: SourceSpan,
}

/// An argument (no name) or a property (`key=value`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: Option<Identifier>,
    pub value: KdlValue,
    pub span: SourceSpan,
}

impl Document {
    /// The nodes, in order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Where the document's nodes are.
    pub fn span(&self) -> SourceSpan {
        self.span
    }
}

impl Node {
    /// The node's name.
    pub fn name(&self) -> &Identifier {
        &self.name
    }

    /// Arguments and properties, in the order written.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The children block, if there is one.
    pub fn children(&self) -> Option<&Document> {
        self.children.as_ref()
    }

    /// From the name to the end of the node (its children included).
    pub fn span(&self) -> SourceSpan {
        self.span
    }
}

impl Identifier {
    /// The text of the name.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Where it was written.
    pub fn span(&self) -> SourceSpan {
        self.span
    }
}

impl Entry {
    /// The property key, `None` for an argument.
    pub fn name(&self) -> Option<&Identifier> {
        self.name.as_ref()
    }

    /// The value.
    pub fn value(&self) -> &KdlValue {
        &self.value
    }

    /// From the key (or the value, for an argument) to the end of the value.
    pub fn span(&self) -> SourceSpan {
        self.span
    }
}

impl From<&kdl::KdlIdentifier> for Identifier {
    fn from(i: &kdl::KdlIdentifier) -> Identifier {
        Identifier {
            value: i.value().to_string(),
            span: i.span(),
        }
    }
}

impl From<&kdl::KdlEntry> for Entry {
    fn from(e: &kdl::KdlEntry) -> Entry {
        Entry {
            name: e.name().map(Identifier::from),
            value: e.value().clone(),
            span: e.span(),
        }
    }
}

impl From<&kdl::KdlNode> for Node {
    fn from(n: &kdl::KdlNode) -> Node {
        Node {
            name: Identifier::from(n.name()),
            entries: n.entries().iter().map(Entry::from).collect(),
            children: n.children().map(Document::from),
            span: n.span(),
        }
    }
}

impl From<&kdl::KdlDocument> for Document {
    fn from(d: &kdl::KdlDocument) -> Document {
        Document {
            nodes: d.nodes().iter().map(Node::from).collect(),
            span: d.span(),
        }
    }
}
