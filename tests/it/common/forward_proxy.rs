//! A forward proxy, as a corporate network has: `CONNECT host:port` opens a tunnel (https),
//! an absolute-form request (`GET http://host/…`) is forwarded as is (http). It records what
//! went through it: the method, the target and the `Proxy-Authorization` header.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One request that went through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `CONNECT` or the forwarded method.
    pub method: String,
    /// `host:port` of a CONNECT, the absolute URL of a forwarded request.
    pub target: String,
    /// The `Proxy-Authorization` header, if any.
    pub authorization: Option<String>,
}

/// A running forward proxy on the loopback.
pub struct ForwardProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ForwardProxy {
    pub async fn start() -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(handle(socket, log.clone()));
            }
        });
        ForwardProxy { url, seen }
    }

    /// `http://user:password@127.0.0.1:<port>`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        self.url
            .replace("http://", &format!("http://{user}:{password}@"))
    }

    /// What went through it so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle(socket: TcpStream, log: Arc<Mutex<Vec<Seen>>>) {
    let mut reader = BufReader::new(socket);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push(line),
        }
    }
    let Some(request_line) = head.first() else {
        return;
    };
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let authorization = head.iter().find_map(|h| {
        let (name, value) = h.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_string())
    });
    log.lock().unwrap().push(Seen {
        method: method.clone(),
        target: target.clone(),
        authorization,
    });
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(&target).await else {
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                .await;
            return;
        };
        let mut client = reader.into_inner();
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_ok()
        {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        return;
    }
    // Absolute form: connect to its authority and pass the request on unchanged.
    let authority = target
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let Ok(mut upstream) = TcpStream::connect(&authority).await else {
        let _ = reader
            .get_mut()
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            .await;
        return;
    };
    let mut forwarded = head
        .iter()
        .filter(|h| !h.to_ascii_lowercase().starts_with("proxy-"))
        .cloned()
        .collect::<String>();
    forwarded.push_str("\r\n");
    if upstream.write_all(forwarded.as_bytes()).await.is_err() {
        return;
    }
    let buffered = reader.buffer().to_vec();
    let mut client = reader.into_inner();
    if !buffered.is_empty() && upstream.write_all(&buffered).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
