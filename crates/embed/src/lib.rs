//! ember-embed
