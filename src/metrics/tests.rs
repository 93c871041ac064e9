//! Unit tests of `metrics`.

use super::*;

#[test]
fn pycti_families_count_what_pycti_counts() {
    let m = Metrics::default();
    let first = m.request_started("c");
    let second = m.request_started("c");
    assert!(
        m.render()
            .contains(r#"opencti_connectors_state{connector="c",state="running"} 1"#)
    );
    drop(first);
    assert!(
        m.render()
            .contains(r#"opencti_connectors_state{connector="c",state="running"} 1"#),
        "one request still in flight"
    );
    drop(second);
    m.count("c", Event::EnrichmentFailed);
    m.count("c", Event::TlpRefused);
    m.ping("c", true);
    m.ping("c", false);
    m.sent("c", 2, 5);
    let out = m.render();
    for series in [
        r#"opencti_connectors_state{connector="c",state="idle"} 1"#,
        r#"opencti_connectors_state{connector="c",state="running"} 0"#,
        r#"opencti_connectors_runs_total{connector="c"} 2"#,
        r#"opencti_connectors_errors_total{connector="c"} 1"#,
        r#"opencti_connectors_ping_api_total{connector="c"} 2"#,
        r#"opencti_connectors_ping_api_errors_total{connector="c"} 1"#,
        r#"opencti_connectors_bundles_sent_total{connector="c"} 2"#,
        r#"opencti_connectors_records_sent_total{connector="c"} 5"#,
    ] {
        assert!(out.contains(series), "{series} in\n{out}");
    }
    m.set_state("c", State::Stopped);
    assert!(
        m.render()
            .contains(r#"opencti_connectors_state{connector="c",state="stopped"} 1"#)
    );
}
