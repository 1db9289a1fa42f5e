"""Small shared helpers: atomic file writes, seeding, JSONL logging."""
