//! The compiled daemon as a child process: spawned from the environment alone, in a scratch
//! directory, killed or terminated by the test, and never left running.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_opencti-connectors");

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    /// Its `/healthz` and `/metrics` port.
    pub port: u16,
}

impl Daemon {
    /// Starts the daemon with `env` (its health endpoint on a free port, logs piped).
    pub fn spawn(env: &[(&str, String)]) -> Daemon {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("occ-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new(BIN);
        command
            .current_dir(&dir)
            .env_remove("CONFIG_FILE")
            .env("DAEMON_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        Daemon {
            child: Some(command.spawn().unwrap()),
            dir,
            port,
        }
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
        let child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
