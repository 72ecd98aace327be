//! On-disk blocks (being written).

pub mod floatenc;
