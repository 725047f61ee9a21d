//! The progress line on stderr (only on a terminal, never with `--quiet`):
//! position in the input with an ETA when its size is known, records per
//! second, what the domains in flight wait on, and counts per verdict.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::tally::Tally;

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// `total`: input size in bytes, when known.
    pub fn new(enabled: bool, total: Option<u64>) -> Progress {
        let bar = enabled.then(|| {
            let target = ProgressDrawTarget::stderr_with_hz(4);
            let bar = match total {
                Some(n) => {
                    let b = ProgressBar::with_draw_target(Some(n), target);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{elapsed_precise} [{bar:20}] {percent:>3}% ETA {eta} {wide_msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b
                }
                None => {
                    let b = ProgressBar::with_draw_target(None, target);
                    b.set_style(
                        ProgressStyle::with_template("{spinner} {elapsed_precise} {wide_msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    b
                }
            };
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    pub fn update(&self, bytes: u64, tally: &Tally, in_flight: usize) {
        let Some(bar) = &self.bar else { return };
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        bar.set_position(bytes);
        bar.set_message(format!(
            "{} done, {:.0}/s, {in_flight} in flight ({}) | {}",
            tally.records,
            tally.records as f64 / secs,
            crate::collect::waiting::summary(),
            tally.verdict_counts()
        ));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
