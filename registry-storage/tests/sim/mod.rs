//! A seeded simulation of the registry core over the in-memory store: several replicas (each a
//! `Registry` with caches of its own, as separate processes would have) push images, reuse and
//! mount layers, move and delete tags, delete manifests and collect garbage, interleaved at every
//! storage call, crashing at any of them, on clocks skewed by up to [`MAX_SKEW`] while time
//! moves on in jumps. After the run it checks:
//!
//! 1. every acknowledged push whose tag no later operation touched still pulls: the tag names
//!    its manifest and every blob it reaches reads back (checked as the run goes, too);
//! 2. once every operation has ended, the grace period has passed and two collections have run,
//!    the store holds exactly what the remaining tags reach: nothing unreachable survives and
//!    nothing reachable went.
//!
//! The schedule (operations, interleaving, crashes, clock jumps) follows from the seed alone.
//! The core's own hash-map orders and upload ids vary between runs, so a failing seed replays the
//! same schedule; the order of the storage calls inside one operation may differ.

// `ops`: what replicas run; `checks`: the invariants; `stepped`: the storage they run on.
mod checks;
mod ops;
mod stepped;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use registry_core::clock::{Clock, ManualClock};
use registry_core::gc::{self, GcOptions};
use registry_core::{Digest, Error, Registry, RegistryConfig, RepositoryName, Tag};
use registry_storage::MemoryStorage;

use ops::{Op, Pushed, Running, push};
pub use stepped::Planted;
use stepped::Stepped;

/// The grace period of every collection.
pub const GRACE: Duration = Duration::from_secs(600);
/// How far a replica's clock may be from the store's, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(20);
/// How often a replica marks a blob it reuses, at most.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// The longest clock jump between two steps.
const MAX_JUMP: Duration = Duration::from_secs(120);
/// Time no operation may outlive: the grace period must exceed the longest push, the in-use
/// mark interval and the skew, so the simulator keeps its operations within this.
const LONGEST_OPERATION: Duration = Duration::from_secs(300);

/// When every simulation starts, in seconds since the Unix epoch.
const START_SECS: u64 = 1_700_000_000;
const REPLICAS: usize = 3;
const MAX_IN_FLIGHT: usize = 4;
const REPOSITORIES: [&str; 3] = ["sim/a", "sim/b", "sim/c"];
const TAGS: [&str; 3] = ["t0", "t1", "t2"];
const CONFIGS: u64 = 2;
const LAYERS: u64 = 3;

/// A small, seeded generator (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A replica's clock: the store's, off by a fixed skew.
#[derive(Debug)]
struct Skewed {
    base: ManualClock,
    skew: Duration,
    ahead: bool,
}

impl Clock for Skewed {
    fn now(&self) -> SystemTime {
        match self.ahead {
            true => self.base.now() + self.skew,
            false => self.base.now() - self.skew,
        }
    }

    fn instant(&self) -> std::time::Instant {
        self.base.instant()
    }
}

struct Task {
    replica: usize,
    op: Op,
    started: SystemTime,
    /// Another operation that may change the same tag ran at the same time: which write lands
    /// last is then not what the order of acknowledgements says.
    raced: bool,
    /// Who goes first: the world polls the task of highest priority, and now and then lowers
    /// the priority of the one it polled, so that operations run in long stretches broken at
    /// random calls (probabilistic concurrency testing), which finds races of several steps that
    /// switching at every call almost never lines up.
    priority: u64,
    future: Running,
}

/// A push that was acknowledged, and whether a later operation may have changed its tag.
#[derive(Debug)]
struct Ack {
    at: (usize, usize),
    pushed: Pushed,
    touched: bool,
}

/// What a run did, for the test's report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub steps: u64,
    pub acknowledged: u64,
    pub failed: u64,
    pub crashes: u64,
    pub collections: u64,
    pub collections_stopped: u64,
    /// Simulated seconds that passed.
    pub seconds: u64,
}

/// The world one seed runs: the store, its clock, the replicas and what is in flight.
pub struct World {
    rng: Rng,
    store: MemoryStorage,
    clock: ManualClock,
    planted: Planted,
    replicas: Vec<Registry>,
    tasks: Vec<Task>,
    acks: Vec<Ack>,
    pushed: Vec<(usize, Digest)>,
    /// Manifests a delete was started for (it may have removed them even if it crashed): an
    /// index still tagged may name one (as with distribution, deleting a child leaves its index
    /// incomplete).
    deleted: BTreeSet<(usize, Digest)>,
    stats: Stats,
}

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(START_SECS)
}

fn repository(i: usize) -> RepositoryName {
    REPOSITORIES[i].parse().expect("a valid name")
}

fn tag(i: usize) -> Tag {
    TAGS[i].parse().expect("a valid tag")
}

