//! Episode bookkeeping on a real arm, so a recorder and a teleop node see the same `episode` and
//! `task` topics as from the sim: the operator ends episodes (`command/episode`), a step limit ends
//! them too, and a pause between episodes lets a person reset the scene. A step is one published
//! `joint_state`; its `Step` event carries the same stamp.

use std::time::{Duration, Instant};

use bus::{EpisodeEvent, EpisodeEventKind, EpisodeRequest, Task};

/// Episode settings.
#[derive(Clone, Debug)]
pub struct EpisodeConfig {
    /// Steps per episode before it ends on its own (None: until the operator ends it).
    pub max_steps: Option<u64>,
    /// Pause between episodes for a person to reset the scene.
    pub reset_pause: Duration,
    /// Instruction published on `task` at every episode start.
    pub instruction: String,
    /// Scene name in events (`real` on hardware).
    pub scene: String,
    /// Stop after this many kept episodes.
    pub max_episodes: Option<u64>,
}

impl Default for EpisodeConfig {
    fn default() -> Self {
        EpisodeConfig {
            max_steps: None,
            reset_pause: Duration::from_secs(2),
            instruction: String::new(),
            scene: "real".into(),
            max_episodes: None,
        }
    }
}

/// What the episode tracker wants published this step.
#[derive(Debug, Default)]
pub struct EpisodeOutput {
    /// Task to publish (episode start).
    pub task: Option<Task>,
    /// Events to publish, in order.
    pub events: Vec<EpisodeEvent>,
    /// The node should stop.
    pub stop: bool,
}

/// Episode state machine.
#[derive(Debug)]
pub struct Episodes {
    cfg: EpisodeConfig,
    index: u64,
    step: Option<u64>,
    resume_at: Option<Instant>,
    kept: u64,
}

impl Episodes {
    /// Starts before episode 0 (it begins at the first step).
    pub fn new(cfg: EpisodeConfig) -> Episodes {
        Episodes { cfg, index: 0, step: None, resume_at: Some(Instant::now()), kept: 0 }
    }

    /// Episodes kept so far.
    pub fn kept(&self) -> u64 {
        self.kept
    }

    fn event(&self, kind: EpisodeEventKind, step: u64, stamp_ns: u64) -> EpisodeEvent {
        let mut e = EpisodeEvent {
            episode_index: self.index,
            seed: self.index,
            kind,
            step,
            scene: self.cfg.scene.clone(),
            ..Default::default()
        };
        e.header.stamp_ns = stamp_ns;
        e
    }

    /// Whether no episode is running (before the first, and between episodes).
    pub fn resetting(&self) -> bool {
        self.step.is_none()
    }

