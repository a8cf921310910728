//! Installing our block into the repository's `post-commit`, `post-merge` and
//! `post-rewrite` hooks (docs/git-layer.md), between marker lines, next to whatever the user has.
//!
//! The block goes right after the shebang, so a user's `exit` further down cannot skip
//! it; it reads no stdin and never exits, so the user's part runs as before with its
//! arguments and stdin. Removing it restores the user's file byte for byte.

use super::git::git;
use super::Repo;
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The hooks git-orch installs. No `reference-transaction`: it fires once per ref.
pub const HOOK_NAMES: [&str; 3] = ["post-commit", "post-merge", "post-rewrite"];

const BEGIN: &str = "# >>> git-orch >>>";
const END: &str = "# <<< git-orch <<<";
const SHEBANG: &str = "#!/bin/sh";

fn template(name: &str) -> Option<&'static str> {
    match name {
        "post-commit" => Some(include_str!("../../hooks/post-commit")),
        "post-merge" => Some(include_str!("../../hooks/post-merge")),
        "post-rewrite" => Some(include_str!("../../hooks/post-rewrite")),
        _ => None,
    }
}

/// The block for hook `name`, marker lines included, ending with a newline.
pub fn block(name: &str) -> Option<String> {
    template(name).map(|body| {
        let body = body.trim_end_matches('\n');
        format!("{BEGIN}\n{body}\n{END}\n")
    })
}

/// What happened to one hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookOutcome {
    pub hook: String,
    pub reason: String,
}

/// The result of `git orch init` (hooks part) or `git orch uninstall-hooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HooksReport {
    /// The hooks directory git uses (`git rev-parse --git-path hooks`).
    #[serde(serialize_with = "crate::paths::serialize_opt")]
    pub dir: Option<PathBuf>,
    /// Hooks whose block was written now (file created, block added or refreshed).
    pub installed: Vec<String>,
    /// Hooks that already held the current block.
    pub unchanged: Vec<String>,
    /// Hooks whose block was taken out now (`deleted` says which files went entirely).
    pub removed: Vec<String>,
    /// Hook files removed because nothing but our block and shebang was left.
    pub deleted: Vec<String>,
    /// Hooks left alone, with why (core.hooksPath inside the work tree, not a shell
    /// script, not executable, a symlink, an unterminated block).
    pub skipped: Vec<HookOutcome>,
}

/// What removing our blocks does to one hook file.
#[derive(Debug, PartialEq, Eq)]
enum Edit {
    Unchanged,
    Write(String),
    Delete,
}

/// The line ranges of our blocks in `text` (start line, end line inclusive).
fn find_blocks(lines: &[&str]) -> std::result::Result<Vec<(usize, usize)>, String> {
    let mut blocks = Vec::new();
    let mut open = None;
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_end();
        if line == BEGIN {
            if open.is_some() {
                return Err(format!("a second `{BEGIN}` line before `{END}`"));
            }
            open = Some(i);
        } else if line == END {
            match open.take() {
                Some(start) => blocks.push((start, i)),
                None => return Err(format!("a `{END}` line without `{BEGIN}`")),
            }
        }
    }
    if open.is_some() {
        return Err(format!("a `{BEGIN}` line without its `{END}` line"));
    }
    Ok(blocks)
}

fn is_shell_script(first_line: &str) -> bool {
    let Some(command) = first_line.strip_prefix("#!") else {
        // No shebang: git runs it with /bin/sh.
        return true;
    };
    let mut words = command.split_whitespace();
    let mut program = words.next().unwrap_or("");
    let base = |p: &str| p.rsplit('/').next().unwrap_or("").to_owned();
    if base(program) == "env" {
        program = words.find(|w| !w.starts_with('-')).unwrap_or("");
    }
    matches!(
        base(program).as_str(),
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "posh" | "yash"
    )
}

