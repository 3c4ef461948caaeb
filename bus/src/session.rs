//! Opening a bus session: configuration, the default zenoh config, and local discovery.
//!
//! Sessions opened from the same zenoh config file (and extra endpoints) in one process share one
//! zenoh session: a config that listens on a fixed endpoint (the robot-host profile) can only bind
//! it once, and every node `armstack launch` starts opens its own [`Bus`].

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use zenoh::Wait;

use crate::discovery::{self, LocatorFile, OpenLock};
use crate::encoding::write_json_str;
use crate::error::BusError;
use crate::exposure;
use crate::topics::{self, validate_robot_name, DEFAULT_ROBOT};

/// Environment variable naming the robot (key segment after `armstack/`).
pub const ENV_ROBOT: &str = "ARMSTACK_ROBOT";
/// Environment variable naming a zenoh JSON5 config file.
pub const ENV_ZENOH_CONFIG: &str = "ARMSTACK_ZENOH_CONFIG";
/// Environment variable naming the local-discovery directory.
pub const ENV_BUS_DIR: &str = "ARMSTACK_BUS_DIR";

/// How many times to retry opening when the pre-picked listen port was taken meanwhile.
const LISTEN_ATTEMPTS: usize = 3;

/// How to open a [`Bus`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Robot name: the `<robot>` in `armstack/<robot>/<topic>`.
    pub robot: String,
    /// A zenoh JSON5 config file. When set, it decides everything (mode, listen, connect,
    /// scouting, login, access control) and local discovery is skipped. A file that listens beyond
    /// loopback without a login and access control is refused (see [`crate::exposure`]).
    pub zenoh_config: Option<PathBuf>,
    /// Local-discovery directory (see [`crate::discovery`]); `None` means isolated: the session
    /// neither announces itself nor finds others (it can still be given endpoints explicitly).
    pub discovery_dir: Option<PathBuf>,
}

impl Default for BusConfig {
    /// Robot `arm0`, built-in zenoh config, isolated (no discovery directory).
    fn default() -> Self {
        Self { robot: DEFAULT_ROBOT.to_string(), zenoh_config: None, discovery_dir: None }
    }
}

impl BusConfig {
    /// From the environment: robot from `ARMSTACK_ROBOT` (else `arm0`), zenoh config file from
    /// `ARMSTACK_ZENOH_CONFIG`, discovery directory from `ARMSTACK_BUS_DIR` (else
    /// `$XDG_RUNTIME_DIR/armstack-bus`, else `/tmp/armstack-bus-<uid>`).
    pub fn from_env() -> Self {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            robot: std::env::var(ENV_ROBOT).ok().filter(|r| !r.is_empty()).unwrap_or_else(|| DEFAULT_ROBOT.to_string()),
            zenoh_config: non_empty(ENV_ZENOH_CONFIG).map(PathBuf::from),
            discovery_dir: Some(non_empty(ENV_BUS_DIR).map(PathBuf::from).unwrap_or_else(discovery::default_dir)),
        }
    }

    /// Isolated config for `robot` with local discovery in `dir` (handy in tests).
    pub fn with_discovery_dir(robot: &str, dir: impl Into<PathBuf>) -> Self {
        Self { robot: robot.to_string(), zenoh_config: None, discovery_dir: Some(dir.into()) }
    }
}

/// An open bus session for one robot. Cheap to share by reference across threads; publishers
/// and subscribers are created from it. Dropping it closes the session and removes its locator
/// file.
pub struct Bus {
    pub(crate) session: zenoh::Session,
    robot: String,
    locators: Vec<String>,
    next_entity: AtomicU64,
    /// Set when the zenoh session is shared with other [`Bus`]es opened from the same config file.
    shared_key: Option<SharedKey>,
    // Declared last so the file disappears after the session is closed.
    _locator_file: Option<LocatorFile>,
}

/// What makes two config-file sessions the same: the file (canonical path) and the extra
/// endpoints they connect to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SharedKey {
    config: PathBuf,
    connect: Vec<String>,
}

/// A zenoh session opened from a config file and the number of [`Bus`]es using it.
struct SharedSession {
    session: zenoh::Session,
    users: usize,
}

/// The config-file sessions open in this process.
static SHARED_SESSIONS: Mutex<Option<HashMap<SharedKey, SharedSession>>> = Mutex::new(None);

