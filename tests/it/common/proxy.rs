//! A TCP proxy the test can switch off and on: while it is down, connecting to it is
//! refused, as with a platform that is not running. Frozen, it keeps every connection open
//! and forwards nothing, as a network that silently drops packets.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A proxy to `target`, listening on a fixed port.
pub struct Proxy {
    pub url: String,
    addr: SocketAddr,
    target: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    /// A proxy to the server at `target_url` (`http://host:port`).
    pub async fn start(target_url: &str) -> Proxy {
        let target: SocketAddr = target_url
            .trim_start_matches("http://")
            .parse()
            .expect("an http://ip:port URL");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy {
            url: format!("http://{addr}"),
            addr,
            target,
            task: Mutex::new(None),
            frozen: tokio::sync::watch::Sender::new(false),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target;
        let frozen = self.frozen.subscribe();
        let task = tokio::spawn(async move {
            // Dropped with the task: every proxied connection is cut when the proxy goes down.
            let mut connections = JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let frozen = frozen.clone();
                connections.spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        let (in_read, in_write) = inbound.into_split();
                        let (out_read, out_write) = outbound.into_split();
                        tokio::join!(
                            forward(in_read, out_write, frozen.clone()),
                            forward(out_read, in_write, frozen)
                        );
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Stops forwarding, keeping every connection open (nothing is closed or refused).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Closes the port and cuts every connection.
    pub fn down(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens on the same port again.
    pub async fn up(&self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                // The aborted task may still hold the port for a moment.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// Copies `from` to `to` until either ends; once `frozen`, holds both open and copies nothing.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if *frozen.borrow() {
            // Keep the halves (and so the sockets) until the proxy goes.
            std::future::pending::<()>().await;
        }
        let n = tokio::select! {
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = frozen.changed() => continue,
        };
        if *frozen.borrow() {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
