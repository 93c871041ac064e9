//! pycti's per-connector families, named as pycti 7's metric handler names them.

use super::*;

/// pycti's per-connector counters.
#[derive(Default)]
pub(super) struct Pycti {
    pub(super) bundles_sent: Family<Labels, Counter>,
    pub(super) records_sent: Family<Labels, Counter>,
    pub(super) runs: Family<Labels, Counter>,
    pub(super) ping_api: Family<Labels, Counter>,
    pub(super) ping_api_errors: Family<Labels, Counter>,
    pub(super) errors: Family<Labels, Counter>,
    pub(super) state: Family<Labels, Gauge>,
}

impl Pycti {
    pub(super) fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "bundles_sent",
                "Bundles sent to OpenCTI",
                &self.bundles_sent,
            ),
            (
                "records_sent",
                "Records (STIX objects) sent to OpenCTI",
                &self.records_sent,
            ),
            (
                "runs",
                "Runs: enrichment requests handled and import runs started",
                &self.runs,
            ),
            ("ping_api", "Pings to the OpenCTI API", &self.ping_api),
            (
                "ping_api_errors",
                "Pings to the OpenCTI API that failed",
                &self.ping_api_errors,
            ),
            (
                "errors",
                "Errors: failed enrichments and runs, malformed messages, panics",
                &self.errors,
            ),
        ];
        for (name, help, family) in counters {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "state",
            "State of the connector (1 for the current one of idle, running, stopped)",
            self.state.clone(),
        );
    }

    pub(super) fn set_state(&self, connector: &str, state: State) {
        for s in State::ALL {
            self.state
                .get_or_create(&vec![
                    ("connector".into(), connector.into()),
                    ("state".into(), s.name().into()),
                ])
                .set(i64::from(s == state));
        }
    }
}