/// Our block put into `existing` (`None`: no file yet): the new text, or `None` when it
/// is there already; `Err` is why not.
fn with_block(existing: Option<&str>, block: &str) -> std::result::Result<Option<String>, String> {
    let existing = match existing {
        Some(text) if !text.trim().is_empty() => text,
        _ => return Ok(Some(format!("{SHEBANG}\n{block}"))),
    };
    let lines: Vec<&str> = existing.split_inclusive('\n').collect();
    let first = lines.first().map(|l| l.trim_end()).unwrap_or("");
    if !is_shell_script(first) {
        return Err(format!(
            "not a shell script ({first}); add a call to `git inbox hook NAME` to it by hand"
        ));
    }
    let blocks = find_blocks(&lines)?;
    let mut out = String::with_capacity(existing.len() + block.len());
    match blocks.first() {
        None => {
            let insert_at = usize::from(first.starts_with("#!"));
            for line in &lines[..insert_at] {
                out.push_str(line);
                if !line.ends_with('\n') {
                    out.push('\n');
                }
            }
            out.push_str(block);
            lines[insert_at..].iter().for_each(|l| out.push_str(l));
        }
        Some(&(first_start, _)) => {
            // Refresh the first block in place, drop any others.
            for (i, line) in lines.iter().enumerate() {
                let inside = blocks.iter().find(|(s, e)| (*s..=*e).contains(&i));
                match inside {
                    None => out.push_str(line),
                    Some(_) if i == first_start => out.push_str(block),
                    Some(_) => {}
                }
            }
        }
    }
    Ok((out != existing).then_some(out))
}

/// `existing` without our blocks; `Delete` when only a shebang would be left.
fn without_block(existing: &str) -> std::result::Result<Edit, String> {
    let lines: Vec<&str> = existing.split_inclusive('\n').collect();
    let blocks = find_blocks(&lines)?;
    if blocks.is_empty() {
        return Ok(Edit::Unchanged);
    }
    let out: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !blocks.iter().any(|(s, e)| (*s..=*e).contains(i)))
        .map(|(_, l)| *l)
        .collect();
    let rest = out.trim();
    if rest.is_empty() || rest == SHEBANG {
        Ok(Edit::Delete)
    } else {
        Ok(Edit::Write(out))
    }
}

/// Where hooks go and whether we may write there.
struct HooksDir {
    path: PathBuf,
    refused: Option<String>,
}

/// `path` with symlinks resolved as far as it exists.
fn resolve_lossy(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return path.to_owned(),
        }
    }
    let mut resolved = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_owned());
    resolved.extend(rest.iter().rev());
    resolved
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    true
}

