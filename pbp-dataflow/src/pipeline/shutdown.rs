//! Graceful shutdown: a signal that many pipelines can wait on.

use tokio::sync::watch;

/// A shutdown signal shared by clones. [`Shutdown::trigger`] (or SIGINT/SIGTERM after
/// [`Shutdown::on_signals`]) completes every [`Shutdown::wait`].
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Self { tx, rx }
    }

    /// A signal that fires on SIGINT or SIGTERM (on Unix; Ctrl-C elsewhere). Must be called inside a Tokio
    /// runtime. The handlers are installed before this returns, so a signal sent afterwards is never lost.
    pub fn on_signals() -> Self {
        let s = Self::new();
        let trigger = s.clone();
        let signals = Signals::install();
        tokio::spawn(async move {
            signals.recv().await;
            tracing::info!("Shutdown signal received; finishing in-flight records.");
            trigger.trigger();
        });
        s
    }

    /// Fires the signal.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// True once fired.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes once the signal has fired.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means every sender is gone, which cannot happen while `self` holds one.
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

#[cfg(unix)]
enum Signals {
    Unix(tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    CtrlC,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(int), Ok(term)) => Self::Unix(int, term),
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "Cannot listen for SIGINT/SIGTERM; falling back to Ctrl-C.");
                Self::CtrlC
            }
        }
    }

    async fn recv(self) {
        match self {
            Self::Unix(mut int, mut term) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            Self::CtrlC => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Self
    }

    async fn recv(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_all_clones() {
        let s = Shutdown::new();
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.wait().await })
        };
        assert!(!s.is_triggered());
        s.trigger();
        waiter.await.unwrap();
        s.wait().await;
        assert!(s.is_triggered());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_fires_the_signal() {
        let s = Shutdown::on_signals();
        let status =
            std::process::Command::new("kill").args(["-TERM", &std::process::id().to_string()]).status().unwrap();
        assert!(status.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), s.wait()).await.expect("SIGTERM was not seen");
    }
}
