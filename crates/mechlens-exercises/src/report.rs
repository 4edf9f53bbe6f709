//! What a check found: one line per case and a verdict, shown in the notebook; and the
//! strict mode of solution notebooks, in which anything but a pass is an error.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use mechlens_core::{Error, Result};
use mechlens_viz::display::{NotebookDisplay, emit, escape_html};

/// The verdict of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every case matched the library.
    Passed,
    /// The function's body is still `todo!()` (or `unimplemented!()`).
    NotDone,
    /// A case failed.
    Failed {
        /// 1-based number of the first failing case.
        case: usize,
        /// What was wrong, in one sentence.
        problem: String,
        /// The known mistake whose output the learner's matched, if any.
        likely_mistake: Option<String>,
    },
}

/// What one check found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The exercise (the check's name).
    pub exercise: String,
    /// One line per case run, then the verdict.
    pub lines: Vec<String>,
    /// The verdict.
    pub outcome: Outcome,
}

impl Report {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }

    /// The verdict in one line.
    pub fn verdict(&self) -> String {
        match &self.outcome {
            Outcome::Passed => format!("PASS {}: every case matches the library", self.exercise),
            Outcome::NotDone => format!(
                "NOT DONE YET {}: the function still has `todo!()` in it; write its body and run the check again",
                self.exercise
            ),
            Outcome::Failed {
                case,
                problem,
                likely_mistake,
            } => {
                let mut line = format!("FAIL {} at case {case}: {problem}", self.exercise);
                if let Some(m) = likely_mistake {
                    line.push_str(&format!("\n  likely mistake: {m}"));
                }
                line
            }
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "  {line}")?;
        }
        write!(f, "{}", self.verdict())
    }
}

impl NotebookDisplay for Report {
    fn evcxr_display(&self) {
        emit("text/plain", &self.to_string());
        let (colour, background) = match self.outcome {
            Outcome::Passed => ("#1a7f37", "#e8f5e9"),
            Outcome::NotDone => ("#8a6d00", "#fff8e1"),
            Outcome::Failed { .. } => ("#b42318", "#fdecea"),
        };
        let cases: String = self
            .lines
            .iter()
            .map(|l| format!("<div>{}</div>", escape_html(l)))
            .collect();
        emit(
            "text/html",
            &format!(
                "<div style=\"font-family:monospace;font-size:12px\">{cases}\
                 <div style=\"margin-top:4px;padding:4px 8px;color:{colour};background:{background};\
                 font-weight:bold;white-space:pre-wrap\">{}</div></div>",
                escape_html(&self.verdict())
            ),
        );
    }
}

static STRICT: AtomicBool = AtomicBool::new(false);

/// From now on (in this kernel), a check that does not pass returns
/// [`Error::Exercise`] instead of its report: what a solution notebook wants, so that a
/// broken solution stops "Run All". A learner's notebook leaves it off.
pub fn strict(on: bool) {
    STRICT.store(on, Ordering::SeqCst);
}

/// The report, or in strict mode the error of a report that did not pass.
pub(crate) fn finish(report: Report) -> Result<Report> {
    if STRICT.load(Ordering::SeqCst) && !report.passed() {
        return Err(Error::Exercise {
            exercise: report.exercise.clone(),
            problem: report.verdict(),
        });
    }
    Ok(report)
}
