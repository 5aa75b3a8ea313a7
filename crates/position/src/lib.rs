//! ember-position
