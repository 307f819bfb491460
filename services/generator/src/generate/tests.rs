//! The unit tests of `generate`, split by concern into the modules below (each a file of
//! its own, so none grows too long); `support` holds what they share.

mod dimensions;
mod figures;
mod shapes;
mod streams;
mod support;
