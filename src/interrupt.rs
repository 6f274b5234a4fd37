//! Ctrl-C for the verbs that run commands outside a run (`flow prepare`'s setups,
//! `flow done`'s checks, `flow merge`'s and `flow sync`'s): a switch the commands stop on.

use tokio::sync::watch;

/// Returns a switch that turns true at the first Ctrl-C (SIGINT); the commands watching it
/// are then stopped (their process groups get SIGTERM, then SIGKILL after the grace).
pub fn stop_on_ctrl_c() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = sender.send(true);
        }
    });
    receiver
}
