use super::*;

#[tokio::test]
async fn a_panicking_accept_loop_marks_the_tunnel_failed() {
    let tracker = TaskTracker::new();
    let stats = Arc::new(TunnelStats::default());
    spawn_watched(&tracker, &stats, "inbound", async {});
    tracker.close();
    tracker.wait().await;
    assert!(
        !stats.has_failed(),
        "a loop that ends normally is no failure"
    );

    let tracker = TaskTracker::new();
    spawn_watched(&tracker, &stats, "inbound", async {
        panic!("accept loop bug");
    });
    tracker.close();
    tracker.wait().await;
    assert!(stats.has_failed());
    assert_eq!(stats.snapshot().failed, 1);
}