    /// Called for every published `joint_state` with its stamp, and with any operator request.
    /// A new episode starts once the reset pause is over and `ready` (the arm is in its start
    /// pose).
    pub fn on_step(
        &mut self,
        now: Instant,
        stamp_ns: u64,
        request: Option<EpisodeRequest>,
        ready: bool,
    ) -> EpisodeOutput {
        let mut out = EpisodeOutput::default();
        match self.step {
            None => {
                if request == Some(EpisodeRequest::Stop) {
                    out.stop = true;
                    return out;
                }
                if ready && self.resume_at.is_some_and(|t| now >= t) {
                    self.resume_at = None;
                    self.step = Some(0);
                    let mut task = Task {
                        instruction: self.cfg.instruction.clone(),
                        scene: self.cfg.scene.clone(),
                        ..Default::default()
                    };
                    task.header.stamp_ns = stamp_ns;
                    out.task = Some(task);
                    let start = self.event(EpisodeEventKind::Start, 0, stamp_ns);
                    tracing::info!(episode = start.episode_index, "episode started");
                    out.events.push(start);
                }
            }
            Some(step) => {
                let step = step + 1;
                self.step = Some(step);
                let limit = self.cfg.max_steps.is_some_and(|m| step >= m);
                let mut ev = self.event(EpisodeEventKind::Step, step, stamp_ns);
                ev.done = limit || request.is_some();
                out.events.push(ev.clone());
                if ev.done {
                    ev.kind = EpisodeEventKind::End;
                    ev.discarded = request == Some(EpisodeRequest::Rerecord);
                    // The index of the episode that ended, as its events carry it (the next
                    // episode's index is only taken below).
                    tracing::info!(episode = ev.episode_index, steps = step, ?request, "episode ended");
                    out.events.push(ev);
                    self.step = None;
                    self.resume_at = Some(now + self.cfg.reset_pause);
                    if request != Some(EpisodeRequest::Rerecord) {
                        self.kept += 1;
                        self.index += 1;
                    }
                    out.stop =
                        request == Some(EpisodeRequest::Stop) || self.cfg.max_episodes.is_some_and(|m| self.kept >= m);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `episode` field of every "episode started"/"episode ended" log line, in order.
    #[derive(Clone, Default)]
    struct LoggedEpisodes(std::sync::Arc<std::sync::Mutex<Vec<(String, u64)>>>);

    struct Fields {
        message: String,
        episode: Option<u64>,
    }

    impl tracing::field::Visit for Fields {
        fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
            if field.name() == "episode" {
                self.episode = Some(value);
            }
        }
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.message = format!("{value:?}");
            }
        }
    }

    impl tracing::Subscriber for LoggedEpisodes {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut f = Fields { message: String::new(), episode: None };
            event.record(&mut f);
            if let Some(episode) = f.episode {
                self.0.lock().unwrap_or_else(|p| p.into_inner()).push((f.message, episode));
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// Episode 0 ends on its step limit, episode 1 is re-recorded, then kept, and the node stops.
    /// Every start and end is logged with the index its events carry. (One test drives every
    /// call of these log sites: tracing caches each site's interest across threads, so a second
    /// test hitting them in parallel could hide them from the capture.)
    #[test]
    fn limit_request_rerecord_and_stop_log_the_published_index() {
        let cfg = EpisodeConfig {
            max_steps: Some(3),
            reset_pause: Duration::ZERO,
            max_episodes: Some(2),
            ..Default::default()
        };
        let logged = LoggedEpisodes::default();
        let published = tracing::subscriber::with_default(logged.clone(), || {
            let mut e = Episodes::new(cfg);
            let t = Instant::now();
            let kinds =
                |o: &EpisodeOutput| o.events.iter().map(|e| (e.kind, e.step, e.episode_index)).collect::<Vec<_>>();
            let mut outputs = Vec::new();
            let o = e.on_step(t, 1, None, true);
            assert!(o.task.is_some());
            assert_eq!(kinds(&o), [(EpisodeEventKind::Start, 0, 0)]);
            outputs.push(o);
            outputs.push(e.on_step(t, 2, None, true));
            outputs.push(e.on_step(t, 3, None, true));
            let o = e.on_step(t, 4, None, true);
            assert_eq!(kinds(&o), [(EpisodeEventKind::Step, 3, 0), (EpisodeEventKind::End, 3, 0)]);
            assert!(!o.stop);
            outputs.push(o);
            outputs.push(e.on_step(t, 5, None, true)); // episode 1 starts
            let o = e.on_step(t, 6, Some(EpisodeRequest::Rerecord), true);
            assert!(o.events[1].discarded);
            outputs.push(o);
            outputs.push(e.on_step(t, 7, None, true)); // episode 1 again
            let o = e.on_step(t, 8, Some(EpisodeRequest::EndEpisode), true);
            assert!(o.stop, "two kept episodes");
            assert_eq!(e.kept(), 2);
            outputs.push(o);
            outputs
                .iter()
                .flat_map(|o| &o.events)
                .filter(|ev| ev.kind != EpisodeEventKind::Step)
                .map(|ev| (format!("{:?}", ev.kind), ev.episode_index))
                .collect::<Vec<_>>()
        });
        let logged = logged.0.lock().expect("log").clone();
        let kind = |message: &str| if message.contains("started") { "Start" } else { "End" };
        let logged: Vec<(String, u64)> = logged.into_iter().map(|(m, ep)| (kind(&m).to_string(), ep)).collect();
        let expected: Vec<(String, u64)> =
            [("Start", 0), ("End", 0), ("Start", 1), ("End", 1), ("Start", 1), ("End", 1)]
                .into_iter()
                .map(|(k, ep)| (k.to_string(), ep))
                .collect();
        assert_eq!(published, expected, "published events");
        assert_eq!(logged, expected, "log lines");
    }
}
