//! The compiled daemon as a child process: spawned from the environment alone, in a scratch
//! directory, killed or terminated by the test, and never left running. Its stdout and
//! stderr are drained as it runs (a full pipe would block its logging, and with it the
//! daemon), and handed back by [`Daemon::terminate`].

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_opencti-connectors");

pub use testkit::free_port;

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    /// Its `/healthz` and `/metrics` port.
    pub port: u16,
    /// What it wrote to stdout and stderr so far.
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    drains: Vec<JoinHandle<()>>,
}

/// Copies `from` into `into` until it ends.
fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl Daemon {
    /// Starts the daemon with `env` (its health endpoint on a free port, logs piped).
    pub fn spawn(env: &[(&str, String)]) -> Daemon {
        Daemon::spawn_with(&[], env)
    }

    /// Starts the daemon with `args` (`run --as ipinfo`) and `env`, as [`Daemon::spawn`].
    pub fn spawn_with(args: &[&str], env: &[(&str, String)]) -> Daemon {
        let port = free_port();
        let dir = crate::common::scratch_dir("occ");
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(&dir)
            .env_remove("CONFIG_FILE")
            .env("DAEMON_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let drains = vec![
            drain(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            drain(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Daemon {
            child: Some(child),
            dir,
            port,
            stdout,
            stderr,
            drains,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What it logged so far (stdout, then stderr).
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
            + &String::from_utf8_lossy(&self.stderr.lock().unwrap())
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL: no drain, no final ping.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit; returns the output.
    pub async fn terminate(mut self) -> Output {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let drains = std::mem::take(&mut self.drains);
        let status = tokio::task::spawn_blocking(move || {
            let status = child.wait();
            for d in drains {
                let _ = d.join();
            }
            status
        })
        .await
        .unwrap()
        .unwrap();
        Output {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: std::mem::take(&mut *self.stderr.lock().unwrap()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
