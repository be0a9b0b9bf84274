//! Where a [`DoApi`](super::DoApi) finds its token.
//!
//! In order: the token given in [`DoApiConfig`](super::DoApiConfig), `DIGITALOCEAN_TOKEN`,
//! `DIGITALOCEAN_ACCESS_TOKEN`, then doctl's own config file, so that whoever ran
//! `doctl auth init` needs nothing more. In that file the current context (the explicit one,
//! else `DIGITALOCEAN_CONTEXT`, else the file's `context` key, else `default`) picks the
//! token: `access-token` for `default`, `auth-contexts.<name>` for any other.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::token::Token;

/// The variable the API docs, pydo and the Python SDK read.
pub(crate) const ENV_TOKEN: &str = "DIGITALOCEAN_TOKEN";
/// The variable doctl reads.
pub(crate) const ENV_ACCESS_TOKEN: &str = "DIGITALOCEAN_ACCESS_TOKEN";
/// doctl's context variable.
pub(crate) const ENV_CONTEXT: &str = "DIGITALOCEAN_CONTEXT";
/// doctl's config-path variable.
pub(crate) const ENV_CONFIG: &str = "DIGITALOCEAN_CONFIG";

/// Where the token in use came from (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// Given in the configuration.
    Explicit,
    /// An environment variable.
    Env(&'static str),
    /// doctl's config file, for a context.
    DoctlConfig { path: PathBuf, context: String },
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Explicit => f.write_str("the configuration"),
            TokenSource::Env(name) => write!(f, "${name}"),
            TokenSource::DoctlConfig { path, context } => {
                write!(f, "{} (context `{context}`)", path.display())
            }
        }
    }
}

/// The parts of doctl's `config.yaml` that hold tokens.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DoctlFile {
    #[serde(rename = "access-token")]
    access_token: Option<String>,
    context: Option<String>,
    #[serde(rename = "auth-contexts")]
    auth_contexts: Option<std::collections::BTreeMap<String, Option<String>>>,
}

/// doctl's config path: `$DIGITALOCEAN_CONFIG`, else `$XDG_CONFIG_HOME/doctl/config.yaml`, else
/// `$HOME/.config/doctl/config.yaml`.
pub(crate) fn doctl_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |key: &str| env(key).filter(|v| !v.trim().is_empty());
    if let Some(path) = non_empty(ENV_CONFIG) {
        return Some(PathBuf::from(path));
    }
    if let Some(xdg) = non_empty("XDG_CONFIG_HOME") {
        return Some(Path::new(&xdg).join("doctl").join("config.yaml"));
    }
    non_empty("HOME").map(|home| {
        Path::new(&home)
            .join(".config")
            .join("doctl")
            .join("config.yaml")
    })
}

