//! What the services write for a touch after enrichment with the world's records (the
//! dimensions as they hold them), `unknown` for a key no record has.

use std::collections::HashMap;

use crate::generate::plan::{Article, Planned, Scene, What};
use crate::world::World;

/// What a touch carries after enrichment (empty for what its kind does not have).
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Attrs {
    pub(super) associate_userid: String,
    pub(super) store_id: String,
    pub(super) region: String,
    pub(super) msgid: i64,
    pub(super) article_id: String,
    pub(super) campaign: String,
    pub(super) scene: String,
    pub(super) qr_channel: String,
}

/// The world's records as the services' dimensions hold them.
pub(super) struct Dims<'w> {
    pub(super) world: &'w World,
    pub(super) regions: HashMap<&'w str, &'w str>,
}

impl Dims<'_> {
    /// Region of a store: the record's, `unknown` without one.
    pub(super) fn region(&self, store_id: &str) -> String {
        self.regions
            .get(store_id)
            .map_or(orders_unknown(), |r| r.to_string())
    }

    /// Store and region of an associate: `unknown` both when no record has the userid.
    pub(super) fn associate_place(&self, userid: &str) -> (String, String) {
        match self.world.associate_index(userid) {
            Some(i) => {
                let store = &self.world.associates[i].store_id;
                (store.clone(), self.region(store))
            }
            None => (orders_unknown(), orders_unknown()),
        }
    }

    /// What the services write for a touch.
    pub(super) fn attributes(&self, e: &Planned) -> Attrs {
        let world = self.world;
        match &e.what {
            What::Menu => Attrs::default(),
            What::Chat(c) => {
                let userid = c.associate.userid(world).unwrap_or_default().to_string();
                let (store_id, region) = self.associate_place(&userid);
                Attrs {
                    associate_userid: userid,
                    store_id,
                    region,
                    ..Attrs::default()
                }
            }
            What::Read(r) => match &r.article {
                Article::Known(i) => {
                    let a = &world.articles[*i];
                    Attrs {
                        msgid: a.msgid,
                        article_id: a.article_id.clone(),
                        campaign: a.campaign.clone().unwrap_or_default(),
                        ..Attrs::default()
                    }
                }
                Article::Unknown { id, msgid, .. } => Attrs {
                    msgid: *msgid,
                    article_id: id.clone(),
                    campaign: orders_unknown(),
                    ..Attrs::default()
                },
            },
            What::Scan { scene, .. } => match scene {
                Scene::Known(i) => {
                    let s = &world.scenes[*i];
                    let userid = s.userid.clone().unwrap_or_default();
                    // The code's store, else its associate's (the qr-scans service's rule).
                    let store = match (&s.store_id, &s.userid) {
                        (Some(store), _) => Some(store.clone()),
                        (None, Some(u)) => world
                            .associate_index(u)
                            .map(|i| world.associates[i].store_id.clone()),
                        (None, None) => None,
                    };
                    let region = store.as_deref().map_or(String::new(), |s| self.region(s));
                    Attrs {
                        associate_userid: userid,
                        store_id: store.unwrap_or_default(),
                        region,
                        scene: s.scene.clone(),
                        qr_channel: s.channel.as_str().to_string(),
                        ..Attrs::default()
                    }
                }
                Scene::Unknown(s) => Attrs {
                    associate_userid: orders_unknown(),
                    store_id: orders_unknown(),
                    region: orders_unknown(),
                    scene: s.clone(),
                    qr_channel: orders_unknown(),
                    ..Attrs::default()
                },
            },
        }
    }
}

pub(super) fn orders_unknown() -> String {
    crate::spec::UNKNOWN.to_string()
}
