//! `tls.ca_file`: a private CA is trusted by the HTTP clients and by amqps, so verification
//! stays on. The certificates are made here with rcgen; the servers are tokio-rustls.

use crate::common::pki::{https_server, pki};
use crate::common::*;
use opencti_connectors::amqp::BrokerAddress;
use opencti_connectors::config::{MqConfig, Secret};
use opencti_connectors::connectors::{ConnectorError, Hosted};
use opencti_connectors::opencti::client::Connection;
use tokio_rustls::TlsAcceptor;

/// A TLS endpoint in front of the test RabbitMQ: amqps on a private CA.
async fn amqps_proxy(acceptor: TlsAcceptor) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                if let Ok(mut broker) = tokio::net::TcpStream::connect("127.0.0.1:5672").await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                }
            });
        }
    });
    port
}

fn ipinfo(url: &str, extra: &[(&str, &str)]) -> Hosted {
    build_connector(
        "ipinfo",
        &[
            ("IPINFO_TOKEN", "ipinfo-secret-token"),
            ("IPINFO_API_BASE_URL", url),
        ],
        extra,
    )
    .1
}

#[tokio::test]
async fn a_private_ca_is_trusted_by_the_http_clients_once_configured() {
    let pki = pki();
    let url = https_server(
        pki.acceptor.clone(),
        fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
    )
    .await;
    let dir = crate::common::scratch_dir("ca");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let request = request_for(ip_stix(GREEN));

    let Hosted::Enrichment(untrusting) = ipinfo(&url, &[]) else {
        unreachable!()
    };
    let err = untrusting.enrich(&request).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Retryable { .. }),
        "an unknown CA fails the TLS handshake: {err:?}"
    );

    let Hosted::Enrichment(trusting) = ipinfo(&url, &[("TLS_CA_FILE", ca_file.to_str().unwrap())])
    else {
        unreachable!()
    };
    let outcome = trusting.enrich(&request).await.unwrap();
    assert!(format!("{outcome:?}").starts_with("Bundle("), "{outcome:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_ca_file_that_is_no_pem_is_a_startup_error() {
    let dir = crate::common::scratch_dir("ca");
    let bad = dir.join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let env = [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "t"),
        ("IPINFO_ENABLED", "true"),
        (
            "IPINFO_CONNECTOR_ID",
            "2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60",
        ),
        ("IPINFO_TOKEN", "k"),
        ("TLS_CA_FILE", bad.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = opencti_connectors::registry::Config::from_sources(None, &env).unwrap();
    let err = opencti_connectors::registry::build_all(&config)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls.ca_file") && err.contains("PEM"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn amqps_trusts_the_private_ca() {
    let pki = pki();
    let port = amqps_proxy(pki.acceptor.clone()).await;
    let registered = Connection {
        host: "127.0.0.1".into(),
        vhost: "/".into(),
        use_ssl: true,
        port,
        user: "guest".into(),
        pass: Secret::new("guest"),
    };
    let broker = BrokerAddress::resolve(&registered, &MqConfig::default());
    assert!(
        broker.connect("tls-test-untrusting").await.is_err(),
        "an unknown CA fails"
    );
    let egress = opencti_connectors::http::Egress {
        trust: opencti_connectors::http::Trust::from_pem(&pki.ca_pem).unwrap(),
        ..Default::default()
    };
    let connection = broker
        .trusting(Some(&egress))
        .connect("tls-test-trusting")
        .await
        .expect("amqps with the private CA");
    assert!(connection.status().connected());
    let _ = connection.close(200, "done".into()).await;
}

/// `env` with the daemon's required settings for one enabled IPinfo.
fn daemon_env(extra: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "t"),
        ("IPINFO_ENABLED", "true"),
        (
            "IPINFO_CONNECTOR_ID",
            "2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60",
        ),
        ("IPINFO_TOKEN", "k"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test]
async fn https_ca_certificates_is_trusted_by_the_http_clients() {
    let pki = pki();
    let url = https_server(
        pki.acceptor.clone(),
        fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
    )
    .await;
    let Hosted::Enrichment(trusting) = ipinfo(&url, &[("HTTPS_CA_CERTIFICATES", &pki.ca_pem)])
    else {
        unreachable!()
    };
    let outcome = trusting.enrich(&request_for(ip_stix(GREEN))).await.unwrap();
    assert!(format!("{outcome:?}").starts_with("Bundle("), "{outcome:?}");
}

#[tokio::test]
async fn https_ca_certificates_is_trusted_by_amqps() {
    let pki = pki();
    let port = amqps_proxy(pki.acceptor.clone()).await;
    let env = daemon_env(&[("HTTPS_CA_CERTIFICATES", &pki.ca_pem)]);
    let config = opencti_connectors::registry::Config::from_sources(None, &env).unwrap();
    let egress = config.egress().unwrap();
    let registered = Connection {
        host: "127.0.0.1".into(),
        vhost: "/".into(),
        use_ssl: true,
        port,
        user: "guest".into(),
        pass: Secret::new("guest"),
    };
    let connection = BrokerAddress::resolve(&registered, &MqConfig::default())
        .trusting(Some(&egress))
        .connect("tls-test-https-ca-certificates")
        .await
        .expect("amqps with HTTPS_CA_CERTIFICATES");
    assert!(connection.status().connected());
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test]
async fn malformed_https_ca_certificates_is_a_startup_error_naming_it() {
    let env = daemon_env(&[(
        "HTTPS_CA_CERTIFICATES",
        "-----BEGIN CERTIFICATE-----\nnope\n",
    )]);
    let config = opencti_connectors::registry::Config::from_sources(None, &env).unwrap();
    let err = opencti_connectors::registry::build_all(&config)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "tls.ca_certificates (env HTTPS_CA_CERTIFICATES): not a PEM certificate bundle"
        ),
        "{err}"
    );
}

