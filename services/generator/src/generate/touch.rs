//! What orders and conversions share: a fan's key and a qualifying touch. Below both, so
//! neither imports the other for them.

/// A fan: (account, fan number). Fans are (app_id, openid): one per account.
pub(crate) type FanKey = (u32, u32);

/// A kind of qualifying touch (`fan_touches.touch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TouchKind {
    /// A WeCom 1:1 message with an associate, either way.
    AssociateChat,
    /// An article read from the push, or with its call to action clicked.
    Article,
    /// A QR scan (subscribe or scan).
    QrScan,
    /// A click on an e-commerce menu button.
    MenuEcommerce,
}

impl TouchKind {
    /// As `fan_touches` and `v_order_credits` name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            TouchKind::AssociateChat => "associate_chat",
            TouchKind::Article => "article",
            TouchKind::QrScan => "qr_scan",
            TouchKind::MenuEcommerce => "menu_ecommerce",
        }
    }
}

/// A qualifying touch: a planned event (index into the plan) and its event id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Touch {
    pub index: u32,
    pub kind: TouchKind,
    pub event_id: u128,
}