fn shared_sessions() -> MutexGuard<'static, Option<HashMap<SharedKey, SharedSession>>> {
    // The map stays consistent even if a holder panicked: every update is a single insert/remove.
    SHARED_SESSIONS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for Bus {
    /// The last [`Bus`] of a shared session closes it while holding the registry, so a session
    /// opened from the same file right after finds its listen endpoint free.
    fn drop(&mut self) {
        let Some(key) = self.shared_key.take() else { return };
        let mut registry = shared_sessions();
        let Some(map) = registry.as_mut() else { return };
        let last = match map.get_mut(&key) {
            Some(entry) => {
                entry.users = entry.users.saturating_sub(1);
                entry.users == 0
            }
            None => false,
        };
        if last {
            map.remove(&key);
            if let Err(e) = self.session.close().wait() {
                tracing::warn!(config = %key.config.display(), error = %e, "closing the zenoh session failed");
            }
        }
    }
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("robot", &self.robot)
            .field("zid", &self.zid())
            .field("locators", &self.locators)
            .finish()
    }
}

fn config_err(key: &str) -> impl FnOnce(zenoh::Error) -> BusError + '_ {
    move |e| BusError::ZenohConfig { key: key.to_string(), reason: e.to_string() }
}

/// JSON array of strings.
fn json_string_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(item, &mut out);
    }
    out.push(']');
    out
}

/// Keeps the endpoints zenoh can parse; warns about the rest.
fn valid_endpoints(candidates: Vec<String>) -> Vec<String> {
    candidates
        .into_iter()
        .filter(|ep| match zenoh::config::EndPoint::from_str(ep) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(endpoint = %ep, error = %e, "ignoring unparsable endpoint");
                false
            }
        })
        .collect()
}

