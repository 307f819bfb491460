//! The source's hand-over to a busy pipeline.

use super::*;

fn record(offset: i64) -> Vec<Record> {
    vec![Record {
        partition: 0,
        offset,
        epoch: 1,
        timestamp: -1,
        key: None,
        payload: None,
        carried: None,
    }]
}

#[test]
fn a_busy_pipeline_is_waited_on_before_pausing() {
    let (tx, mut rx) = mpsc::channel(1);
    let running = AtomicU8::new(RUNNING);
    tx.try_send(record(0)).expect("room for one");
    // Room comes back after 50 ms, within the hold: handed over, no pause.
    let taker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let first = rx.blocking_recv().map(|c| c[0].offset);
        (first, rx)
    });
    let held = hand_over(&tx, record(1), &running, Duration::from_secs(5));
    assert!(matches!(held, Ok(None)), "handed over while waiting");
    let (first, mut rx) = taker.join().expect("taker");
    assert_eq!(first, Some(0));
    // Full for longer than the hold: given back, so the loop pauses.
    let held = hand_over(&tx, record(2), &running, Duration::from_millis(20));
    assert!(matches!(held, Ok(Some(ref c)) if c[0].offset == 2));
    // Stopping: no waiting at all.
    let stopping = AtomicU8::new(STOP_FETCHING);
    let started = Instant::now();
    let held = hand_over(&tx, record(3), &stopping, Duration::from_secs(5));
    assert!(matches!(held, Ok(Some(_))) && started.elapsed() < Duration::from_secs(1));
    assert_eq!(rx.try_recv().map(|c| c[0].offset).ok(), Some(1));
    drop(rx);
    assert!(hand_over(&tx, record(4), &running, Duration::from_secs(5)).is_err());
}

#[test]
fn the_hold_is_a_small_share_of_the_poll_interval() {
    assert_eq!(
        hold_before_pause(Duration::from_secs(300)),
        Duration::from_secs(5)
    );
    assert_eq!(
        hold_before_pause(Duration::from_secs(10)),
        Duration::from_secs(1)
    );
}
