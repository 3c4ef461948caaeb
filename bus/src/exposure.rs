//! Refusing a zenoh config file that lets unauthenticated peers command the arm.
//!
//! A session whose config listens beyond loopback (any listen endpoint whose host is not
//! `127.0.0.0/8`, `::1` or `localhost`, or zenoh's default `tcp/[::]:0` of a peer that lists
//! none) must require a login (`transport.auth.usrpwd.dictionary_file`) and enable access control
//! (`access_control.enabled`, with a default of deny or at least one deny rule); it must not
//! listen on a multicast address, whose transports zenoh's access control does not filter.
//! Otherwise [`check_config`] refuses it, unless the file opts out explicitly with
//! `metadata: { armstack_allow_unauthenticated: true }` (then it only warns).
//!
//! Clients and peers that listen on nothing (they only connect out) are never refused: the host
//! they connect to decides who may talk to them. The shipped profiles are in `config/zenoh/` at
//! the workspace root.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use ciborium::Value;

use crate::error::BusError;

/// The `metadata` key of a zenoh config file that accepts an unauthenticated, network-reachable
/// session (a lab behind its own firewall): the open then only warns.
pub const ALLOW_UNAUTHENTICATED_KEY: &str = "armstack_allow_unauthenticated";

/// Listen endpoints of each mode when a config file lists none (zenoh's defaults).
fn default_listen(mode: &str) -> Vec<String> {
    match mode {
        "router" => vec!["tcp/[::]:7447".to_string()],
        "client" => Vec::new(),
        _ => vec!["tcp/[::]:0".to_string()],
    }
}

/// Follows `path` through nested CBOR maps with text keys.
fn lookup<'a>(tree: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(tree, |node, key| node.as_map()?.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v))
}

/// Text items of a CBOR array (other items are skipped).
fn texts(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|v| v.as_text().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The endpoints the session of `mode` listens on: `listen.endpoints` is either one list or a map
/// from mode to list.
fn listen_endpoints(tree: &Value, mode: &str) -> Vec<String> {
    match lookup(tree, &["listen", "endpoints"]) {
        None | Some(Value::Null) => default_listen(mode),
        Some(Value::Map(_)) => match lookup(tree, &["listen", "endpoints", mode]) {
            None | Some(Value::Null) => Vec::new(),
            Some(list) => texts(list),
        },
        Some(list) => texts(list),
    }
}

/// The host part of a locator address: `127.0.0.1:7447` → `127.0.0.1`, `[::1]:7447` → `::1`.
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(host, _port)| host)
}

/// Where a listen endpoint can be reached from.
#[derive(Debug, PartialEq, Eq)]
enum Reach {
    /// This host only (loopback address, or a Unix socket guarded by file permissions).
    Local,
    /// Other hosts over unicast.
    Network,
    /// A multicast group: zenoh's access control does not filter multicast transports.
    Multicast,
}

fn reach(endpoint: &str) -> Reach {
    let Ok(parsed) = zenoh::config::EndPoint::from_str(endpoint) else {
        return Reach::Network;
    };
    let protocol = parsed.protocol();
    if matches!(protocol.as_str(), "unixsock-stream" | "unixpipe") {
        return Reach::Local;
    }
    let address = parsed.address();
    let host = host_of(address.as_str());
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Reach::Local,
        Ok(ip) if ip.is_multicast() => Reach::Multicast,
        Ok(_) => Reach::Network,
        Err(_) if host.eq_ignore_ascii_case("localhost") => Reach::Local,
        Err(_) => Reach::Network,
    }
}

/// What is missing for a network-reachable session, one sentence per problem.
fn problems(tree: &Value, reachable: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for ep in reachable.iter().filter(|ep| reach(ep) == Reach::Multicast) {
        found.push(format!("it listens on the multicast endpoint {ep}, which access control does not filter"));
    }
    let dictionary = lookup(tree, &["transport", "auth", "usrpwd", "dictionary_file"]).and_then(Value::as_text);
    if dictionary.is_none_or(|d| d.trim().is_empty()) {
        found.push(
            "no credentials file (transport.auth.usrpwd.dictionary_file): any host that reaches it can connect"
                .to_string(),
        );
    }
    let acl_on = lookup(tree, &["access_control", "enabled"]).and_then(Value::as_bool).unwrap_or(false);
    if !acl_on {
        found.push(
            "access control is off (access_control.enabled): every connected peer may publish commands and e-stops"
                .to_string(),
        );
    } else {
        let default_deny = lookup(tree, &["access_control", "default_permission"])
            .and_then(Value::as_text)
            .is_none_or(|p| p.eq_ignore_ascii_case("deny"));
        let any_deny_rule = lookup(tree, &["access_control", "rules"]).and_then(Value::as_array).is_some_and(|rules| {
            rules.iter().any(|rule| lookup(rule, &["permission"]).and_then(Value::as_text) == Some("deny"))
        });
        if !default_deny && !any_deny_rule {
            found.push("access control allows everything (default_permission \"allow\" and no deny rule)".to_string());
        }
    }
    found
}

