//! `config.yml.sample`'s connector sections: every key of every section, nested as the YAML
//! nests it, in the key table's order, its default as the value (`ChangeMe` for a secret the
//! connector requires, which its check refuses as unset; nothing for a key with no default),
//! and a comment aligned at one column: its meaning, its range, its environment variables.

use crate::config::{KeySpec, Kind, SectionSpec};
use crate::registry;

/// The column comments start at, as in the hand-written shared blocks above the sections.
const COMMENT_COLUMN: usize = 36;
/// Comments wrap before this column.
const WIDTH: usize = 100;
pub use crate::config::PLACEHOLDER;

/// Every connector section, a blank line between two.
pub fn sections() -> String {
    registry::specs()
        .into_iter()
        .map(section)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A key, or a block of keys (`connector:`, `cache:`).
enum Node {
    Key(KeySpec),
    Block(Vec<(String, Node)>),
}

fn section(spec: &SectionSpec) -> String {
    let mut tree: Vec<(String, Node)> = Vec::new();
    for key in spec.all_keys() {
        let relative = key.path[spec.section.len() + 1..].to_string();
        let segments: Vec<&str> = relative.split('.').collect();
        insert(&mut tree, &segments, key);
    }
    let mut out = format!("{}:\n", spec.section);
    render(&mut out, &tree, 1);
    out
}

fn insert(tree: &mut Vec<(String, Node)>, segments: &[&str], key: KeySpec) {
    let [first, rest @ ..] = segments else {
        return;
    };
    if rest.is_empty() {
        tree.push((first.to_string(), Node::Key(key)));
        return;
    }
    let index = match tree
        .iter()
        .position(|(name, node)| name == first && matches!(node, Node::Block(_)))
    {
        Some(index) => index,
        None => {
            tree.push((first.to_string(), Node::Block(Vec::new())));
            tree.len() - 1
        }
    };
    if let Node::Block(children) = &mut tree[index].1 {
        insert(children, rest, key);
    }
}

fn render(out: &mut String, tree: &[(String, Node)], depth: usize) {
    let indent = "  ".repeat(depth);
    for (name, node) in tree {
        match node {
            Node::Block(children) => {
                out.push_str(&format!("{indent}{name}:\n"));
                render(out, children, depth + 1);
            }
            Node::Key(key) => {
                let value = value(key);
                let head = if value.is_empty() {
                    format!("{indent}{name}:")
                } else {
                    format!("{indent}{name}: {value}")
                };
                commented(out, &indent, &head, &comment(key));
            }
        }
    }
}

/// The value the sample shows for `key`.
fn value(key: &KeySpec) -> String {
    if !key.default.is_empty() {
        yaml_scalar(&key.default)
    } else if key.required && key.kind == Kind::Secret {
        PLACEHOLDER.into()
    } else {
        String::new()
    }
}

/// What the comment of `key` says, word by word: its meaning (as the README table, without
/// the Markdown quoting), its range and its variables, each kept on one line.
fn comment(key: &KeySpec) -> Vec<String> {
    let mut words: Vec<String> = key
        .doc
        .replace('`', "")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if let Some(range) = key.kind.range() {
        words.push(format!("Allowed: {range}."));
    }
    let last = key.env.len() - 1;
    for (i, name) in key.env.iter().enumerate() {
        let open = if i == 0 { "[env: " } else { "" };
        let close = if i == last { "]" } else { "," };
        words.push(format!("{open}{name}{close}"));
    }
    words
}

/// `head` with `comment` after it at [`COMMENT_COLUMN`], wrapped on lines of their own at
/// that column; above `head` instead when `head` reaches the column.
fn commented(out: &mut String, indent: &str, head: &str, comment: &[String]) {
    let width = head.chars().count();
    if width + 2 > COMMENT_COLUMN {
        for line in wrap(comment, WIDTH - indent.len() - 2) {
            out.push_str(&format!("{indent}# {line}\n"));
        }
        out.push_str(head);
        out.push('\n');
        return;
    }
    let pad = " ".repeat(COMMENT_COLUMN);
    for (i, line) in wrap(comment, WIDTH - COMMENT_COLUMN - 2)
        .into_iter()
        .enumerate()
    {
        if i == 0 {
            out.push_str(&format!("{head}{}# {line}\n", &pad[width..]));
        } else {
            out.push_str(&format!("{pad}# {line}\n"));
        }
    }
}

/// `words` in lines of at most `width` characters (a longer word has a line of its own).
fn wrap(words: &[String], width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in words {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `value` as a YAML scalar holding that text: plain when YAML reads it back unchanged,
/// single-quoted otherwise.
pub fn yaml_scalar(value: &str) -> String {
    const INDICATORS: &[char] = &[
        ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`',
    ];
    let plain = !value.is_empty()
        && !value.starts_with(INDICATORS)
        && !["- ", "? ", ": "].iter().any(|p| value.starts_with(p))
        && !["-", "?", ":"].contains(&value)
        && !value.starts_with(char::is_whitespace)
        && !value.ends_with(char::is_whitespace)
        && !value.ends_with(':')
        && !value.contains(": ")
        && !value.contains(" #")
        && !value.contains('\n');
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}
