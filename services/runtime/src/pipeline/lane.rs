//! The overflow lane as its primary sees it: whether the lane has written every record
//! diverted so far, which a restore and the lookup of a hot key's suspect event id wait
//! for.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// What a primary needs to know whether its overflow lane has written what was diverted.
#[derive(Clone)]
pub(super) struct Lane {
    pub(super) kafka: crate::config::KafkaConfig,
    /// `<topic>.overflow`.
    pub(super) topic: String,
    /// The lane's consumer group.
    pub(super) group: String,
}

impl Lane {
    /// Waits until the lane's group has committed up to the overflow topic's end as of
    /// the call (so every record diverted before it is written); `false` when `stop` or
    /// `shutdown` fires first. `what` names the waiter in the log.
    pub(super) async fn caught_up(
        &self,
        partition: i32,
        what: &str,
        stop: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> bool {
        let started = Instant::now();
        let mut warned = false;
        let reader = {
            let (kafka, group) = (self.kafka.clone(), self.group.clone());
            tokio::task::spawn_blocking(move || crate::overflow::lane_reader(&kafka, &group))
        };
        let reader = match reader.await {
            Ok(Ok(reader)) => std::sync::Arc::new(reader),
            Ok(Err(e)) => {
                tracing::error!(partition, error = %e, "cannot create the overflow lane's offset reader");
                return false;
            }
            Err(_) => return false,
        };
        let mut ends = None;
        let mut complained: Option<Instant> = None;
        loop {
            let (r, t, known) = (reader.clone(), self.topic.clone(), ends.clone());
            let checked = tokio::task::spawn_blocking(move || {
                let ends = match known {
                    Some(ends) => ends,
                    None => crate::overflow::topic_ends(&r, &t)?,
                };
                let behind = crate::overflow::lane_backlog(&r, &t, &ends)?;
                Ok::<_, rdkafka::error::KafkaError>((ends, behind))
            })
            .await;
            match checked {
                Ok(Ok((_, 0))) => {
                    if warned {
                        tracing::info!(
                            partition,
                            waited_s = started.elapsed().as_secs(),
                            what,
                            "the overflow lane caught up"
                        );
                    }
                    return true;
                }
                Ok(Ok((e, behind))) => {
                    ends = Some(e);
                    if !warned && started.elapsed() > Duration::from_secs(10) {
                        warned = true;
                        tracing::warn!(partition, behind, what, lane_group = %self.group, overflow_topic = %self.topic, "waiting for the overflow lane to write what was diverted before {what}");
                    }
                }
                Ok(Err(e)) => {
                    if complained.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                        complained = Some(Instant::now());
                        tracing::warn!(partition, error = %e, overflow_topic = %self.topic, "cannot read the overflow lane's progress (does the overflow topic exist?); retrying");
                    }
                }
                Err(_) => return false,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.cancelled() => return false,
                _ = shutdown.cancelled() => return false,
            }
        }
    }
}
