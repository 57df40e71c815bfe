//! Real models.
