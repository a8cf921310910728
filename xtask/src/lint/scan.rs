//! Just enough of Rust's lexical structure to find module declarations and the paths a
//! file names: comments, strings and `#[cfg(test)]` items are blanked (newlines kept, so
//! line numbers stay true), then `mod`, `use` and `crate::`/`super::` paths are read.

/// Comments and string or char literals replaced by spaces; newlines kept.
pub fn blank_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for byte in &mut out[from..to] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let ident_before = i > 0 && is_ident(b[i - 1]);
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if !ident_before && matches!(b.get(i + 1), Some(b'"' | b'#')) => {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let body = i + 2 + hashes;
                let end = b[body..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |p| body + p + close.len());
                blank(&mut out, i, end);
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let end = (j + 1).min(b.len());
                blank(&mut out, i, end);
                i = end;
            }
            b'\'' => {
                // A char literal ('x', '\n', 'é'), or else a lifetime ('a) left alone.
                let end = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|p| i + 3 + p)
                } else {
                    let width = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (b.get(i + 1 + width) == Some(&b'\'')).then_some(i + 2 + width)
                };
                match end {
                    Some(end) => {
                        blank(&mut out, i, end);
                        i = end;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Blanks every item under `#[cfg(test)]`: up to its `;`, or through its `{ … }` block.
/// Expects text from [`blank_comments_and_strings`].
pub fn blank_test_items(code: &str) -> String {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = code.as_bytes().to_vec();
    let b = code.as_bytes();
    let mut from = 0;
    while let Some(found) = code[from..].find(ATTR) {
        let start = from + found;
        let mut j = start + ATTR.len();
        let mut depth = 0usize;
        while j < b.len() {
            match b[j] {
                b'{' | b'(' | b'[' => depth += 1,
                b')' | b']' => depth = depth.saturating_sub(1),
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        j += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        for byte in &mut out[start..j.min(b.len())] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        from = j.min(b.len());
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `mod name;` declarations (file modules, not inline `mod name { … }`), in order.
pub fn file_modules(code: &str) -> Vec<String> {
    let mut mods = Vec::new();
    let mut start = 0;
    for (at, c) in code.char_indices() {
        if !matches!(c, ';' | '{' | '}') {
            continue;
        }
        let words: Vec<&str> = code[start..at].split_whitespace().collect();
        start = at + 1;
        if c != ';' {
            continue;
        }
        if let [before @ .., "mod", name] = words.as_slice() {
            if before
                .last()
                .is_none_or(|w| w.starts_with("pub") || w.ends_with(']'))
            {
                mods.push((*name).to_owned());
            }
        }
    }
    mods
}

/// A path a file names, as segments (`["super", "tasks", "Task"]`), with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub line: usize,
    pub segments: Vec<String>,
    /// What a `use` binds it to in this module (`None` outside `use`, and for globs).
    pub binds: Option<String>,
    pub is_use: bool,
}

/// Every `use` tree, expanded to one path per leaf, and every other path that starts
/// with `crate::` or `super::`.
pub fn named_paths(code: &str) -> Vec<Named> {
    let mut found = Vec::new();
    let b = code.as_bytes();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b':' || b[i - 1] == b'$');
        if boundary
            && code[i..].starts_with("use")
            && b.get(i + 3).is_some_and(|c| c.is_ascii_whitespace())
        {
            let end = code[i..].find(';').map_or(b.len(), |p| i + p);
            let tree = squeeze(&code[i + 3..end]);
            let tree = tree.strip_prefix("::").unwrap_or(&tree);
            for (segments, binds) in expand_use(tree) {
                found.push(Named {
                    line: line_of(i),
                    segments,
                    binds,
                    is_use: true,
                });
            }
            i = end;
            continue;
        }
        if boundary && (code[i..].starts_with("crate::") || code[i..].starts_with("super::")) {
            let len = code[i..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - i);
            let segments = code[i..i + len]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            found.push(Named {
                line: line_of(i),
                segments,
                binds: None,
                is_use: false,
            });
            i += len;
            continue;
        }
        i += 1;
    }
    found
}

/// `a::{b, c::{self, d as e}, f::*}` into `(path, bound name)` leaves.
fn expand_use(tree: &str) -> Vec<(Vec<String>, Option<String>)> {
    let mut leaves = Vec::new();
    expand_into(&[], tree, &mut leaves);
    leaves
}

fn expand_into(prefix: &[String], tree: &str, leaves: &mut Vec<(Vec<String>, Option<String>)>) {
    let mut path = prefix.to_vec();
    let mut rest = tree;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.strip_suffix('}').unwrap_or(group);
            for part in split_top_level(inner) {
                expand_into(&path, part, leaves);
            }
            return;
        }
        match rest.find("::") {
            Some(p) if !rest[..p].contains('{') => {
                path.push(rest[..p].to_owned());
                rest = &rest[p + 2..];
            }
            _ => break,
        }
    }
    if rest.is_empty() {
        return;
    }
    let (name, alias) = match rest.split_once(" as ") {
        Some((name, alias)) => (name, Some(alias)),
        None => (rest, None),
    };
    if name == "*" {
        leaves.push((path, None));
    } else if name == "self" {
        let bound = alias.map(str::to_owned).or_else(|| path.last().cloned());
        leaves.push((path, bound));
    } else {
        path.push(name.to_owned());
        leaves.push((path, Some(alias.unwrap_or(name).to_owned())));
    }
}

/// Whitespace dropped except one space between two words (`d as e` stays readable).
fn squeeze(text: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for c in text.chars() {
        if c.is_whitespace() {
            gap = true;
            continue;
        }
        let word = |c: char| c.is_alphanumeric() || c == '_';
        if gap && out.chars().last().is_some_and(word) && word(c) {
            out.push(' ');
        }
        gap = false;
        out.push(c);
    }
    out
}

fn split_top_level(inner: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}
