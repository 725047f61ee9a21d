//! The style sheet, the script and the icon, embedded in the binary: one file to
//! deploy, nothing fetched from elsewhere. Their URLs carry a hash of the
//! content, so browsers may cache them for long and still get a new
//! release's at once.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

pub struct Asset {
    pub name: &'static str,
    pub body: &'static str,
    pub content_type: &'static str,
}

impl Asset {
    /// `/assets/NAME?v=HASH`.
    pub fn url(&self) -> String {
        format!("/assets/{}?v={}", self.name, *VERSION)
    }
}

pub static STYLE: Asset = Asset {
    name: "style.css",
    body: include_str!("assets/style.css"),
    content_type: "text/css; charset=utf-8",
};

pub static SCRIPT: Asset = Asset {
    name: "app.js",
    body: include_str!("assets/app.js"),
    content_type: "text/javascript; charset=utf-8",
};

pub static ICON: Asset = Asset {
    name: "icon.svg",
    body: include_str!("assets/icon.svg"),
    content_type: "image/svg+xml",
};

/// A short hash of every asset's content.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    h.update(STYLE.body.as_bytes());
    h.update(SCRIPT.body.as_bytes());
    h.update(ICON.body.as_bytes());
    hex::encode(&h.finalize()[..6])
});

/// The asset of a name, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    [&STYLE, &SCRIPT, &ICON]
        .into_iter()
        .find(|a| a.name == name)
}
