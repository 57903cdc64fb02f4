//! `grid-cli completions SHELL`: the shell's completion script for every
//! verb and flag, on stdout.

use crate::commands::Cli;
use clap::{CommandFactory, Parser, ValueEnum};
use std::process::ExitCode;

/// Print a completion script for bash, zsh or fish.
///
/// Load it where the shell looks for completions, e.g.
/// `grid-cli completions bash > ~/.local/share/bash-completion/completions/grid-cli`,
/// `grid-cli completions zsh > ~/.zfunc/_grid-cli` (with `~/.zfunc` in `fpath`), or
/// `grid-cli completions fish > ~/.config/fish/completions/grid-cli.fish`.
#[derive(Parser, Debug)]
pub struct CompletionsCommand {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// The shells a script is written for.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionsCommand {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let shell = match self.shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        };
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "grid-cli", &mut script);
        use std::io::Write as _;
        std::io::stdout().write_all(&script)?;
        Ok(ExitCode::SUCCESS)
    }
}