/// A free loopback TCP port, found by binding port 0 and releasing it.
fn free_loopback_port() -> Result<u16, BusError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| BusError::Open(format!("cannot find a free loopback TCP port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BusError::Open(format!("cannot read the probe socket's port: {e}")))
}

/// The built-in config: peer mode, listen on `listen`, connect to `connect`, no scouting, and
/// connection attempts that never block or fail the open (one try each, failures only logged).
fn default_zenoh_config(listen: &str, connect: &[String]) -> Result<zenoh::Config, BusError> {
    let mut config = zenoh::Config::default();
    let settings: [(&str, String); 8] = [
        ("mode", "\"peer\"".to_string()),
        ("listen/endpoints", json_string_array(&[listen.to_string()])),
        ("scouting/multicast/enabled", "false".to_string()),
        ("scouting/gossip/enabled", "false".to_string()),
        ("connect/endpoints", json_string_array(connect)),
        // One immediate attempt per endpoint; a dead endpoint costs one refused connection.
        ("connect/timeout_ms", "0".to_string()),
        ("connect/exit_on_failure", "false".to_string()),
        ("listen/exit_on_failure", "true".to_string()),
    ];
    for (key, value) in &settings {
        config.insert_json5(key, value).map_err(config_err(key))?;
    }
    Ok(config)
}

impl Bus {
    /// Opens a session as described by `cfg` (see [`BusConfig`] and [`crate::discovery`]).
    pub fn open(cfg: &BusConfig) -> Result<Bus, BusError> {
        Self::open_with_endpoints(cfg, &[])
    }

    /// Like [`Bus::open`], additionally connecting to `endpoints` (zenoh locators such as
    /// `tcp/127.0.0.1:7447`). With a user zenoh config file these replace its `connect/endpoints`.
    pub fn open_with_endpoints(cfg: &BusConfig, endpoints: &[String]) -> Result<Bus, BusError> {
        validate_robot_name(&cfg.robot)?;
        let extra = valid_endpoints(endpoints.to_vec());
        if let Some(path) = &cfg.zenoh_config {
            return Self::open_config_file(&cfg.robot, path, extra);
        }

        // Serialise "read peers → open → announce" with other openers on this host.
        let _lock = match &cfg.discovery_dir {
            Some(dir) => {
                discovery::ensure_dir(dir)?;
                OpenLock::acquire(dir)
            }
            None => None,
        };
        let mut connect = match &cfg.discovery_dir {
            Some(dir) => valid_endpoints(discovery::discover_peers(dir)?),
            None => Vec::new(),
        };
        connect.extend(extra);
        connect.sort();
        connect.dedup();

        let mut last_error = String::new();
        for attempt in 1..=LISTEN_ATTEMPTS {
            let listen = format!("tcp/127.0.0.1:{}", free_loopback_port()?);
            let config = default_zenoh_config(&listen, &connect)?;
            match zenoh::open(config).wait() {
                Ok(session) => {
                    let locators = vec![listen];
                    let file = match &cfg.discovery_dir {
                        Some(dir) => Some(LocatorFile::publish(dir, &session.zid().to_string(), &locators)?),
                        None => None,
                    };
                    tracing::debug!(robot = %cfg.robot, zid = %session.zid(), ?locators, peers = ?connect, "bus session open");
                    return Ok(Self::assemble(session, &cfg.robot, locators, file, None));
                }
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "zenoh open failed; retrying with another port");
                    last_error = e.to_string();
                }
            }
        }
        Err(BusError::Open(last_error))
    }

    /// Opens (or joins, see the module documentation) the session of the zenoh config file
    /// `path`, connecting to `extra` endpoints instead of the file's when any are given.
    fn open_config_file(robot: &str, path: &Path, extra: Vec<String>) -> Result<Bus, BusError> {
        let key =
            SharedKey { config: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()), connect: extra };
        let mut registry = shared_sessions();
        let map = registry.get_or_insert_with(HashMap::new);
        if let Some(entry) = map.get_mut(&key) {
            entry.users += 1;
            let session = entry.session.clone();
            return Ok(Self::assemble(session, robot, Vec::new(), None, Some(key)));
        }
        let mut config = zenoh::Config::from_file(path)
            .map_err(|e| BusError::ZenohConfigFile { path: path.to_path_buf(), reason: e.to_string() })?;
        if !key.connect.is_empty() {
            let name = "connect/endpoints";
            config.insert_json5(name, &json_string_array(&key.connect)).map_err(config_err(name))?;
        }
        exposure::check_config(&config, path)?;
        let logs_in = config.get_json("transport/auth/usrpwd/user").is_ok_and(|user| user != "null");
        let session = zenoh::open(config).wait().map_err(|e| {
            // A host that refuses the login closes the connection like an unreachable one.
            let hint = if logs_in {
                " (is the endpoint reachable, and the user name and password in its credentials file?)"
            } else {
                ""
            };
            BusError::Open(format!("with config file {}: {e}{hint}", path.display()))
        })?;
        tracing::debug!(robot, zid = %session.zid(), config = %path.display(), "bus session open");
        map.insert(key.clone(), SharedSession { session: session.clone(), users: 1 });
        Ok(Self::assemble(session, robot, Vec::new(), None, Some(key)))
    }

    fn assemble(
        session: zenoh::Session,
        robot: &str,
        locators: Vec<String>,
        file: Option<LocatorFile>,
        shared_key: Option<SharedKey>,
    ) -> Bus {
        Bus {
            session,
            robot: robot.to_string(),
            locators,
            next_entity: AtomicU64::new(0),
            shared_key,
            _locator_file: file,
        }
    }

    /// The robot name of this session.
    pub fn robot(&self) -> &str {
        &self.robot
    }

    /// Full key expression of `topic` on this robot: `armstack/<robot>/<topic>`.
    pub fn key(&self, topic: &str) -> String {
        topics::key(&self.robot, topic)
    }

    /// This session's zenoh id (hex).
    pub fn zid(&self) -> String {
        self.session.zid().to_string()
    }

    /// Locators this session listens on (e.g. `tcp/127.0.0.1:40123`); empty when a user zenoh
    /// config file decides the listeners.
    pub fn listen_locators(&self) -> &[String] {
        &self.locators
    }

    /// A fresh 64-bit id for a publisher: a randomly keyed hash of (zid, counter, time, pid),
    /// remembered as one of this process's ([`is_local_source`]).
    pub(crate) fn new_source_id(&self) -> u64 {
        use std::hash::BuildHasher;
        let n = self.next_entity.fetch_add(1, Ordering::Relaxed);
        let id = std::collections::hash_map::RandomState::new()
            .hash_one((self.zid(), n, crate::header::now_ns(), std::process::id()))
            .max(1);
        local_sources().lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        id
    }

    /// Puts `payload` on the full key expression `key_expr` without encoding (tooling, tests).
    pub fn put_raw(&self, key_expr: &str, payload: Vec<u8>) -> Result<(), BusError> {
        self.session.put(key_expr, zenoh::bytes::ZBytes::from(payload)).wait().map_err(|e| BusError::Zenoh {
            op: "put",
            key: key_expr.to_string(),
            reason: e.to_string(),
        })
    }
}

/// The `source_id`s of every publisher this process created (one entry per publisher).
fn local_sources() -> &'static std::sync::Mutex<std::collections::HashSet<u64>> {
    static SOURCES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<u64>>> = std::sync::OnceLock::new();
    SOURCES.get_or_init(Default::default)
}

/// Whether `source_id` (a message's `header.source_id`) belongs to a publisher created by this
/// process. A supervisor uses it to act only on its own nodes' `status`: any peer on the bus can
/// publish a `status` naming any node, but not with a source id this process handed out (ids are
/// random 64-bit values; a peer that copies one it received is only kept out by access control).
pub fn is_local_source(source_id: u64) -> bool {
    local_sources().lock().unwrap_or_else(|p| p.into_inner()).contains(&source_id)
}
