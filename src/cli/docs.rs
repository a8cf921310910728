//! `git orch install-docs`: man pages and shell completions for both binaries, generated
//! from the same clap definitions that parse the command line, so they cannot drift.
//!
//! git turns `git orch --help` into `git help orch`, which runs `man git-orch`; without a
//! page there, `--help` fails. Pages go to `<prefix>/share/man/man1`, which `man` finds
//! for a `<prefix>/bin` on `PATH`, so the default prefix is the one the binary runs from.

use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct InstallDocsArgs {
    /// Install under DIR (default: the prefix this binary runs from, e.g. ~/.cargo)
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
}

/// One generated file, relative to the prefix.
struct Doc {
    path: PathBuf,
    bytes: Vec<u8>,
}

#[derive(Serialize)]
struct Installed {
    prefix: PathBuf,
    man_dir: PathBuf,
    man_pages: usize,
    completions: Vec<PathBuf>,
}

pub fn install(_ctx: &mut Ctx, out: &Out, args: InstallDocsArgs) -> Result<()> {
    let prefix = match args.prefix {
        Some(dir) => dir,
        None => default_prefix()?,
    };
    let prefix = std::path::absolute(&prefix)
        .map_err(|e| Error::io(format!("resolving {}", prefix.display()), e))?;
    let commands = super::command_trees();
    let mut docs = Vec::new();
    for cmd in &commands {
        man_pages(cmd.clone(), &mut docs)?;
    }
    let man_pages = docs.len();
    for cmd in &commands {
        completions(cmd.clone(), &mut docs)?;
    }
    // Everything is rendered before the first file is written, and each file is written
    // under a temporary name and renamed: a failure leaves no half-written page.
    for doc in &docs {
        write_atomically(&prefix.join(&doc.path), &doc.bytes)?;
    }
    let data = Installed {
        man_dir: prefix.join(MAN_DIR),
        completions: docs[man_pages..]
            .iter()
            .map(|d| prefix.join(&d.path))
            .collect(),
        prefix,
        man_pages,
    };
    out.success(&data, || render(&data))
}

const MAN_DIR: &str = "share/man/man1";
const BASH_DIR: &str = "share/bash-completion/completions";
const ZSH_DIR: &str = "share/zsh/site-functions";
const FISH_DIR: &str = "share/fish/vendor_completions.d";

/// `<prefix>/bin/git-orch` → `<prefix>`.
fn default_prefix() -> Result<PathBuf> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("finding the path of this binary", e))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::invalid_input(format!("{} has no prefix above it", exe.display()))
                .hint("pass --prefix DIR")
        })
}

/// The page of `cmd` and of every subcommand below it, named like git names them:
/// `git-orch.1`, `git-orch-dispatch.1`, `git-orch-run-init.1`.
fn man_pages(mut cmd: clap::Command, docs: &mut Vec<Doc>) -> Result<()> {
    cmd.build();
    let mut stack = vec![cmd];
    while let Some(cmd) = stack.pop() {
        for sub in cmd.get_subcommands() {
            if !sub.is_hide_set() && sub.get_name() != "help" {
                stack.push(sub.clone());
            }
        }
        let man = clap_mangen::Man::new(cmd)
            .manual("git-orch manual")
            .source(format!("git-orch {}", env!("CARGO_PKG_VERSION")));
        let mut bytes = Vec::new();
        man.render(&mut bytes)
            .map_err(|e| Error::io("rendering a man page", e))?;
        docs.push(Doc {
            path: Path::new(MAN_DIR).join(man.get_filename()),
            bytes,
        });
    }
    Ok(())
}

/// bash, zsh and fish completions for `git-orch`/`git-inbox`, also reached through
/// git's own completion as `git orch …`/`git inbox …`.
fn completions(cmd: clap::Command, docs: &mut Vec<Doc>) -> Result<()> {
    use clap_complete::Shell;
    let bin = cmd.get_name().to_owned();
    let render = |shell: Shell, mut cmd: clap::Command, name: &str| {
        let mut bytes = Vec::new();
        clap_complete::generate(shell, &mut cmd, name, &mut bytes);
        bytes
    };
    // clap_complete's bash script spells a `-` in the binary's name two ways in its
    // internal names (`git__orch__subcmd__run` against `git__subcmd__orch__…`), so no
    // subcommand would complete. Generated for a name without `-` the internals agree,
    // and the function is then registered for the real binary.
    let internal = match bin.as_str() {
        "git-orch" => "gitorch",
        _ => "gitinbox",
    };
    let mut bash = render(Shell::Bash, cmd.clone().name(internal), internal);
    bash.extend_from_slice(git_bash_bridge(&bin, internal).as_bytes());
    docs.push(Doc {
        path: Path::new(BASH_DIR).join(&bin),
        bytes: bash,
    });
    docs.push(Doc {
        path: Path::new(ZSH_DIR).join(format!("_{bin}")),
        bytes: render(Shell::Zsh, cmd.clone(), &bin),
    });
    docs.push(Doc {
        path: Path::new(FISH_DIR).join(format!("{bin}.fish")),
        bytes: render(Shell::Fish, cmd, &bin),
    });
    Ok(())
}

/// git's bash completion completes `git orch …` by calling `_git_orch` (loading the
/// file for `git-orch` first when bash-completion is there). This hands it to clap's
/// function with the words rewritten as if `git-orch` had been typed: everything up to
/// and including the subcommand word (`git -C dir orch`) becomes the one word `git-orch`.
/// zsh's and fish's git completions call the `git-orch` completions by themselves.
fn git_bash_bridge(bin: &str, internal: &str) -> String {
    let sub = bin.trim_start_matches("git-");
    let func = bin.replace('-', "_");
    format!(
        r#"
complete -F _{internal} -o nosort -o bashdefault -o default {bin}

# Completion of `git {sub} …` through git's own bash completion.
_{func}() {{
    local i idx=-1
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${{COMP_WORDS[i]}} == {sub} ]]; then idx=$i; break; fi
    done
    ((idx < 0)) && return 0
    local COMP_WORDS=({bin} "${{COMP_WORDS[@]:idx+1}}")
    local COMP_CWORD=$((COMP_CWORD - idx))
    local COMP_LINE="${{COMP_WORDS[*]}}"
    local COMP_POINT=${{#COMP_LINE}}
    _{internal} {bin} "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
}}
"#
    )
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::internal(format!("{} has no parent", path.display())))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io(format!("writing in {}", dir.display()), e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    // A temporary file is private (0600); pages and completions are read by everyone.
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    file.persist(path)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e.error))?;
    Ok(())
}

fn render(data: &Installed) -> String {
    let mut text = format!(
        "Installed {} man pages in {}\n",
        data.man_pages,
        data.man_dir.display()
    );
    for path in &data.completions {
        text.push_str(&format!("Installed {}\n", path.display()));
    }
    let bin = data.prefix.join("bin");
    text.push_str(&format!(
        "`git help orch` finds the pages when {} is on PATH (or add {} to MANPATH).\n\
         bash: git's completion loads the bash file by itself when bash-completion is installed;\n\
         otherwise add `source {}` to ~/.bashrc.",
        bin.display(),
        data.prefix.join("share/man").display(),
        data.prefix.join(BASH_DIR).join("git-orch").display()
    ));
    text
}
