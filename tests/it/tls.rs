//! `tls.ca_file`: a private CA is trusted by the HTTP clients and by amqps, so verification
//! stays on. The certificates are made here with rcgen; the servers are tokio-rustls.

use std::sync::Arc;

use crate::common::*;
use opencti_connectors::amqp::BrokerAddress;
use opencti_connectors::config::{MqConfig, Secret};
use opencti_connectors::connectors::{ConnectorError, Hosted};
use opencti_connectors::opencti::client::Connection;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private CA and a server certificate it signed for 127.0.0.1.
struct Pki {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "opencti-connectors test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(server.der().to_vec())], key)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

/// An HTTPS server answering every request with `body` (JSON).
async fn https_server(acceptor: TlsAcceptor, body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut request = [0u8; 8192];
                let _ = tls.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    url
}

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
    let dir = std::env::temp_dir().join(format!("ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
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
    let dir = std::env::temp_dir().join(format!("ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
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
    let roots = opencti_connectors::http::Roots::from_pem(&pki.ca_pem).unwrap();
    let connection = broker
        .trusting(Some(&roots))
        .connect("tls-test-trusting")
        .await
        .expect("amqps with the private CA");
    assert!(connection.status().connected());
    let _ = connection.close(200, "done".into()).await;
}