/// Finds the token: explicit, environment, then doctl's config file.
///
/// `env` reads a variable; `config_file` overrides doctl's config path; `context` overrides
/// the context.
pub(crate) fn resolve(
    explicit: Option<&Token>,
    env: &dyn Fn(&str) -> Option<String>,
    config_file: Option<&Path>,
    context: Option<&str>,
) -> Result<(Token, TokenSource)> {
    if let Some(token) = explicit.filter(|t| !t.expose().trim().is_empty()) {
        return Ok((token.clone(), TokenSource::Explicit));
    }
    for name in [ENV_TOKEN, ENV_ACCESS_TOKEN] {
        if let Some(value) = env(name).filter(|v| !v.trim().is_empty()) {
            return Ok((Token::new(value.trim()), TokenSource::Env(name)));
        }
    }
    let path = match config_file {
        Some(path) => Some(path.to_path_buf()),
        None => doctl_config_path(env),
    };
    let no_token = |detail: String| Error::NotAuthenticated {
        message: format!(
            "no API token: set {ENV_TOKEN} or {ENV_ACCESS_TOKEN}, or run `doctl auth init` ({detail})"
        ),
    };
    let Some(path) = path else {
        return Err(no_token(
            "no doctl config: neither HOME nor XDG_CONFIG_HOME is set".to_owned(),
        ));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(no_token(format!("{} does not exist", path.display())));
        }
        Err(err) => {
            return Err(no_token(format!(
                "{} cannot be read: {err}",
                path.display()
            )));
        }
    };
    let file: DoctlFile = if text.trim().is_empty() {
        DoctlFile::default()
    } else {
        serde_yaml::from_str(&text).map_err(|err| {
            // serde_yaml's message quotes no values, only positions and types.
            no_token(format!("{} is not valid YAML: {err}", path.display()))
        })?
    };
    let context = context
        .map(str::to_owned)
        .or_else(|| env(ENV_CONTEXT).filter(|c| !c.trim().is_empty()))
        .or_else(|| file.context.clone().filter(|c| !c.trim().is_empty()))
        .unwrap_or_else(|| "default".to_owned());
    let token = if context == "default" {
        file.access_token.clone().or_else(|| {
            file.auth_contexts
                .as_ref()
                .and_then(|c| c.get("default").cloned().flatten())
        })
    } else {
        match file.auth_contexts.as_ref().and_then(|c| c.get(&context)) {
            Some(token) => token.clone(),
            None => {
                return Err(no_token(format!(
                    "context `{context}` is not in `auth-contexts` of {}",
                    path.display()
                )));
            }
        }
    };
    match token.filter(|t| !t.trim().is_empty()) {
        Some(token) => Ok((
            Token::new(token.trim()),
            TokenSource::DoctlConfig { path, context },
        )),
        None => Err(no_token(format!(
            "{} has no token for context `{context}`",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("doctl").join("config.yaml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn explicit_beats_environment_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().to_str().unwrap();
        write_config(dir.path(), "access-token: from-file\n");
        let env = env_of(&[
            (ENV_TOKEN, "from-do-token"),
            (ENV_ACCESS_TOKEN, "from-access-token"),
            ("XDG_CONFIG_HOME", xdg),
        ]);
        let explicit = Token::new("explicit");
        let (token, source) = resolve(Some(&explicit), &env, None, None).unwrap();
        assert_eq!(
            (token.expose(), source),
            ("explicit", TokenSource::Explicit)
        );
        let (token, source) = resolve(None, &env, None, None).unwrap();
        assert_eq!(
            (token.expose(), source),
            ("from-do-token", TokenSource::Env(ENV_TOKEN))
        );
        let env = env_of(&[
            (ENV_ACCESS_TOKEN, "from-access-token"),
            ("XDG_CONFIG_HOME", xdg),
        ]);
        let (token, source) = resolve(None, &env, None, None).unwrap();
        assert_eq!(
            (token.expose(), source),
            ("from-access-token", TokenSource::Env(ENV_ACCESS_TOKEN))
        );
        let env = env_of(&[(ENV_TOKEN, "  "), ("XDG_CONFIG_HOME", xdg)]);
        let (token, source) = resolve(None, &env, None, None).unwrap();
        assert_eq!(token.expose(), "from-file");
        assert!(
            matches!(source, TokenSource::DoctlConfig { ref context, .. } if context == "default")
        );
    }

    #[test]
    fn config_under_home_when_no_xdg() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join(".config");
        write_config(&config, "access-token: home-token\ncontext: default\n");
        let env = env_of(&[("HOME", dir.path().to_str().unwrap())]);
        let (token, _) = resolve(None, &env, None, None).unwrap();
        assert_eq!(token.expose(), "home-token");
    }

    #[test]
    fn current_context_picks_auth_contexts_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            "access-token: default-token\ncontext: work\nauth-contexts:\n  work: work-token\n  play: play-token\n",
        );
        let env = env_of(&[]);
        let (token, source) = resolve(None, &env, Some(&path), None).unwrap();
        assert_eq!(token.expose(), "work-token");
        assert_eq!(
            source,
            TokenSource::DoctlConfig {
                path: path.clone(),
                context: "work".into()
            }
        );
        let (token, _) = resolve(None, &env, Some(&path), Some("play")).unwrap();
        assert_eq!(token.expose(), "play-token");
        let env = env_of(&[(ENV_CONTEXT, "default")]);
        let (token, _) = resolve(None, &env, Some(&path), None).unwrap();
        assert_eq!(token.expose(), "default-token");
    }

    #[test]
    fn missing_context_or_file_is_not_authenticated_and_names_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "access-token: secret-value\n");
        let err = resolve(None, &env_of(&[]), Some(&path), Some("nope")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::NotAuthenticated { .. }));
        assert!(text.contains("context `nope`"), "{text}");
        assert!(!text.contains("secret-value"));

        let err = resolve(
            None,
            &env_of(&[]),
            Some(&dir.path().join("none.yaml")),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(err.to_string().contains("doctl auth init"));

        let err = resolve(None, &env_of(&[]), None, None).unwrap_err();
        assert!(err.to_string().contains("HOME"), "{err}");
    }

    #[test]
    fn empty_token_in_file_is_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "access-token: \"\"\n");
        let err = resolve(None, &env_of(&[]), Some(&path), None).unwrap_err();
        assert!(
            err.to_string().contains("no token for context `default`"),
            "{err}"
        );
    }

    #[test]
    fn digitalocean_config_overrides_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.yaml");
        std::fs::write(&path, "access-token: custom\n").unwrap();
        let env = env_of(&[
            (ENV_CONFIG, path.to_str().unwrap()),
            ("HOME", "/nonexistent"),
        ]);
        assert_eq!(doctl_config_path(&env), Some(path));
        let (token, _) = resolve(None, &env, None, None).unwrap();
        assert_eq!(token.expose(), "custom");
    }
}
