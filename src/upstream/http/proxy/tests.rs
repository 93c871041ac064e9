use super::*;

fn secret(s: &str) -> Secret {
    Secret::new(s)
}

fn url(s: &str) -> reqwest::Url {
    reqwest::Url::parse(s).unwrap()
}

fn shown(proxies: &Proxies, target: &str) -> String {
    proxies.route(&url(target)).to_string()
}

#[test]
fn each_scheme_takes_its_proxy_and_all_proxy_fills_in() {
    let p = Proxies::from_settings(
        Some(&secret("http://h:1")),
        None,
        Some(&secret("http://a:2")),
        None,
    )
    .unwrap();
    assert_eq!(
        shown(&p, "http://x.example/"),
        "through http://h:1 (proxy.http_proxy)"
    );
    assert_eq!(
        shown(&p, "https://x.example/"),
        "through http://a:2 (proxy.all_proxy)"
    );
    let none = Proxies::from_settings(None, None, None, Some("*")).unwrap();
    assert_eq!(shown(&none, "https://x.example/"), "direct");
}

#[test]
fn no_proxy_matches_as_curl_does() {
    let p = Proxies::from_settings(
        None,
        Some(&secret("proxy:3128")),
        None,
        Some(" example.com, .corp.local,10.0.0.0/8, 192.168.1.7 ,::1"),
    )
    .unwrap();
    for direct in [
        "https://example.com/",
        "https://api.EXAMPLE.com/x",
        "https://corp.local/",
        "https://a.b.corp.local/",
        "https://10.2.3.4:8443/",
        "https://192.168.1.7/",
        "https://[::1]:9000/",
    ] {
        assert_eq!(shown(&p, direct), "direct", "{direct}");
    }
    for proxied in [
        "https://notexample.com/",
        "https://example.com.evil.net/",
        "https://11.0.0.1/",
        "https://192.168.1.8/",
        "https://[::2]/",
    ] {
        assert_eq!(
            shown(&p, proxied),
            "through http://proxy:3128 (proxy.https_proxy)",
            "{proxied}"
        );
    }
    let star = Proxies::from_settings(None, Some(&secret("proxy:3128")), None, Some("*")).unwrap();
    assert_eq!(shown(&star, "https://127.0.0.1/"), "direct");
    assert_eq!(shown(&star, "https://example.com/"), "direct");
}

#[test]
fn credentials_are_never_shown() {
    let p = Proxies::from_settings(
        Some(&secret("http://user:hunter2@proxy:3128")),
        None,
        None,
        None,
    )
    .unwrap();
    let line = shown(&p, "http://x/");
    assert_eq!(
        line,
        "through http://**redacted**@proxy:3128 (proxy.http_proxy)"
    );
    assert!(!format!("{p:?}").contains("hunter2"));
    assert!(!format!("{p:?}").contains("user"));
    for bad in [
        "socks5://user:hunter2@h:1",
        "http://user:hunter2@",
        "::hunter2::",
    ] {
        let errors = Proxies::from_settings(Some(&secret(bad)), None, None, None).unwrap_err();
        let text = format!("{errors:?}");
        assert!(text.contains("proxy.http_proxy"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn an_override_keeps_no_proxy() {
    let env = Proxies::from_settings(None, None, Some(&secret("http://env:1")), Some("internal"))
        .unwrap();
    let own = ProxyUrl::parse("http://lis:2", "lastinfosec.proxy_https").unwrap();
    let p = env.overridden(None, Some(own));
    assert_eq!(
        shown(&p, "https://api.example/"),
        "through http://lis:2 (lastinfosec.proxy_https)"
    );
    assert_eq!(
        shown(&p, "http://api.example/"),
        "through http://env:1 (proxy.all_proxy)"
    );
    assert_eq!(shown(&p, "https://internal/"), "direct");
}
