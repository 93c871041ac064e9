//! The integration tests, one binary: the runtime on the real RabbitMQ against a fake OpenCTI
//! that validates every operation against the platform schema, each connector end to end
//! against a faked upstream, the daemon binary itself, and checks that keep the README and
//! the deployment files true.

mod common;

mod broker_alarm;
mod check_online;
mod daemon;
mod delivery;
mod deploy;
mod dropin;
mod faults;
mod fuzz;
mod graphql_schema;
mod ipinfo_e2e;
mod ipsum_e2e;
mod ivre_certificates;
mod ivre_e2e;
mod ivre_maxmind;
mod lastinfosec_e2e;
mod layout;
mod migrate;
mod oneshot;
mod opencti7;
mod opencti_client;
mod proxy;
mod readme;
mod replicas;
mod riskiq_e2e;
mod runtime_enrichment;
mod runtime_import;
mod secret_files;
mod secrets;
mod send;
mod stix_ids;
mod tls;