/// Replaces `path` with `text` atomically, keeping the old file's permissions (0755
/// for a new one).
fn write_hook(path: &Path, text: &str, old: Option<&std::fs::Metadata>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    let tmp = tempfile::Builder::new()
        .prefix(".git-orch-hook")
        .tempfile_in(dir)
        .map_err(io)?;
    std::fs::write(tmp.path(), text).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = match old {
            Some(meta) => meta.permissions(),
            None => std::fs::Permissions::from_mode(0o755),
        };
        std::fs::set_permissions(tmp.path(), perms).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = old;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Reads a hook file that we may edit; `Err` is why we may not.
fn read_hook(
    path: &Path,
) -> Result<std::result::Result<Option<(String, std::fs::Metadata)>, String>> {
    let meta = match path.symlink_metadata() {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(None)),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if meta.file_type().is_symlink() {
        return Ok(Err(
            "a symlink; git-orch does not write through it".to_owned()
        ));
    }
    if !meta.is_file() {
        return Ok(Err("not a regular file".to_owned()));
    }
    if !is_executable(&meta) {
        return Ok(Err(
            "not executable, so git does not run it; make it executable and run `git orch init` again".to_owned(),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Ok(Some((text, meta)))),
        Err(_) => Ok(Err("not a text file".to_owned())),
    }
}

impl Repo {
    /// The hooks directory git uses here (`git rev-parse --git-path hooks`, which honours
    /// `core.hooksPath`), and a refusal when that lies inside a work tree: tracked hooks
    /// (husky and friends) are the user's files, not ours to edit.
    fn hooks_dir(&self) -> Result<HooksDir> {
        let run_dir = self.run_dir();
        let printed = git(run_dir)
            .args(["rev-parse", "--git-path", "hooks"])
            .run()?
            .text();
        let path = resolve_lossy(&run_dir.join(&printed));
        let configured = self.config_string("core.hooksPath");
        let refused = match configured.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(value) if Path::new(&printed).is_relative() => Some(format!(
                "core.hooksPath is {value:?}, relative to each work tree: git-orch does not write there; progress comes from `git orch reconcile`"
            )),
            Some(value) => {
                let inside = self.registered_worktrees()?.into_iter().any(|wt| {
                    let wt = resolve_lossy(&wt);
                    path.starts_with(&wt) && !path.starts_with(self.common_dir())
                });
                inside.then(|| format!(
                    "core.hooksPath ({value}) points into the work tree: git-orch does not write there; progress comes from `git orch reconcile`"
                ))
            }
        };
        Ok(HooksDir { path, refused })
    }

    /// Puts our block into each of [`HOOK_NAMES`]: creates missing hooks, adds
    /// the block to existing shell hooks right after their shebang, refreshes an outdated
    /// block; a second run changes nothing. Never writes inside a work tree.
    pub fn install_hooks(&self) -> Result<HooksReport> {
        let dir = self.hooks_dir()?;
        let mut report = HooksReport {
            dir: Some(dir.path.clone()),
            ..HooksReport::default()
        };
        if let Some(reason) = dir.refused {
            report.skipped = HOOK_NAMES
                .iter()
                .map(|h| HookOutcome {
                    hook: (*h).to_owned(),
                    reason: reason.clone(),
                })
                .collect();
            return Ok(report);
        }
        std::fs::create_dir_all(&dir.path)
            .map_err(|e| Error::io(format!("creating {}", dir.path.display()), e))?;
        for name in HOOK_NAMES {
            let path = dir.path.join(name);
            let block = block(name).expect("a template for every hook name");
            let skip = |reason: String| HookOutcome {
                hook: name.to_owned(),
                reason,
            };
            let (text, meta) = match read_hook(&path)? {
                Err(reason) => {
                    report.skipped.push(skip(reason));
                    continue;
                }
                Ok(Some((text, meta))) => (Some(text), Some(meta)),
                Ok(None) => (None, None),
            };
            match with_block(text.as_deref(), &block) {
                Err(reason) => report.skipped.push(skip(reason)),
                Ok(None) => report.unchanged.push(name.to_owned()),
                Ok(Some(new)) => {
                    write_hook(&path, &new, meta.as_ref())?;
                    report.installed.push(name.to_owned());
                }
            }
        }
        Ok(report)
    }

    /// Takes our blocks out of the hooks (`git orch uninstall-hooks`), leaving every
    /// other line; a file left with nothing but its shebang is deleted. Looks in the
    /// hooks directory git uses and in `<common>/hooks`, where an earlier init may have
    /// written before `core.hooksPath` was set.
    pub fn uninstall_hooks(&self) -> Result<HooksReport> {
        let dir = self.hooks_dir()?;
        let mut report = HooksReport {
            dir: Some(dir.path.clone()),
            ..HooksReport::default()
        };
        let mut dirs = Vec::new();
        match &dir.refused {
            None => dirs.push(dir.path.clone()),
            Some(reason) => {
                report.skipped = HOOK_NAMES
                    .iter()
                    .map(|h| HookOutcome {
                        hook: (*h).to_owned(),
                        reason: reason.clone(),
                    })
                    .collect()
            }
        }
        let default_dir = resolve_lossy(&self.common_dir().join("hooks"));
        if !dirs.contains(&default_dir) {
            dirs.push(default_dir);
        }
        for hooks_dir in dirs {
            for name in HOOK_NAMES {
                let path = hooks_dir.join(name);
                let (text, meta) = match read_hook(&path)? {
                    Ok(Some(found)) => found,
                    // Not ours to judge when removing: only files we could have written matter.
                    Ok(None) | Err(_) => continue,
                };
                match without_block(&text) {
                    Err(reason) => report.skipped.push(HookOutcome {
                        hook: name.to_owned(),
                        reason,
                    }),
                    Ok(Edit::Unchanged) => {}
                    Ok(Edit::Write(new)) => {
                        write_hook(&path, &new, Some(&meta))?;
                        report.removed.push(name.to_owned());
                    }
                    Ok(Edit::Delete) => {
                        std::fs::remove_file(&path)
                            .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                        report.removed.push(name.to_owned());
                        report.deleted.push(name.to_owned());
                    }
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "#!/bin/bash\nset -e\necho user part \"$@\"\nexit 0\n";

    fn installed(existing: Option<&str>) -> String {
        with_block(existing, &block("post-commit").unwrap())
            .unwrap()
            .expect("a change")
    }

    #[test]
    fn a_new_hook_is_shebang_and_block() {
        let text = installed(None);
        assert!(text.starts_with("#!/bin/sh\n# >>> git-orch >>>\n"));
        assert!(text.ends_with("# <<< git-orch <<<\n"));
        assert!(text.contains("git-inbox hook post-commit \"$@\" </dev/null"));
        assert_eq!(installed(Some("  \n")), text);
    }

    #[test]
    fn the_block_goes_after_the_users_shebang_and_comes_out_byte_for_byte() {
        let text = installed(Some(USER));
        assert!(text.starts_with("#!/bin/bash\n# >>> git-orch >>>\n"));
        assert!(text.ends_with("# <<< git-orch <<<\nset -e\necho user part \"$@\"\nexit 0\n"));
        assert_eq!(
            with_block(Some(&text), &block("post-commit").unwrap()),
            Ok(None)
        );
        assert_eq!(without_block(&text), Ok(Edit::Write(USER.to_owned())));
        assert_eq!(without_block(USER), Ok(Edit::Unchanged));
    }

    #[test]
    fn a_hook_without_shebang_gets_the_block_on_top() {
        let user = "echo no shebang\n";
        let text = installed(Some(user));
        assert!(text.starts_with("# >>> git-orch >>>\n"));
        assert_eq!(without_block(&text), Ok(Edit::Write(user.to_owned())));
    }

    #[test]
    fn an_outdated_block_is_refreshed_in_place_and_duplicates_go() {
        let old = format!("#!/bin/sh\necho a\n{BEGIN}\nold stuff\n{END}\necho b\n{BEGIN}\n{END}\n");
        let text = installed(Some(&old));
        let block = block("post-commit").unwrap();
        assert_eq!(text, format!("#!/bin/sh\necho a\n{block}echo b\n"));
    }

    #[test]
    fn only_our_shebang_left_means_delete() {
        assert_eq!(without_block(&installed(None)), Ok(Edit::Delete));
    }

    #[test]
    fn other_languages_and_broken_blocks_are_refused() {
        let block = block("post-commit").unwrap();
        assert!(with_block(Some("#!/usr/bin/env python3\nprint(1)\n"), &block).is_err());
        assert!(with_block(Some("#!/usr/bin/env bash\n"), &block).is_ok());
        assert!(with_block(Some("#!/bin/zsh -f\n"), &block).is_ok());
        let broken = format!("#!/bin/sh\n{BEGIN}\necho half\n");
        assert!(with_block(Some(&broken), &block).is_err());
        assert!(without_block(&broken).is_err());
    }

    #[test]
    fn crlf_user_lines_are_kept() {
        let user = "#!/bin/sh\r\necho dos\r\n";
        let text = installed(Some(user));
        assert_eq!(without_block(&text), Ok(Edit::Write(user.to_owned())));
    }
}
