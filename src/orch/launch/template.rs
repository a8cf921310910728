//! Command templates (SPEC §11): split like a shell splits words, never run through a
//! shell, with `{placeholder}`s filled in per word after splitting, so a brief full of
//! quotes and spaces stays one argument. `{{` and `}}` are literal braces.

use crate::error::{Error, Result};
use std::path::Path;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 7] = [
    "brief",
    "brief_file",
    "worktree",
    "agent",
    "model",
    "common_dir",
    "git_dir",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(&'static str),
}

/// One word of a template: literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word(Vec<Piece>);

/// What the placeholders stand for when an agent starts.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub brief: &'a str,
    pub brief_file: &'a Path,
    pub worktree: &'a Path,
    pub agent: &'a str,
    pub model: Option<&'a str>,
    pub common_dir: &'a Path,
    /// The worktree's private git dir (the common dir for a task without a worktree).
    pub git_dir: &'a Path,
}

impl Word {
    /// A word taken as it is, braces and all (built-in words that hold JSON).
    pub fn literal(text: impl Into<String>) -> Word {
        Word(vec![Piece::Text(text.into())])
    }

    pub fn uses(&self, var: &str) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, Piece::Var(v) if *v == var))
    }

    /// The word with its placeholders filled in; `{model}` without a model is an error.
    pub fn fill(&self, vars: &Vars<'_>) -> Result<String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(var) => out.push_str(&match *var {
                    "brief" => vars.brief.to_owned(),
                    "brief_file" => vars.brief_file.to_string_lossy().into_owned(),
                    "worktree" => vars.worktree.to_string_lossy().into_owned(),
                    "agent" => vars.agent.to_owned(),
                    "common_dir" => vars.common_dir.to_string_lossy().into_owned(),
                    "git_dir" => vars.git_dir.to_string_lossy().into_owned(),
                    _ => vars.model.map(str::to_owned).ok_or_else(|| {
                        Error::invalid_input("the command uses {model} but no model is set")
                            .hint("set one: git config orch.agent.PROFILE.model NAME")
                    })?,
                }),
            }
        }
        Ok(out)
    }

    /// The word as written, placeholders shown as `{name}` (for `profile show`), with
    /// the model filled in when there is one.
    pub fn display(&self, model: Option<&str>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var("model") if model.is_some() => out.push_str(model.unwrap_or("")),
                Piece::Var(var) => {
                    out.push('{');
                    out.push_str(var);
                    out.push('}');
                }
            }
        }
        out
    }
}

/// Splits `text` into words like a POSIX shell (quotes, backslashes; no expansions) and
/// parses the placeholders of each; `what` names the setting in errors.
pub fn parse(what: &str, text: &str) -> Result<Vec<Word>> {
    let words = shlex::split(text).ok_or_else(|| {
        Error::invalid_input(format!("{what} is not a valid command line: {text:?}"))
            .hint("close every quote; the command is split like a shell splits words")
    })?;
    if words.is_empty() {
        return Err(Error::invalid_input(format!("{what} is empty"))
            .hint("give the program and its arguments, e.g. ./agent.sh {brief_file}"));
    }
    words.iter().map(|w| parse_word(what, w)).collect()
}

/// A template of built-in words (presets), checked like a user's.
pub fn words(what: &str, words: &[&str]) -> Result<Vec<Word>> {
    words.iter().map(|w| parse_word(what, w)).collect()
}

fn parse_word(what: &str, word: &str) -> Result<Word> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = word;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("{{") {
            text.push('{');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("}}") {
            text.push('}');
            rest = after;
        } else if c == '{' {
            let end = rest.find('}').ok_or_else(|| {
                Error::invalid_input(format!("{what}: unclosed {{ in {word:?}"))
                    .hint("write {{ for a literal brace")
            })?;
            let name = &rest[1..end];
            let var = PLACEHOLDERS
                .into_iter()
                .find(|p| *p == name)
                .ok_or_else(|| unknown_placeholder(what, name))?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Var(var));
            rest = &rest[end + 1..];
        } else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(Word(pieces))
}

fn unknown_placeholder(what: &str, name: &str) -> Error {
    Error::invalid_input(format!("{what} uses an unknown placeholder {{{name}}}"))
        .hint(format!(
            "placeholders are {}; write {{{{ for a literal brace",
            PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
        ))
        .detail("placeholder", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(brief: &'a str, model: Option<&'a str>) -> Vars<'a> {
        Vars {
            brief,
            brief_file: Path::new("/wt/.git/brief.md"),
            worktree: Path::new("/wt"),
            agent: "claude-3",
            model,
            common_dir: Path::new("/repo/.git"),
            git_dir: Path::new("/repo/.git/worktrees/wt"),
        }
    }

    fn fill(text: &str, v: &Vars<'_>) -> Vec<String> {
        parse("cmd", text)
            .unwrap()
            .iter()
            .map(|w| w.fill(v).unwrap())
            .collect()
    }

    #[test]
    fn words_split_like_a_shell_and_placeholders_fill_one_word() {
        let v = vars("say \"hi\"; rm -rf /", Some("m1"));
        assert_eq!(
            fill(
                "run -p {brief} --file={brief_file} 'a b' x\\ y --m {model}",
                &v
            ),
            [
                "run",
                "-p",
                "say \"hi\"; rm -rf /",
                "--file=/wt/.git/brief.md",
                "a b",
                "x y",
                "--m",
                "m1"
            ]
        );
        assert_eq!(
            fill("echo {{agent}} {agent}", &v),
            ["echo", "{agent}", "claude-3"]
        );
    }

    #[test]
    fn bad_templates_are_refused_with_invalid_input() {
        for bad in ["run {prompt}", "run {brief", "run 'open", "", "run {}"] {
            let err = parse("orch.agent.<profile>.command", bad).unwrap_err();
            assert_eq!(err.code, crate::error::Code::InvalidInput, "{bad}");
        }
        let words = parse("cmd", "run {model}").unwrap();
        assert!(words[1].fill(&vars("b", None)).is_err());
        assert_eq!(words[1].display(None), "{model}");
        assert_eq!(words[1].display(Some("m")), "m");
    }
}
