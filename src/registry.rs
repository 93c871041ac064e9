//! The registry: the top-level [`Config`] (the shared blocks plus one section per connector),
//! the one list of connectors, every configuration key, validation and [`build_all`].
//!
//! Dependencies run one way: connectors use [`crate::config`], and only this module reads
//! their list. Adding a connector is one new directory under `src/connectors/` plus one line
//! in the `connectors!` list of `src/connectors/mod.rs`.

use std::collections::HashMap;

use serde::Deserialize;

use crate::config::{
    self, Checks, ConfigError, ConnectorBlock, ConnectorSettings, DaemonConfig, KeySpec, LogConfig,
    MqConfig, OpenctiConfig, ProxyConfig, SectionSpec, TlsConfig, keys, loader,
};
use crate::connectors::{BuildContext, BuildError, ConnectorConfig, Hosted};

/// What the registry needs of a section: [`ConnectorConfig`], made object-safe.
trait Section {
    fn spec(&self) -> &'static SectionSpec;
    fn base(&self) -> (bool, &ConnectorBlock);
    fn check(&self, checks: &mut Checks);
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, BuildError>;
    fn upstream_urls(&self) -> Vec<String>;
    fn proxies(
        &self,
        global: &crate::upstream::http::Egress,
    ) -> Result<crate::upstream::http::Proxies, String>;
}

impl<T: ConnectorConfig> Section for T {
    fn spec(&self) -> &'static SectionSpec {
        T::spec()
    }
    fn base(&self) -> (bool, &ConnectorBlock) {
        ConnectorConfig::base(self)
    }
    fn check(&self, checks: &mut Checks) {
        ConnectorConfig::check(self, checks)
    }
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Hosted, BuildError> {
        ConnectorConfig::build(self, ctx)
    }
    fn upstream_urls(&self) -> Vec<String> {
        ConnectorConfig::upstream_urls(self)
    }
    fn proxies(
        &self,
        global: &crate::upstream::http::Egress,
    ) -> Result<crate::upstream::http::Proxies, String> {
        ConnectorConfig::proxies(self, global)
    }
}

/// Declares [`Config`] with one field per connector section and the list of sections, from
/// the one list of connectors (`crate::connectors`'s `connectors!`).
macro_rules! registry {
    ($($section:ident: $config:ty),+ $(,)?) => {
        /// The whole daemon configuration: the shared blocks, then one section per connector.
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Config {
            pub opencti: OpenctiConfig,
            pub tls: TlsConfig,
            pub proxy: ProxyConfig,
            pub log: LogConfig,
            pub mq: MqConfig,
            pub daemon: DaemonConfig,
            $(pub $section: $config,)+
        }

        impl Config {
            /// Every connector section, in README order.
            fn sections(&self) -> Vec<&dyn Section> {
                vec![$(&self.$section),+]
            }
        }

        /// Every connector section's shape, in README order.
        pub fn specs() -> Vec<&'static SectionSpec> {
            vec![$(<$config as ConnectorConfig>::spec()),+]
        }
    };
}

crate::connectors::with_connectors!(registry);

/// Libraries whose debug and trace logs could carry secrets (see [`Config::log_filter`]).
const QUIET_LIBRARIES: &[&str] = &[
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "lapin",
    "amq_protocol",
];

/// Every key the loader reads, in table order: the shared blocks, then each section.
pub fn all_keys() -> Vec<KeySpec> {
    let mut table = keys::global_keys();
    for spec in specs() {
        table.extend(spec.all_keys());
    }
    table
}

impl Config {
    /// Loads from optional YAML text and an environment map (injected for tests), then
    /// validates everything: a `Config` that loaded is one [`build_all`] accepts.
    pub fn from_sources(
        yaml: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let config: Config = loader::from_sources(yaml, env, &all_keys())?;
        config.resolve_enabled()?;
        Ok(config)
    }

    /// Loads from an environment map alone, read through `table` instead of [`all_keys`]
    /// (the drop-in's, which names keys by the official images' variables too), then
    /// validates as [`Config::from_sources`] does.
    pub fn from_table(
        env: &HashMap<String, String>,
        table: &[KeySpec],
    ) -> Result<Config, ConfigError> {
        let config: Config = loader::from_sources(None, env, table)?;
        config.resolve_enabled()?;
        Ok(config)
    }

