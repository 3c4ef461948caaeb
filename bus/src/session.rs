//! Opening a bus session: configuration, the default zenoh config, and local discovery.

use std::net::TcpListener;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use zenoh::Wait;

use crate::discovery::{self, LocatorFile, OpenLock};
use crate::encoding::write_json_str;
use crate::error::BusError;
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
    /// scouting) and local discovery is skipped.
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
    // Declared last so the file disappears after the session is closed.
    _locator_file: Option<LocatorFile>,
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
            let mut config = zenoh::Config::from_file(path)
                .map_err(|e| BusError::ZenohConfigFile { path: path.clone(), reason: e.to_string() })?;
            if !extra.is_empty() {
                let key = "connect/endpoints";
                config.insert_json5(key, &json_string_array(&extra)).map_err(config_err(key))?;
            }
            let session = zenoh::open(config)
                .wait()
                .map_err(|e| BusError::Open(format!("with config file {}: {e}", path.display())))?;
            return Ok(Self::assemble(session, &cfg.robot, Vec::new(), None));
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
                    return Ok(Self::assemble(session, &cfg.robot, locators, file));
                }
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "zenoh open failed; retrying with another port");
                    last_error = e.to_string();
                }
            }
        }
        Err(BusError::Open(last_error))
    }

    fn assemble(session: zenoh::Session, robot: &str, locators: Vec<String>, file: Option<LocatorFile>) -> Bus {
        Bus { session, robot: robot.to_string(), locators, next_entity: AtomicU64::new(0), _locator_file: file }
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

    /// A fresh 64-bit id for a publisher: a randomly keyed hash of (zid, counter, time, pid).
    pub(crate) fn new_source_id(&self) -> u64 {
        use std::hash::BuildHasher;
        let n = self.next_entity.fetch_add(1, Ordering::Relaxed);
        let id = std::collections::hash_map::RandomState::new().hash_one((
            self.zid(),
            n,
            crate::header::now_ns(),
            std::process::id(),
        ));
        id.max(1)
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
