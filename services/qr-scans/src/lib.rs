//! QR scans: a fan scanned a parametric QR code (6% of interactions, seed 000).
//! `SUBSCRIBE` with `qrscene_<scene>` is a new follower brought by that code; `SCAN` is an
//! existing fan. The scene gives the channel (store counter, associate's code, event,
//! article, ad, packaging, payment), the store and associate, and the campaign.

use std::sync::Arc;

use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::{Dimension, Dimensions, Scene, UNKNOWN};
use wxpulse_runtime::events::{QrEvent, QrScan};
use wxpulse_runtime::segment::Lifecycle;
use wxpulse_runtime::stream::{Context, Stream};
use wxpulse_runtime::streams::EventStream;
use wxpulse_runtime::{event_row, row};

/// The QR-scan stream.
pub struct QrScans;

impl QrScans {
    /// Builds the stream from the service config.
    pub fn new(_config: &Config) -> Self {
        QrScans
    }
}

event_row! {
    /// A row of `wxpulse.qr_scans`.
    pub struct QrScanRow {
        pub event: &'static str,
        pub event_key: Arc<str>,
        pub scene: Arc<str>,
        pub scene_kind: &'static str,
        pub scene_id: u32,
        pub channel: &'static str,
        pub store_id: Arc<str>,
        pub associate_userid: Arc<str>,
        pub region: Arc<str>,
        pub campaign: Arc<str>,
        pub is_new_follow: bool,
        pub follow_source: &'static str,
    }
}

/// The scene of a WeChat EventKey: `qrscene_<scene>` on subscribe, `<scene>` on scan;
/// a scene is a numeric `scene_id` (temporary and permanent codes) or a `scene_str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneKey<'a> {
    /// The scene as the dimension keys it.
    pub scene: &'a str,
    /// The numeric scene_id, when it is one.
    pub scene_id: Option<u32>,
}

/// Parses an EventKey.
pub fn scene_of(event_key: &str) -> SceneKey<'_> {
    let scene = event_key.strip_prefix("qrscene_").unwrap_or(event_key);
    let scene_id = if scene.bytes().all(|b| b.is_ascii_digit()) {
        scene.parse().ok()
    } else {
        None
    };
    SceneKey { scene, scene_id }
}

/// Where a new follower came from, for the follower-source report.
pub fn follow_source(channel: &str) -> &'static str {
    match channel {
        "store" => "qr_store",
        "associate" => "qr_associate",
        "event" => "qr_event",
        "article" => "qr_article",
        "ad" => "qr_ad",
        "packaging" => "qr_packaging",
        "payment" => "qr_payment",
        "other" => "qr_other",
        _ => "qr_unknown",
    }
}

/// Channel, store, associate, region and campaign of a scene (`None`: not in the
/// dimension); the store of an associate's code is the associate's store when the scene
/// does not name one.
fn place(
    dims: &Dimensions,
    scene: Option<&Scene>,
) -> (&'static str, Arc<str>, Arc<str>, Arc<str>, Arc<str>) {
    let empty = dims.empty();
    let Some(s) = scene else {
        let u = dims.unknown();
        return (UNKNOWN, u.clone(), u.clone(), u.clone(), u);
    };
    let userid = s.userid.clone().unwrap_or_else(|| empty.clone());
    let store = match (&s.store_id, &s.userid) {
        (Some(store), _) => Some(store.clone()),
        (None, Some(userid)) => dims.associate(userid).map(|a| a.store_id.clone()),
        (None, None) => None,
    };
    let region = match &store {
        Some(store) => dims
            .store(store)
            .map_or_else(|| dims.unknown(), |st| st.region.clone()),
        None => empty.clone(),
    };
    let campaign = s.campaign.clone().unwrap_or_else(|| empty.clone());
    (
        s.channel.as_str(),
        store.unwrap_or(empty),
        userid,
        region,
        campaign,
    )
}

