//! The plan's vocabulary: what a planned event is (a menu click, a scan, a read, a chat
//! message) and the keys it carries. Apart from the planner so what reads a plan (the
//! encoding, the truth, the conversions) does not depend on how it is made.

use wxpulse_runtime::events::{ConversationKind, Direction, ReadSource};

use crate::world::World;

/// What a planned event is.
pub(crate) enum What {
    Menu,
    Scan { subscribe: bool, scene: Scene },
    Read(Read),
    Chat(Chat),
}

/// A scene a scan carries.
pub(crate) enum Scene {
    /// Index into [`World::scenes`].
    Known(usize),
    /// A code no record has.
    Unknown(String),
}

/// An article read.
pub(crate) struct Read {
    pub article: Article,
    pub source: ReadSource,
    pub depth: f32,
    pub seconds: i64,
    pub shared: bool,
    pub favorited: bool,
    pub cta: bool,
}

/// The article a read carries.
pub(crate) enum Article {
    /// Index into [`World::articles`].
    Known(usize),
    /// An article no record has.
    Unknown { id: String, msgid: i64, idx: i32 },
}

/// A chat message.
pub(crate) struct Chat {
    pub conversation: ConversationKind,
    pub direction: Direction,
    pub associate: Associate,
}

/// The associate of a chat message.
pub(crate) enum Associate {
    /// Official-account conversations have none.
    None,
    /// Index into [`World::associates`].
    Known(usize),
    /// A userid no record has.
    Unknown(String),
}

impl Associate {
    /// The userid the message carries.
    pub fn userid<'w>(&'w self, world: &'w World) -> Option<&'w str> {
        match self {
            Associate::None => None,
            Associate::Known(i) => Some(world.associates[*i].userid.as_str()),
            Associate::Unknown(u) => Some(u.as_str()),
        }
    }
}

/// A valid event: produced once (plus retry copies the pipeline drops), stored once.
pub(crate) struct Planned {
    /// Server time, ms: production order.
    pub server: i64,
    /// Client time, ms: the event time.
    pub client: i64,
    pub account: u32,
    pub fan: u32,
    pub late: bool,
    pub what: What,
}