fn options() -> GcOptions {
    GcOptions {
        grace: GRACE,
        delete_untagged: true,
        history: Duration::ZERO,
        upload_max_age: GRACE,
        ..GcOptions::default()
    }
}

/// Polls `future` once; its waker does nothing, as the world polls whom it chooses.
fn poll_once<T>(future: &mut Pin<Box<dyn Future<Output = T>>>) -> Poll<T> {
    let waker = futures::task::noop_waker();
    future.as_mut().poll(&mut Context::from_waker(&waker))
}

impl World {
    /// A world for `seed`, with `planted` in its store.
    pub fn new(seed: u64, planted: Planted) -> World {
        let clock = ManualClock::new(start());
        let store = MemoryStorage::new().with_clock(Arc::new(clock.clone()));
        let mut world = World {
            rng: Rng::new(seed),
            store,
            clock,
            planted,
            replicas: Vec::new(),
            tasks: Vec::new(),
            acks: Vec::new(),
            pushed: Vec::new(),
            deleted: BTreeSet::new(),
            stats: Stats::default(),
        };
        world.replicas = (0..REPLICAS).map(|i| world.replica(i)).collect();
        world
    }

    /// A new process over the store: empty caches, a clock of its own skew.
    fn replica(&mut self, id: usize) -> Registry {
        let storage = Stepped {
            inner: Arc::new(self.store.clone()),
            planted: self.planted,
            replica: id,
        };
        let skew = Duration::from_secs(self.rng.below(MAX_SKEW.as_secs() + 1));
        let clock = Skewed {
            base: self.clock.clone(),
            skew,
            ahead: self.rng.below(2) == 0,
        };
        Registry::new(
            Arc::new(storage),
            RegistryConfig {
                clock: Arc::new(clock),
                touch_interval: Some(TOUCH_INTERVAL),
                ..RegistryConfig::default()
            },
        )
    }

    /// Runs `steps` steps, then ends every operation and collects twice past the grace period;
    /// `Err` names the first invariant broken.
    pub fn run(mut self, steps: u64) -> Result<Stats, String> {
        for step in 0..steps {
            self.stats.steps = step + 1;
            match self.rng.below(100) {
                0..=34 if self.tasks.len() < MAX_IN_FLIGHT => self.start(),
                35..=86 if !self.tasks.is_empty() => self.poll_first()?,
                87..=90 => self.crash(),
                91..=99 => self.jump(),
                _ => self.start(),
            }
            if step % 16 == 0 {
                self.check_acks()?;
            }
        }
        self.settle()?;
        self.check_acks()?;
        self.stats.seconds = self
            .clock
            .now()
            .duration_since(start())
            .unwrap_or_default()
            .as_secs();
        self.clock
            .advance(GRACE + MAX_SKEW + Duration::from_secs(1));
        for _ in 0..2 {
            let r = self.replicas[0].clone();
            futures::executor::block_on(gc::collect(&r, &options()))
                .map_err(|e| format!("final collection failed: {e}"))?;
        }
        self.check_store()?;
        Ok(self.stats)
    }

    fn trace(&self, what: &str) {
        if std::env::var("SIM_TRACE").is_ok() {
            let t = self
                .clock
                .now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                - 1_700_000_000;
            eprintln!("{:>6} t={t:>6} {what}", self.stats.steps);
        }
    }

    /// Starts an operation on a random replica.
    fn start(&mut self) {
        let replica = self.rng.below(REPLICAS as u64) as usize;
        let op = match self.rng.below(20) {
            0..=9 => {
                // One image in three pushes is an index of two.
                let platforms = if self.rng.below(3) == 0 { 2 } else { 1 };
                let images = (0..platforms)
                    .map(|_| {
                        let count = 1 + self.rng.below(2);
                        let layers = (0..count).map(|_| self.rng.below(LAYERS)).collect();
                        (self.rng.below(CONFIGS), layers)
                    })
                    .collect();
                Op::Push {
                    repo: self.rng.below(REPOSITORIES.len() as u64) as usize,
                    tag: self.rng.below(TAGS.len() as u64) as usize,
                    images,
                }
            }
            10..=12 => Op::DeleteTag {
                repo: self.rng.below(REPOSITORIES.len() as u64) as usize,
                tag: self.rng.below(TAGS.len() as u64) as usize,
            },
            13..=14 if !self.pushed.is_empty() => {
                let (repo, digest) = self.rng.pick(&self.pushed).clone();
                Op::DeleteManifest { repo, digest }
            }
            _ => Op::Collect {
                full: self.rng.below(3) == 0,
            },
        };
        for ack in &mut self.acks {
            ack.touched |= op.touches(ack.at);
        }
        if let Op::DeleteManifest { repo, digest } = &op {
            self.deleted.insert((*repo, digest.clone()));
        }
        let mut raced = false;
        for task in &mut self.tasks {
            let mine = op.pushes().is_some_and(|at| task.op.touches(at));
            let theirs = task.op.pushes().is_some_and(|at| op.touches(at));
            if mine || theirs {
                task.raced = true;
                raced = true;
            }
        }
        let r = self.replicas[replica].clone();
        let future: Running = match op.clone() {
            Op::Push {
                repo,
                tag: t,
                images,
            } => {
                let from = (repo + 1 + self.rng.below(2) as usize) % REPOSITORIES.len();
                Box::pin(push(r, repository(repo), repository(from), tag(t), images))
            }
            Op::DeleteTag { repo, tag: t } => Box::pin(async move {
                r.delete_tag(&repository(repo), &tag(t))
                    .await
                    .map(|()| None)
            }),
            Op::DeleteManifest { repo, digest } => Box::pin(async move {
                r.delete_manifest(&repository(repo), &digest)
                    .await
                    .map(|()| None)
            }),
            Op::Collect { full } => {
                let options = GcOptions { full, ..options() };
                Box::pin(async move { gc::collect(&r, &options).await.map(|_| None) })
            }
        };
        self.trace(&format!("start {replica} {op:?}"));
        self.tasks.push(Task {
            replica,
            op,
            started: self.clock.now(),
            raced,
            priority: self.rng.next(),
            future,
        });
    }

