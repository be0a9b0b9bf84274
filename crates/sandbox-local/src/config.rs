//! Where local sandboxes keep their state.

use std::path::{Path, PathBuf};

/// Configuration of a [`LocalPlatform`](crate::LocalPlatform).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalConfig {
    /// The state folder: one sub-folder per sandbox under `sandboxes/`, name claims under
    /// `names/`. Every `LocalPlatform` (in any process) on the same folder sees the same
    /// sandboxes.
    pub state_dir: PathBuf,
    /// How sandboxes get their network (see [`NetworkMode`]).
    pub network: NetworkMode,
}

/// How a sandbox is connected to the network. Every sandbox has a network namespace of its
/// own, except with [`NetworkMode::Host`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NetworkMode {
    /// [`NetworkMode::Pasta`] when `pasta` (from the passt package) is installed; otherwise a
    /// worker gets its namespace with loopback only (the deploy log says so), and creating a
    /// service fails (it would be unreachable).
    #[default]
    Auto,
    /// A private network namespace connected by `pasta`: outbound traffic as the host has it,
    /// the host's loopback out of reach, a service's port 8080 and health port forwarded from
    /// free ports on the host's 127.0.0.1. Creating a sandbox fails when `pasta` is missing.
    Pasta,
    /// A private network namespace with loopback only, even when `pasta` is installed: no
    /// outbound access at all. Creating a service fails (it would be unreachable).
    Loopback,
    /// Weaker, opt-in: the host's network namespace, so the sandbox reaches every service
    /// listening on the host; each create warns. A service listens on a distinct free port,
    /// passed as `PORT` (and `SANDBOX_HEALTH_PORT` for the health server), instead of 8080 and
    /// 9090.
    Host,
}

impl LocalConfig {
    /// A configuration with this state folder and automatic network selection.
    #[must_use]
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        LocalConfig {
            state_dir: state_dir.into(),
            network: NetworkMode::Auto,
        }
    }

    /// Sets how sandboxes get their network.
    #[must_use]
    pub fn with_network(mut self, network: NetworkMode) -> Self {
        self.network = network;
        self
    }

    /// The state folder from the environment: `SANDBOX_LOCAL_DIR`, else
    /// `$XDG_DATA_HOME/do-app-sandbox/local`, else `~/.local/share/do-app-sandbox/local`
    /// (`/tmp/do-app-sandbox-<uid>/local` when not even `HOME` is set).
    #[must_use]
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var_os(key).map(PathBuf::from))
    }

    /// [`LocalConfig::from_env`] over any lookup (for tests).
    #[must_use]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<PathBuf>) -> Self {
        let non_empty = |key: &str| lookup(key).filter(|p| !p.as_os_str().is_empty());
        let state_dir = if let Some(dir) = non_empty("SANDBOX_LOCAL_DIR") {
            dir
        } else if let Some(data) = non_empty("XDG_DATA_HOME") {
            data.join("do-app-sandbox").join("local")
        } else if let Some(home) = non_empty("HOME") {
            home.join(".local")
                .join("share")
                .join("do-app-sandbox")
                .join("local")
        } else {
            let uid = rustix::process::getuid().as_raw();
            Path::new("/tmp")
                .join(format!("do-app-sandbox-{uid}"))
                .join("local")
        };
        LocalConfig::new(state_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<PathBuf> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| PathBuf::from(v))
        }
    }

    #[test]
    fn explicit_dir_wins() {
        let c = LocalConfig::from_lookup(lookup(&[
            ("SANDBOX_LOCAL_DIR", "/x"),
            ("XDG_DATA_HOME", "/d"),
            ("HOME", "/h"),
        ]));
        assert_eq!(c.state_dir, PathBuf::from("/x"));
    }

    #[test]
    fn xdg_then_home() {
        let c = LocalConfig::from_lookup(lookup(&[("XDG_DATA_HOME", "/d"), ("HOME", "/h")]));
        assert_eq!(c.state_dir, PathBuf::from("/d/do-app-sandbox/local"));
        let c = LocalConfig::from_lookup(lookup(&[("XDG_DATA_HOME", ""), ("HOME", "/h")]));
        assert_eq!(
            c.state_dir,
            PathBuf::from("/h/.local/share/do-app-sandbox/local")
        );
    }
}