/// Checks that the session `config` (loaded from `path`) does not let unauthenticated or
/// unrestricted peers in from the network (see the module documentation). Warns, without
/// refusing, when the file holds a password or names a credentials file that other users can read.
pub(crate) fn check_config(config: &zenoh::Config, path: &Path) -> Result<(), BusError> {
    let tree = Value::serialized(config).map_err(|e| BusError::ZenohConfigFile {
        path: path.to_path_buf(),
        reason: format!("cannot inspect the loaded config: {e}"),
    })?;
    warn_if_secrets_readable(&tree, path);
    let mode = lookup(&tree, &["mode"]).and_then(Value::as_text).unwrap_or("peer").to_ascii_lowercase();
    let reachable: Vec<String> =
        listen_endpoints(&tree, &mode).into_iter().filter(|ep| reach(ep) != Reach::Local).collect();
    if reachable.is_empty() {
        return Ok(());
    }
    let found = problems(&tree, &reachable);
    if found.is_empty() {
        return Ok(());
    }
    let opted_out = lookup(&tree, &["metadata", ALLOW_UNAUTHENTICATED_KEY]).and_then(Value::as_bool) == Some(true);
    if opted_out {
        tracing::warn!(
            config = %path.display(),
            endpoints = ?reachable,
            problems = %found.join("; "),
            "session reachable from the network without protection ({ALLOW_UNAUTHENTICATED_KEY} is set)"
        );
        return Ok(());
    }
    Err(BusError::UnprotectedConfig { path: path.to_path_buf(), endpoints: reachable, problems: found })
}

/// Warns when the config file holds a password, or names a credentials file, that users other
/// than the owner can read.
fn warn_if_secrets_readable(tree: &Value, path: &Path) {
    if lookup(tree, &["transport", "auth", "usrpwd", "password"]).and_then(Value::as_text).is_some() {
        warn_if_readable_by_others(path, "zenoh config file holding a password");
    }
    if let Some(dictionary) = lookup(tree, &["transport", "auth", "usrpwd", "dictionary_file"]).and_then(Value::as_text)
    {
        warn_if_readable_by_others(Path::new(dictionary), "zenoh credentials file");
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(file = %path.display(), mode = format!("{:o}", mode & 0o777), "{what} is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _what: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shipped profile in `config/zenoh/` at the workspace root.
    fn shipped(name: &str) -> (std::path::PathBuf, zenoh::Config) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/zenoh").join(name);
        let config = zenoh::Config::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (path, config)
    }

    fn from_json5(text: &str) -> zenoh::Config {
        zenoh::Config::from_json5(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn shipped_profiles_pass() {
        for name in ["robot-host.json5", "operator.json5", "viewer.json5"] {
            let (path, config) = shipped(name);
            check_config(&config, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn robot_host_profile_without_login_or_access_control_is_refused() {
        let (path, mut config) = shipped("robot-host.json5");
        config.insert_json5("access_control/enabled", "false").unwrap();
        let err = check_config(&config, &path).unwrap_err().to_string();
        assert!(err.contains("access control is off") && err.contains("tcp/0.0.0.0:7447"), "{err}");
        assert!(!err.contains("credentials file"), "{err}");

        config.insert_json5("transport/auth/usrpwd/dictionary_file", "null").unwrap();
        let err = check_config(&config, &path).unwrap_err().to_string();
        assert!(err.contains("no credentials file") && err.contains("robot-host.json5"), "{err}");
        assert!(err.contains(ALLOW_UNAUTHENTICATED_KEY), "the error names the opt-out: {err}");

        config.insert_json5("metadata", &format!("{{ {ALLOW_UNAUTHENTICATED_KEY}: true }}")).unwrap();
        check_config(&config, &path).expect("explicit opt-out");
    }

    #[test]
    fn access_control_that_allows_everything_is_refused() {
        let config = from_json5(
            r#"{ mode: "peer", listen: { endpoints: ["tcp/192.0.2.1:7447"] },
                 transport: { auth: { usrpwd: { dictionary_file: "/nonexistent/users.txt" } } },
                 access_control: { enabled: true, default_permission: "allow", rules: [], subjects: [], policies: [] } }"#,
        );
        let err = check_config(&config, Path::new("x.json5")).unwrap_err().to_string();
        assert!(err.contains("allows everything"), "{err}");
    }

    #[test]
    fn peer_without_listen_endpoints_uses_the_wildcard_default_and_is_refused() {
        let config = from_json5(r#"{ mode: "peer" }"#);
        let err = check_config(&config, Path::new("x.json5")).unwrap_err().to_string();
        assert!(err.contains("tcp/[::]:0"), "{err}");
    }

    #[test]
    fn loopback_unix_socket_and_client_configs_pass_without_login() {
        for text in [
            r#"{ mode: "peer", listen: { endpoints: ["tcp/127.0.0.1:7447", "tcp/[::1]:7448", "udp/localhost:7449"] } }"#,
            r#"{ mode: "peer", listen: { endpoints: { peer: ["tcp/127.0.0.1:0"], router: ["tcp/0.0.0.0:7447"] } } }"#,
            r#"{ mode: "client", connect: { endpoints: ["tcp/192.0.2.1:7447"] } }"#,
        ] {
            check_config(&from_json5(text), Path::new("x.json5")).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn multicast_listener_is_refused_even_with_login_and_access_control() {
        let (path, mut config) = shipped("robot-host.json5");
        config.insert_json5("listen/endpoints", r#"["udp/224.0.0.224:7447"]"#).unwrap();
        let err = check_config(&config, &path).unwrap_err().to_string();
        assert!(err.contains("multicast endpoint udp/224.0.0.224:7447"), "{err}");
    }

    #[test]
    fn locator_hosts() {
        assert_eq!(host_of("127.0.0.1:7447"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7447"), "::1");
        assert_eq!(reach("tcp/10.8.0.1:7447"), Reach::Network);
        assert_eq!(reach("tcp/robot-host.local:7447"), Reach::Network);
        assert_eq!(reach("tcp/127.0.0.2:7447#iface=lo"), Reach::Local);
    }
}
