//! On-disk blocks (being written).
