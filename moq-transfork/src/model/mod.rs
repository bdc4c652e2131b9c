//! The data model: tracks named by paths, their groups and frames, and announcements.

mod order;
mod path;

pub use order::GroupOrder;
pub use path::Path;