impl Stream for QrScans {
    const SERVICE: &'static str = EventStream::QrScans.service();
    const TOPIC: &'static str = EventStream::QrScans.topic();
    const TABLE: &'static str = EventStream::QrScans.table();
    const RECORD: &'static str = EventStream::QrScans.record();
    const DIMENSIONS: &'static [Dimension] =
        &[Dimension::QrScene, Dimension::Associate, Dimension::Store];
    type Event<'a> = QrScan<'a>;
    type Row = QrScanRow;

    fn row(&mut self, e: &QrScan<'_>, cx: &Context<'_>) -> QrScanRow {
        let event = e.event.as_str();
        let key = scene_of(e.event_key);
        let known = cx.dims.scene(e.app_id, key.scene);
        let (channel, store_id, associate_userid, region, campaign) = place(cx.dims, known);
        // A known scene's strings are shared with the dimension: no copy per row. The
        // EventKey is the scene, or `qrscene_` and the scene.
        let (event_key, scene) = match known {
            Some(s) if e.event_key.len() == s.scene.len() => (s.scene.clone(), s.scene.clone()),
            Some(s) => (s.subscribe_key.clone(), s.scene.clone()),
            None => (Arc::from(e.event_key), Arc::from(key.scene)),
        };
        let is_new_follow = e.event == QrEvent::Subscribe;
        let mut row = row!(QrScanRow, cx, {
            event: event,
            event_key: event_key,
            scene: scene,
            scene_kind: if key.scene_id.is_some() { "id" } else { "str" },
            scene_id: key.scene_id.unwrap_or(0),
            channel: channel,
            store_id: store_id,
            associate_userid: associate_userid,
            region: region,
            campaign: campaign,
            is_new_follow: is_new_follow,
            follow_source: if is_new_follow { follow_source(channel) } else { "" },
        });
        if is_new_follow {
            // The scan is the follow itself, whatever the profile says yet.
            row.lifecycle = Lifecycle::New.as_str();
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scene_is_parsed_from_both_key_forms_and_kinds() {
        let k = scene_of("qrscene_store_0042");
        assert_eq!((k.scene, k.scene_id), ("store_0042", None));
        assert_eq!(scene_of("store_0042").scene, "store_0042");
        let n = scene_of("qrscene_123");
        assert_eq!((n.scene, n.scene_id), ("123", Some(123)));
        assert_eq!(scene_of("123").scene_id, Some(123));
        assert_eq!(
            scene_of("99999999999").scene_id,
            None,
            "beyond u32 stays a string"
        );
        assert_eq!(scene_of("").scene_id, None);
    }

    /// A row of `event_key` with one scene known, `store_0042` of every account.
    fn row_of(event: QrEvent, event_key: &str) -> QrScanRow {
        use wxpulse_runtime::enrich::{DimensionRecord, QrSceneRecord, SceneChannel};
        let dims = Dimensions::detached_with([DimensionRecord::QrScene(QrSceneRecord {
            scene: "store_0042".into(),
            channel: SceneChannel::Store,
            store_id: Some("sh01".into()),
            userid: None,
            campaign: None,
            updated_at: 0,
            app_id: String::new(),
        })]);
        let cx = Context::detached(&dims, "wxpulse.qr_scans");
        let e = QrScan {
            event_id: "",
            app_id: "wxa",
            openid: "o",
            unionid: None,
            client_time: 0,
            server_time: 0,
            event,
            event_key,
            ticket: None,
        };
        QrScans.row(&e, &cx)
    }

    #[test]
    fn a_row_keeps_the_event_key_and_scene_of_known_and_unknown_scenes() {
        for (event, key, scene, store) in [
            (
                QrEvent::Subscribe,
                "qrscene_store_0042",
                "store_0042",
                "sh01",
            ),
            (QrEvent::Scan, "store_0042", "store_0042", "sh01"),
            (QrEvent::Subscribe, "qrscene_ad_x", "ad_x", UNKNOWN),
            (QrEvent::Scan, "ad_x", "ad_x", UNKNOWN),
        ] {
            let row = row_of(event, key);
            assert_eq!(
                (&*row.event_key, &*row.scene, &*row.store_id),
                (key, scene, store),
                "{key}"
            );
        }
    }
}
