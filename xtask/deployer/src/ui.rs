//! How the deployer talks to people: every line goes through [`Ui`], and so does every question.
//!
//! The CLI uses [`ConsoleUi`] (stderr, an indicatif spinner with elapsed time on a terminal, plain lines
//! otherwise, questions only on a terminal). Tests use [`RecordingUi`], which keeps the lines so a test can
//! assert on exactly what would have been printed.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The answer to a confirmation question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Go ahead (answered yes, or `--yes` was given).
    Yes,
    /// The person said no.
    No,
    /// Nobody can be asked (no terminal) and `--yes` was not given: callers refuse and say to pass `--yes`.
    NoTerminal,
}

pub trait Ui: Send + Sync {
    /// One line for people (progress, notices, previews).
    fn line(&self, text: &str);
    /// Asks a yes/no question, or (with `type_to_confirm`) asks the person to type that exact text.
    fn confirm(&self, question: &str, type_to_confirm: Option<&str>) -> Confirmation;
    /// Starts a live progress indicator with this message (elapsed time is shown by the implementation).
    fn progress_start(&self, _message: &str) {}
    /// Updates the live indicator's message.
    fn progress_message(&self, _message: &str) {}
    /// Sets a determinate length (e.g. the number of aggregates to replay) and the position.
    fn progress_position(&self, _done: u64, _total: u64) {}
    fn progress_finish(&self) {}
}

/// The terminal implementation used by `cargo xtask`.
pub struct ConsoleUi {
    assume_yes: bool,
    interactive: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl ConsoleUi {
    /// `assume_yes` is `--yes`. Questions are asked only when stdin and stderr are terminals.
    pub fn new(assume_yes: bool) -> Self {
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        ConsoleUi {
            assume_yes,
            interactive,
            bar: Mutex::new(None),
        }
    }

    pub fn is_interactive(&self) -> bool {
        self.interactive
    }
}

impl Ui for ConsoleUi {
    fn line(&self, text: &str) {
        match &*self.bar.lock().unwrap() {
            // A hidden bar (no terminal) swallows println, so lines always go straight to stderr then.
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }

    fn confirm(&self, question: &str, type_to_confirm: Option<&str>) -> Confirmation {
        if self.assume_yes {
            return Confirmation::Yes;
        }
        if !self.interactive {
            return Confirmation::NoTerminal;
        }
        let bar = self.bar.lock().unwrap();
        let ask = || {
            let prompt = match type_to_confirm {
                Some(text) => format!("{question} Type `{text}` to confirm: "),
                None => format!("{question} [y/N] "),
            };
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            if std::io::stdin().lock().read_line(&mut answer).is_err() {
                return Confirmation::No;
            }
            let answer = answer.trim();
            let yes = match type_to_confirm {
                Some(text) => answer == text,
                None => matches!(answer, "y" | "Y" | "yes" | "YES" | "Yes"),
            };
            if yes {
                Confirmation::Yes
            } else {
                Confirmation::No
            }
        };
        match &*bar {
            Some(b) => b.suspend(ask),
            None => ask(),
        }
    }

    fn progress_start(&self, message: &str) {
        let bar = if self.interactive || std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {msg} {wide_bar} {pos}/{len}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_message(message.to_string());
        *self.bar.lock().unwrap() = Some(bar);
    }

    fn progress_message(&self, message: &str) {
        if let Some(bar) = &*self.bar.lock().unwrap() {
            bar.set_message(message.to_string());
        }
    }

    fn progress_position(&self, done: u64, total: u64) {
        if let Some(bar) = &*self.bar.lock().unwrap() {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn progress_finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }
}

/// Records every line and answers questions with a fixed answer (tests).
pub struct RecordingUi {
    pub answer: Confirmation,
    lines: Mutex<Vec<String>>,
    questions: Mutex<Vec<String>>,
}

impl RecordingUi {
    pub fn new(answer: Confirmation) -> Self {
        RecordingUi {
            answer,
            lines: Mutex::new(Vec::new()),
            questions: Mutex::new(Vec::new()),
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Everything printed, one line per line.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    pub fn questions(&self) -> Vec<String> {
        self.questions.lock().unwrap().clone()
    }
}

impl Ui for RecordingUi {
    fn line(&self, text: &str) {
        self.lines.lock().unwrap().push(text.to_string());
    }

    fn confirm(&self, question: &str, _type_to_confirm: Option<&str>) -> Confirmation {
        self.questions.lock().unwrap().push(question.to_string());
        self.answer
    }
}