    /// Loads `path` if it exists (or was named explicitly) plus the process environment.
    pub fn load(path: &str, explicit: bool) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let yaml = loader::read_file(path, explicit)?;
        Config::from_sources(yaml.as_deref(), &env)
    }

    /// The tracing filter: `log.level`, plus each connector's `log_level` for the spans that
    /// carry `connector = "<section>"` (a message's or a run's).
    ///
    /// The HTTP and AMQP libraries print URLs (LastInfoSec's key rides in one), headers and
    /// broker URIs at debug and trace: they are held at `info` unless `log.level` names them.
    pub fn log_filter(&self) -> String {
        let mut filter = self.log.level.clone();
        for library in QUIET_LIBRARIES {
            if !self.log.level.contains(library) {
                filter.push_str(&format!(",{library}=info"));
            }
        }
        if !self.log.level.contains("lapin") {
            // lapin logs every channel the broker closes at ERROR, and the daemon closes
            // channels on purpose: a standby's refused import lock, a message flag that is not
            // set (see `runtime::enrichment::poison`). Real failures reach the daemon as
            // errors, which it logs with their context.
            filter.push_str(",lapin::channel=off");
        }
        for section in self.sections() {
            if let Some(level) = &section.base().1.log_level {
                filter.push_str(&format!(
                    ",[{{connector={}}}]={level}",
                    section.spec().section
                ));
            }
        }
        filter
    }

    /// The YAML names of the enabled sections.
    pub fn enabled_sections(&self) -> Vec<&'static str> {
        self.enabled().map(|s| s.spec().section).collect()
    }

    fn enabled(&self) -> impl Iterator<Item = &dyn Section> {
        self.sections().into_iter().filter(|s| s.base().0)
    }

    /// Checks the shared blocks and resolves every enabled section once, with all the
    /// errors together.
    fn resolve_enabled(&self) -> Result<Vec<(ConnectorSettings, &dyn Section)>, ConfigError> {
        let mut errors = config::check_shared(
            &self.opencti,
            &self.log,
            &self.daemon,
            &self.mq,
            self.enabled().next().is_some(),
        );
        let mut resolved = Vec::new();
        for section in self.enabled() {
            let spec = section.spec();
            let mut checks = Checks::new(spec);
            let mut settings = section.base().1.resolve(spec, &mut checks);
            settings.max_answer_bytes =
                usize::try_from(self.daemon.max_upstream_bytes).unwrap_or(usize::MAX);
            section.check(&mut checks);
            if checks.is_empty() {
                resolved.push((settings, section));
            } else {
                errors.extend(checks.into_errors());
            }
        }
        if errors.is_empty() {
            Ok(resolved)
        } else {
            Err(ConfigError::Many(errors))
        }
    }
}

impl Config {
    /// The OpenCTI client this configuration describes (validation guarantees the URL and
    /// token when a connector is enabled; without them this says which is missing).
    pub fn opencti_client(
        &self,
        egress: Option<&crate::upstream::http::Egress>,
    ) -> Result<crate::opencti::OpenctiClient, String> {
        let url = self
            .opencti
            .url
            .clone()
            .ok_or("opencti.url is not set (env OPENCTI_URL)")?;
        let token = self
            .opencti
            .token
            .clone()
            .ok_or("opencti.token is not set (env OPENCTI_TOKEN)")?;
        let client = crate::opencti::OpenctiClient::with_timeout(
            &url,
            token,
            self.opencti.ssl_verify,
            egress,
            self.opencti.request_timeout.0,
        )
        .map_err(|e| e.to_string())?
        .with_max_answer(usize::try_from(self.opencti.max_answer_bytes).unwrap_or(usize::MAX));
        Ok(client)
    }

    /// What the daemon trusts and which proxies it goes through: `tls.*` (and the system
    /// store) read and parsed, `proxy.*` checked. Each error names its setting.
    pub fn egress(&self) -> Result<crate::upstream::http::Egress, ConfigError> {
        use crate::upstream::http::trust::{Sources, Trust};
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let sources = Sources {
            ca_certificates: set(&self.tls.ca_certificates)
                .map(|pem| ("tls.ca_certificates (env HTTPS_CA_CERTIFICATES)", pem)),
            ca_file: set(&self.tls.ca_file).map(|path| ("tls.ca_file (env TLS_CA_FILE)", path)),
            system: true,
        };
        let mut errors = Vec::new();
        let trust = Trust::load(&sources)
            .map_err(|e| errors.push(e.to_string()))
            .unwrap_or_default();
        let proxies = crate::upstream::http::Proxies::from_settings(
            self.proxy.http_proxy.as_ref(),
            self.proxy.https_proxy.as_ref(),
            self.proxy.all_proxy.as_ref(),
            self.proxy.no_proxy.as_deref(),
        )
        .map_err(|e| {
            let env = |key: &str| keys::env_hint(&all_keys(), key);
            errors.extend(
                e.into_iter()
                    .map(|(key, m)| format!("{key}{}: {m}", env(key))),
            );
        })
        .unwrap_or_default();
        if errors.is_empty() {
            Ok(crate::upstream::http::Egress { trust, proxies })
        } else {
            Err(ConfigError::Many(errors))
        }
    }
}

