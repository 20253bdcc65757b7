//! The one integration test binary. A module per area.

mod decode;
