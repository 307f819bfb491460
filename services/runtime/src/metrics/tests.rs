use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;

use super::http::respond;
use super::*;

#[test]
fn names_follow_the_scheme_and_carry_the_service_label() {
    let m = Metrics::new("menu-clicks");
    m.consumed_counter("wxpulse.menu_clicks").inc();
    m.dead_letters.with_label_values(&["undecodable"]).inc();
    m.written.with_label_values(&["menu_clicks"]).inc_by(3);
    let text = m.render();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        assert!(name.starts_with("wxpulse_"), "{name}");
        assert!(line.contains("service=\"menu-clicks\""), "{line}");
    }
    let written = text
        .lines()
        .find(|l| l.starts_with("wxpulse_sink_events_written_total{"))
        .expect("written counter exported");
    assert!(
        written.contains("table=\"menu_clicks\"") && written.ends_with(" 3"),
        "{written}"
    );
    for name in [
        "wxpulse_pipeline_oldest_flush_age_seconds",
        "wxpulse_pipeline_flush_stuck_partitions",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} exported from the start (alert rules need the series)"
        );
    }
}

fn readyz(m: &Metrics) -> (StatusCode, String) {
    let r = respond(m, "/readyz");
    let status = r.status();
    let body = r.into_body();
    let bytes = body_bytes(body);
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn body_bytes(body: Full<Bytes>) -> Bytes {
    use http_body_util::BodyExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(body.collect())
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

#[test]
fn a_flush_in_flight_longer_than_stuck_after_makes_readyz_503_with_the_reason() {
    let m = Metrics::new("menu-clicks");
    m.set_ready(true);
    m.set_stuck_after(Duration::from_millis(50));
    assert_eq!(readyz(&m).0, StatusCode::OK);
    let quick = m.flush_started(1);
    drop(quick);
    let slow = m.flush_started(3);
    std::thread::sleep(Duration::from_millis(5));
    let other = m.flush_started(4);
    std::thread::sleep(Duration::from_millis(80));
    let (status, body) = readyz(&m);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("partition 3"), "{body}");
    assert!(body.contains("batch.stuck_after"), "{body}");
    let text = m.render();
    assert!(
        text.contains("wxpulse_pipeline_flush_stuck_partitions{service=\"menu-clicks\"} 2"),
        "{text}"
    );
    let age = text
        .lines()
        .find(|l| l.starts_with("wxpulse_pipeline_oldest_flush_age_seconds"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .expect("age exported");
    assert!(age >= 0.08, "{age}");
    drop(slow);
    drop(other);
    assert_eq!(readyz(&m).0, StatusCode::OK, "the flush ended");
    assert!(m
        .render()
        .contains("wxpulse_pipeline_flush_stuck_partitions{service=\"menu-clicks\"} 0"));
    m.set_ready(false);
    assert_eq!(readyz(&m).0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(respond(&*m, "/healthz").status(), StatusCode::OK);
}

#[test]
fn lag_is_exported_for_a_partition_that_never_committed() {
    // librdkafka's own figure when it has one.
    assert_eq!(partition_lag(40, 100, 60, 0, 90), Some(40));
    // Never committed (-1001): from the log start, where a restart resumes.
    assert_eq!(partition_lag(-1, 100, -1001, 0, 100), Some(100));
    assert_eq!(partition_lag(-1, 100, -1001, 30, 100), Some(70));
    // Log start unknown: from the application's position.
    assert_eq!(partition_lag(-1, 100, -1001, -1, 95), Some(5));
    // Committed but no end offset librdkafka used (e.g. no last stable offset).
    assert_eq!(partition_lag(-1, 100, 60, 0, 90), Some(40));
    // Nothing known yet.
    assert_eq!(partition_lag(-1, -1, -1001, -1, -1001), None);
    assert_eq!(partition_lag(-1, 100, -1001, -1, -1001), None);
}