    /// Polls the task of highest priority; one poll in 128, lowers its priority below every
    /// task started so far.
    fn poll_first(&mut self) -> Result<(), String> {
        let Some(i) = (0..self.tasks.len()).max_by_key(|&i| self.tasks[i].priority) else {
            return Ok(());
        };
        if self.rng.below(128) == 0 {
            self.tasks[i].priority = self.rng.below(1 << 16);
        }
        self.poll(i)
    }

    /// Lets task `i` go on to its next storage call; records what it did once it ends.
    fn poll(&mut self, i: usize) -> Result<(), String> {
        let Poll::Ready(outcome) = poll_once(&mut self.tasks[i].future) else {
            return Ok(());
        };
        let task = self.tasks.swap_remove(i);
        self.trace(&format!(
            "end {} {:?}: {:?}",
            task.replica,
            task.op,
            outcome
                .as_ref()
                .map(|o| o.as_ref().map(|p| p.manifest.clone()))
        ));
        match (outcome, &task.op) {
            (Ok(Some(pushed)), Op::Push { repo, tag, .. }) => {
                self.stats.acknowledged += 1;
                let at = (*repo, *tag);
                self.pushed.push((*repo, pushed.manifest.clone()));
                self.pushed
                    .extend(pushed.children.iter().map(|c| (*repo, c.clone())));
                self.acks.push(Ack {
                    at,
                    pushed,
                    touched: task.raced,
                });
            }
            (Ok(_), Op::Collect { .. }) => self.stats.collections += 1,
            (Ok(_), _) => {}
            // A collection that meets a manifest deleted under it stops, safely; the final
            // collections must succeed.
            (Err(_), Op::Collect { .. }) => self.stats.collections_stopped += 1,
            (Err(e), op) => {
                self.stats.failed += 1;
                if matches!(e, Error::Storage(_)) {
                    return Err(format!("{op:?} failed in storage: {e}"));
                }
            }
        }
        Ok(())
    }

    /// A replica dies at whatever storage call each of its operations waits at; a new process
    /// takes its place.
    fn crash(&mut self) {
        let replica = self.rng.below(REPLICAS as u64) as usize;
        self.trace(&format!("crash {replica}"));
        self.tasks.retain(|t| t.replica != replica);
        self.replicas[replica] = self.replica(replica);
        self.stats.crashes += 1;
    }

    /// Moves time on, unless an operation would then have run longer than any may.
    fn jump(&mut self) {
        let jump = Duration::from_secs(self.rng.below(MAX_JUMP.as_secs() + 1));
        let now = self.clock.now();
        let oldest = self
            .tasks
            .iter()
            .filter(|t| !matches!(t.op, Op::Collect { .. }))
            .map(|t| now.duration_since(t.started).unwrap_or_default())
            .max()
            .unwrap_or_default();
        if oldest + jump < LONGEST_OPERATION {
            self.clock.advance(jump);
            self.trace(&format!("jump {jump:?}"));
        }
    }

    /// Runs every operation still in flight to its end, in a seeded order.
    fn settle(&mut self) -> Result<(), String> {
        let mut polls = 0u64;
        while !self.tasks.is_empty() {
            let i = self.rng.below(self.tasks.len() as u64) as usize;
            self.poll(i)?;
            polls += 1;
            if polls > 1_000_000 {
                return Err("operations never ended (a deadlock?)".into());
            }
        }
        Ok(())
    }
}
