//! Agent enrollment tokens.
