//! The terminal as `top` takes it over: the alternate screen in raw mode,
//! given back as it was on every way out (a return, an error, a panic).

use anyhow::{Context, Result};
use crossterm::{cursor, execute, terminal};
use std::io::Write;

/// Holds the terminal in the alternate screen and raw mode until dropped.
pub struct Screen {
    /// Made only by [`Screen::enter`].
    _private: (),
}

impl Screen {
    /// Enters the alternate screen, hides the cursor and turns raw mode on;
    /// a panic from now on restores the terminal before its message.
    pub fn enter() -> Result<Self> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        let screen = Screen { _private: () };
        terminal::enable_raw_mode().context("failed to put the terminal in raw mode")?;
        execute!(std::io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
            .context("failed to enter the alternate screen")?;
        Ok(screen)
    }

    /// Draws `lines` from the top left, each cut to the terminal's width,
    /// as many as its height holds.
    pub fn draw(&mut self, lines: &[String]) -> Result<()> {
        use crossterm::queue;
        // A terminal that says it has no size (a bare pty) gets a classic one.
        let (width, height) = match terminal::size() {
            Ok((w, h)) if w > 0 && h > 0 => (w, h),
            _ => (80, 24),
        };
        let mut out = std::io::stdout().lock();
        queue!(out, terminal::Clear(terminal::ClearType::All))?;
        for (row, line) in lines.iter().take(height as usize).enumerate() {
            let cut: String = line.chars().take(width as usize).collect();
            queue!(out, cursor::MoveTo(0, row as u16), crossterm::style::Print(cut))?;
        }
        out.flush()?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Gives the terminal back: raw mode off, the cursor shown, the main
/// screen. Harmless when already done.
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(std::io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
}
