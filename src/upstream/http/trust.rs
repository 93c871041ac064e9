//! What every HTTP client and amqps trust: the union of
//! - the web PKI roots (Mozilla's, as `webpki-roots` / `webpki-root-certs` ship them);
//! - the system trust store, read by `rustls-native-certs`, which honours `SSL_CERT_FILE`
//!   and `SSL_CERT_DIR` (read from the process environment, as OpenSSL does);
//! - `tls.ca_certificates` (`HTTPS_CA_CERTIFICATES`): PEM text, what the integration manager
//!   passes to every connector container;
//! - `tls.ca_file`: a PEM file.
//!
//! A value that is no PEM certificate bundle is a start-up error naming it.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The largest `tls.ca_file` read: 16 MiB (the system bundle of every public CA is about
/// 200 KiB).
pub const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The trust sources, parsed once at start-up.
#[derive(Clone, Default)]
pub struct Trust {
    /// Certificates added to the HTTP clients' roots (reqwest has the web PKI built in):
    /// the system store's, `tls.ca_certificates`' and `tls.ca_file`'s.
    http: Arc<Vec<reqwest::Certificate>>,
    /// The extra roots of amqps, as PEM: the web PKI's, `tls.ca_certificates`' and
    /// `tls.ca_file`'s (lapin's verifier reads the system store itself).
    amqp_pem: Option<Arc<str>>,
    counts: Counts,
}

/// How many certificates each source gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub system: usize,
    pub ca_certificates: usize,
    pub ca_file: usize,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trust({:?})", self.counts)
    }
}

/// A trust source that could not be read; the message names the source, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct TrustError {
    /// `tls.ca_file (env TLS_CA_FILE)`, `SSL_CERT_FILE`, …
    pub source_name: String,
    pub message: String,
}

/// Where the certificates come from; `None` for a source that is not set.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    /// `(name for errors, PEM text)` of `tls.ca_certificates`.
    pub ca_certificates: Option<(&'a str, &'a str)>,
    /// `(name for errors, path)` of `tls.ca_file`.
    pub ca_file: Option<(&'a str, &'a str)>,
    /// Whether to read the system store (off in tests that need a store of known content).
    pub system: bool,
}

impl Trust {
    /// Reads every source; any that is set but unreadable or not PEM is an error.
    pub fn load(sources: &Sources<'_>) -> Result<Trust, TrustError> {
        let fail = |name: &str, message: String| TrustError {
            source_name: name.to_string(),
            message,
        };
        let mut counts = Counts::default();
        let mut extra: Vec<CertificateDer<'static>> = Vec::new();
        if let Some((name, pem)) = sources.ca_certificates {
            let certs = parse_bundle(pem).map_err(|m| fail(name, m))?;
            counts.ca_certificates = certs.len();
            extra.extend(certs);
        }
        if let Some((name, path)) = sources.ca_file {
            let pem = read_capped(path).map_err(|m| fail(name, m))?;
            let certs = parse_bundle(&pem).map_err(|m| fail(name, format!("{path}: {m}")))?;
            counts.ca_file = certs.len();
            extra.extend(certs);
        }
        let system = if sources.system {
            system_store()?
        } else {
            Vec::new()
        };
        counts.system = system.len();
        let http = system
            .iter()
            .chain(&extra)
            .filter_map(|der| reqwest::Certificate::from_der(der).ok())
            .collect();
        let amqp_pem = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .chain(&extra)
            .map(|der| to_pem(der))
            .collect::<String>();
        Ok(Trust {
            http: Arc::new(http),
            amqp_pem: Some(amqp_pem.into()),
            counts,
        })
    }

    /// Trusts the certificates of `pem` beside the web PKI only (tests).
    pub fn from_pem(pem: &str) -> Result<Trust, TrustError> {
        Trust::load(&Sources {
            ca_certificates: Some(("PEM", pem)),
            ..Sources::default()
        })
    }

    /// How many certificates each source gave.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Adds the roots to an HTTP client (the web PKI is reqwest's own).
    pub fn apply(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        for cert in self.http.iter() {
            builder = builder.add_root_certificate(cert.clone());
        }
        builder
    }

    /// The extra roots of amqps as PEM (`None`: none configured).
    pub fn amqp_pem(&self) -> Option<Arc<str>> {
        self.amqp_pem.clone()
    }
}

