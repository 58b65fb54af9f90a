//! Wire types: what clients see, from the `gantry-wire` crate the CLI shares
//! (built from the store's records, never the records themselves).

pub use gantry_wire::*;
