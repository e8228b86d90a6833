//! A live view shared by `rampart demo` and `rampart top`: on a terminal, a
//! full-screen frame redrawn in place by ratatui (alternate screen, raw mode,
//! every line cut to the terminal's width, so nothing wraps and a resize just
//! redraws); elsewhere (a pipe, a file, `--plain`), each frame printed as plain
//! lines followed by a blank line. Log lines are captured while the full
//! screen is up and shown at its foot, then written to stderr when it ends.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::Paragraph;

use crate::logging;

/// A key the views react to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// `q`, Esc or Ctrl-C.
    Quit,
    Char(char),
    Tab,
}

/// How many captured log lines the full-screen view shows at its foot.
const LOG_LINES: usize = 3;

pub(crate) struct LiveView {
    terminal: Option<DefaultTerminal>,
}

impl LiveView {
    /// Full screen when stdout is a terminal and `plain` is false, else plain lines.
    pub(crate) fn start(plain: bool) -> anyhow::Result<LiveView> {
        if plain || !std::io::stdout().is_terminal() {
            return Ok(LiveView { terminal: None });
        }
        logging::capture();
        // Enters raw mode and the alternate screen; restores them on panic.
        let terminal = ratatui::try_init()?;
        Ok(LiveView {
            terminal: Some(terminal),
        })
    }

    /// Whether the view is drawn full screen (keys are read only then).
    pub(crate) fn is_full_screen(&self) -> bool {
        self.terminal.is_some()
    }

    /// Draws one frame: `lines` (the first one bold), cut to the width.
    pub(crate) fn show(&mut self, lines: &[String]) -> anyhow::Result<()> {
        let Some(terminal) = self.terminal.as_mut() else {
            let mut out = std::io::stdout().lock();
            for l in lines {
                writeln!(out, "{l}")?;
            }
            writeln!(out)?;
            out.flush()?;
            return Ok(());
        };
        let logs = logging::recent(LOG_LINES);
        terminal.draw(|frame| {
            let [body, foot] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(logs.len() as u16)])
                    .areas(frame.area());
            let text: Text = lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let line = Line::raw(l.as_str());
                    if i == 0 {
                        line.style(Style::new().add_modifier(Modifier::BOLD))
                    } else {
                        line
                    }
                })
                .collect();
            // No Wrap: a line longer than the width is cut, never wrapped.
            frame.render_widget(Paragraph::new(text), body);
            let log_text: Text = logs.iter().map(|l| Line::raw(l.as_str())).collect();
            frame.render_widget(
                Paragraph::new(log_text).style(Style::new().add_modifier(Modifier::DIM)),
                foot,
            );
        })?;
        Ok(())
    }

    /// Waits up to `wait` for a key (full screen); a plain view just sleeps.
    /// A resize ends the wait early so the caller redraws at once.
    pub(crate) fn next_key(&self, wait: Duration) -> Option<Key> {
        if self.terminal.is_none() {
            std::thread::sleep(wait);
            return None;
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left).unwrap_or(false) {
                return None;
            }
            match event::read() {
                Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                    return match k.code {
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                            Some(Key::Quit)
                        }
                        KeyCode::Char('q') | KeyCode::Esc => Some(Key::Quit),
                        KeyCode::Tab => Some(Key::Tab),
                        KeyCode::Char(c) => Some(Key::Char(c)),
                        _ => continue,
                    };
                }
                Ok(Event::Resize(..)) => return None,
                _ => {}
            }
        }
    }

    /// Leaves the full screen (if any) and prints `last` plainly, so the final
    /// frame stays on the terminal; captured log lines follow on stderr.
    pub(crate) fn finish(mut self, last: &[String]) -> anyhow::Result<()> {
        if self.terminal.take().is_some() {
            ratatui::try_restore()?;
            logging::release();
            let mut out = std::io::stdout().lock();
            for l in last {
                writeln!(out, "{l}")?;
            }
            out.flush()?;
        }
        Ok(())
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        if self.terminal.take().is_some() {
            ratatui::restore();
            logging::release();
        }
    }
}
