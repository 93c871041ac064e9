//! Unit tests of `types`.

use super::*;

#[test]
fn parses_iso_durations() {
    let secs = |s: &str| IsoDuration::parse(s).unwrap().0.as_secs();
    assert_eq!(secs("PT40S"), 40);
    assert_eq!(secs("PT1H30M"), 5400);
    assert_eq!(secs("P1D"), 86400);
    assert_eq!(secs("P30D"), 30 * 86400);
    assert_eq!(secs("P1W"), 7 * 86400);
    assert_eq!(secs("P1M"), 30 * 86400);
    assert_eq!(secs("p1dt2h"), 86400 + 7200);
    assert_eq!(secs("3600"), 3600);
    assert_eq!(IsoDuration::parse("PT0.5S").unwrap().0.as_millis(), 500);
}

#[test]
fn durations_print_in_their_shortest_iso_form() {
    for text in [
        "P1D", "PT6H", "PT1H30M", "PT40S", "P2DT3H", "PT0S", "PT0.500S",
    ] {
        assert_eq!(IsoDuration::parse(text).unwrap().to_string(), text);
    }
}

#[test]
fn rejects_bad_durations() {
    for bad in [
        "",
        "P",
        "PT",
        "ChangeMe",
        "1h",
        "PT1X",
        "P1H",
        "PT1S1H",
        "P999999999999Y",
    ] {
        assert!(IsoDuration::parse(bad).is_err(), "{bad} should fail");
    }
}

#[test]
fn url_passwords_never_print() {
    for (url, shown) in [
        (
            "http://user:hunter2@proxy:3128",
            "http://user:**redacted**@proxy:3128/",
        ),
        ("https://ivre.example/cgi", "https://ivre.example/cgi"),
        (
            "https://ivre.example/cgi#X-API-Key=hunter2",
            "https://ivre.example/cgi#**redacted**",
        ),
        (
            "https://feed.example/x.txt?key=hunter2",
            "https://feed.example/x.txt?**redacted**",
        ),
        ("not a url user:hunter2@host", "**redacted**@host"),
        ("user:hunter2@proxy:3128", "**redacted**@proxy:3128"),
        ("opencti:8080", "opencti:8080"),
        (
            "feed.example/x.txt?key=hunter2",
            "feed.example/x.txt?**redacted**",
        ),
        ("ivre/cgi#X-API-Key=hunter2", "ivre/cgi#**redacted**"),
        ("mailto:a@b?body=hunter2", "**redacted**@b?**redacted**"),
    ] {
        let u = UrlSetting::from(url);
        assert_eq!(u.to_string(), shown);
        assert!(!format!("{u:?}").contains("hunter2"));
        assert_eq!(u.as_str(), url, "the real value is kept");
    }
}

#[test]
fn secrets_never_print() {
    let s = Secret::new("hunter2");
    assert!(!format!("{s:?} {s}").contains("hunter2"));
}

#[test]
fn scope_splits_and_trims() {
    assert_eq!(
        Scope::parse("IPv4-Addr, IPv6-Addr,").0,
        vec!["IPv4-Addr", "IPv6-Addr"]
    );
}
