//! The OpenAI-compatible HTTP server (see DESIGN.md); filled in by the serving work.
