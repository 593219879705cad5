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
    /// runtime.
    pub fn on_signals() -> Self {
        let s = Self::new();
        let trigger = s.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
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
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "Cannot listen for SIGINT/SIGTERM; falling back to Ctrl-C.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
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
}