impl Config {
    /// One line per target (OpenCTI, each enabled connector's upstreams): whether it goes
    /// direct or through which proxy, URLs and proxies without their credentials.
    pub fn routes(&self, egress: &crate::upstream::http::Egress) -> Vec<String> {
        use crate::config::UrlSetting;
        let line = |name: &str, url: &str, proxies: &crate::upstream::http::Proxies| {
            let shown = UrlSetting::from(url).redacted();
            match reqwest::Url::parse(url) {
                Ok(parsed) => format!("route {name}: {shown} {}", proxies.route(&parsed)),
                Err(_) => format!("route {name}: {shown} is not a URL"),
            }
        };
        let mut lines = Vec::new();
        if let Some(url) = &self.opencti.url {
            lines.push(line("opencti", url, &egress.proxies));
        }
        for section in self.enabled() {
            let name = section.spec().section;
            match section.proxies(egress) {
                Ok(proxies) => lines.extend(
                    section
                        .upstream_urls()
                        .iter()
                        .map(|url| line(name, url, &proxies)),
                ),
                Err(e) => lines.push(format!("route {name}: {e}")),
            }
        }
        lines
    }
}

impl Config {
    /// Loads like [`Config::load`] but checks types only: a one-shot command needs neither
    /// OpenCTI nor an enabled connector.
    pub fn load_unchecked(path: &str, explicit: bool) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let yaml = loader::read_file(path, explicit)?;
        loader::from_sources(yaml.as_deref(), &env, &all_keys())
    }
}

/// Builds the connector of section `name` for a one-shot run: enabled or not, and without a
/// connector id (nothing registers); its own settings (token, base URL) are checked.
pub fn build_one(config: &Config, name: &str) -> Result<(ConnectorSettings, Hosted), ConfigError> {
    let sections = config.sections();
    let Some(section) = sections.iter().find(|s| s.spec().section == name) else {
        let names: Vec<&str> = specs().iter().map(|s| s.section).collect();
        return Err(ConfigError::Invalid {
            key: "connector".into(),
            message: format!(
                "`{name}` is not a connector; expected one of: {}",
                names.join(", ")
            ),
        });
    };
    let spec = section.spec();
    let mut block = section.base().1.clone();
    block.id.get_or_insert(uuid::Uuid::nil());
    let mut checks = Checks::new(spec);
    let mut settings = block.resolve(spec, &mut checks);
    section.check(&mut checks);
    if !checks.is_empty() {
        return Err(ConfigError::Many(checks.into_errors()));
    }
    settings.max_answer_bytes =
        usize::try_from(config.daemon.max_upstream_bytes).unwrap_or(usize::MAX);
    let egress = config.egress()?;
    let hosted = section
        .build(&BuildContext::new(&settings, Some(&egress)))
        .map_err(|e| ConfigError::Many(vec![format!("{name}: {e}")]))?;
    Ok((settings, hosted))
}

/// Builds every enabled connector; fails at start-up on anything wrong.
pub fn build_all(config: &Config) -> Result<Vec<(ConnectorSettings, Hosted)>, ConfigError> {
    build_with(config, &config.egress()?)
}

/// [`build_all`] with the egress already read (the daemon reads it once, for the OpenCTI
/// client and every connector).
pub fn build_with(
    config: &Config,
    egress: &crate::upstream::http::Egress,
) -> Result<Vec<(ConnectorSettings, Hosted)>, ConfigError> {
    let mut built = Vec::new();
    let mut errors = Vec::new();
    for (settings, section) in config.resolve_enabled()? {
        match section.build(&BuildContext::new(&settings, Some(egress))) {
            Ok(hosted) => built.push((settings, hosted)),
            Err(e) => errors.push(format!("{}: {e}", settings.key)),
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(ConfigError::Many(errors))
    }
}

#[cfg(test)]
mod tests;
