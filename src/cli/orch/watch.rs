//! `git orch status --watch`: the run as it changes. On a terminal, a live view redrawn
//! on every change (counts, open questions, the task table, the newest events) that `q`,
//! Esc or Ctrl-C leaves; without one, a new status each time it changes, until the run
//! has nothing left in flight.

use super::status::{load_status, render_questions, status_header, status_table};
use crate::cli::ctx::Ctx;
use crate::cli::output::{print_line, print_text, Out};
use crate::cli::render::{escape, escape_lines, render_event};
use crate::error::{Error, Result};
use crate::orch::waits;
use crate::store::events::Event;
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How many of the newest events the live view keeps on screen.
const EVENTS_SHOWN: usize = 8;
/// Ages on screen ("3m ago") go stale without any commit; redraw at least this often.
const REFRESH: Duration = Duration::from_secs(5);

pub fn watch(ctx: &mut Ctx, out: &Out, run: Option<&str>) -> Result<()> {
    if !out.json && std::io::stdout().is_terminal() {
        live(ctx, run)
    } else {
        stream(ctx, out, run)
    }
}

/// One status per change, for a pipe or a log file (or one JSON document per line).
/// Ends when the run is over or nothing in it is pending or in flight.
fn stream(ctx: &mut Ctx, out: &Out, run: Option<&str>) -> Result<()> {
    let mut last = String::new();
    loop {
        let version = ctx.store()?.data_version()?;
        let status = load_status(&mut ctx.orch()?, run)?;
        // Ages alone never make a new table; the data does.
        let doc = serde_json::to_string(&status.data())?;
        if doc != last {
            if out.json {
                print_line(&format!("{{\"ok\":true,\"data\":{doc}}}"))?;
            } else {
                if !last.is_empty() {
                    print_line("")?;
                }
                // Straight to stdout, not through `Out`: escaped here (a title is anything).
                print_text(&escape_lines(&format!(
                    "{}\n{}",
                    status_header(&status.run),
                    status_table(&status.run, &status.tasks)
                )))?;
            }
            last = doc;
        }
        if status.settled() {
            return Ok(());
        }
        let store = ctx.store()?;
        crate::inbox::sleep_until_change(store, version, Some(Instant::now() + REFRESH))?;
    }
}

/// The terminal state the live view needs, put back on drop (also on an error).
struct Screen;

impl Screen {
    fn enter() -> Result<Screen> {
        use crossterm::{cursor, execute, terminal};
        terminal::enable_raw_mode().map_err(|e| Error::io("setting up the terminal", e))?;
        let screen = Screen;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .map_err(|e| Error::io("setting up the terminal", e))?;
        Ok(screen)
    }

    /// Draws `text` from the top, clipped to the terminal, with `\r\n` (raw mode).
    fn draw(&self, text: &str) -> Result<()> {
        use crossterm::{cursor, queue, terminal};
        let (width, height) = terminal::size().unwrap_or((100, 40));
        // The frame is made whole, then written at once: stdout flushes at every newline,
        // and a frame written line by line is seen (and captured) half drawn.
        let mut frame: Vec<u8> = Vec::with_capacity(text.len() + 64);
        let io = |e| Error::output(e);
        queue!(
            frame,
            cursor::MoveTo(0, 0),
            terminal::Clear(terminal::ClearType::All)
        )
        .map_err(io)?;
        for (i, line) in text.lines().take(usize::from(height)).enumerate() {
            if i > 0 {
                frame.extend_from_slice(b"\r\n");
            }
            // Titles, questions and events are user data: escaped before they are clipped.
            let clipped: String = escape(line).chars().take(usize::from(width)).collect();
            frame.extend_from_slice(clipped.as_bytes());
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&frame)
            .and_then(|()| stdout.flush())
            .map_err(io)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        use crossterm::{cursor, execute, terminal};
        let _ = execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

fn live(ctx: &mut Ctx, run: Option<&str>) -> Result<()> {
    // The run is resolved before the screen changes, so a wrong name is a plain error.
    let mut status = load_status(&mut ctx.orch()?, run)?;
    let name = status.run.name.clone();
    let mut events = Events::default();
    let screen = Screen::enter()?;
    loop {
        events.catch_up(ctx, &name)?;
        let version = ctx.store()?.data_version()?;
        screen.draw(&frame(&status, &events))?;
        let drawn = Instant::now();
        loop {
            if quit_pressed(Duration::from_millis(100))? {
                return Ok(());
            }
            if ctx.store()?.data_version()? != version || drawn.elapsed() >= REFRESH {
                break;
            }
        }
        status = load_status(&mut ctx.orch()?, Some(&name))?;
    }
}

/// Waits up to `timeout` for a key; true for `q`, Esc or Ctrl-C (raw mode turns Ctrl-C
/// into a key, so it reaches us instead of killing the process mid-draw).
fn quit_pressed(timeout: Duration) -> Result<bool> {
    use crossterm::event::{self, Event as Term, KeyCode, KeyEventKind, KeyModifiers};
    let io = |e| Error::io("reading the terminal", e);
    if !event::poll(timeout).map_err(io)? {
        return Ok(false);
    }
    Ok(match event::read().map_err(io)? {
        Term::Key(key) if key.kind != KeyEventKind::Release => {
            matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
                || (key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL))
        }
        _ => false,
    })
}

/// The newest events of the run, read incrementally after the first screen.
#[derive(Default)]
struct Events {
    last_id: i64,
    newest: VecDeque<Event>,
}

impl Events {
    fn catch_up(&mut self, ctx: &mut Ctx, run: &str) -> Result<()> {
        for event in waits::log(&mut ctx.orch()?, Some(run), self.last_id)? {
            self.last_id = self.last_id.max(event.id);
            self.newest.push_back(event);
            if self.newest.len() > EVENTS_SHOWN {
                self.newest.pop_front();
            }
        }
        Ok(())
    }
}

fn frame(status: &super::status::Status, events: &Events) -> String {
    let mut text = format!(
        "git orch status --watch · q to leave\n{}\n",
        status_header(&status.run)
    );
    let questions = render_questions(&status.tasks);
    if !questions.is_empty() {
        text.push_str("\nOpen questions:\n");
        text.push_str(&questions);
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&status_table(&status.run, &status.tasks));
    if !events.newest.is_empty() {
        text.push_str("\nNewest events:\n");
        for event in &events.newest {
            text.push_str(&render_event(event));
            text.push('\n');
        }
    }
    text
}
