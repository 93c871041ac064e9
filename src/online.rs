//! `check-config --online`: one cheap call to each thing the daemon depends on, one line per
//! check. OpenCTI (its URL, its token, its version and the dialect the daemon speaks to it),
//! each enabled connector's registration (which tells where RabbitMQ is, as at start-up;
//! registering again is what every start does), RabbitMQ itself, each importer's lock (free,
//! or held by a running replica), then each enabled connector's upstream with its configured
//! key (for IVRE's `maxmind://` data, the GeoLite2 files found and their build dates:
//! `EnrichmentConnector::check_upstream`).

use std::time::Duration;

use crate::amqp::BrokerAddress;
use crate::config::{ConnectorSettings, Mode};
use crate::connectors::Hosted;
use crate::opencti::Dialect;
use crate::registry::Config;
use crate::runtime::lock::ImportLock;
use crate::runtime::register_input;

/// How long one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// One check and what it found.
#[derive(Debug)]
pub struct Check {
    /// What was checked: `opencti`, `rabbitmq`, `ipinfo: registration`, `ipinfo: upstream`.
    pub name: String,
    /// What it saw, or why it failed (never a secret).
    pub result: Result<String, String>,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(seen) => write!(f, "ok    {}: {seen}", self.name),
            Err(why) => write!(f, "FAIL  {}: {why}", self.name),
        }
    }
}

async fn bounded<T, E: std::fmt::Display>(
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}

/// The platform version and the dialect the daemon speaks to it (`7.261026.0, spoken as
/// 7.x`); a version that does not parse says that 6.x is spoken.
pub fn describe_version(version: &str) -> String {
    let shown: String = version.chars().take(64).collect();
    let dialect = Dialect::of(version).label();
    if crate::opencti::dialect::major(version).is_none() {
        format!("{shown}: version not understood, spoken as {dialect}")
    } else {
        format!("{shown}, spoken as {dialect}")
    }
}

/// Runs every check, in order; `report` is called with each as it ends.
pub async fn check(
    config: &Config,
    egress: &crate::upstream::http::Egress,
    built: &[(ConnectorSettings, Hosted)],
    mut report: impl FnMut(&Check),
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut push = |check: Check| {
        report(&check);
        checks.push(check);
    };
    let platform = match config.opencti_client(Some(egress)) {
        Ok(client) => {
            let url = config.opencti.url.clone().unwrap_or_default();
            let result = match bounded(client.health_check()).await {
                Ok(version) => bounded(client.whoami()).await.map(|user| {
                    format!(
                        "{url} answers (OpenCTI {}); token accepted (user {user})",
                        describe_version(&version)
                    )
                }),
                Err(e) => Err(format!("{url}: {e}")),
            };
            let reachable = result.is_ok();
            push(Check {
                name: "opencti".into(),
                result,
            });
            reachable.then_some(client)
        }
        Err(why) => {
            push(Check {
                name: "opencti".into(),
                result: Err(why),
            });
            None
        }
    };
    let mut brokers: Vec<BrokerAddress> = Vec::new();
    let mut locks = Vec::new();
    if let Some(client) = &platform {
        for (settings, _) in built {
            let result =
                bounded(client.register_connector(&register_input(settings, client.dialect())))
                    .await;
            let result = result.map(|registration| {
                let broker = BrokerAddress::resolve(&registration.config.connection, &config.mq)
                    .trusting(Some(egress));
                if matches!(settings.mode, Mode::Import { .. }) && config.daemon.import_lock {
                    let id = settings.id.to_string();
                    let ping = config.daemon.ping_interval.0;
                    locks.push(ImportLock::new(broker.clone(), &id, settings.key, ping));
                }
                if !brokers.contains(&broker) {
                    brokers.push(broker);
                }
                format!(
                    "registered as {} ({}, id {})",
                    settings.name,
                    settings.connector_type(),
                    settings.id
                )
            });
            push(Check {
                name: format!("{}: registration", settings.key),
                result,
            });
        }
    }
    for broker in &brokers {
        let result = bounded(broker.connect("opencti-connectors check-config")).await;
        let result = match result {
            Ok(connection) => {
                crate::amqp::close_bounded(&connection, "check done").await;
                Ok(format!("{broker:?} accepts the connector user"))
            }
            Err(e) => Err(format!("{broker:?}: {e}")),
        };
        push(Check {
            name: "rabbitmq".into(),
            result,
        });
    }
    for lock in &locks {
        let result = bounded(lock.probe()).await.map(|free| {
            if free {
                "free: this replica would take it and run the imports".to_string()
            } else {
                "held by a running replica: this one would stand by".to_string()
            }
        });
        push(Check {
            name: format!("{}: import lock", lock.connector()),
            result,
        });
    }
    for (settings, hosted) in built {
        let result = match hosted {
            Hosted::Enrichment(c) => bounded(c.check_upstream()).await,
            Hosted::Import(c) => bounded(c.check_upstream()).await,
        };
        push(Check {
            name: format!("{}: upstream", settings.key),
            result,
        });
    }
    checks
}