/// The certificates of a PEM bundle: at least one, each one webpki can use as an anchor.
fn parse_bundle(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        // The PEM errors quote lines of the text: say what is wrong without them.
        .map_err(|e| format!("not a PEM certificate bundle ({})", pem_error(&e)))?;
    if certs.is_empty() {
        return Err("not a PEM certificate bundle (no certificate in it)".into());
    }
    for (i, cert) in certs.iter().enumerate() {
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| format!("certificate {} of the PEM bundle is unusable: {e}", i + 1))?;
    }
    Ok(certs)
}

fn pem_error(error: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { .. } => "a section has no END line",
        Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        Error::Base64Decode(_) => "a section is not base64",
        Error::Io(_) => "it could not be read",
        _ => "it is malformed",
    }
}

/// Reads `path`, at most [`MAX_CA_FILE_BYTES`] of it (`/dev/zero` must not fill the memory).
fn read_capped(path: &str) -> Result<String, String> {
    use std::io::Read;
    let mut pem = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_CA_FILE_BYTES + 1).read_to_string(&mut pem))
        .map_err(|e| format!("cannot read the CA file {path}: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!(
            "the CA file {path} is larger than {} MiB",
            MAX_CA_FILE_BYTES >> 20
        ));
    }
    Ok(pem)
}

/// The system store's certificates that webpki can use. With `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` set, what they name is read instead of the OS store, and a file or
/// directory that cannot be read is a start-up error naming the variable; the OS store's
/// own unreadable entries are skipped (the store is the distribution's, not a setting).
fn system_store() -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let result = rustls_native_certs::load_native_certs();
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let named = [
        ("SSL_CERT_FILE", set("SSL_CERT_FILE")),
        ("SSL_CERT_DIR", set("SSL_CERT_DIR")),
    ];
    if let Some(error) = result.errors.first() {
        let names: Vec<&str> = named.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
        if !names.is_empty() {
            return Err(TrustError {
                source_name: names.join(" or "),
                message: describe_native(error),
            });
        }
        tracing::warn!(error = %describe_native(error), "Some certificates of the system trust store could not be read.");
    }
    if named[0].1 && result.certs.is_empty() {
        return Err(TrustError {
            source_name: "SSL_CERT_FILE".into(),
            message: "no certificate in it".into(),
        });
    }
    Ok(result
        .certs
        .into_iter()
        .filter(|der| rustls::RootCertStore::empty().add(der.clone()).is_ok())
        .collect())
}

/// A system store error, with its path but without quoting the file.
fn describe_native(error: &rustls_native_certs::Error) -> String {
    match &error.kind {
        rustls_native_certs::ErrorKind::Io { inner, path } => {
            format!("{}: {} ({inner})", error.context, path.display())
        }
        rustls_native_certs::ErrorKind::Pem(e) => {
            format!("{}: {}", error.context, pem_error(e))
        }
        _ => error.context.to_string(),
    }
}

/// One certificate as PEM text.
fn to_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    // base64 text is ASCII: every 64-byte chunk is valid UTF-8.
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_is_read_up_to_its_cap() {
        let load = |path| {
            Trust::load(&Sources {
                ca_file: Some(("tls.ca_file", path)),
                ..Sources::default()
            })
            .unwrap_err()
        };
        let err = load("/dev/zero");
        assert!(err.message.contains("larger than 16 MiB"), "{err}");
        let err = load("/nonexistent/ca.pem");
        assert!(
            err.to_string()
                .starts_with("tls.ca_file: cannot read the CA file"),
            "{err}"
        );
    }

    #[test]
    fn malformed_pem_is_refused_without_quoting_it() {
        for text in [
            "",
            "hunter2",
            "-----BEGIN CERTIFICATE-----\nhunter2!!\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n",
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        ] {
            let err = Trust::from_pem(text).unwrap_err().to_string();
            assert!(err.starts_with("PEM: "), "{err}");
            assert!(
                !err.contains("hunter2") && !err.contains("aGVsbG8"),
                "{err}"
            );
        }
    }

    #[test]
    fn web_pki_roots_go_to_amqps_as_pem() {
        let trust = Trust::load(&Sources::default()).unwrap();
        let pem = trust.amqp_pem().unwrap();
        let parsed = parse_bundle(&pem).unwrap();
        assert_eq!(parsed.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
    }
}