/// `enrich ipinfo` through the binary with only `env`: its exit code and stderr.
fn enrich_with(url: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(crate::common::daemon::BIN);
    command
        .env_clear()
        .args([
            "enrich",
            "ipinfo",
            "IPv4-Addr",
            "8.8.8.8",
            "--tlp",
            "TLP:GREEN",
        ])
        .env("IPINFO_TOKEN", "k")
        .env("IPINFO_API_BASE_URL", url);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_system_store_named_by_ssl_cert_file_or_ssl_cert_dir_is_trusted() {
    let pki = pki();
    let url = https_server(
        pki.acceptor.clone(),
        fixture("ipinfo", "ipv4_asn_privacy_8.8.8.8.json"),
    )
    .await;
    let dir = std::env::temp_dir().join(format!("store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    let file = dir.join("bundle.pem");
    std::fs::write(&file, &pki.ca_pem).unwrap();
    std::fs::write(dir.join("certs").join("private-ca.pem"), &pki.ca_pem).unwrap();
    let file = file.to_str().unwrap().to_string();
    let certs = dir.join("certs").to_str().unwrap().to_string();
    let url2 = url.clone();
    let (untrusted, trusted_file, trusted_dir, missing) = tokio::task::spawn_blocking(move || {
        (
            enrich_with(&url2, &[]),
            enrich_with(&url2, &[("SSL_CERT_FILE", &file)]),
            enrich_with(&url2, &[("SSL_CERT_DIR", &certs)]),
            enrich_with(&url2, &[("SSL_CERT_FILE", "/nonexistent/bundle.pem")]),
        )
    })
    .await
    .unwrap();
    assert_eq!(untrusted.0, Some(1), "an unknown CA fails: {}", untrusted.1);
    assert_eq!(trusted_file.0, Some(0), "{}", trusted_file.1);
    assert_eq!(trusted_dir.0, Some(0), "{}", trusted_dir.1);
    assert_eq!(missing.0, Some(2), "{}", missing.1);
    assert!(
        missing.1.contains("SSL_CERT_FILE") && missing.1.contains("/nonexistent/bundle.pem"),
        "{}",
        missing.1
    );
    let _ = std::fs::remove_dir_all(dir);
}
